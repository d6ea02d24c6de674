"""Ops that move values without arithmetic: the graph's inputs, concatenation, reshapes."""

from __future__ import annotations

from math import prod
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from advgraph.ir.ops import Op
from advgraph.fields import Layer, Size

from .base import OpDef, ShapeError, fmt_shape, free, same_shape


class Reshape(Layer):
    type: Literal["reshape"]
    shape: Annotated[list[Size], Field(min_length=1, max_length=4)]


class Flatten(Layer):
    type: Literal["flatten"]


def _reshape(in_shape, a):
    shape = tuple(a["shape"])
    if prod(shape) != prod(in_shape):
        raise ShapeError(f"cannot reshape {fmt_shape(in_shape)} ({prod(in_shape)} values) to "
                         f"{fmt_shape(shape)} ({prod(shape)} values)")
    return shape


def infer_concat(shapes: list[tuple[int, ...]], attrs=None) -> tuple[int, ...]:
    """Flat inputs add features; images of one size add channels, and flat inputs among images
    become constant maps."""
    images = [s for s in shapes if len(s) == 3]
    if not images:
        if any(len(s) != 1 for s in shapes):
            raise ShapeError("concat needs flat inputs (features,) or images (channels, height, "
                             f"width), got {', '.join(fmt_shape(s) for s in shapes)}")
        return (sum(s[0] for s in shapes),)
    hw = images[0][1:]
    for s in shapes:
        if len(s) not in (1, 3) or (len(s) == 3 and s[1:] != hw):
            raise ShapeError(f"cannot concatenate {', '.join(fmt_shape(s) for s in shapes)}: "
                             "images must share height and width (flat vectors are broadcast "
                             "over them)")
    return (sum(s[0] for s in shapes), *hw)


def concat(xs: list[np.ndarray]) -> np.ndarray:
    """CONCAT along axis 1; flat inputs among images become constant maps."""
    images = [x for x in xs if x.ndim == 4]
    if images:
        _, _, h, w = images[0].shape
        xs = [x if x.ndim == 4 else np.broadcast_to(x[:, :, None, None], (*x.shape, h, w))
              for x in xs]
    return np.concatenate(xs, axis=1)


DEFS = [
    OpDef(Op.INPUT, "an input of the network; attrs: source = \"z\" (G's noise), \"x\" (D's "
          "data) or \"y\" (the condition: a one-hot label of shape (classes,), the same y for G "
          "and D).", same_shape, free, lambda x, p, a, train, rng: x, arity="none"),
    OpDef(Op.CONCAT, "concatenation of its inputs along axis 1 (the features of flat inputs, "
          "the channels of images), in the order of `inputs`. When images "
          "(C, H, W) meet flat vectors (F,), each vector is broadcast to F constant H × W maps "
          "first (how a label enters a convolutional net). Its shape rule and reference take "
          "the list of inputs.", infer_concat, free,
          lambda xs, p, a, train, rng: concat(xs), arity="several"),
    OpDef(Op.RESHAPE, "y = x.reshape(B, *shape).  attrs: shape.", _reshape, free,
          lambda x, p, a, train, rng: x.reshape(len(x), *a["shape"]), layer=Reshape,
          attrs=lambda l: {"shape": tuple(l.shape)}, examples=(((12,), {"shape": (3, 4)}),),
          alias=True),
    OpDef(Op.FLATTEN, "y = x.reshape(B, −1).", lambda i, a: (prod(i),), free,
          lambda x, p, a, train, rng: x.reshape(len(x), -1), layer=Flatten,
          examples=(((2, 3, 4), {}),), alias=True),
]
