"""Elementwise activations, and `linear` (the identity that marks an unsquashed output)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field

from advgraph.ir.ops import Op
from advgraph.fields import Layer, not_tiny

from .base import OpDef, per_element, same_shape


class Relu(Layer):
    type: Literal["relu"]


class LeakyRelu(Layer):
    type: Literal["leaky_relu"]
    slope: Annotated[float, Field(gt=0, lt=1), AfterValidator(not_tiny)] = 0.2


class Tanh(Layer):
    type: Literal["tanh"]


class Sigmoid(Layer):
    type: Literal["sigmoid"]


class Linear(Layer):
    """Identity: marks a linear (unsquashed) output."""

    type: Literal["linear"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(−x)), stable on both tails."""
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


FLAT = (((6,), {}),)


def _activation(op: Op, doc: str, layer: type[Layer], fn, attrs=lambda l: {}, examples=FLAT,
                activation=True, **traits) -> OpDef:
    return OpDef(op, doc, same_shape, per_element(1), lambda x, p, a, train, rng: fn(x, a),
                 layer=layer, attrs=attrs, examples=examples, activation=activation, **traits)


DEFS = [
    _activation(Op.RELU, "y = max(x, 0).", Relu, lambda x, a: np.maximum(x, 0.0)),
    _activation(Op.LEAKY_RELU, "y = x if x > 0 else slope·x.  attrs: slope.", LeakyRelu,
                lambda x, a: np.where(x > 0, x, a["slope"] * x),
                attrs=lambda l: {"slope": l.slope}, examples=(((6,), {"slope": 0.2}),)),
    _activation(Op.TANH, "y = tanh(x).", Tanh, lambda x, a: np.tanh(x)),
    _activation(Op.SIGMOID, "y = 1 / (1 + exp(−x)). When it ends D, the trainers take its "
                "*input* as the logit so that losses are computed stably (softplus), never "
                "log(sigmoid(·)).", Sigmoid, lambda x, a: sigmoid(x),
                probability=True),
    _activation(Op.LINEAR, "y = x (an explicit linear output).", Linear, lambda x, a: x,
                activation=False, alias=True),
]
