"""Reading a checkpoint back: a trained model for sample, eval, export and the API (restore_run), or a whole
training session for a resume (validate_and_restore). Nothing here imports the training loop,
so evaluation does not either."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..backend_protocol import Trainer
from ..data import Splits, dataset_for
from ..data.report import LoadReport
from ..errors import AdvGraphError, CheckpointError, RunError
from ..ir import Program
from ..objective import inference_tensors, weights_used
from ..params import bad_value
from ..spec import LoadedSpec, load_file
from .context import Context
from .directory import RunDir
from .session import Session, make_trainer


class RestoredRun:
    """A trained model restored from a run, for sampling and evaluation: G with its EMA
    weights when the run keeps them, unless `raw` (`weights` says which). The data splits are
    read only when first asked for."""

    def __init__(self, run: RunDir, loaded: LoadedSpec, program: Program, trainer: Trainer,
                 step: int, device: str, data_root: str | None, backend: str = "torch",
                 checkpoint: Any = None, checkpoint_sha256: str | None = None,
                 report: LoadReport | None = None, raw: bool = False):
        self.run, self.spec, self.program, self.trainer = run, loaded.spec, program, trainer
        self.step, self.device, self.backend, self.raw = step, device, backend, raw
        # the loaded checkpoint and its tensors' SHA-256, as verified when it was read
        self.checkpoint, self.checkpoint_sha256 = checkpoint, checkpoint_sha256
        self._base_dir, self._data_root = loaded.base_dir, data_root
        self._splits: Splits | None = None
        self._report = report

    def load_checkpoint(self, step: int | None,
                        warn: Callable[[str], None] | None = None) -> None:
        """Another checkpoint of this run into the same trainer: the program, the trainer and
        the data are kept (eval --all-checkpoints builds and reads them once)."""
        ckpt, tensors, state = self.run.latest_checkpoint(step, warn=warn)
        load_state(self.trainer, ckpt, inference_tensors(self.program, tensors, self.raw),
                   self.program)
        self.step, self.checkpoint, self.checkpoint_sha256 = ckpt.step, ckpt, state["sha256"]

    @property
    def weights(self) -> str:
        """"ema" or "raw": which of G's weights the trainer holds, for provenance."""
        return weights_used(self.program, self.raw)

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            splits = dataset_for(self.spec.data, self._base_dir).load(self._data_root,
                                                                        self._report)
            why = data_changed(self.run.info(), splits)
            if why is not None and self._report is not None:
                self._report.warn(why)
            self._splits = splits
        return self._splits


def data_changed(info: dict[str, Any], splits: Splits) -> str | None:
    """What changed in the data since the run began (run.json `data` against what was just
    loaded): the prepared pixels' SHA-256 decides, so a folder merely touched or copied
    (new mtimes, same images) has not changed. None when the same, or nothing to compare."""
    then, now = info.get("data"), splits.provenance
    if not isinstance(then, dict) or now is None or not then.get("sha256"):
        return None
    if then.get("sha256") == now.get("sha256"):
        if then.get("labels_sha256") in (None, now.get("labels_sha256")):
            return None
        return (f"the data's labels changed since the run began: {now.get('path')} gives "
                "the same images other labels (a labels file edited, or files moved between "
                "class folders)")
    return (f"the data changed since the run began: {now.get('path')} now gives "
            f"{now.get('images')} images (SHA-256 {str(now.get('sha256'))[:12]}…), the run "
            f"began on {then.get('images')} (SHA-256 {str(then.get('sha256'))[:12]}…)")


def restore_run(run: RunDir, step: int | None = None, backend: str | None = None,
                device: str | None = None, data_root: str | None = None,
                warn: Callable[[str], None] | None = None,
                report: LoadReport | None = None, raw: bool = False) -> RestoredRun:
    """A run's checkpoint (the latest good one, or `step`) in a trainer, G with its EMA
    weights where the run keeps them (its trained ones with `raw`); `report` hears of the
    data's loading when the splits are asked for (and of data changed since the run
    began)."""
    info = run.info()
    if not run.spec_path.is_file():
        raise RunError(f"{run.spec_path}: missing")
    loaded = load_file(run.spec_path, stored=True)
    ctx = Context(backend or info.get("backend") or "torch", device or "cpu")
    program, trainer, _ = make_trainer(loaded, ctx)
    ckpt, tensors, state = run.latest_checkpoint(step, warn=warn)
    # parameters alone are enough here; spectral norm's u, v go in with them (used, not iterated)
    load_state(trainer, ckpt, inference_tensors(program, tensors, raw), program)
    return RestoredRun(run, loaded, program, trainer, ckpt.step, ctx.device,
                       data_root or info.get("data_root"), ctx.backend, ckpt, state["sha256"],
                       report, raw)


def load_state(trainer: Trainer, ckpt, tensors: dict[str, np.ndarray],
               program: Program) -> None:
    """The checkpoint's tensors into the trainer, their values checked first (finite, and
    positive where an op needs it); a refusal names the file."""
    why = bad_value(program, tensors)
    if why is not None:
        raise CheckpointError(f"{ckpt.tensors_path}: {why}")
    try:
        trainer.load_state_dict(tensors)
    except (AdvGraphError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{ckpt.tensors_path}: {e}") from None


def validate_and_restore(ckpt, tensors: dict[str, np.ndarray], state: dict[str, Any],
                         session: Session, same_stream: bool) -> None:
    """Everything a resume reads, against what this program and data expect: every tensor the
    trainer keeps (names, shapes, dtypes; the noise generator's state where the backend,
    device and world size are the same), the data order (a permutation of the training set),
    and the counters (consistent with each other); then restores the data stream and the
    counters into the session. Errors name the file; a missing piece is an error (parameters
    alone serve sample/eval). Collective when distributed (it asks the trainer for its
    state_dict, as every rank does here)."""
    _check_tensors(ckpt, tensors, session.trainer.state_dict(), same_stream)
    n = len(session.splits.train)
    order = tensors.get("data/order")
    if order is None or order.dtype != np.int64 or order.shape != (n,) or \
            not np.array_equal(np.sort(order), np.arange(n)):
        raise CheckpointError(f"{ckpt.tensors_path}: data/order is not a permutation of the "
                              f"{n} training examples")
    k = session.spec.training.k
    try:
        step = state["step"]
        updates = {g: state["updates"][g] for g in ("D", "G")}
        batches = state["stream"]["batches"]
        ints = [step, batches, *updates.values()]
        if not all(type(v) is int and v >= 0 for v in ints):
            raise ValueError("counters must be non-negative integers")
        if step != ckpt.step or updates["G"] != step or updates["D"] != k * step or \
                batches != updates["D"]:
            raise ValueError(f"inconsistent counters (step {step}, updates {updates}, "
                             f"minibatches {batches}, k = {k})")
        session.stream.restore(state["stream"], order)
        session.step, session.updates = step, updates
        session.elapsed = float(state.get("elapsed_s", 0.0))
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{ckpt.state_path}: unusable checkpoint state ({e})") from None


def _check_tensors(ckpt, tensors: dict[str, np.ndarray], want: dict[str, np.ndarray],
                   same_stream: bool) -> None:
    """Every tensor the trainer keeps is in the checkpoint, with its shape and dtype."""
    missing, wrong = [], []
    for key, ref in want.items():
        if key not in tensors:
            if key.startswith("metrics/") or (key.startswith("rng/") and not same_stream):
                continue  # older checkpoints; another backend's or device's generator
            missing.append(key)
            continue
        got = tensors[key]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            wrong.append(f"{key} is {got.dtype}{list(got.shape)}, expected {ref.dtype}"
                         f"{list(ref.shape)}")
    if missing:
        raise CheckpointError(f"{ckpt.tensors_path}: lacks {len(missing)} piece(s) of state a "
                              f"resume needs, e.g. {missing[0]} (parameters alone serve sample "
                              "and eval, not `resume`)")
    if wrong:
        raise CheckpointError(f"{ckpt.tensors_path}: {wrong[0]}"
                              + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))
