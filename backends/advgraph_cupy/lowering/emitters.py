"""One emitter per op (the image ops' in `spatial`): its forward launches (which record a tape
entry) and its backward launches (which consume it). `EMITTERS` is the table the lowering dispatches on; the ops it
holds, with the graph's inputs, are the ops this backend lowers.

An emitter's forward gets the lowering (`lw`: buffers, parameters, RNG streams), the pass and
its step, and returns the buffer holding the step's value; its backward gets the gradient of
that value and hands each input's part to `lw.contribute`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from advgraph.ir import Node, Op

from ..codes import EPILOGUES
from ..plan import BLOCK, Buf, Launch, copy_rows, ew_grid, f32, gemm, i32
from .spatial import (conv_bwd, conv_fwd, conv_t_bwd, conv_t_fwd, maxout_conv_bwd,
                      maxout_conv_fwd, maxpool_bwd, maxpool_fwd)
from .tape import (ActEntry, BackwardPass, BatchNormEntry, ConcatEntry, DropoutEntry, Entry,
                   ForwardPass, GemmEntry, NormEntry, width)

if TYPE_CHECKING:
    from .grouping import Step
    from .iteration import Lowering

ACT = {Op.RELU: "relu", Op.SIGMOID: "sigmoid", Op.TANH: "tanh", Op.LEAKY_RELU: "leaky_relu"}
ALIAS = {Op.LINEAR, Op.RESHAPE, Op.FLATTEN}  # same values, same buffer: nothing to launch


@dataclass(frozen=True)
class OpEmitter:
    forward: Callable[["Lowering", ForwardPass, "Step"], Buf]
    backward: Callable[["Lowering", BackwardPass, Entry, Buf], None]


def active_dropout(n: Node) -> bool:
    return n.attrs["keep"] < 1.0 or n.attrs["scale"] != 1.0


# ---- alias: linear, reshape, flatten, an inactive dropout -------------------------------------

def _alias_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n = step.out
    y = fp.value[n.inputs[0]]
    fp.entries.append(Entry(step.emit, n, n.name, [y], y))
    return y


def _alias_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    n = e.node
    lw.contribute(bp, n.inputs[0], bp.rows * width(n), n.name, src=g)


# ---- dense and maxout: a GEMM ------------------------------------------------------------------

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
                                                  i32(rows), i32(w)), f"d {n.name}.bias"))
    lw.contribute(bp, n.inputs[0], rows * k_in, n.name, lambda dx, acc: bp.out.append(
        gemm(dpre, lw.param(f"{n.name}.weight"), dx, Buf("metrics", 0, 0), rows, k_in,
             w, False, True, "none", 0.0, f"d {n.name}.input" + (" (Σ)" if acc else ""),
             accumulate=acc)), accumulates=True)


# ---- dropout -----------------------------------------------------------------------------------

def _dropout_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n = step.out
    h = fp.value[n.inputs[0]]
    size = fp.rows * width(n)
    y = lw.dst(fp, n)
    mask = lw.plan.buffer(f"{n.name}{fp.tag}.mask", "uint8", size)
    g, b = ew_grid(size, 4)
    fp.out.append(Launch("dropout_fwd", g, b, (h, y, mask, i32(size), f32(n.attrs["keep"]),
                                               f32(n.attrs["scale"]), lw.plan.view("rng"),
                                               lw.next_stream()), n.name))
    fp.entries.append(DropoutEntry(step.emit, n, n.name, [h], y, mask=mask,
                                   scale=n.attrs["scale"]))
    return y


def _dropout_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, DropoutEntry)
    n = e.node
    size = bp.rows * width(n)
    gg, b = ew_grid(size)
    lw.contribute(bp, n.inputs[0], size, n.name, lambda dx, _: bp.out.append(
        Launch("dropout_bwd", gg, b, (g, e.mask, dx, i32(size), f32(e.scale)), n.name)))


# ---- an activation on its own (its input is not a dense node it could fuse with) ---------------

def _act_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n = step.out
    h = fp.value[n.inputs[0]]
    size = fp.rows * width(n)
    y = lw.dst(fp, n)
    g, b = ew_grid(size)
    slope = n.attrs.get("slope", 0.0)
    fp.out.append(Launch("act_fwd", g, b, (h, y, i32(size), i32(EPILOGUES[ACT[n.op]]),
                                           f32(slope)), n.name))
    fp.entries.append(ActEntry(step.emit, n, n.name, [h], y, act=ACT[n.op], slope=slope))
    return y


def _act_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, ActEntry)
    n = e.node
    size = bp.rows * width(n)
    gg, b = ew_grid(size)
    lw.contribute(bp, n.inputs[0], size, n.name, lambda dx, _: bp.out.append(
        Launch("act_bwd", gg, b, (e.out, g, dx, i32(size), i32(EPILOGUES[e.act]),
                                  f32(e.slope)), n.name)))


# ---- layernorm: a block per row ----------------------------------------------------------------

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


# ---- batchnorm: a block per channel ------------------------------------------------------------

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


# ---- concat: strided copies; a flat input among images, a rank-1 GEMM per example ---------------

def _broadcast_positions(n: Node, i_node: Node) -> int:
    """1, or H·W where a flat input of concat `n` becomes constant maps among images."""
    return width(n) // n.shape[0] if len(n.shape) == 3 and len(i_node.shape) == 1 else 1


def _concat_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    """Each input into its columns of every output row (the features of flat inputs, the
    channels of images: one block of a channels-first row): one strided copy. A flat input
    among images becomes constant maps: f_r (F × 1) · ones (1 × H·W) per example."""
    n, rows = step.out, fp.rows
    y = lw.dst(fp, n)
    total, col, ins, cols = width(n), 0, [], []
    ones = None
    for i in n.inputs:
        inode = fp.graph.node(i)
        P, w = _broadcast_positions(n, inode), width(inode)
        block = y.at(col, (rows - 1) * total + w * P)
        if P == 1:
            fp.out.append(copy_rows(fp.value[i], block, rows, w, w, total, False,
                                    f"{n.name} ← {i}"))
        else:
            if ones is None:
                ones = _ones(lw, fp.out, f"{n.name}{fp.tag}.ones", P)
            fp.out.append(gemm(fp.value[i], ones, block, ones.at(0, 0), w, P, 1, False,
                               False, "none", 0.0, f"{n.name} ← {i} (as maps)", batch=rows,
                               strides=(w, 0, total)))
        ins.append(fp.value[i])
        cols.append((col, w, P))
        col += w * P
    fp.entries.append(ConcatEntry(step.emit, n, n.name, ins, y, cols=cols, ones=ones))
    return y


def _ones(lw: "Lowering", out: list[Launch], name: str, size: int) -> Buf:
    ones = lw.plan.buffer(name, "float32", size)
    g, b = ew_grid(size)
    out.append(Launch("fill", g, b, (ones, i32(size), f32(1.0)), "ones"))
    return ones


def _concat_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    """Each input's columns of the output gradient, copied out; a broadcast input's, summed
    over the positions (dy_r (F × H·W) · ones)."""
    assert isinstance(e, ConcatEntry)
    n, rows = e.node, bp.rows
    total = width(n)
    for i, (col, w, P) in zip(n.inputs, e.cols):
        block = g.at(col, (rows - 1) * total + w * P)
        if P == 1:
            lw.contribute(bp, i, rows * w, n.name, lambda dx, _, block=block, w=w, i=i:
                          bp.out.append(copy_rows(block, dx, rows, w, total, w, False,
                                                  f"d {i} ← {n.name}")))
        else:
            assert e.ones is not None
            lw.contribute(bp, i, rows * w, n.name, lambda dx, acc, block=block, w=w, P=P, i=i:
                          bp.out.append(gemm(block, e.ones.at(0, P), dx, e.ones.at(0, 0),
                                             w, 1, P, False, False, "none", 0.0,
                                             f"d {i} ← {n.name} (Σ positions)",
                                             accumulate=acc, batch=rows,
                                             strides=(total, 0, w))), accumulates=True)


ALIAS_EMITTER = OpEmitter(_alias_fwd, _alias_bwd)
_ACT_EMITTER = OpEmitter(_act_fwd, _act_bwd)
EMITTERS: dict[Op, OpEmitter] = {
    Op.DENSE: OpEmitter(_dense_fwd, _dense_bwd),
    Op.MAXOUT: OpEmitter(_maxout_fwd, _maxout_bwd),
    Op.DROPOUT: OpEmitter(_dropout_fwd, _dropout_bwd),
    Op.CONCAT: OpEmitter(_concat_fwd, _concat_bwd),
    Op.LAYERNORM: OpEmitter(_layernorm_fwd, _layernorm_bwd),
    Op.BATCHNORM: OpEmitter(_batchnorm_fwd, _batchnorm_bwd),
    Op.MAX_POOL: OpEmitter(maxpool_fwd, maxpool_bwd),
    Op.CONV2D: OpEmitter(conv_fwd, conv_bwd),
    Op.CONV_T2D: OpEmitter(conv_t_fwd, conv_t_bwd),
    Op.MAXOUT_CONV: OpEmitter(maxout_conv_fwd, maxout_conv_bwd),
    **{op: _ACT_EMITTER for op in ACT},
    **{op: ALIAS_EMITTER for op in ALIAS},
}
