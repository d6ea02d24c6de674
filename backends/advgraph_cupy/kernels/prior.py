"""prior.cu: draws from the prior p_z, four per thread from Philox (launched through
plan.noise_launch; no op lowers to it)."""

from __future__ import annotations

import numpy as np

from .common import Family, draw4, u01

FAMILY = Family("prior")


@FAMILY.kernel("noise", footprint=lambda s: {"z": s["n"], "rng": 4}, writes={"z": None},
               members=("z", "rng"))
def k_noise(z, n, gaussian, a, b, rng, stream):
    r = draw4(rng, int(stream), -(-n // 4)).reshape(-1, 4)
    if gaussian:
        r1 = np.sqrt(np.maximum(-2 * np.log(u01(r[:, 0])), 0))
        t1 = np.float32(np.pi) * (2 * u01(r[:, 1]) - 1)
        r2 = np.sqrt(np.maximum(-2 * np.log(u01(r[:, 2])), 0))
        t2 = np.float32(np.pi) * (2 * u01(r[:, 3]) - 1)
        v = np.stack([r1 * np.cos(t1), r1 * np.sin(t1), r2 * np.cos(t2), r2 * np.sin(t2)], 1)
        v = a + b * v
    else:
        v = a + (b - a) * u01(r)
    z[:n] = v.reshape(-1)[:n].astype(np.float32)
