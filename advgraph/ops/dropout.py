"""Dropout: the original D's regulariser (its input and hidden layers)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from advgraph.ir.ops import Op
from advgraph.fields import Layer, PositiveReal, not_tiny

from .base import OpDef, per_element, same_shape


class Dropout(Layer):
    """Keep each input with probability `keep` and multiply kept inputs by `scale`.

    The original code kept D's input pixels with 0.8 (scale 1.25) and hidden inputs with 0.5
    (scale 2). Active only while training; sampling and evaluation see the full network.
    """

    type: Literal["dropout"]
    keep: Annotated[float, Field(gt=0, le=1), AfterValidator(not_tiny)]
    scale: PositiveReal | None = None  # default 1/keep

    @property
    def effective_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / self.keep


def _reference(x, p, a, train, rng):
    if not train:
        return x
    if rng is None:
        raise ValueError("dropout in training mode needs an rng")
    return x * (rng.random(x.shape) < a["keep"]) * a["scale"]


DEFS = [
    OpDef(Op.DROPOUT, "training: y = x · m · scale with m ~ Bernoulli(keep) drawn per element; "
          "otherwise (sampling, evaluation) y = x.  attrs: keep, scale.",
          same_shape, per_element(1), _reference, layer=Dropout,
          attrs=lambda l: {"keep": l.keep, "scale": l.effective_scale},
          examples=(((6,), {"keep": 0.5, "scale": 2.0}),),
          training_only=True, switch_off={"keep": 1.0, "scale": 1.0}),
]
