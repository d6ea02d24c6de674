"""optim.cu: the parameter updates, a thread per parameter of a net's flat buffer (launched by
lowering/iteration.py; no op lowers to them). hp: the update's slot (plan.hparams)."""

from __future__ import annotations

import numpy as np

from .common import Family

FAMILY = Family("optim")


@FAMILY.kernel("sgd_momentum",
               footprint=lambda s: {"p": s["n"], "v": s["n"], "g": s["n"], "hp": 4},
               members=("p", "v", "g", "hp"))
def k_sgd_momentum(p, v, g, n, hp):
    v[:n] = hp[1] * v[:n] - hp[0] * g[:n]
    p[:n] += v[:n]


@FAMILY.kernel("adam",
               footprint=lambda s: {"p": s["n"], "m": s["n"], "v": s["n"], "g": s["n"], "hp": 4},
               members=("p", "m", "v", "g", "hp"))
def k_adam(p, m, v, g, n, beta1, beta2, hp):
    m[:n] = beta1 * m[:n] + (1 - beta1) * g[:n]
    v[:n] = beta2 * v[:n] + (1 - beta2) * g[:n] * g[:n]
    p[:n] -= hp[1] * m[:n] / (np.sqrt(v[:n]) + hp[2])


@FAMILY.kernel("ema_update",
               footprint=lambda s: {"ema": s["n"], "p": s["n"], "decay": 1})
def k_ema_update(ema, p, n, decay):
    d = np.float32(decay[0])
    ema[:n] = p[:n] if d == 0 else d * ema[:n] + (np.float32(1) - d) * p[:n]
