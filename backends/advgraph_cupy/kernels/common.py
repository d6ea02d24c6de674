"""What the family modules share (the host side of common.cuh): the declaration of a family, the
NumPy helpers of the twins (Philox, the activations) and the footprints' spans. The emitters'
types (`OpEmitter`, the tape's base `Entry`, the passes) are in emitter.py, below both the
families and the lowering that drives them.

A family module declares each kernel of its .cu file once, its NumPy twin and its footprint
together, and its ops' emitters:

    FAMILY = Family("norm")

    @FAMILY.kernel("layernorm_fwd", footprint=lambda s: {"x": s["rows"] * s["cols"], ...})
    def k_layernorm_fwd(x, w, b, y, xhat, rstd, rows, cols, eps): ...

    FAMILY.op(Op.LAYERNORM, _layernorm_fwd, _layernorm_bwd)

A twin takes the kernel's arguments in order (NumPy views for pointers, Python numbers for
scalars) and does what the kernel does. A footprint maps the kernel's scalar arguments (by C
parameter name) to the elements touched through each pointer parameter: the highest index
touched, plus one.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from advgraph.ir import Node, Op

from ..codes import EPILOGUES as EP
from ..emitter import OpEmitter

Twin = Callable[..., None]
Footprint = Callable[[dict[str, int]], dict[str, int]]


def width(node: Node) -> int:
    """Elements of one example of the node's value."""
    return int(np.prod(node.shape))


# ---- a family's declarations -------------------------------------------------------------------

class Family:
    """One kernels/<name>.cu's kernels (twin and footprint of each) and the ops whose emitters
    sit beside them. Declaring a kernel or an op twice raises at import."""

    def __init__(self, name: str):
        self.name = name  # the stem of the .cu file
        self.twins: dict[str, Twin] = {}
        self.footprints: dict[str, Footprint] = {}
        self.writes: dict[str, dict[str, str | None]] = {}
        self.rows: dict[str, str] = {}
        self.members: dict[str, tuple[str, ...]] = {}
        self.emitters: dict[Op, OpEmitter] = {}

    def kernel(self, name: str, footprint: Footprint,
               writes: dict[str, str | None] | None = None,
               rows: str | None = None,
               members: tuple[str, ...] = ()) -> Callable[[Twin], Twin]:
        """Decorates the NumPy twin of kernel `name` and declares its footprint with it, and
        `writes`: the pointer parameters it writes in full without reading them (over their
        footprint), each with the scalar that, when non-zero, makes it read too (a GEMM's
        `accumulate`), or None. The scratch layout (memory.py) may give such an output memory
        that was another buffer's; any other non-const parameter counts as read and written.
        `rows`: the scalar counting independent rows (each row's outputs read that row's
        inputs only), over a 1-D grid whose blockIdx.x runs linearly over them, bounds-checked:
        copies laid back to back are then one launch of it with that scalar times the copies
        (stacking.py: a sweep's members). `members`: its pointer parameters, in order, when
        the kernel ends in `int batch` and a `long long stride_<pointer>` for each: `batch`
        copies at once, blockIdx.y the copy (a sweep's members, anywhere in their buffers);
        `twin` and `footprint` are then one copy's, and this wraps them over the batch."""
        def declare(twin: Twin) -> Twin:
            if name in self.twins:
                raise ValueError(f"{self.name}.cu: kernel {name} declared twice")
            self.twins[name] = batch_twin(twin, members) if members else twin
            self.footprints[name] = batch_footprint(footprint, members) if members else footprint
            self.writes[name] = dict(writes or {})
            if rows is not None:
                self.rows[name] = rows
            if members:
                self.members[name] = tuple(members)
            return twin
        return declare

    def op(self, ops: Op | Iterable[Op], forward: Callable, backward: Callable) -> OpEmitter:
        """The emitter pair of one op (or of several ops lowered alike)."""
        emitter = OpEmitter(forward, backward)
        for op in ([ops] if isinstance(ops, Op) else ops):
            if op in self.emitters:
                raise ValueError(f"{self.name}: op {op.value} declared twice")
            self.emitters[op] = emitter
        return emitter


def batch_footprint(one: Footprint, pointers: tuple[str, ...]) -> Footprint:
    """A `members` kernel's footprint: each pointer's copies `stride_<pointer>` apart."""
    def footprint(s: dict[str, int]) -> dict[str, int]:
        return {p: batched(s["batch"], s[f"stride_{p}"], v) if p in pointers else v
                for p, v in one(s).items()}
    return footprint


def batch_twin(one: Twin, pointers: tuple[str, ...]) -> Twin:
    """A `members` kernel's twin: one copy's twin, its arguments before `batch`, called per
    copy on each pointer's copy."""
    import inspect

    names = list(inspect.signature(one).parameters)
    at = [names.index(p) for p in pointers]

    def twin(*args):
        head, batch, strides = list(args[:len(names)]), args[len(names)], args[len(names) + 1:]
        for b in range(batch):
            call = list(head)
            for i, st in zip(at, strides):
                call[i] = head[i][b * st:]
            one(*call)
    return twin


# ---- the twins' helpers: Philox, the activations -----------------------------------------------

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c: np.ndarray, k0: int, k1: int) -> np.ndarray:
    """Philox4x32-10 on an (N, 4) uint32 array of counters."""
    c = c.astype(np.uint64)
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for _ in range(10):
        p0 = np.uint64(M0) * c[:, 0]
        p1 = np.uint64(M1) * c[:, 2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c = np.stack([hi1 ^ c[:, 1] ^ k0, lo1, hi0 ^ c[:, 3] ^ k1, lo0], axis=1)
        k0 = (k0 + np.uint64(W0)) & MASK32
        k1 = (k1 + np.uint64(W1)) & MASK32
    return c.astype(np.uint32)


def draw4(rng: np.ndarray, stream: int, count: int) -> np.ndarray:
    """The four uint32 of threads 0..count-1 (the device's draw4), flattened in thread order."""
    i = np.arange(count, dtype=np.uint64)
    c = np.stack([i, np.full_like(i, stream), np.full_like(i, rng[2]), np.full_like(i, rng[3])], 1)
    return philox4x32_10(c, int(rng[0]), int(rng[1])).reshape(-1)


def u01(v: np.ndarray) -> np.ndarray:
    return (((v >> np.uint32(8)).astype(np.float32) + 1.0) * np.float32(1.0 / 16777216.0))


def act(x: np.ndarray, mode: int, slope: float) -> np.ndarray:
    """The activation (or GEMM epilogue) `mode`, an EPILOGUES code."""
    if mode == EP["relu"]:
        return np.maximum(x, 0)
    if mode == EP["sigmoid"]:
        return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    if mode == EP["tanh"]:
        return np.tanh(x)
    if mode == EP["leaky_relu"]:
        return np.where(x > 0, x, slope * x).astype(np.float32)
    return x


def act_grad(y: np.ndarray, dy: np.ndarray, mode: int, slope: float) -> np.ndarray:
    """The gradient through activation `mode`, from its output y."""
    if mode == EP["relu"]:
        return np.where(y > 0, dy, 0).astype(np.float32)
    if mode == EP["sigmoid"]:
        return dy * y * (1 - y)
    if mode == EP["tanh"]:
        return dy * (1 - y * y)
    if mode == EP["leaky_relu"]:
        return np.where(y > 0, dy, slope * dy).astype(np.float32)
    return dy


def softplus(x):
    return np.logaddexp(0, x.astype(np.float64))


def sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


# ---- the footprints' spans ---------------------------------------------------------------------

def strided(rows: int, cols: int, ld: int) -> int:
    """Elements spanned by a rows × cols block of a row-major matrix with leading dimension ld."""
    return 0 if rows <= 0 or cols <= 0 else (rows - 1) * ld + cols


def batched(batch: int, stride: int, one: int) -> int:
    """Elements spanned by `batch` operands of `one` elements each, `stride` apart."""
    return 0 if batch <= 0 or one <= 0 else (batch - 1) * stride + one
