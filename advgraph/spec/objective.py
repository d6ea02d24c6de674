"""The spec's objective: `training.loss` and `training.regularizers` (what each computes is
documented on advgraph.ir.objective; the compiler checks them against the graphs)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, field_validator

from ..fields import NonNegativeCount, Strict, not_tiny

# The adversarial losses. minimax and non_saturating are the paper's (D's BCE; G's log(1 − D) or
# −log D) and read D's probability through its logit; least_squares (Mao et al. 2017, targets
# 0 and 1), hinge (Lim & Ye 2017, Miyato et al. 2018) and wasserstein (Arjovsky et al. 2017) read
# a raw score: D ends in a linear layer, not a sigmoid (the compiler checks which).
Loss = Literal["minimax", "non_saturating", "least_squares", "hinge", "wasserstein"]
PenaltyWeight = Annotated[float, Field(gt=0, le=1e6), AfterValidator(not_tiny)]
Interval = Annotated[int, Field(gt=0, le=1_000_000)]


def _below_one_in_float32(decay: float) -> float:
    if float(np.float32(decay)) >= 1.0:
        raise ValueError(f"{decay!r} is 1 in float32, where the average is kept: it would never "
                         "move (at most 0.9999999)")
    return decay


class GradientPenalty(Strict):
    """WGAN-GP (Gulrajani et al. 2017): weight · E[(‖∇x̂ D(x̂)‖ − target)²] added to D's loss,
    x̂ = εx + (1 − ε)G(z), ε ~ U(0, 1) per example; D's score (its logit) is differentiated.
    Applied every `every` D-updates (weight · every then, as lazy regularisation does)."""

    weight: PenaltyWeight = 10.0
    target: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    every: Interval = 1


class R1(Strict):
    """R1 (Mescheder et al. 2018): weight/2 · E[‖∇x D(x)‖²] on real data, added to D's loss;
    lazy as StyleGAN2 (every 16 there): applied every `every` D-updates with weight · every."""

    weight: PenaltyWeight = 10.0
    every: Interval = 1


class SpectralNorm(Strict):
    """Spectral normalisation (Miyato et al. 2018): each weight used as W / σ(W), σ from one
    power iteration (or `iterations`) per update of its network, its vectors u, v in the
    checkpoint. `nets`: whose weighted layers (dense, maxout, conv, deconv); `layers`: only these
    (full names such as D.h0) instead of every weighted layer of `nets`."""

    nets: Annotated[list[Literal["G", "D"]], Field(min_length=1, max_length=2)] = ["D"]
    layers: Annotated[list[str], Field(min_length=1, max_length=10_000)] | None = None
    iterations: Annotated[int, Field(gt=0, le=100)] = 1

    @field_validator("nets")
    @classmethod
    def _distinct(cls, nets: list[str]) -> list[str]:
        if len(set(nets)) != len(nets):
            raise ValueError(f"{nets}: each network at most once")
        return nets


class Ema(Strict):
    """An exponential moving average of G's weights (Karras et al. 2018; Yazıcı et al. 2019):
    after each G-update ema ← decay·ema + (1 − decay)·θ, a copy of θ before step `start`.
    sample, interpolate, eval, export and the API use it (their --raw flag: θ itself)."""

    decay: Annotated[float, Field(gt=0, lt=1), AfterValidator(_below_one_in_float32)] = 0.999
    start: NonNegativeCount = 0


class Regularizers(Strict):
    gradient_penalty: GradientPenalty | None = None
    r1: R1 | None = None
    spectral_norm: SpectralNorm | None = None
    ema: Ema | None = None

    def names(self) -> list[str]:
        return [k for k in type(self).model_fields if getattr(self, k) is not None]
