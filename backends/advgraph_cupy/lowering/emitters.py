"""One emitter per op: its forward launches (which record a tape entry) and its backward
launches (which consume it). `EMITTERS` is the table the lowering dispatches on; the ops it
holds, with the graph's inputs, are the ops this backend lowers.

An emitter's forward gets the lowering (`lw`: buffers, parameters, RNG streams), the pass and
its step, and returns the buffer holding the step's value; its backward gets the gradient of
that value and hands each input's part to `lw.contribute`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from advgraph.ir import Node, Op

from ..codes import EPILOGUES
from ..plan import BLOCK, Buf, Launch, copy_rows, ew_grid, f32, gemm, i32
from .tape import (ActEntry, BackwardPass, ConcatEntry, DropoutEntry, Entry, ForwardPass,
                   ConvEntry, GemmEntry, NormEntry, PoolEntry)

if TYPE_CHECKING:
    from .grouping import Step
    from .iteration import Lowering

ACT = {Op.RELU: "relu", Op.SIGMOID: "sigmoid", Op.TANH: "tanh", Op.LEAKY_RELU: "leaky_relu"}
ALIAS = {Op.LINEAR, Op.RESHAPE, Op.FLATTEN}  # same values, same buffer: nothing to launch


@dataclass(frozen=True)
class OpEmitter:
    forward: Callable[["Lowering", ForwardPass, "Step"], Buf]
    backward: Callable[["Lowering", BackwardPass, Entry, Buf], None]


def width(node: Node) -> int:
    return int(np.prod(node.shape))


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


# ---- max_pool: a thread per output, the backward a thread per input ---------------------------

def _maxpool_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n, rows = step.out, fp.rows
    x = fp.graph.node(n.inputs[0])
    (c, hh, ww), (_, oh, ow) = x.shape, n.shape
    geometry = tuple(i32(v) for v in (rows * c, hh, ww, oh, ow, n.attrs["kernel"],
                                      n.attrs["stride"], n.attrs["pad"]))
    h = fp.value[x.name]
    y = lw.dst(fp, n)
    arg = lw.plan.buffer(f"{n.name}{fp.tag}.arg", "int32", rows * width(n))
    g, b = ew_grid(rows * width(n))
    fp.out.append(Launch("maxpool_fwd", g, b, (h, y, arg, *geometry), n.name))
    fp.entries.append(PoolEntry(step.emit, n, n.name, [h], y, arg=arg, geometry=geometry,
                                in_size=rows * width(x)))
    return y


def _maxpool_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, PoolEntry)
    n = e.node
    gg, b = ew_grid(e.in_size)
    lw.contribute(bp, n.inputs[0], e.in_size, n.name, lambda dx, _: bp.out.append(
        Launch("maxpool_bwd", gg, b, (g, e.arg, dx, *e.geometry), n.name)))


# ---- conv2d, conv_transpose2d: im2col / col2im around a GEMM per example -----------------------
# conv2d (weight [O, C·k·k]):   cols_b = im2col(x_b);  y_b = W·cols_b (+ bias per channel)
#   dW = Σ_b dy_b·cols_bᵀ;  dcols_b = Wᵀ·dy_b;  dx_b = col2im(dcols_b)
# conv_transpose2d is conv2d's input gradient (weight [C, O·k·k]; the window geometry is that
# of a conv2d from the output image back to the input grid):
#   y_b = col2im(Wᵀ·x_b) (+ bias);  dcols_b = im2col(dy_b);  dW = Σ_b x_b·dcols_bᵀ;
#   dx_b = W·dcols_b
# Σ_b: a batched GEMM into one product per example, then bias_grad sums them (fixed order).

def _geometry(rows: int, image: tuple, grid: tuple, a: dict) -> tuple:
    c, h, w = image
    return tuple(i32(v) for v in (rows, c, h, w, grid[0], grid[1], a["kernel"], a["stride"],
                                  a["pad"]))


def _windows(kernel: str, src: Buf, dst: Buf, geometry: tuple, out: list,
             note: str) -> None:
    rows, c, h, w, oh, ow, k = (int(v) for v in geometry[:7])
    n = rows * c * (k * k * oh * ow if kernel == "im2col" else h * w)
    g, b = ew_grid(n)
    out.append(Launch(kernel, g, b, (src, dst, *geometry), note))


def _bias_launch(y: Buf, bias: Buf, rows: int, shape: tuple, note: str) -> Launch:
    c, p = shape[0], shape[1] * shape[2]
    g, b = ew_grid(rows * c * p)
    return Launch("channel_bias", g, b, (y, bias, i32(rows), i32(c), i32(p)), note)


def _weight_grad(lw: "Lowering", bp: BackwardPass, n: Node, a: Buf, bt: Buf, m: int, nn: int,
                 k: int) -> None:
    """dW [m, nn] = Σ_b a_b [m, k] · bt_bᵀ (bt_b: [nn, k]), one product per example summed."""
    rows = bp.rows
    per = lw.plan.buffer(f"{n.name}{bp.tag}.dw_each", "float32", rows * m * nn)
    bp.out.append(gemm(a, bt, per, Buf("metrics", 0, 0), m, nn, k, False, True, "none", 0.0,
                       f"d {n.name}.weight (each example)", batch=rows,
                       strides=(m * k, nn * k, m * nn)))
    g, b = ew_grid(m * nn)
    bp.out.append(Launch("bias_grad", g, b, (per, lw.param(f"{n.name}.weight", True), i32(rows),
                                             i32(m * nn)), f"d {n.name}.weight"))


def _bias_grad(lw: "Lowering", bp: BackwardPass, n: Node, g: Buf, maps: int, p: int) -> None:
    gg, b = ew_grid(maps)
    bp.out.append(Launch("channel_bias_grad", gg, b, (g, lw.param(f"{n.name}.bias", True),
                                                      i32(bp.rows), i32(maps), i32(p)),
                         f"d {n.name}.bias"))


def _conv_into(lw: "Lowering", fp: ForwardPass, step: "Step", y: Buf, maps: int) -> ConvEntry:
    """conv2d's launches (maxout_conv's before its max) into y, `maps` output maps; the entry
    its backward needs."""
    n, rows = step.out, fp.rows
    x = fp.graph.node(n.inputs[0])
    _, oh, ow = n.shape
    ckk, p = x.shape[0] * n.attrs["kernel"] ** 2, oh * ow
    geometry = _geometry(rows, x.shape, (oh, ow), n.attrs)
    h = fp.value[x.name]
    cols = lw.plan.buffer(f"{n.name}{fp.tag}.cols", "float32", rows * ckk * p)
    _windows("im2col", h, cols, geometry, fp.out, f"{n.name} (windows)")
    unused = lw.param(f"{n.name}.bias")  # the GEMM adds no bias (it is per channel here)
    fp.out.append(gemm(lw.param(f"{n.name}.weight"), cols, y, unused, maps, p, ckk, False, False,
                       "none", 0.0, n.name, batch=rows, strides=(0, ckk * p, maps * p)))
    fp.out.append(_bias_launch(y, lw.param(f"{n.name}.bias"), rows, (maps, oh, ow),
                               f"{n.name} + bias"))
    return ConvEntry(step.emit, n, n.name, [h], y, geometry=geometry, in_shape=x.shape,
                     cols=cols)


def _conv_grads(lw: "Lowering", bp: BackwardPass, e: ConvEntry, g: Buf, maps: int) -> None:
    """conv2d's backward from g, the gradient of its `maps` output maps."""
    assert e.cols is not None
    n, rows = e.node, bp.rows
    _, oh, ow = n.shape
    c, hh, ww = e.in_shape
    ckk, p = c * n.attrs["kernel"] ** 2, oh * ow
    if bp.weights:
        _weight_grad(lw, bp, n, g, e.cols, maps, ckk, p)
        _bias_grad(lw, bp, n, g, maps, p)

    def produce(dx: Buf, _: bool) -> None:
        dcols = lw.plan.buffer(f"{n.name}{bp.tag}.dcols", "float32", rows * ckk * p)
        bp.out.append(gemm(lw.param(f"{n.name}.weight"), g, dcols, Buf("metrics", 0, 0), ckk, p,
                           maps, True, False, "none", 0.0, f"d {n.name}.input (windows)",
                           batch=rows, strides=(0, maps * p, ckk * p)))
        _windows("col2im", dcols, dx, e.geometry, bp.out, f"d {n.name}.input")

    lw.contribute(bp, n.inputs[0], rows * c * hh * ww, n.name, produce)


def _conv_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n = step.out
    y = lw.dst(fp, n)
    fp.entries.append(_conv_into(lw, fp, step, y, n.shape[0]))
    return y


def _conv_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, ConvEntry)
    _conv_grads(lw, bp, e, g, e.node.shape[0])


def _maxout_conv_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    """conv2d to channels·pieces maps, then the max over each channel's consecutive pieces
    (maxout's kernel, its positions `inner` = the plane)."""
    n, rows = step.out, fp.rows
    units, pieces, plane = n.shape[0], n.attrs["pieces"], n.shape[1] * n.shape[2]
    pre = lw.plan.buffer(f"{n.name}{fp.tag}.pre", "float32", rows * units * pieces * plane)
    entry = _conv_into(lw, fp, step, pre, units * pieces)
    arg = lw.plan.buffer(f"{n.name}{fp.tag}.arg", "int32", rows * units * plane)
    y = lw.dst(fp, n)
    g, b = ew_grid(rows * units * plane)
    fp.out.append(Launch("maxout_fwd", g, b, (pre, y, arg, i32(rows), i32(units), i32(pieces),
                                              i32(plane)), f"{n.name} (max over pieces)"))
    entry.out, entry.arg = y, arg
    fp.entries.append(entry)
    return y


def _maxout_conv_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, ConvEntry) and e.arg is not None
    n, rows = e.node, bp.rows
    units, pieces, plane = n.shape[0], n.attrs["pieces"], n.shape[1] * n.shape[2]
    dpre = lw.plan.buffer(f"{n.name}{bp.tag}.dpre", "float32", rows * units * pieces * plane)
    gg, b = ew_grid(rows * units * pieces * plane)
    bp.out.append(Launch("maxout_bwd", gg, b, (g, e.arg, dpre, i32(rows), i32(units),
                                               i32(pieces), i32(plane)), n.name))
    _conv_grads(lw, bp, e, dpre, units * pieces)


def _conv_t_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n, rows = step.out, fp.rows
    x = fp.graph.node(n.inputs[0])
    ci, hw = x.shape[0], x.shape[1] * x.shape[2]
    okk = n.shape[0] * n.attrs["kernel"] ** 2
    geometry = _geometry(rows, n.shape, x.shape[1:], n.attrs)  # windows of y over x's grid
    h = fp.value[x.name]
    cols = lw.plan.buffer(f"{n.name}{fp.tag}.cols", "float32", rows * okk * hw)
    y = lw.dst(fp, n)
    unused = lw.param(f"{n.name}.bias")  # the GEMM adds no bias (it is per channel here)
    fp.out.append(gemm(lw.param(f"{n.name}.weight"), h, cols, unused, okk, hw, ci,
                       True, False, "none", 0.0, f"{n.name} (windows)", batch=rows,
                       strides=(0, ci * hw, okk * hw)))
    _windows("col2im", cols, y, geometry, fp.out, n.name)
    fp.out.append(_bias_launch(y, lw.param(f"{n.name}.bias"), rows, n.shape, f"{n.name} + bias"))
    fp.entries.append(ConvEntry(step.emit, n, n.name, [h], y, geometry=geometry,
                                   in_shape=x.shape, cols=None))
    return y


def _conv_t_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, ConvEntry)
    n, rows = e.node, bp.rows
    x = e.ins[0]
    ci, hw = e.in_shape[0], e.in_shape[1] * e.in_shape[2]
    okk = n.shape[0] * n.attrs["kernel"] ** 2
    wants_dx = n.inputs[0] in bp.tracked
    if bp.weights:
        _bias_grad(lw, bp, n, g, n.shape[0], n.shape[1] * n.shape[2])
    if not (bp.weights or wants_dx):
        return
    dcols = lw.plan.buffer(f"{n.name}{bp.tag}.dcols", "float32", rows * okk * hw)
    _windows("im2col", g, dcols, e.geometry, bp.out, f"d {n.name} (windows)")
    if bp.weights:
        _weight_grad(lw, bp, n, x, dcols, ci, okk, hw)
    lw.contribute(bp, n.inputs[0], rows * ci * hw, n.name, lambda dx, _: bp.out.append(
        gemm(lw.param(f"{n.name}.weight"), dcols, dx, Buf("metrics", 0, 0), ci, hw, okk, False,
             False, "none", 0.0, f"d {n.name}.input", batch=rows,
             strides=(0, okk * hw, ci * hw))))


# ---- concat: strided copies --------------------------------------------------------------------

def _concat_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    """One strided copy per input into its columns of the output."""
    n, rows = step.out, fp.rows
    y = lw.dst(fp, n)
    total, col, ins, cols = width(n), 0, [], []
    for i in n.inputs:
        w = width(fp.graph.node(i))
        fp.out.append(copy_rows(fp.value[i], y.at(col, (rows - 1) * total + w), rows, w, w, total,
                                False, f"{n.name} ← {i}"))
        ins.append(fp.value[i])
        cols.append((col, w))
        col += w
    fp.entries.append(ConcatEntry(step.emit, n, n.name, ins, y, cols=cols))
    return y


def _concat_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    """Each input's columns of the output gradient, copied out."""
    assert isinstance(e, ConcatEntry)
    n, rows = e.node, bp.rows
    total = width(n)
    for i, (col, w) in zip(n.inputs, e.cols):
        lw.contribute(bp, i, rows * w, n.name, lambda dx, _, col=col, w=w, i=i: bp.out.append(
            copy_rows(g.at(col, (rows - 1) * total + w), dx, rows, w, total, w, False,
                      f"d {i} ← {n.name}")))


ALIAS_EMITTER = OpEmitter(_alias_fwd, _alias_bwd)
_ACT_EMITTER = OpEmitter(_act_fwd, _act_bwd)
EMITTERS: dict[Op, OpEmitter] = {
    Op.DENSE: OpEmitter(_dense_fwd, _dense_bwd),
    Op.MAXOUT: OpEmitter(_maxout_fwd, _maxout_bwd),
    Op.DROPOUT: OpEmitter(_dropout_fwd, _dropout_bwd),
    Op.CONCAT: OpEmitter(_concat_fwd, _concat_bwd),
    Op.LAYERNORM: OpEmitter(_layernorm_fwd, _layernorm_bwd),
    Op.MAX_POOL: OpEmitter(_maxpool_fwd, _maxpool_bwd),
    Op.CONV2D: OpEmitter(_conv_fwd, _conv_bwd),
    Op.CONV_T2D: OpEmitter(_conv_t_fwd, _conv_t_bwd),
    Op.MAXOUT_CONV: OpEmitter(_maxout_conv_fwd, _maxout_conv_bwd),
    **{op: _ACT_EMITTER for op in ACT},
    **{op: ALIAS_EMITTER for op in ALIAS},
}
