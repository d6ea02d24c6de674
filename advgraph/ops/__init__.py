"""The op registry: every op of the IR defined once, in one module per family.

An `OpDef` (base.py) holds the spec's layer model, how it becomes node attributes, the shape
rule, the parameters (shape, initial value, trainability), the forward FLOPs and the NumPy
reference forward (the oracle every backend is tested against). The compiler, the FLOPs and
memory figures (`costs`) and the reference are lookups in `OPS`; the spec's `Layer` union is made of the
families' layer models. Backends keep their lowerings in their own tables keyed by `Op` and
declare the ops they do not support. CONTRIBUTING.md says how to add an op.
"""

from __future__ import annotations

from math import prod
from typing import Any

from advgraph.ir.ops import Op

from . import activation, conv, dense, dropout, normalization, structure
from .base import Arity, OpDef, Param, ShapeError, fmt_shape

FAMILIES = (dense, activation, dropout, structure, normalization, conv)
OPS: dict[Op, OpDef] = {d.op: d for family in FAMILIES for d in family.DEFS}
LAYER_MODELS: tuple[type, ...] = tuple(d.layer for d in OPS.values() if d.layer is not None)
_BY_LAYER: dict[type, OpDef] = {d.layer: d for d in OPS.values() if d.layer is not None}

# Ops whose output for one example depends on the other examples of the batch in training.
BATCH_COUPLED = frozenset(d.op for d in OPS.values() if d.batch_coupled)
# How many inputs each op reads (Graph.verify checks every node against it).
ARITY: dict[Op, Arity] = {d.op: d.arity for d in OPS.values()}


def too_small_batch(graphs, batch: int) -> tuple[Any, int] | None:
    """The first batch-coupled node (batchnorm: statistics over the batch and the positions of
    each channel) that would see fewer than 2 values per channel in a minibatch of `batch`
    examples (its unbiased variance divides by n − 1; torch refuses it), with the smallest
    batch that works; None when every one has enough."""
    for graph in graphs:
        for node in graph.nodes:
            if node.op in BATCH_COUPLED:
                positions = prod(node.shape[1:])
                if batch * positions < 2:
                    return node, -(-2 // positions)
    return None


def of_layer(layer: Any) -> OpDef:
    """The definition of a spec layer (a model from `LAYER_MODELS`)."""
    return _BY_LAYER[type(layer)]


__all__ = ["ARITY", "BATCH_COUPLED", "FAMILIES", "LAYER_MODELS", "OPS", "OpDef", "Param",
           "ShapeError", "fmt_shape", "of_layer", "too_small_batch"]
