"""Affine layers on flat inputs: dense and maxout. Their parameter layouts are also the
checkpoint layouts (backend-neutral)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from advgraph.ir.ops import Op
from advgraph.fields import Init, Layer, Pieces, Real, Size, default_init

from .base import OpDef, Param, bias_init, flat_input, weight_init


class Dense(Layer):
    """Affine map x·W + b with W of shape (in, units)."""

    type: Literal["dense"]
    units: Size
    init: Init = Field(default_factory=default_init)
    # A constant, or "marginals": the logit of each output's mean over the training data
    # (the original MNIST generator's sigmoid bias). Only valid right before G's sigmoid output.
    bias: Real | Literal["marginals"] = 0.0


class Maxout(Layer):
    """Dense to units·pieces, then the max over each unit's `pieces` consecutive columns."""

    type: Literal["maxout"]
    units: Size
    pieces: Pieces
    init: Init = Field(default_factory=default_init)
    bias: Real = 0.0


def _width(a) -> int:
    return a["units"] * a.get("pieces", 1)


def _infer(op: Op):
    def infer(in_shape, a):
        flat_input(op, in_shape)
        return (a["units"],)
    return infer


AFFINE_PARAMS = {
    "weight": Param(lambda i, a: (i[0], _width(a)),  # (in, out): fans = in + out
                    lambda layer, s: weight_init(layer.init, s[0] + s[1])),
    "bias": Param(lambda i, a: (_width(a),), lambda layer, s: bias_init(layer.bias)),
}


def _maxout(x, p, a, train, rng):
    z = x @ p("weight") + p("bias")
    return z.reshape(len(x), a["units"], a["pieces"]).max(axis=2)


DEFS = [
    OpDef(Op.DENSE, "y = x @ W + b.  W: (in, units), b: (units,).  attrs: units.",
          _infer(Op.DENSE),
          flops=lambda i, o, a: 2 * i[0] * a["units"],
          reference=lambda x, p, a, train, rng: x @ p("weight") + p("bias"),
          layer=Dense, attrs=lambda l: {"units": l.units}, params=AFFINE_PARAMS,
          examples=(((7,), {"units": 5}),), gemm=True, epilogue=True, spectral_axis=1),
    OpDef(Op.MAXOUT, "a = x @ W + b with W: (in, units·pieces), b: (units·pieces,); the pieces "
          "of unit u are the consecutive columns u·pieces … u·pieces+pieces−1 (Pylearn2's "
          "layout); y[:, u] = max_p a[:, u·pieces + p].  attrs: units, pieces.",
          _infer(Op.MAXOUT),
          flops=lambda i, o, a: 2 * i[0] * _width(a) + _width(a),
          reference=_maxout,
          layer=Maxout, attrs=lambda l: {"units": l.units, "pieces": l.pieces},
          params=AFFINE_PARAMS, examples=(((9,), {"units": 4, "pieces": 3}),), gemm=True,
          spectral_axis=1),
]
