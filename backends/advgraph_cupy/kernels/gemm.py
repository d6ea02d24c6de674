"""gemm.cu: C = epilogue(op(A)·op(B)) (one product, or a batch of them) and the bias gradient;
the ops lowered to a GEMM: dense (its epilogue the bias, or the bias and an activation fused)
and maxout (a GEMM to every piece, then elementwise.cu's max over pieces)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advgraph.ir import Op

from ..codes import EPILOGUES
from ..emitter import BackwardPass, Entry, ForwardPass, Step
from ..emitter import LoweringContext as Lowering  # what an emitter may ask of it
from ..plan import Buf, Launch, ew_grid, f32, gemm, i32, one_copy
from .common import Family, act, batched, strided, width
from .elementwise import ACT

FAMILY = Family("gemm")


# ---- kernels: twins and footprints -------------------------------------------------------------

def _gemm_batched_footprint(s):
    M, N, K, bt = s["M"], s["N"], s["K"], s["batch"]
    a = strided(K, M, s["lda"]) if s["transA"] else strided(M, K, s["lda"])
    b = strided(N, K, s["ldb"]) if s["transB"] else strided(K, N, s["ldb"])
    return {"A": batched(bt, s["strideA"], a), "B": batched(bt, s["strideB"], b),
            "C": batched(bt, s["strideC"], strided(M, N, s["ldc"])),
            "bias": 0 if s["epilogue"] == EPILOGUES["none"] else batched(bt, s["strideBias"], N)}


@FAMILY.kernel("gemm_batched", footprint=_gemm_batched_footprint, writes={"C": "accumulate"})
def k_gemm_batched(A, B, C, bias, M, N, K, lda, ldb, ldc, batch, sA, sB, sC, sBias, acc,
                   transA, transB, ep, slope):
    for i in range(batch):
        a0, b0, c0 = A[i * sA:], B[i * sB:], C[i * sC:]
        a = a0[: K * lda].reshape(K, lda)[:, :M].T if transA else a0[: M * lda].reshape(M, lda)[:, :K]
        b = b0[: N * ldb].reshape(N, ldb)[:, :K].T if transB else b0[: K * ldb].reshape(K, ldb)[:, :N]
        v = a.astype(np.float64) @ b.astype(np.float64)
        if ep != EPILOGUES["none"]:
            v = v + bias[i * sBias: i * sBias + N]
        v = act(v.astype(np.float32), ep, slope)
        out = c0[: M * ldc].reshape(M, ldc)[:, :N]
        out[...] = out + v if acc else v


@FAMILY.kernel("gemm", footprint=lambda s: _gemm_batched_footprint(
    {**s, "batch": 1, "strideA": 0, "strideB": 0, "strideC": 0, "strideBias": 0}),
    writes={"C": "accumulate"})
def k_gemm(A, B, C, bias, M, N, K, lda, ldb, ldc, acc, transA, transB, ep, slope):
    k_gemm_batched(A, B, C, bias, M, N, K, lda, ldb, ldc, 1, 0, 0, 0, 0, acc, transA, transB,
                   ep, slope)


@FAMILY.kernel("bias_grad", footprint=lambda s: {"dY": s["M"] * s["N"], "db": s["N"]},
    writes={"db": None}, members=("dY", "db"))
def k_bias_grad(dY, db, M, N):
    db[:N] = dY[: M * N].reshape(M, N).astype(np.float64).sum(0)


# ---- dense and maxout: a GEMM ------------------------------------------------------------------

@dataclass
class GemmEntry(Entry):
    """dense (its epilogue: the bias, or the bias and an activation) and maxout."""

    k: int  # the GEMM's inner dimension: the input's width
    act: str = "bias"  # the epilogue: "bias" or the fused activation's name
    slope: float = 0.0  # leaky ReLU's
    arg: Buf | None = None  # maxout: the winning piece of each unit


def _dense_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    """One GEMM, its epilogue the bias, or the bias and the activation `step.out` fused."""
    d, n = step.node, step.out
    fused = d is not n
    h = fp.value[d.inputs[0]]
    k_in = width(fp.graph.node(d.inputs[0]))
    ep = ACT[n.op] if fused else "bias"
    slope = n.attrs.get("slope", 0.0) if fused else 0.0
    y = lw.dst(fp, n)
    fp.out.append(gemm(h, lw.param(f"{d.name}.weight"), y, lw.param(f"{d.name}.bias"),
                       fp.rows, width(n), k_in, False, False, ep, slope,
                       d.name + (f" + {n.op.value}" if fused else "")))
    fp.entries.append(GemmEntry(step.emit, d, n.name, [h], y, k=k_in, act=ep, slope=slope))
    return y


def _dense_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    """Through the fused activation (if any) to the GEMM's output, then the GEMM."""
    assert isinstance(e, GemmEntry)
    n, rows = e.node, bp.rows
    w = width(n)
    if e.act != "bias":
        dpre = lw.plan.buffer(f"{n.name}{bp.tag}.dpre", "float32", rows * w)
        gg, b = ew_grid(rows * w)
        bp.out.append(Launch("act_bwd", gg, b, (e.out, g, dpre, i32(rows * w),
                                                i32(EPILOGUES[e.act]), f32(e.slope)), n.name))
    else:
        dpre = g
    _gemm_bwd(lw, bp, e, dpre, w)


def _maxout_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    """A GEMM to every piece, then the max over each unit's pieces (keeping the argmax)."""
    n, rows = step.out, fp.rows
    h = fp.value[n.inputs[0]]
    k_in = width(fp.graph.node(n.inputs[0]))
    units, pieces = n.attrs["units"], n.attrs["pieces"]
    pre = lw.plan.buffer(f"{n.name}{fp.tag}.pre", "float32", rows * units * pieces)
    arg = lw.plan.buffer(f"{n.name}{fp.tag}.arg", "int32", rows * units)
    y = lw.dst(fp, n)
    fp.out.append(gemm(h, lw.param(f"{n.name}.weight"), pre, lw.param(f"{n.name}.bias"),
                       rows, units * pieces, k_in, False, False, "bias", 0.0,
                       f"{n.name} (maxout pieces)"))
    g, b = ew_grid(rows * units)
    fp.out.append(Launch("maxout_fwd", g, b, (pre, y, arg, i32(rows), i32(units), i32(pieces),
                                              i32(1)),
                         n.name))
    fp.entries.append(GemmEntry(step.emit, n, n.name, [h], y, k=k_in, arg=arg))
    return y


def _maxout_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    """To the winning piece of each unit (the kept argmax), then the GEMM."""
    assert isinstance(e, GemmEntry) and e.arg is not None
    n, rows = e.node, bp.rows
    units, pieces = n.attrs["units"], n.attrs["pieces"]
    w = units * pieces
    dpre = lw.plan.buffer(f"{n.name}{bp.tag}.dpre", "float32", rows * w)
    gg, b = ew_grid(rows * w)
    bp.out.append(Launch("maxout_bwd", gg, b, (g, e.arg, dpre, i32(rows), i32(units),
                                               i32(pieces), i32(1)), n.name))
    _gemm_bwd(lw, bp, e, dpre, w)


def _gemm_bwd(lw: "Lowering", bp: BackwardPass, e: GemmEntry, dpre: Buf, w: int) -> None:
    """A dense/maxout GEMM's weight and bias gradients (when `weights`) and input gradient,
    from dpre, the gradient of its `w` outputs."""
    n, rows, k_in = e.node, bp.rows, e.k
    if bp.weights:
        bp.out.append(gemm(e.ins[0], dpre, lw.param(f"{n.name}.weight", grads=True),
                           Buf("metrics", 0, 0), k_in, w, rows, True, False, "none",
                           0.0, f"d {n.name}.weight"))
        gg, b = ew_grid(w)
        bp.out.append(Launch("bias_grad", gg, b, (dpre, lw.param(f"{n.name}.bias", True),
                                                  i32(rows), i32(w), *one_copy(2)),
                             f"d {n.name}.bias"))
    lw.contribute(bp, n.inputs[0], rows * k_in, n.name, lambda dx, acc: bp.out.append(
        gemm(dpre, lw.param(f"{n.name}.weight"), dx, Buf("metrics", 0, 0), rows, k_in,
             w, False, True, "none", 0.0, f"d {n.name}.input" + (" (Σ)" if acc else ""),
             accumulate=acc)), accumulates=True)


FAMILY.op(Op.DENSE, _dense_fwd, _dense_bwd)
FAMILY.op(Op.MAXOUT, _maxout_fwd, _maxout_bwd)
