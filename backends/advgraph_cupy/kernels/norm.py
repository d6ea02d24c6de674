"""norm.cu: the normalisations, a block per row; the op lowered to them: layernorm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from advgraph.ir import Op

from ..plan import BLOCK, Buf, Launch, ew_grid, f32, i32
from .common import Entry, Family, width

if TYPE_CHECKING:
    from ..lowering.grouping import Step
    from ..lowering.lowerer import Lowering
    from ..lowering.tape import BackwardPass, ForwardPass

FAMILY = Family("norm")


# ---- kernels: twins and footprints -------------------------------------------------------------

@FAMILY.kernel("layernorm_fwd", footprint=lambda s: {
    **dict.fromkeys(("x", "y", "xhat"), s["rows"] * s["cols"]), "w": s["cols"], "b": s["cols"],
    "rstd": s["rows"]})
def k_layernorm_fwd(x, w, b, y, xhat, rstd, rows, cols, eps):
    v = x[: rows * cols].reshape(rows, cols).astype(np.float64)
    mean = v.mean(1, keepdims=True)
    inv = 1.0 / np.sqrt(((v - mean) ** 2).mean(1, keepdims=True) + np.float32(eps))
    h = (v - mean) * inv
    xhat[: rows * cols] = h.ravel()
    y[: rows * cols] = (h * w[:cols] + b[:cols]).ravel()
    rstd[:rows] = inv.ravel()


@FAMILY.kernel("layernorm_bwd", footprint=lambda s: {
    **dict.fromkeys(("dy", "xhat", "dx"), s["rows"] * s["cols"]), "rstd": s["rows"],
    "w": s["cols"]})
def k_layernorm_bwd(dy, xhat, rstd, w, dx, rows, cols):
    g = dy[: rows * cols].reshape(rows, cols).astype(np.float64) * w[:cols]
    h = xhat[: rows * cols].reshape(rows, cols).astype(np.float64)
    d = rstd[:rows, None] * (g - g.mean(1, keepdims=True) - h * (g * h).mean(1, keepdims=True))
    dx[: rows * cols] = d.ravel()


@FAMILY.kernel("layernorm_param_grad", footprint=lambda s: {
    "dy": s["rows"] * s["cols"], "xhat": s["rows"] * s["cols"], "dw": s["cols"],
    "db": s["cols"]})
def k_layernorm_param_grad(dy, xhat, dw, db, rows, cols):
    g = dy[: rows * cols].reshape(rows, cols).astype(np.float64)
    dw[:cols] = (g * xhat[: rows * cols].reshape(rows, cols)).sum(0)
    db[:cols] = g.sum(0)


# ---- layernorm: a block per row ----------------------------------------------------------------

@dataclass
class NormEntry(Entry):
    """layernorm: the normalised input x̂ and each row's 1/√(σ² + eps)."""

    xhat: Buf
    rstd: Buf


def _layernorm_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n, rows = step.out, fp.rows
    h = fp.value[n.inputs[0]]
    cols = width(n)
    y = lw.dst(fp, n)
    xhat = lw.plan.buffer(f"{n.name}{fp.tag}.xhat", "float32", rows * cols)
    rstd = lw.plan.buffer(f"{n.name}{fp.tag}.rstd", "float32", rows)
    fp.out.append(Launch("layernorm_fwd", (rows, 1, 1), (BLOCK, 1, 1),
                         (h, lw.param(f"{n.name}.weight"), lw.param(f"{n.name}.bias"), y, xhat,
                          rstd, i32(rows), i32(cols), f32(n.attrs["eps"])), n.name))
    fp.entries.append(NormEntry(step.emit, n, n.name, [h], y, xhat=xhat, rstd=rstd))
    return y


def _layernorm_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, NormEntry)
    n, rows = e.node, bp.rows
    cols = width(n)
    if bp.weights:
        gg, b = ew_grid(cols)
        bp.out.append(Launch("layernorm_param_grad", gg, b,
                             (g, e.xhat, lw.param(f"{n.name}.weight", True),
                              lw.param(f"{n.name}.bias", True), i32(rows), i32(cols)),
                             f"d {n.name}.weight, bias"))
    lw.contribute(bp, n.inputs[0], rows * cols, n.name, lambda dx, _: bp.out.append(
        Launch("layernorm_bwd", (rows, 1, 1), (BLOCK, 1, 1),
               (g, e.xhat, e.rstd, lw.param(f"{n.name}.weight"), dx, i32(rows), i32(cols)),
               n.name)))


FAMILY.op(Op.LAYERNORM, _layernorm_fwd, _layernorm_bwd)
