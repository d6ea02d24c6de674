"""Normalisation layers."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field

from advgraph.ir.ops import Op
from advgraph.fields import Layer, PositiveReal, not_tiny

from .base import OpDef, Param, const, per_element, same_shape


class BatchNorm(Layer):
    """Batch normalisation over the feature axis (batch statistics while training)."""

    type: Literal["batchnorm"]
    eps: PositiveReal = 1e-5
    momentum: Annotated[float, Field(gt=0, lt=1), AfterValidator(not_tiny)] = 0.1


class LayerNorm(Layer):
    """Layer normalisation (Ba et al., 2016) over all of an example's features, with a gain
    and bias per feature: needs no batch statistics, so D's examples stay independent (WGAN-GP's
    critic uses it where batchnorm would couple them)."""

    type: Literal["layernorm"]
    eps: PositiveReal = 1e-5


def _channels(i, a):
    return (i[0],)


def _batchnorm(x, p, a, train, rng):
    """Running statistics are not updated here (the reference is a pure function)."""
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    if train:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, var = p("running_mean"), p("running_var")
    xhat = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + a["eps"])
    return xhat * p("weight").reshape(bshape) + p("bias").reshape(bshape)


def _layernorm(x, p, a, train, rng):
    axes = tuple(range(1, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + a["eps"]) * p("weight") + p("bias")


DEFS = [
    OpDef(Op.BATCHNORM, "over the feature axis (axis 1): training uses the batch mean and biased "
          "variance and updates running_mean/running_var (unbiased) with `momentum`; otherwise "
          "uses the running statistics.  y = (x − μ)/√(σ² + eps)·weight + bias.  weight, bias, "
          "running_mean, running_var: (C,).  attrs: eps, momentum.",
          same_shape, per_element(4), _batchnorm, layer=BatchNorm,
          attrs=lambda l: {"eps": l.eps, "momentum": l.momentum},
          params={"weight": Param(_channels, const(1.0)),
                  "bias": Param(_channels, const(0.0)),
                  "running_mean": Param(_channels, const(0.0), trainable=False),
                  "running_var": Param(_channels, const(1.0), trainable=False, positive=True)},
          batch_coupled=True, examples=(((5,), {"eps": 1e-5, "momentum": 0.1}),
                                        ((3, 4, 5), {"eps": 1e-3, "momentum": 0.3}))),
    OpDef(Op.LAYERNORM, "over each example's features (all axes but the batch): y = (x − μ)/"
          "√(σ² + eps)·weight + bias, with the example's mean μ and biased variance σ².  weight, "
          "bias: the input's shape (one gain and bias per feature).  attrs: eps.",
          same_shape, per_element(7), _layernorm, layer=LayerNorm,
          attrs=lambda l: {"eps": l.eps},
          params={"weight": Param(same_shape, const(1.0)), "bias": Param(same_shape, const(0.0))},
          examples=(((6,), {"eps": 1e-5}), ((3, 4, 5), {"eps": 1e-3}))),
]
