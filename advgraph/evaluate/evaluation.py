"""Evaluating a run, checkpoint by checkpoint: each checkpoint read in turn (the first one
restored, the others loaded into the same trainer), then the metrics asked for on it.

Plain arguments in, reports out as they come (a generator each), so that a caller prints every
result as soon as it exists; `advgraph eval` is one such caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..errors import CheckpointError
from ..run.directory import RunDir

Warn = Optional[Callable[[str], None]]


def checkpoint_steps(run: RunDir, step: int | None, every: bool) -> list[int | None]:
    """The checkpoints to evaluate: every one the run keeps, oldest first (`every`; [None],
    the latest, when it keeps none yet), or just `step` (None: the latest good one)."""
    if not every:
        return [step]
    return [c.step for c in run.checkpoints()] or [None]


def restored_checkpoints(run: RunDir, steps: list[int | None],
                         restore: Callable[[int | None], Any], *, skip_vanished: bool = False,
                         dist=None, warn: Warn = None) -> Iterator[tuple[Any, bool]]:
    """Each checkpoint of `steps` in turn, as (the restored run, whether it is the last): the
    first from `restore(step)`, the others loaded into the same program, trainer and data.

    `skip_vanished`: a checkpoint removed since `steps` was listed (a run still training keeps
    only its newest) is skipped, with a warning (from rank 0 alone with `dist`); when every one
    was, that is an error."""
    restored = None
    for i, step in enumerate(steps):
        try:
            if restored is None:
                restored = restore(step)
            else:
                restored.load_checkpoint(step, warn=warn)
        except CheckpointError:
            if not skip_vanished or step is None or _still_listed(run, step):
                raise
            if warn is not None and (dist is None or dist.is_main):
                warn(f"skipped the checkpoint at step {step}: it was removed after the "
                     "checkpoints were listed (the run is still training and keeps only its "
                     "newest)")
            continue
        yield restored, i == len(steps) - 1
    if restored is None:
        raise CheckpointError(f"run {run.name!r}: every checkpoint listed was removed before "
                              "it could be read; evaluate again")


def _still_listed(run: RunDir, step: int) -> bool:
    """Whether the run still has a checkpoint at `step` (False: it vanished, pruned by a run
    still training, so there is nothing left to evaluate there)."""
    return any(c.step == step for c in run.checkpoints())


@dataclass
class Evaluation:
    """What to measure on each checkpoint (Parzen, the feature metrics, the 1-D theory, the
    ring's modes), how, and what the measures share across the checkpoints of one run."""

    parzen: bool = False
    quality: frozenset[str] = frozenset()  # of "fid", "prdc", "score"
    theory: bool = False
    per_label: bool = False  # Parzen per class (conditional runs)
    samples: int = 10_000
    seed: int = 0
    split: str = "test"
    baseline: Optional[str] = None  # "train" or "kmeans": scored instead of G (Parzen) or beside it
    sigmas: Optional[list[float]] = None  # the σ grid (None: the default)
    sigma: Optional[float] = None  # a fixed σ
    valid_limit: Optional[int] = 1000  # validation points to choose σ on (None: all)
    retrain_classifier: bool = False
    out: Optional[Path] = None  # the theory figure
    modes: bool = False  # the 8-Gaussians probe (toy-ring2d)
    mode_samples: int = 2500
    mode_share: float = 20 / 2500
    # the feature metrics' classifier and reference features, which no checkpoint of G changes
    memo: dict = field(default_factory=dict, repr=False)

    @property
    def baseline_only(self) -> bool:
        """Parzen of a baseline and nothing else: no checkpoint of G changes what it measures."""
        return self.baseline is not None and not (self.quality or self.theory or self.modes)

    def reports(self, restored: Any, *, last: bool, dist=None, warn: Warn = None,
                progress: Warn = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """("parzen" | "quality" | "theory" | "modes", its report) for one checkpoint, each
        written under the run's eval/. A baseline, which does not depend on G, is measured
        with the `last` checkpoint alone. With `dist`, every rank shares the Parzen work; rank 0
        alone yields, and measures the rest."""
        from .likelihood import parzen
        from .modes import modes
        from .quality import quality
        from .theory import theory

        base = self.baseline if last else None
        if self.parzen and (base or not self.baseline):  # a baseline is scored instead of G
            rep = parzen(restored, dist=dist, per_label=self.per_label, samples=self.samples,
                         sigmas=self.sigmas, sigma=self.sigma, valid_limit=self.valid_limit,
                         split=self.split, baseline=base, seed=self.seed, progress=progress)
            if dist is None or dist.is_main:
                yield "parzen", rep
        if dist is not None and not dist.is_main:
            return
        if self.quality:
            yield "quality", quality(restored, which=set(self.quality), samples=self.samples,
                                     seed=self.seed, split=self.split, baseline=base,
                                     retrain=self.retrain_classifier, warn=warn,
                                     progress=progress, memo=self.memo)
        if self.theory:
            yield "theory", theory(restored, samples=self.samples, seed=self.seed, out=self.out)
        if self.modes:
            yield "modes", modes(restored, samples=self.mode_samples, share=self.mode_share,
                                 seed=self.seed)
