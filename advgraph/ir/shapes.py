"""Shape rule, parameter shapes and forward FLOPs per op (per example)."""

from __future__ import annotations

from math import prod
from typing import Any

from .graph import Graph, Node
from .ops import ELEMENTWISE, Op


class ShapeError(ValueError):
    """An impossible geometry; the compiler locates it in the spec."""


def infer(op: Op, in_shape: tuple[int, ...], attrs: dict[str, Any]) -> tuple[int, ...]:
    if op in ELEMENTWISE:
        return in_shape
    if op in (Op.DENSE, Op.MAXOUT):
        if len(in_shape) != 1:
            raise ShapeError(
                f"{op.value} needs a flat input (features,), got {_fmt(in_shape)}; "
                "add a reshape layer first")
        return (attrs["units"],)
    if op is Op.RESHAPE:
        shape = tuple(attrs["shape"])
        if prod(shape) != prod(in_shape):
            raise ShapeError(f"cannot reshape {_fmt(in_shape)} ({prod(in_shape)} values) to "
                             f"{_fmt(shape)} ({prod(shape)} values)")
        return shape
    if op is Op.BATCHNORM:
        return in_shape
    if op is Op.FLATTEN:
        return (prod(in_shape),)
    if op in (Op.CONV2D, Op.MAXOUT_CONV, Op.CONV_T2D, Op.MAX_POOL):
        if len(in_shape) != 3:
            raise ShapeError(f"{op.value} needs images (channels, height, width), got "
                             f"{_fmt(in_shape)}; add a reshape layer first")
        c, h, w = in_shape
        k, s, p = attrs["kernel"], attrs["stride"], attrs["pad"]
        if op is Op.CONV_T2D:
            oh = (h - 1) * s - 2 * p + k + attrs["output_pad"]
            ow = (w - 1) * s - 2 * p + k + attrs["output_pad"]
            if attrs["output_pad"] >= s:
                raise ShapeError(f"output_pad ({attrs['output_pad']}) must be smaller than "
                                 f"stride ({s})")
            if oh < 1 or ow < 1:
                raise ShapeError(f"padding {p} leaves no output from a {h}×{w} input")
            return (attrs["channels"], oh, ow)
        if op is Op.MAX_POOL and 2 * p > k:
            raise ShapeError(f"pad {p} is more than half the kernel {k}")
        if h + 2 * p < k or w + 2 * p < k:
            raise ShapeError(f"kernel {k} larger than input {h}×{w} after padding {p}")
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return (c if op is Op.MAX_POOL else attrs["channels"], oh, ow)
    raise ShapeError(f"no shape rule for op {op.value}")  # pragma: no cover


def infer_concat(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """CONCAT: flat inputs add features; images of one size add channels, and flat inputs
    among images become constant maps."""
    images = [s for s in shapes if len(s) == 3]
    if not images:
        if any(len(s) != 1 for s in shapes):
            raise ShapeError("concat needs flat inputs (features,) or images (channels, height, "
                             f"width), got {', '.join(_fmt(s) for s in shapes)}")
        return (sum(s[0] for s in shapes),)
    hw = images[0][1:]
    for s in shapes:
        if len(s) not in (1, 3) or (len(s) == 3 and s[1:] != hw):
            raise ShapeError(f"cannot concatenate {', '.join(_fmt(s) for s in shapes)}: images "
                             "must share height and width (flat vectors are broadcast over them)")
    return (sum(s[0] for s in shapes), *hw)


def param_shapes(op: Op, in_shape: tuple[int, ...], attrs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    if op is Op.DENSE:
        return {"weight": (in_shape[0], attrs["units"]), "bias": (attrs["units"],)}
    if op is Op.MAXOUT:
        width = attrs["units"] * attrs["pieces"]
        return {"weight": (in_shape[0], width), "bias": (width,)}
    if op is Op.BATCHNORM:
        c = in_shape[0]
        return {"weight": (c,), "bias": (c,), "running_mean": (c,), "running_var": (c,)}
    if op in (Op.CONV2D, Op.MAXOUT_CONV):
        out = attrs["channels"] * attrs.get("pieces", 1)
        k = attrs["kernel"]
        return {"weight": (out, in_shape[0], k, k), "bias": (out,)}
    if op is Op.CONV_T2D:
        k = attrs["kernel"]
        return {"weight": (in_shape[0], attrs["channels"], k, k), "bias": (attrs["channels"],)}
    return {}


def flops(node: Node, in_shape: tuple[int, ...]) -> int:
    """Forward floating-point operations for one example (multiply and add count as two)."""
    if node.op is Op.DENSE:
        return 2 * in_shape[0] * node.attrs["units"]
    if node.op is Op.MAXOUT:
        width = node.attrs["units"] * node.attrs["pieces"]
        return 2 * in_shape[0] * width + width
    if node.op is Op.BATCHNORM:
        return 4 * prod(in_shape)
    if node.op in (Op.CONV2D, Op.MAXOUT_CONV):
        k = node.attrs["kernel"]
        maps = node.attrs["channels"] * node.attrs.get("pieces", 1)
        return 2 * in_shape[0] * k * k * maps * node.shape[1] * node.shape[2]
    if node.op is Op.CONV_T2D:
        k = node.attrs["kernel"]
        return 2 * prod(in_shape) * node.attrs["channels"] * k * k
    if node.op is Op.MAX_POOL:
        return prod(node.shape) * node.attrs["kernel"] ** 2
    if node.op in ELEMENTWISE:
        return prod(in_shape)
    return 0


def graph_flops(g: Graph) -> int:
    return sum(flops(n, g.node(n.inputs[0]).shape) for n in g.nodes if n.inputs)


def iteration_flops(G: Graph, D: Graph, batch: int, k: int) -> int:
    """Estimated FLOPs of one Algorithm 1 iteration (k D-steps + one G-step).

    Backward ≈ 2× forward when weight and input gradients are both needed, ≈ 1× when only
    input gradients are (D inside the G-step).
    D-step: G forward on m; D forward + full backward on 2m.  G-step: G forward + backward on m;
    D forward on m and its input-gradient backward.
    """
    g, d = graph_flops(G), graph_flops(D)
    d_step = batch * g + 3 * (2 * batch) * d
    g_step = 3 * batch * g + 2 * batch * d
    return k * d_step + g_step


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


fmt_shape = _fmt


def training_bytes(G: Graph, D: Graph, batch: int, optimizer_slots: int = 2) -> int:
    """A lower bound on the memory one trainer needs (float32): parameters with their gradients
    and optimiser slots, plus activations of a D-step (2m examples) and a G-step (m)."""
    params = G.num_params() + D.num_params()
    acts_g = sum(prod(n.shape) for n in G.nodes)
    acts_d = sum(prod(n.shape) for n in D.nodes)
    return 4 * (params * (2 + optimizer_slots) + batch * (3 * acts_g + 3 * acts_d))


# What a training process holds besides the nets: the interpreter with advgraph, NumPy,
# pydantic and the backend's library imported (torch: ≈ 235 MiB measured), plus the working
# memory its first steps allocate (thread pools, allocator caches: ≈ 30 MiB).
RUNTIME_BYTES = 265 * 2**20
# Copies of the parameters a trainer holds at its peak, besides its optimiser slots: the
# parameters and their gradients, NumPy's float64 initialisation (two float32 copies' worth)
# and a checkpoint's snapshot with its serialised bytes (two more).
PARAM_COPIES = 6


def training_peak_bytes(G: Graph, D: Graph, batch: int, optimizer_slots: int = 2,
                        data_bytes: int = 0, runtime_bytes: int = RUNTIME_BYTES) -> int:
    """An estimate of a training process's peak resident memory (checked against measured
    peaks in tests/reliability/test_resource_bounds.py): the runtime, `data_bytes` for the
    data set as loaded, every copy of the parameters, and the activations with their
    gradients of a D-step (2m examples) and a G-step (m)."""
    params = G.num_params() + D.num_params()
    acts_g = sum(prod(n.shape) for n in G.nodes)
    acts_d = sum(prod(n.shape) for n in D.nodes)
    nets = 4 * (params * (PARAM_COPIES + optimizer_slots) + batch * (3 * acts_g + 6 * acts_d))
    return runtime_bytes + data_bytes + nets
