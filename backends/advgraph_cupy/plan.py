"""The launch plan: what the runtime allocates, binds, captures and replays, as data.

A plan is named buffers (each with a dtype, a size and a role) and, per phase, a list of kernel
launches whose pointer arguments are views (buffer, offset, extent) and whose scalars carry
their C type (np.int32, np.uint32, np.float32). The runtime allocates the buffers once, binds
the launches, and captures them (a CUDA graph on a GPU); nothing in a phase depends on the
step, so a captured phase never changes. `lowering/` makes plans from a Program;
`footprint.check_plan` verifies every launch against its kernel's signature and footprint.

The contract between the host and a captured training iteration:
- Hyperparameters: every D-update of an iteration has its own slot in `D.hp` (lr, momentum or
  Adam's bias-corrected step), and `pos` has one slot per D-update; G's update reads `G.hp`. The
  host writes all of them (one upload) before it replays the iteration: lr decays per update and
  Adam's step count changes per update, so one shared slot could not match the torch backend.
- Epochs: the host owns the data order. It writes each D-update's minibatch position into that
  update's `pos` slot; gather_rows reads order[pos + r]. When an epoch ends, the host first
  executes the D-updates still pending under the old order, then uploads the new permutation
  (set_order), so an epoch that ends inside an iteration is exact. A position outside the
  order gives NaN rows (the divergence check catches it), never a read out of bounds.
- Random numbers: rng = (seed, 64-bit offset); every phase (one D-update, the G-update) draws
  with its own offset and advances it in-graph. Launches in a phase are told apart by a stream
  id, so replaying k one-update phases equals replaying one iteration of k updates.
- Metrics: the loss kernels accumulate sums into `metrics`; the `finite` phase counts
  non-finite parameters into metrics[FINITE]; the host reads them and runs `reset_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from advgraph.backend_protocol import OptimConfig
from advgraph.ir import Prior

from .codes import EPILOGUES

BLOCK = 256
ROLES = ("state", "scratch", "host_in", "host_out")
# Buffers with one slot per D-update of an iteration: name → elements per slot.
SLOTTED = {"D.hp": 4, "pos": 1}


@dataclass(frozen=True)
class Buf:
    """A pointer argument: the view [offset, offset + extent) of the named buffer (extent 0:
    to the buffer's end, for buffers the runtime sizes)."""

    name: str
    offset: int = 0
    extent: int = 0

    def at(self, offset: int, extent: int) -> "Buf":
        """A sub-view, offset relative to this one."""
        return Buf(self.name, self.offset + offset, extent)


@dataclass(frozen=True)
class Launch:
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    args: tuple[Any, ...]
    note: str = ""


@dataclass(frozen=True)
class BufferSpec:
    name: str
    dtype: str  # numpy dtype name
    size: int  # elements (0: sized by the runtime, e.g. the training set)
    role: str  # state | scratch | host_in (written by the host) | host_out (read by the host)


@dataclass
class Plan:
    buffers: dict[str, BufferSpec] = field(default_factory=dict)
    phases: dict[str, list[Launch]] = field(default_factory=dict)
    param_offsets: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name → (buf, offset, size)
    io: dict[str, Buf] = field(default_factory=dict)  # inference: "z"/"x"/"y" in, "out" out
    # spectrally normalised weight → the views of its power iteration's u and v (state)
    spectral: dict[str, tuple[Buf, Buf]] = field(default_factory=dict)

    @property
    def d_step(self) -> list[Launch]:
        return self.phases["d_step"]

    @property
    def g_step(self) -> list[Launch]:
        return self.phases["g_step"]

    def d_update(self, u: int) -> list[Launch]:
        """The launches of the u-th D-update of an iteration: its own hp and pos slots."""
        if u == 0:
            return list(self.d_step)

        def shift(a: Any) -> Any:
            if isinstance(a, Buf) and a.name in SLOTTED:
                return replace(a, offset=a.offset + u * SLOTTED[a.name])
            return a

        return [replace(l, args=tuple(shift(a) for a in l.args)) for l in self.d_step]

    def iteration(self, k: int) -> list[Launch]:
        """Every launch of one iteration of Algorithm 1: k D-updates, one G-update. Grows the
        slotted buffers to k slots."""
        self.grow_slots(k)
        return [launch for u in range(k) for launch in self.d_update(u)] + self.g_step

    def grow_slots(self, k: int) -> bool:
        """Make room for k D-updates in the slotted buffers; whether any grew."""
        grew = False
        for name, per in SLOTTED.items():
            spec = self.buffers[name]
            if spec.size < k * per:
                self.buffers[name] = replace(spec, size=k * per)
                grew = True
        return grew

    def buffer(self, name: str, dtype: str, size: int, role: str = "scratch") -> Buf:
        """Declare (or widen) a buffer; the whole of it as a view."""
        assert role in ROLES, role
        old = self.buffers.get(name)
        if old is not None and (old.dtype != dtype or old.role != role):
            raise AssertionError(f"buffer {name} declared as {old.dtype}/{old.role} and as "
                                 f"{dtype}/{role}")
        size = max(size, old.size if old else 0)
        self.buffers[name] = BufferSpec(name, dtype, size, role)
        return Buf(name, 0, size)

    def view(self, name: str) -> Buf:
        return Buf(name, 0, self.buffers[name].size)


def i32(v: int) -> np.int32:
    return np.int32(v)


def f32(v: float) -> np.float32:
    return np.float32(v)


def ew_grid(n: int, per_thread: int = 1) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    threads = -(-n // per_thread)
    return (max(1, -(-threads // BLOCK)), 1, 1), (BLOCK, 1, 1)


def gemm(A: Buf, B: Buf, C: Buf, bias: Buf, M: int, N: int, K: int, transA: bool,
         transB: bool, epilogue: str, slope: float, note: str, accumulate: bool = False,
         batch: int = 1, strides: tuple[int, ...] = (0, 0, 0, 0)) -> Launch:
    """C = epilogue(op(A)·op(B)) (C += it with `accumulate`); with batch > 1, `batch` products
    (gemm_batched), the operands of the b-th `strides` (A's, B's, C's and the bias's; the bias's
    0 when left out) elements on."""
    lda = M if transA else K
    ldb = K if transB else N
    shape = (i32(M), i32(N), i32(K), i32(lda), i32(ldb), i32(N))
    rest = (i32(int(accumulate)), i32(int(transA)), i32(int(transB)), i32(EPILOGUES[epilogue]),
            f32(slope))
    grid = (-(-N // 64), -(-M // 64), batch)
    if batch == 1:
        return Launch("gemm", grid, (256, 1, 1), (A, B, C, bias, *shape, *rest), note)
    return Launch("gemm_batched", grid, (256, 1, 1),
                  (A, B, C, bias, *shape, i32(batch),
                   *(np.int64(v) for v in (tuple(strides) + (0,))[:4]), *rest), note)


def copy_rows(src: Buf, dst: Buf, rows: int, cols: int, ld_src: int, ld_dst: int,
          accumulate: bool, note: str) -> Launch:
    g, b = ew_grid(rows * cols)
    return Launch("copy2d", g, b, (src, dst, i32(rows), i32(cols), i32(ld_src), i32(ld_dst),
                                   i32(int(accumulate))), note)


class _Bound:
    """A scalar argument the runtime supplies when it binds a plan (the training set's size)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


N_EXAMPLES = _Bound("n_examples")


def noise_launch(z: Buf, rows: int, prior: Prior, rng: Buf, stream: np.uint32) -> Launch:
    """`rows` draws from the prior into z, on the RNG stream `stream` (Philox, in-kernel)."""
    size = rows * prior.dim
    g, b = ew_grid(size, 4)
    low_or_mean, high_or_std = prior.pair
    return Launch("noise", g, b, (z, i32(size), i32(int(prior.kind == "gaussian")), f32(low_or_mean),
                                  f32(high_or_std), rng, stream, *one_copy(2)), "z ~ prior")


def one_copy(pointers: int) -> tuple[Any, ...]:
    """The trailing `batch, stride_…` arguments of a `members` kernel (kernels.MEMBERS) with
    `pointers` pointer parameters, for one copy: stacking.py sets them for a sweep's members."""
    return (i32(1), *(np.int64(0) for _ in range(pointers)))


def bind_scalars(launches: list[Launch], n_examples: int) -> list[Launch]:
    """The launches with the runtime's scalars filled in."""
    def fill(a: Any) -> Any:
        return np.int32(n_examples) if a is N_EXAMPLES else a

    return [replace(l, args=tuple(fill(a) for a in l.args)) if any(a is N_EXAMPLES for a in l.args)
            else l for l in launches]


def hparams(cfg: OptimConfig, lr: float, momentum: float, t: int) -> np.ndarray:
    """The hp slot of one update (t = 1 for the first): what optim.cu reads."""
    if cfg.kind == "sgd":
        return np.array([lr, momentum, 0.0, 0.0], np.float32)
    c2 = np.sqrt(1.0 - cfg.beta2 ** t)
    return np.array([lr, lr * c2 / (1.0 - cfg.beta1 ** t), cfg.eps * c2, 0.0], np.float32)
