"""norm.cu: the normalisations, layernorm a block per row and batchnorm a block per channel;
the ops lowered to them: layernorm, batchnorm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advgraph.ir import Node, Op

from ..emitter import BackwardPass, Entry, ForwardPass, Step
from ..emitter import LoweringContext as Lowering  # what an emitter may ask of it
from ..plan import BLOCK, Buf, Launch, ew_grid, f32, i32
from .common import Family, width

FAMILY = Family("norm")


# ---- kernels: twins and footprints -------------------------------------------------------------

@FAMILY.kernel("layernorm_fwd", footprint=lambda s: {
    **dict.fromkeys(("x", "y", "xhat"), s["rows"] * s["cols"]), "w": s["cols"], "b": s["cols"],
    "rstd": s["rows"]}, writes={"y": None, "xhat": None, "rstd": None})
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
    "w": s["cols"]}, writes={"dx": None})
def k_layernorm_bwd(dy, xhat, rstd, w, dx, rows, cols):
    g = dy[: rows * cols].reshape(rows, cols).astype(np.float64) * w[:cols]
    h = xhat[: rows * cols].reshape(rows, cols).astype(np.float64)
    d = rstd[:rows, None] * (g - g.mean(1, keepdims=True) - h * (g * h).mean(1, keepdims=True))
    dx[: rows * cols] = d.ravel()


@FAMILY.kernel("layernorm_param_grad", footprint=lambda s: {
    "dy": s["rows"] * s["cols"], "xhat": s["rows"] * s["cols"], "dw": s["cols"],
    "db": s["cols"]}, writes={"dw": None, "db": None})
def k_layernorm_param_grad(dy, xhat, dw, db, rows, cols):
    g = dy[: rows * cols].reshape(rows, cols).astype(np.float64)
    dw[:cols] = (g * xhat[: rows * cols].reshape(rows, cols)).sum(0)
    db[:cols] = g.sum(0)


def _bn_groups(a, rows, C, P, groups):
    """x (rows, C, P) as (groups, rows/groups, C, P), in float64."""
    return a[: rows * C * P].reshape(groups, rows // groups, C, P).astype(np.float64)


def _bn_elems(s):
    return s["rows"] * s["C"] * s["P"]


@FAMILY.kernel("batchnorm_fwd", footprint=lambda s: {
    **dict.fromkeys(("x", "y", "xhat"), _bn_elems(s)),
    **dict.fromkeys(("w", "b", "run_mean", "run_var"), s["C"]), "rstd": s["groups"] * s["C"]},
    writes={"y": None, "xhat": None, "rstd": None})
def k_batchnorm_fwd(x, w, b, y, xhat, rstd, run_mean, run_var, rows, C, P, groups, eps,
                    momentum, update):
    v = _bn_groups(x, rows, C, P, groups)
    mean = v.mean((1, 3), keepdims=True)  # (groups, 1, C, 1)
    var = ((v - mean) ** 2).mean((1, 3), keepdims=True)
    inv = 1.0 / np.sqrt(var + np.float32(eps))
    h = (v - mean) * inv
    xhat[: rows * C * P] = h.ravel()
    y[: rows * C * P] = (h * w[:C].reshape(1, 1, C, 1) + b[:C].reshape(1, 1, C, 1)).ravel()
    rstd[: groups * C] = inv.ravel()
    if update:
        n = rows // groups * P
        for g in range(groups):  # in order: the real half's statistics, then the fake half's
            unbiased = var[g].ravel() * (n / (n - 1) if n > 1 else 1.0)
            run_mean[:C] = (1 - momentum) * run_mean[:C] + momentum * mean[g].ravel()
            run_var[:C] = (1 - momentum) * run_var[:C] + momentum * unbiased


@FAMILY.kernel("batchnorm_infer", footprint=lambda s: {
    "x": _bn_elems(s), "y": _bn_elems(s),
    **dict.fromkeys(("w", "b", "run_mean", "run_var"), s["C"])}, writes={"y": None})
def k_batchnorm_infer(x, w, b, run_mean, run_var, y, rows, C, P, eps):
    v = x[: rows * C * P].reshape(rows, C, P).astype(np.float64)
    inv = 1.0 / np.sqrt(run_var[:C].astype(np.float64) + np.float32(eps))
    h = (v - run_mean[:C].reshape(1, C, 1)) * inv.reshape(1, C, 1)
    y[: rows * C * P] = (h * w[:C].reshape(1, C, 1) + b[:C].reshape(1, C, 1)).ravel()


@FAMILY.kernel("batchnorm_bwd", footprint=lambda s: {
    **dict.fromkeys(("dy", "xhat", "dx"), _bn_elems(s)), "rstd": s["groups"] * s["C"],
    "w": s["C"]}, writes={"dx": None})
def k_batchnorm_bwd(dy, xhat, rstd, w, dx, rows, C, P, groups):
    g = _bn_groups(dy, rows, C, P, groups)
    h = _bn_groups(xhat, rows, C, P, groups)
    k = w[:C].reshape(1, 1, C, 1) * rstd[: groups * C].reshape(groups, 1, C, 1)
    d = k * (g - g.mean((1, 3), keepdims=True) - h * (g * h).mean((1, 3), keepdims=True))
    dx[: rows * C * P] = d.ravel()


@FAMILY.kernel("batchnorm_param_grad", footprint=lambda s: {
    "dy": _bn_elems(s), "xhat": _bn_elems(s), "dw": s["C"], "db": s["C"]},
    writes={"dw": None, "db": None})
def k_batchnorm_param_grad(dy, xhat, dw, db, rows, C, P):
    g = dy[: rows * C * P].reshape(rows, C, P).astype(np.float64)
    dw[:C] = (g * xhat[: rows * C * P].reshape(rows, C, P)).sum((0, 2))
    db[:C] = g.sum((0, 2))


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


# ---- batchnorm: a block per channel -------------------------------------------------------------

@dataclass
class BatchNormEntry(Entry):
    """batchnorm in training mode: x̂, 1/√(σ² + eps) of each (group, channel), and the pass's
    groups (independent batches of its rows, each with its own statistics)."""

    xhat: Buf
    rstd: Buf
    groups: int


def _channels(n: Node) -> tuple[int, int]:
    """(C, P): the feature axis, and the positions each channel has (H·W, or 1 if flat)."""
    return n.shape[0], width(n) // n.shape[0]


def _batchnorm_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    """Training: the statistics of each group of the pass's rows (D's real and fake halves
    apart, as two passes would), the running statistics updated when the pass says so.
    Inference: the running statistics."""
    n, rows = step.out, fp.rows
    h = fp.value[n.inputs[0]]
    C, P = _channels(n)
    y = lw.dst(fp, n)
    w, b = lw.param(f"{n.name}.weight"), lw.param(f"{n.name}.bias")
    mean, var = lw.param(f"{n.name}.running_mean"), lw.param(f"{n.name}.running_var")
    eps = f32(n.attrs["eps"])
    if fp.train:
        xhat = lw.plan.buffer(f"{n.name}{fp.tag}.xhat", "float32", rows * C * P)
        rstd = lw.plan.buffer(f"{n.name}{fp.tag}.rstd", "float32", fp.groups * C)
        fp.out.append(Launch("batchnorm_fwd", (C, 1, 1), (BLOCK, 1, 1),
                             (h, w, b, y, xhat, rstd, mean, var, i32(rows), i32(C), i32(P),
                              i32(fp.groups), eps, f32(n.attrs["momentum"]),
                              i32(int(fp.update_stats))), n.name))
        fp.entries.append(BatchNormEntry(step.emit, n, n.name, [h], y, xhat=xhat, rstd=rstd,
                                         groups=fp.groups))
    else:
        g, bl = ew_grid(rows * C * P)
        fp.out.append(Launch("batchnorm_infer", g, bl, (h, w, b, mean, var, y, i32(rows), i32(C),
                                                        i32(P), eps), n.name))
        fp.entries.append(Entry(step.emit, n, n.name, [h], y))
    return y


def _batchnorm_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    if not isinstance(e, BatchNormEntry):  # pragma: no cover - inference plans have no backward
        raise AssertionError(f"{e.node.name}: a gradient through inference-mode batchnorm")
    n, rows = e.node, bp.rows
    C, P = _channels(n)
    if bp.weights:
        bp.out.append(Launch("batchnorm_param_grad", (C, 1, 1), (BLOCK, 1, 1),
                             (g, e.xhat, lw.param(f"{n.name}.weight", True),
                              lw.param(f"{n.name}.bias", True), i32(rows), i32(C), i32(P)),
                             f"d {n.name}.weight, bias"))
    lw.contribute(bp, n.inputs[0], rows * C * P, n.name, lambda dx, _: bp.out.append(
        Launch("batchnorm_bwd", (C, 1, 1), (BLOCK, 1, 1),
               (g, e.xhat, e.rstd, lw.param(f"{n.name}.weight"), dx, i32(rows), i32(C), i32(P),
                i32(e.groups)), n.name)))


FAMILY.op(Op.BATCHNORM, _batchnorm_fwd, _batchnorm_bwd)
