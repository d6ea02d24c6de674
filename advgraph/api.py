"""The Python API: a trained run, outside the CLI.

    import advgraph
    run = advgraph.open_run("fm")               # fm under ./runs ($ADVGRAPH_RUNS), as the CLI
    run = advgraph.open_run("runs/fm")          # a path: a Path, or with a '/' or leading '.'
    x = run.generate(64, seed=0)                # as `advgraph sample fm --npz` draws them
    G = run.generator()                         # a torch.nn.Module: G(z) or G(z, y), arrays too
    run.spec, run.step, run.checkpoints         # the resolved spec, the step loaded, all steps
    run.weights                                 # "ema" (G's moving average) or "raw"

Whatever backend trained the run: checkpoints are backend-neutral. The run is read on the
backend that trained it unless `backend` says otherwise; `generator()` is a torch module either
way. Warnings (a damaged checkpoint skipped for the previous one) go through `warnings.warn`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .run.directory import RunDir, default_root


class Run:
    """A run's checkpoint, ready to sample from (see `open_run`)."""

    def __init__(self, restored: Any):
        self._r = restored

    @property
    def name(self) -> str:
        return self._r.run.name

    @property
    def path(self) -> Path:
        return self._r.run.path

    @property
    def spec(self):
        """The run's resolved spec (advgraph.spec.GanSpec)."""
        return self._r.spec

    @property
    def step(self) -> int:
        """The training step of the loaded checkpoint."""
        return self._r.step

    @property
    def checkpoints(self) -> list[int]:
        """The steps of every checkpoint the run keeps."""
        return [c.step for c in self._r.run.checkpoints()]

    @property
    def weights(self) -> str:
        """"ema" when G is its moving average (a run with training.regularizers.ema, opened
        without `raw`), else "raw"."""
        return self._r.weights

    @property
    def classes(self) -> int | None:
        """The number of classes of a conditional G (None otherwise)."""
        return self._r.program.classes

    def generate(self, n: int, seed: int = 0, label: int | None = None,
                 labels: np.ndarray | None = None) -> np.ndarray:
        """n samples (n, *data shape) drawn with `seed`, exactly as `advgraph sample --npz`
        draws them; a conditional G draws uniform labels, or all `label`, or `labels`."""
        from .run.samples import draw_samples

        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return draw_samples(self._r, n, seed, label, labels)

    def generator(self):
        """G as a torch.nn.Module in inference mode (dropout off): forward(z) for z of shape
        (N, prior dim), or forward(z, y) with class labels y for a conditional G. Spectral
        norm is folded into its weights (W / σ): the module computes what `generate` does."""
        from advgraph_torch.module import GraphModule

        from .objective import folded

        tensors = folded(self._r.program, self._r.trainer.state_dict())
        return GraphModule(self._r.program.G, tensors, self._r.program.classes).eval()

    def sample_noise(self, n: int, seed: int = 0) -> np.ndarray:
        """n draws from the run's prior, as `generate` draws them with `seed`."""
        from .sampling import sample_prior

        return sample_prior(self._r.program.prior, n, np.random.default_rng(seed))

    def __repr__(self) -> str:
        return f"Run({self.name!r}, step={self.step}, path='{self.path}')"


def open_run(run: str | Path, *, checkpoint: int | None = None, backend: str | None = None,
             device: str = "cpu", runs_dir: str | Path | None = None, raw: bool = False) -> Run:
    """Open a run as the CLI's RUN reads it: a name is the run of that name under `runs_dir`
    (default $ADVGRAPH_RUNS, else ./runs); a Path, or a string with a '/' or a leading '.'
    (`"runs/fm"`, `"./fm"`), is the run directory itself. Its latest good checkpoint unless
    `checkpoint` names a step. G is its moving average when the run keeps one
    (training.regularizers.ema), its trained weights with `raw`. Raises
    advgraph.errors.AdvGraphError subclasses with the file named."""
    import warnings

    from .run.restore import restore_run

    root = Path(runs_dir) if runs_dir is not None else default_root()
    return Run(restore_run(RunDir.resolve(run, root), checkpoint, backend=backend, device=device,
                           warn=lambda m: warnings.warn(m, stacklevel=3), raw=raw))


class Sweep:
    """A sweep's members (`advgraph sweep`), each an ordinary run: `members` lists them as
    sweep.json records them (name, seed, values, setting, status); `open(name)` and `runs()`
    open them as `open_run` does."""

    def __init__(self, sweep: Any, root: Path):
        self._sweep, self._root = sweep, root
        self.info = sweep.info()

    @property
    def name(self) -> str:
        return self._sweep.name

    @property
    def members(self) -> list[dict[str, Any]]:
        return self.info["members"]

    def open(self, member: str, **kwargs: Any) -> Run:
        names = [m["name"] for m in self.members]
        if member not in names:
            from .errors import RunError

            raise RunError(f"sweep {self.name!r} has no member {member!r} (members: "
                           f"{', '.join(names)})")
        return open_run(member, runs_dir=self._root, **kwargs)

    def runs(self, **kwargs: Any) -> list[Run]:
        """Every member that did not diverge, opened (keyword arguments as open_run's)."""
        return [self.open(m["name"], **kwargs) for m in self.members
                if m["status"] != "diverged"]

    def __repr__(self) -> str:
        return f"Sweep({self.name!r}, {len(self.members)} members)"


def open_sweep(sweep: str | Path, *, runs_dir: str | Path | None = None) -> Sweep:
    """Open a sweep by name under `runs_dir` (default $ADVGRAPH_RUNS, else ./runs) or by the
    path of its directory."""
    from .sweep.directory import SweepDir

    root = Path(runs_dir) if runs_dir is not None else default_root()
    return Sweep(SweepDir.resolve(str(sweep), root), root)
