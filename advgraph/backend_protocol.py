"""The backend plugin protocol (`Backend`, `Trainer`) and backend discovery through the
`advgraph.backends` entry points (the plugins themselves are under backends/).

A backend turns a Program into a Trainer. Trainers speak NumPy at their boundary (checkpoints,
samples) and keep everything else on their device. The session layer (advgraph.run) owns the
schedules, the data order and the run directory, the training loop (advgraph.train) the
steps' order; a trainer only executes steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from .errors import BackendError, LoweringError
from .ir import Op, Program

GROUP = "advgraph.backends"

# The running sums a trainer keeps between two reads of its metrics, in the order of its state's
# "metrics/sums" (so either backend resumes the other's checkpoint).
METRIC_SUMS = ("d_loss", "d_real", "d_fake", "g_loss")


@dataclass(frozen=True)
class OptimConfig:
    """Static optimiser settings; the per-step lr and momentum come with each step."""

    kind: str  # "sgd" | "adam"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    @property
    def slots(self) -> tuple[str, ...]:
        """The optimiser's state per parameter (SGD's velocity, Adam's moments), by the names
        of a trainer's state ("optim/<net>/<slot>/<tensor>")."""
        return ("velocity",) if self.kind == "sgd" else ("m", "v")


@runtime_checkable
class Trainer(Protocol):
    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """Keep the training set (N, *shape) on the device, with its labels (N,) when the
        program is conditional."""

    def set_order(self, order: np.ndarray) -> None:
        """The permutation of example indices for the current epoch."""

    def d_step(self, pos: int, lr: float, momentum: float, z: np.ndarray | None = None,
               penalties: tuple[str, ...] | None = None) -> None:
        """One D update on examples order[pos:pos+m] and m noise samples (drawn if z is None).
        Conditional: G's samples get the labels of the real examples. D descends the
        program's loss plus, of its penalties (Objective.penalties), those named in
        `penalties` (None: all; the loop passes those due at this update), each weighted
        weight·every. Spectrally normalised D weights take their power iteration first."""

    def g_step(self, lr: float, momentum: float, z: np.ndarray | None = None,
               y: np.ndarray | None = None) -> None:
        """One G update on m fresh noise samples (or the given z). Conditional: on labels y,
        or m labels drawn from the training labels."""

    def ema_step(self, decay: float) -> None:
        """After a G update of a program with an EMA: ema ← decay·ema + (1 − decay)·θ for each
        of G's trainable tensors (decay 0 copies θ; Ema.rate gives it)."""

    def read_metrics(self, reset: bool = True) -> dict[str, float]:
        """Means since the last reset of d_loss, g_loss, d_real, d_fake (D's mean output: a
        probability, or a score for a D without a sigmoid), and of each penalty's term
        (Objective.metric_names, over the updates that applied it); `reset` starts new
        sums. Also `finite`: 1.0 when every parameter is finite. The only host sync of
        training. The running sums and counts are part of state_dict ("metrics/sums",
        "metrics/counts"), so a resumed run's next interval is the uninterrupted one's."""

    def generate(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """G(z) in inference mode (no dropout, running batchnorm statistics); G(z|y) with the
        labels y (N,) of a conditional program (required there)."""

    def discriminate(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """D(x) (or D(x|y)) probabilities in inference mode, shape (N,)."""

    def sample_noise(self, n: int) -> np.ndarray:
        """n draws from the prior with the trainer's generator."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters, buffers, optimiser slots, RNG state and the regularisers' state
        (advgraph.ir.objective names it), by stable name."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict gave (parameters alone are enough to start from)."""


class Backend(Protocol):
    name: str
    distributed: bool  # can train data-parallel over torch.distributed ranks
    about: str  # one line for `advgraph backends`: its devices and what each is for

    def available(self) -> tuple[bool, str]:
        """(usable here?, why not)."""

    def unsupported(self, op: Op) -> str | None:
        """None when the backend lowers `op`; otherwise why it cannot (shown to the user)."""

    def unsupported_feature(self, feature: str) -> str | None:
        """None when the backend trains `feature` (Objective.features: "loss:<name>",
        "gradient_penalty", "r1", "spectral_norm", "ema"); otherwise why not. Optional: a
        backend without it supports only the paper's losses and no regulariser."""

    def cuda_available(self) -> bool:
        """Whether `--device auto` should pick CUDA (optional: a backend without it is CPU)."""

    def build(self, program: Program, device: str, seed: int, batch_size: int,
              optim: dict[str, OptimConfig], dist=None) -> Trainer:
        """`dist` (advgraph.distributed.Dist) is given only to backends that declare
        `distributed = True`: the trainer then trains on its rank's slice of each global
        minibatch and averages gradients over ranks."""

    # Optional: memory_report(program, batch_size, optim) -> list[str], lines `advgraph check
    # --backend NAME` prints (the device memory a training iteration needs, say); without
    # importing a GPU library.
    # Optional: build_members(programs, device, seeds, batch_size, optim) -> a sweep's
    # members as one program (advgraph.sweep.engine.Members), or None where they cannot
    # share one (`why_not_one_program`): the sweep then steps one trainer per member.


def why_not_one_program(programs: list[Program], optim: list[dict[str, OptimConfig]]) -> str | None:
    """None when a sweep's members can be one program (the same nets, prior, data shape and
    objective, the same optimisers but their lr and momentum); else why not."""
    first = programs[0].structure()
    if any(p.structure() != first for p in programs[1:]):
        return "the members' programs differ in more than their initialisers"
    if any(o != optim[0] for o in optim[1:]):
        return "the members' optimisers differ"
    return None


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def list_backends(about: bool = False) -> list[tuple]:
    """(name, available, reason) for every installed backend; with `about`, its line too."""
    out: list[tuple] = []
    for name, ep in sorted(_entry_points().items()):
        text = ""
        try:
            backend = ep.load()()
            ok, why = backend.available()
            text = getattr(backend, "about", "")
        except Exception as e:  # a broken plugin must not break listing the others
            ok, why = False, f"failed to load: {type(e).__name__}: {e}"
        out.append((name, ok, why, text) if about else (name, ok, why))
    return out


def get_backend(name: str, usable: bool = True) -> Backend:
    """The backend plugin `name`; with `usable`, only when it is available here."""
    eps = _entry_points()
    if name not in eps:
        listing = ", ".join(f"{n}" + ("" if ok else f" (unavailable: {why})")
                            for n, ok, why in list_backends()) or "none"
        raise BackendError(f"unknown backend {name!r}; installed: {listing}")
    try:
        backend = eps[name].load()()
        ok, why = backend.available() if usable else (True, "")
    except Exception as e:
        raise BackendError(f"backend {name!r} failed to load: {type(e).__name__}: {e}") from None
    if not ok:
        others = ", ".join(n for n, avail, _ in list_backends() if avail and n != name)
        raise BackendError(f"backend {name!r} is unavailable: {why}"
                           + (f"; available: {others}" if others else ""))
    return backend


def resolve_device(device: str | None, backend_name: str) -> str:
    """`auto` (or nothing): the backend's first CUDA device when it has one, else the CPU."""
    if device not in (None, "auto"):
        return device  # type: ignore[return-value]
    try:
        backend = get_backend(backend_name)
    except BackendError:
        return "cpu"  # building the trainer reports the unknown or unavailable backend
    return "cuda" if getattr(backend, "cuda_available", lambda: False)() else "cpu"


def check_supported(backend: Backend, program: Program) -> None:
    """An op the backend lacks is a compile-time error naming op, node and backend; a loss or
    regulariser it lacks one naming the spec's key and the backend."""
    require_ops(program, backend.name, backend.unsupported)
    unsupported = getattr(backend, "unsupported_feature", _paper_only)
    for feature, path in program.objective.features():
        why = unsupported(feature)
        if why is not None:
            what = feature.split(":", 1)[-1]
            raise BackendError(f"{path}: {what} is not supported by backend {backend.name!r}: "
                               f"{why}")


def _paper_only(feature: str) -> str | None:
    if feature in ("loss:minimax", "loss:non_saturating"):
        return None
    return "this backend declares only the paper's losses (no unsupported_feature)"


def require_ops(program: Program, backend: str, unsupported: Callable[[Op], str | None]) -> None:
    """Raise LoweringError for the first node whose op `unsupported` gives a reason for."""
    for g in (program.G, program.D):
        for node in g.nodes:
            why = unsupported(node.op)
            if why is not None:
                raise LoweringError(node.name, node.op.value, backend, why)
