"""loss.cu: the GAN value function's BCE on D's logits, its gradients and the metrics it sums
(launched by lowering/iteration.py; no op lowers to it)."""

from __future__ import annotations

from ..codes import METRICS
from .common import Family, sigmoid, softplus

FAMILY = Family("loss")


@FAMILY.kernel("bce_d", footprint=lambda s: {
    "l_real": s["m"], "l_fake": s["m"], "g_real": s["m"], "g_fake": s["m"],
    "metrics": len(METRICS)}, writes={"g_real": None, "g_fake": None})
def k_bce_d(l_real, l_fake, g_real, g_fake, m, metrics):
    lr, lf = l_real[:m], l_fake[:m]
    g_real[:m] = (sigmoid(lr) - 1) / m
    g_fake[:m] = sigmoid(lf) / m
    metrics[0] += (softplus(-lr) + softplus(lf)).mean()
    metrics[1] += sigmoid(lr).mean()
    metrics[2] += sigmoid(lf).mean()


@FAMILY.kernel("bce_g", footprint=lambda s: {
    "l_fake": s["m"], "g_fake": s["m"], "metrics": len(METRICS)}, writes={"g_fake": None})
def k_bce_g(l_fake, g_fake, m, ns, metrics):
    lf = l_fake[:m]
    s = sigmoid(lf)
    g_fake[:m] = ((s - 1) if ns else -s) / m
    metrics[3] += (softplus(-lf) if ns else -softplus(lf)).mean()
