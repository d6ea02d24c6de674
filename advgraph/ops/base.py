"""What defines an op: one `OpDef` holds everything the front end and the oracle know of it.

Shapes are per example (the batch axis is symbolic); `attrs` are the node's attributes, made
from the layer model by `OpDef.attrs`. A backend's lowering lives in the backend, in its own
table keyed by `Op`; what a backend, the compiler or parity needs to know of an op beyond that
(how many inputs it reads, whether it is a view, an activation, a matrix product, …) is one of
its traits here, so that none of them names an op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from advgraph.ir.graph import Init
from advgraph.ir.ops import Op
from advgraph import fields as F

Shape = tuple[int, ...]
Attrs = dict[str, Any]
# Reference forward: (x, p, attrs, train, rng) → y in float64; p(local) gives a parameter
# ("weight") as float64. CONCAT's x is the list of its inputs.
Reference = Callable[..., np.ndarray]
# How many inputs a node of the op reads: "none" (an input of the graph), "one", or "several"
# (two or more; its shape rule and reference take the list of them, in the order of `inputs`).
Arity = Literal["none", "one", "several"]


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

    # ---- traits: what readers outside the registry rely on instead of naming the op ----------
    arity: Arity = "one"  # Graph.verify, the reference and the backends' graph walks
    alias: bool = False  # y is x's values in x's order, only reshaped: a backend may hand on
    # x's buffer and launch nothing
    activation: bool = False  # y = f(x) elementwise, with no parameters (attrs may tune f):
    # backends have a kernel code for f named as the op, and may apply it in a GEMM's epilogue
    epilogue: bool = False  # y is x @ W + b itself: an activation that is its only reader may
    # be applied in the product's epilogue (the op's emitter then writes the activation's value)
    gemm: bool = False  # a product x @ W on flat inputs with W (in, out): nn.Linear holds W as
    # (out, in), so torch-layout exports hold its transpose
    probability: bool = False  # y = σ(x), a probability whose logit is x: D ends in it, losses
    # take its input as the logit, and a bias of "marginals" before it is the data's logit
    # The axis of the op's "weight" that indexes its outputs: spectral norm sees the weight as a
    # matrix with this axis as rows (None: no weight to normalise).
    spectral_axis: int | None = None
    training_only: bool = False  # y = x outside training (sampling, evaluation)
    # Attributes that make it y = x in training too: set where runs are compared (parity),
    # since what it draws from a backend's random generator cannot match another backend's.
    switch_off: Attrs | None = None

    def param_shapes(self, in_shape: Shape, attrs: Attrs) -> dict[str, Shape]:
        return {local: p.shape(in_shape, attrs) for local, p in self.params.items()}

    def is_identity(self, attrs: Attrs, train: bool) -> bool:
        """Whether a node with `attrs` passes its input's values on unchanged (in training
        mode when `train`): an alias, an op that acts only in training outside it, or an op
        switched off."""
        if self.alias or (self.training_only and not train):
            return True
        off = self.switch_off
        return off is not None and all(attrs[k] == v for k, v in off.items())


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
