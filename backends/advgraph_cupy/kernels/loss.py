"""loss.cu: the GAN losses on D's logits (bce_d/bce_g: minimax and non_saturating, through the
sigmoid's input) or raw scores (score_d/score_g: least_squares, hinge, wasserstein), their
gradients and the metrics they sum (launched by lowering/iteration.py; no op lowers to them)."""

from __future__ import annotations

import numpy as np

from ..codes import METRICS, SCORE_LOSSES
from .common import Family, sigmoid, softplus

FAMILY = Family("loss")


@FAMILY.kernel("bce_d", footprint=lambda s: {
    "l_real": s["m"], "l_fake": s["m"], "g_real": s["m"], "g_fake": s["m"],
    "metrics": len(METRICS)}, writes={"g_real": None, "g_fake": None},
    members=("l_real", "l_fake", "g_real", "g_fake", "metrics"))
def k_bce_d(l_real, l_fake, g_real, g_fake, m, metrics):
    lr, lf = l_real[:m], l_fake[:m]
    g_real[:m] = (sigmoid(lr) - 1) / m
    g_fake[:m] = sigmoid(lf) / m
    metrics[0] += (softplus(-lr) + softplus(lf)).mean()
    metrics[1] += sigmoid(lr).mean()
    metrics[2] += sigmoid(lf).mean()


@FAMILY.kernel("bce_g", footprint=lambda s: {
    "l_fake": s["m"], "g_fake": s["m"], "metrics": len(METRICS)}, writes={"g_fake": None},
    members=("l_fake", "g_fake", "metrics"))
def k_bce_g(l_fake, g_fake, m, ns, metrics):
    lf = l_fake[:m]
    s = sigmoid(lf)
    g_fake[:m] = ((s - 1) if ns else -s) / m
    metrics[3] += (softplus(-lf) if ns else -softplus(lf)).mean()


@FAMILY.kernel("score_d", footprint=lambda s: {
    "l_real": s["m"], "l_fake": s["m"], "g_real": s["m"], "g_fake": s["m"],
    "metrics": len(METRICS)}, writes={"g_real": None, "g_fake": None})
def k_score_d(l_real, l_fake, g_real, g_fake, m, kind, metrics):
    lr, lf = l_real[:m].astype(np.float64), l_fake[:m].astype(np.float64)
    if kind == SCORE_LOSSES["least_squares"]:
        gr, gf, loss = lr - 1, lf, 0.5 * (lr - 1) ** 2 + 0.5 * lf ** 2
    elif kind == SCORE_LOSSES["hinge"]:
        gr, gf = np.where(1 - lr > 0, -1.0, 0.0), np.where(1 + lf > 0, 1.0, 0.0)
        loss = np.maximum(1 - lr, 0) + np.maximum(1 + lf, 0)
    else:
        gr, gf, loss = -np.ones_like(lr), np.ones_like(lf), lf - lr
    g_real[:m] = gr / m
    g_fake[:m] = gf / m
    metrics[0] += loss.mean()
    metrics[1] += lr.mean()
    metrics[2] += lf.mean()


@FAMILY.kernel("score_g", footprint=lambda s: {
    "l_fake": s["m"], "g_fake": s["m"], "metrics": len(METRICS)}, writes={"g_fake": None})
def k_score_g(l_fake, g_fake, m, kind, metrics):
    lf = l_fake[:m].astype(np.float64)
    ls = kind == SCORE_LOSSES["least_squares"]
    g_fake[:m] = ((lf - 1) if ls else -np.ones_like(lf)) / m
    metrics[3] += (0.5 * (lf - 1) ** 2 if ls else -lf).mean()
