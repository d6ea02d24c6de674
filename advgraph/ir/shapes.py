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
    raise ShapeError(f"no shape rule for op {op.value}")  # pragma: no cover


def param_shapes(op: Op, in_shape: tuple[int, ...], attrs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    if op is Op.DENSE:
        return {"weight": (in_shape[0], attrs["units"]), "bias": (attrs["units"],)}
    if op is Op.MAXOUT:
        width = attrs["units"] * attrs["pieces"]
        return {"weight": (in_shape[0], width), "bias": (width,)}
    if op is Op.BATCHNORM:
        c = in_shape[0]
        return {"weight": (c,), "bias": (c,), "running_mean": (c,), "running_var": (c,)}
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
    if node.op in ELEMENTWISE:
        return prod(in_shape)
    return 0


def graph_flops(g: Graph) -> int:
    total = 0
    for n in g.nodes[1:]:
        total += flops(n, g.node(n.inputs[0]).shape)
    return total


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
