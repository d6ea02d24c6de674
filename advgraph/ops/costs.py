"""FLOPs and memory of graphs and training iterations: per op, lookups in the op registry
(the IR below knows no op's semantics)."""

from __future__ import annotations

from math import prod

from ..ir import Graph, Node
from . import OPS

__all__ = ["flops", "graph_flops", "iteration_flops", "training_bytes", "training_peak_bytes"]


def flops(node: Node, in_shape: tuple[int, ...]) -> int:
    """Forward floating-point operations for one example (multiply and add count as two)."""
    return OPS[node.op].flops(in_shape, node.shape, node.attrs)


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
