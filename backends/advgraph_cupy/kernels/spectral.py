"""spectral.cu: spectral normalisation's power iteration (sn_mv, sn_normalize), σ (sn_sigma),
the weight W / σ the passes read (sn_scale), and the gradient through W / σ to W (sn_dot_parts,
sn_grad); launched by lowering/regularizers.py around each training step and inference pass
(no op lowers to them).

A weight W of shape (outer, rows, inner) around its spectral axis is the (rows, outer·inner)
matrix M the kernels work on (advgraph.objective.spectral_matrix)."""

from __future__ import annotations

import numpy as np

from .common import Family

FAMILY = Family("spectral")
EPS = 1e-12
NT = 256  # spectral.cu's block: sn_dot_parts' parts depend on it


def matrix(w: np.ndarray, outer: int, rows: int, inner: int) -> np.ndarray:
    """M in float64: W's axis `rows` first, the rest flattened."""
    w3 = np.asarray(w[: outer * rows * inner], np.float64).reshape(outer, rows, inner)
    return w3.transpose(1, 0, 2).reshape(rows, outer * inner)


def _size(s) -> int:
    return s["outer"] * s["rows"] * s["inner"]


@FAMILY.kernel("sn_mv", footprint=lambda s: {
    "w": _size(s), "x": s["rows"] if s["trans"] else s["outer"] * s["inner"],
    "y": s["outer"] * s["inner"] if s["trans"] else s["rows"]}, writes={"y": None})
def k_sn_mv(w, x, y, outer, rows, inner, trans):
    m = matrix(w, outer, rows, inner)
    if trans:
        y[: outer * inner] = m.T @ x[:rows].astype(np.float64)
    else:
        y[:rows] = m @ x[: outer * inner].astype(np.float64)


@FAMILY.kernel("sn_normalize", footprint=lambda s: {"raw": s["n"], "out": s["n"]},
               writes={"out": None})
def k_sn_normalize(raw, out, n):
    r = raw[:n].astype(np.float64)
    out[:n] = r * (1 / max(float(np.sqrt((r * r).sum())), EPS))


@FAMILY.kernel("sn_sigma", footprint=lambda s: {"u": s["rows"], "mv": s["rows"], "sigma": 1},
               writes={"sigma": None})
def k_sn_sigma(u, mv, sigma, rows):
    sigma[0] = u[:rows].astype(np.float64) @ mv[:rows].astype(np.float64)


@FAMILY.kernel("sn_scale", footprint=lambda s: {"w": s["n"], "sigma": 1, "wn": s["n"]},
               writes={"wn": None})
def k_sn_scale(w, sigma, wn, n):
    wn[:n] = w[:n] / sigma[0]


@FAMILY.kernel("sn_dot_parts", footprint=lambda s: {
    "g": s["n"], "w": s["n"], "parts": 2 * s["nparts"]}, writes={"parts": None})
def k_sn_dot_parts(g, w, parts, n, nparts):
    prod = g[:n].astype(np.float64) * w[:n].astype(np.float64)
    block = (np.arange(n) // NT) % nparts
    for b in range(nparts):
        total = float(prod[block == b].sum())
        parts[2 * b] = np.float32(total)
        parts[2 * b + 1] = np.float32(total - float(np.float32(total)))


@FAMILY.kernel("sn_grad", footprint=lambda s: {
    "g": _size(s), "u": s["rows"], "v": s["outer"] * s["inner"], "sigma": 1,
    "parts": 2 * s["nparts"]})
def k_sn_grad(g, u, v, sigma, parts, nparts, outer, rows, inner):
    n = outer * rows * inner
    s = float(sigma[0])
    k = float(parts[: 2 * nparts].astype(np.float64).sum()) / (s * s)
    uv = np.outer(u[:rows].astype(np.float64), v[: outer * inner].astype(np.float64))
    back = uv.reshape(rows, outer, inner).transpose(1, 0, 2).reshape(-1)  # M's layout → W's
    g[:n] = g[:n] / s - k * back
