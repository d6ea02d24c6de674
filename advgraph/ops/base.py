"""What defines an op: one `OpDef` holds everything the front end and the oracle know of it.

Shapes are per example (the batch axis is symbolic); `attrs` are the node's attributes, made
from the layer model by `OpDef.attrs`. A backend's lowering lives in the backend, in its own
table keyed by `Op`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from advgraph.ir.graph import Init
from advgraph.ir.ops import Op
from advgraph import fields as F

Shape = tuple[int, ...]
Attrs = dict[str, Any]
# Reference forward: (x, p, attrs, train, rng) → y in float64; p(local) gives a parameter
# ("weight") as float64. CONCAT's x is the list of its inputs.
Reference = Callable[..., np.ndarray]


class ShapeError(ValueError):
    """An impossible geometry; the compiler locates it in the spec."""


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class Param:
    """A tensor an op owns: its shape, its initial value (from the layer model) and whether
    the optimiser trains it (a buffer such as batchnorm's running statistics is not)."""

    shape: Callable[[Shape, Attrs], Shape]
    init: Callable[[Any, Shape], Init]  # (layer model, this tensor's shape) → Init
    trainable: bool = True
    positive: bool = False  # every value must be > 0 (a variance): a checkpoint is checked


@dataclass(frozen=True)
class OpDef:
    """One op of the IR. Every field without a default must be given: an op cannot silently
    lack a shape rule, a FLOP count or a reference forward."""

    op: Op
    doc: str  # its semantics: the contract every backend implements
    infer: Callable[[Shape, Attrs], Shape]  # output shape; raises ShapeError
    flops: Callable[[Shape, Shape, Attrs], int]  # (in, out, attrs) → forward FLOPs per example
    reference: Reference
    layer: type[F.Layer] | None = None  # the spec's layer model (None: made by the compiler)
    attrs: Callable[[Any], Attrs] = lambda layer: {}
    params: dict[str, Param] = field(default_factory=dict)
    batch_coupled: bool = False  # training output of one example depends on the others
    # (in_shape, attrs) cases on which tests check every backend against `reference`.
    examples: tuple[tuple[Shape, Attrs], ...] = ()

    def param_shapes(self, in_shape: Shape, attrs: Attrs) -> dict[str, Shape]:
        return {local: p.shape(in_shape, attrs) for local, p in self.params.items()}


# ---- pieces several families share --------------------------------------------------------------


def weight_init(init: Any, fans: int) -> Init:
    """The IR form of a layer's `init:` (uniform, normal or xavier). `fans`: fan-in + fan-out of
    the weight, which only its op knows (Xavier's range is gain·√(6 / fans))."""
    if isinstance(init, F.UniformInit):
        return Init("uniform", {"range": init.range})
    if isinstance(init, F.NormalInit):
        return Init("normal", {"std": init.std})
    return Init("xavier", {"gain": init.gain, "fans": fans})


def bias_init(bias: Any) -> Init:
    """The IR form of a layer's `bias:` (a constant, or G's output "marginals")."""
    return Init("marginals") if bias == "marginals" else Init("const", {"value": float(bias)})


def const(value: float) -> Callable[[Any, Shape], Init]:
    return lambda layer, shape: Init("const", {"value": value})


def same_shape(in_shape: Shape, attrs: Attrs) -> Shape:
    return in_shape


def per_element(cost: int) -> Callable[[Shape, Shape, Attrs], int]:
    return lambda i, o, a: cost * int(np.prod(i))


def free(in_shape: Shape, out_shape: Shape, attrs: Attrs) -> int:
    """No arithmetic (a view, a copy)."""
    return 0


def flat_input(op: Op, in_shape: Shape) -> None:
    if len(in_shape) != 1:
        raise ShapeError(f"{op.value} needs a flat input (features,), got {fmt_shape(in_shape)}; "
                         "add a reshape layer first")
