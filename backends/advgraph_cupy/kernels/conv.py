"""conv.cu: an image's windows as columns (im2col) and back (col2im, summing overlaps), and the
per-channel bias; the ops lowered to them around a GEMM per example: conv2d, maxout_conv (then
elementwise.cu's max over pieces) and conv_transpose2d."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advgraph.ir import Node, Op

from ..emitter import BackwardPass, Entry, ForwardPass, Step
from ..emitter import LoweringContext as Lowering  # what an emitter may ask of it
from ..plan import Buf, Launch, ew_grid, gemm, i32, one_copy
from .common import Family

FAMILY = Family("conv")


# ---- kernels: twins and footprints -------------------------------------------------------------

def _windows_footprint(s):
    return {"x": s["rows"] * s["C"] * s["H"] * s["W"],
            "cols": s["rows"] * s["C"] * s["k"] ** 2 * s["OH"] * s["OW"]}


def _window_index(C, H, W, OH, OW, k, s, p):
    """For cols[(c, kh, kw), (oh, ow)] of one example, the flat image index c·H·W + h·W + w it
    reads, or -1 in the padding: an array of shape (C·k·k, OH·OW)."""
    c, kh, kw, oh, ow = np.meshgrid(np.arange(C), np.arange(k), np.arange(k), np.arange(OH),
                                    np.arange(OW), indexing="ij")
    h, w = oh * s - p + kh, ow * s - p + kw
    idx = np.where((h >= 0) & (h < H) & (w >= 0) & (w < W), (c * H + h) * W + w, -1)
    return idx.reshape(C * k * k, OH * OW)


@FAMILY.kernel("im2col", footprint=_windows_footprint, writes={"cols": None}, rows="rows")
def k_im2col(x, cols, rows, C, H, W, OH, OW, k, s, p):
    idx = _window_index(C, H, W, OH, OW, k, s, p)
    xs = x[: rows * C * H * W].reshape(rows, C * H * W)
    cols[: rows * idx.size] = np.where(idx >= 0, xs[:, np.maximum(idx, 0)], 0).ravel()


@FAMILY.kernel("col2im", footprint=_windows_footprint, writes={"x": None}, rows="rows")
def k_col2im(cols, x, rows, C, H, W, OH, OW, k, s, p):
    idx = _window_index(C, H, W, OH, OW, k, s, p).ravel()
    keep = idx >= 0
    out = np.zeros((rows, C * H * W))
    cs = cols[: rows * idx.size].reshape(rows, idx.size).astype(np.float64)
    for b in range(rows):
        np.add.at(out[b], idx[keep], cs[b, keep])
    x[: rows * C * H * W] = out.ravel()


@FAMILY.kernel("channel_bias",
               footprint=lambda s: {"y": s["rows"] * s["C"] * s["P"], "bias": s["C"]})
def k_channel_bias(y, bias, rows, C, P):
    v = y[: rows * C * P].reshape(rows, C, P)
    v += bias[:C].reshape(1, C, 1)


@FAMILY.kernel("channel_bias_grad",
               footprint=lambda s: {"dy": s["rows"] * s["C"] * s["P"], "db": s["C"]},
               writes={"db": None})
def k_channel_bias_grad(dy, db, rows, C, P):
    db[:C] = dy[: rows * C * P].reshape(rows, C, P).astype(np.float64).sum((0, 2))


# ---- conv2d, maxout_conv, conv_transpose2d: im2col / col2im around a GEMM per example ----------

@dataclass
class ConvEntry(Entry):
    """conv2d, maxout_conv and conv_transpose2d: the window geometry (np.int32 scalars of
    im2col/col2im: rows, C, H, W, OH, OW, k, s, p, for the image side of the op) and conv2d's
    columns."""

    geometry: tuple
    in_shape: tuple  # the input's (C, H, W)
    cols: Buf | None  # conv2d: its input's windows, which the weight gradient reads
    arg: Buf | None = None  # maxout_conv: the winning piece of each output


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
                                             i32(m * nn), *one_copy(2)), f"d {n.name}.weight"))


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


FAMILY.op(Op.CONV2D, _conv_fwd, _conv_bwd)
FAMILY.op(Op.MAXOUT_CONV, _maxout_conv_fwd, _maxout_conv_bwd)
FAMILY.op(Op.CONV_T2D, _conv_t_fwd, _conv_t_bwd)
