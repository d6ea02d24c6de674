"""spectral.cu: spectral normalisation's power iteration and σ (sn_power), the weight W / σ the
passes read (sn_scale), and the gradient through W / σ to W (sn_grad); launched by
lowering/regularizers.py around each training step and inference pass (no op lowers to them).

A weight W of shape (outer, rows, inner) around its spectral axis is the (rows, outer·inner)
matrix M the kernels iterate on (advgraph.objective.spectral_matrix)."""

from __future__ import annotations

import numpy as np

from .common import Family

FAMILY = Family("spectral")
EPS = 1e-12


def matrix(w: np.ndarray, outer: int, rows: int, inner: int) -> np.ndarray:
    """M in float64: W's axis `rows` first, the rest flattened."""
    w3 = np.asarray(w[: outer * rows * inner], np.float64).reshape(outer, rows, inner)
    return w3.transpose(1, 0, 2).reshape(rows, outer * inner)


def _size(s) -> int:
    return s["outer"] * s["rows"] * s["inner"]


@FAMILY.kernel("sn_power", footprint=lambda s: {
    "w": _size(s), "u": s["rows"], "v": s["outer"] * s["inner"], "sigma": 1},
    writes={"sigma": None})
def k_sn_power(w, u, v, sigma, outer, rows, inner, iterations):
    m = matrix(w, outer, rows, inner)
    cols = outer * inner
    for _ in range(iterations):
        raw = m.T @ u[:rows].astype(np.float64)
        v[:cols] = raw.astype(np.float32)
        v[:cols] = v[:cols] * (1 / max(float(np.sqrt((raw * raw).sum())), EPS))
        raw = m @ v[:cols].astype(np.float64)
        u[:rows] = raw.astype(np.float32)
        u[:rows] = u[:rows] * (1 / max(float(np.sqrt((raw * raw).sum())), EPS))
    sigma[0] = u[:rows].astype(np.float64) @ (m @ v[:cols].astype(np.float64))


@FAMILY.kernel("sn_scale", footprint=lambda s: {"w": s["n"], "sigma": 1, "wn": s["n"]},
               writes={"wn": None})
def k_sn_scale(w, sigma, wn, n):
    wn[:n] = w[:n] / sigma[0]


@FAMILY.kernel("sn_grad", footprint=lambda s: {
    "g": _size(s), "w": _size(s), "u": s["rows"], "v": s["outer"] * s["inner"], "sigma": 1})
def k_sn_grad(g, w, u, v, sigma, outer, rows, inner):
    n = outer * rows * inner
    s = float(sigma[0])
    k = float(g[:n].astype(np.float64) @ w[:n].astype(np.float64)) / (s * s)
    uv = np.outer(u[:rows].astype(np.float64), v[: outer * inner].astype(np.float64))
    back = uv.reshape(rows, outer, inner).transpose(1, 0, 2).reshape(-1)  # M's layout → W's
    g[:n] = g[:n] / s - k * back
