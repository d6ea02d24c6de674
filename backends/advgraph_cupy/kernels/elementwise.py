"""elementwise.cu: a thread per element (or per four, for Philox draws). Activations, maxout's
max over pieces, dropout, the minibatch gathers, strided copies and the small utilities; the
ops lowered to them: an activation on its own, dropout, concat (a flat input among images
broadcast by a rank-1 GEMM per example), and the aliases (linear,
reshape, flatten, an inactive dropout), which launch nothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advgraph.ir import Node, Op
from advgraph.ops import OPS

from ..codes import EPILOGUES
from ..emitter import BackwardPass, Entry, ForwardPass, Step
from ..emitter import LoweringContext as Lowering  # what an emitter may ask of it
from ..plan import Buf, Launch, copy_rows, ew_grid, f32, gemm, i32, one_copy
from .common import Family, act, act_grad, draw4, strided, u01, width

FAMILY = Family("elementwise")


# ---- kernels: twins and footprints -------------------------------------------------------------

@FAMILY.kernel("act_fwd", footprint=lambda s: {"x": s["n"], "y": s["n"]}, writes={"y": None},
               rows="n")
def k_act_fwd(x, y, n, mode, slope):
    y[:n] = act(x[:n], mode, slope)


@FAMILY.kernel("act_bwd", footprint=lambda s: {"y": s["n"], "dy": s["n"], "dx": s["n"]},
    writes={"dx": None}, rows="n")
def k_act_bwd(y, dy, dx, n, mode, slope):
    dx[:n] = act_grad(y[:n], dy[:n], mode, slope)


@FAMILY.kernel("maxout_fwd", footprint=lambda s: {
    "a": s["rows"] * s["units"] * s["pieces"] * s["inner"],
    "y": s["rows"] * s["units"] * s["inner"], "arg": s["rows"] * s["units"] * s["inner"]},
    writes={"y": None, "arg": None}, rows="rows")
def k_maxout_fwd(a, y, arg, rows, units, pieces, inner):
    v = a[: rows * units * pieces * inner].reshape(rows * units, pieces, inner)
    arg[: rows * units * inner] = v.argmax(1).ravel()
    y[: rows * units * inner] = v.max(1).ravel()


@FAMILY.kernel("maxout_bwd", footprint=lambda s: {
    "dy": s["rows"] * s["units"] * s["inner"], "arg": s["rows"] * s["units"] * s["inner"],
    "da": s["rows"] * s["units"] * s["pieces"] * s["inner"]}, writes={"da": None}, rows="rows")
def k_maxout_bwd(dy, arg, da, rows, units, pieces, inner):
    out = np.zeros((rows * units, pieces, inner), np.float32)
    win = arg[: rows * units * inner].reshape(rows * units, 1, inner)
    g = dy[: rows * units * inner].reshape(rows * units, 1, inner)
    np.put_along_axis(out, win, g, 1)
    da[: rows * units * pieces * inner] = out.reshape(-1)


@FAMILY.kernel("dropout_fwd",
               footprint=lambda s: {"x": s["n"], "y": s["n"], "mask": s["n"], "rng": 4},
               writes={"y": None, "mask": None}, members=("x", "y", "mask", "rng"))
def k_dropout_fwd(x, y, mask, n, keep, scale, rng, stream):
    u = u01(draw4(rng, int(stream), -(-n // 4)))[:n]
    m = (u <= keep).astype(np.uint8)
    mask[:n] = m
    y[:n] = np.where(m, x[:n] * scale, 0).astype(np.float32)


@FAMILY.kernel("dropout_bwd", footprint=lambda s: {"dy": s["n"], "mask": s["n"], "dx": s["n"]},
    writes={"dx": None}, rows="n")
def k_dropout_bwd(dy, mask, dx, n, scale):
    dx[:n] = np.where(mask[:n] != 0, dy[:n] * scale, 0).astype(np.float32)


def _minibatch(order, pos, rows, n):
    """order[pos[0] + r] for r < rows, or -1 where the position or the index is out of range."""
    p = int(pos[0]) + np.arange(rows)
    ok = (p >= 0) & (p < n)
    src = np.full(rows, -1, np.int64)
    src[ok] = order[p[ok]]
    src[(src < 0) | (src >= n)] = -1
    return src


@FAMILY.kernel("gather_rows", footprint=lambda s: {
    "data": s["n"] * s["cols"], "order": s["n"], "pos": 1, "out": s["rows"] * s["cols"]},
    writes={"out": None})
def k_gather_rows(data, order, pos, out, rows, cols, n):
    src = _minibatch(order, pos, rows, n)
    v = np.full((rows, cols), np.nan, np.float32)
    v[src >= 0] = data[: n * cols].reshape(n, cols)[src[src >= 0]]
    out[: rows * cols] = v.reshape(-1)


def _one_hot(y, classes):
    return (np.asarray(y)[:, None] == np.arange(classes)[None, :]).astype(np.float32)


@FAMILY.kernel("gather_onehot", footprint=lambda s: {
    "labels": s["n"], "order": s["n"], "pos": 1, "out": s["rows"] * s["classes"]},
    writes={"out": None})
def k_gather_onehot(labels, order, pos, out, rows, classes, n):
    src = _minibatch(order, pos, rows, n)
    v = np.full((rows, classes), np.nan, np.float32)
    v[src >= 0] = _one_hot(labels[src[src >= 0]], classes)
    out[: rows * classes] = v.reshape(-1)


@FAMILY.kernel("draw_onehot", footprint=lambda s: {
    "labels": s["n"], "out": s["rows"] * s["classes"], "rng": 4}, writes={"out": None})
def k_draw_onehot(labels, n, out, rows, classes, rng, stream):
    d = draw4(rng, int(stream), rows).reshape(-1, 4)[:, 0].astype(np.uint64)
    j = (d * np.uint64(n)) >> np.uint64(32)
    out[: rows * classes] = _one_hot(labels[j.astype(np.int64)], classes).reshape(-1)


@FAMILY.kernel("copy2d", footprint=lambda s: {"src": strided(s["rows"], s["cols"], s["ld_src"]),
                                              "dst": strided(s["rows"], s["cols"], s["ld_dst"])},
    writes={"dst": "accumulate"}, rows="rows")
def k_copy2d(src, dst, rows, cols, ld_src, ld_dst, accumulate):
    if rows == 0 or cols == 0:
        return
    s = np.lib.stride_tricks.as_strided(src, (rows, cols), (ld_src * 4, 4))
    d = np.lib.stride_tricks.as_strided(dst, (rows, cols), (ld_dst * 4, 4))
    if accumulate:
        d += s
    else:
        d[...] = s


@FAMILY.kernel("count_nonfinite", footprint=lambda s: {"x": s["n"], "count": 1})
def k_count_nonfinite(x, n, count):
    count[0] += np.float32((~np.isfinite(x[:n])).sum())


@FAMILY.kernel("advance_rng", footprint=lambda s: {"rng": 4 * s["n"]}, rows="n")
def k_advance_rng(rng, n):
    for i in range(n):
        r = rng[4 * i: 4 * i + 4]
        off = (int(r[3]) << 32 | int(r[2])) + 1
        r[2], r[3] = off & 0xFFFFFFFF, (off >> 32) & 0xFFFFFFFF


@FAMILY.kernel("fill", footprint=lambda s: {"x": s["n"]}, writes={"x": None}, rows="n")
def k_fill(x, n, v):
    x[:n] = v


# ---- the ops: which are activations and aliases (the registry's traits), their tape entries ---

# activation op → its kernel code (codes.EPILOGUES), named as the op
ACT: dict[Op, str] = {d.op: d.op.value for d in OPS.values() if d.activation}
ALIAS = frozenset(d.op for d in OPS.values() if d.alias)  # same values, same buffer: nothing to
# launch (as for an op that is the identity in the pass, `OpDef.is_identity`: an inactive dropout)


@dataclass
class ActEntry(Entry):
    act: str
    slope: float


@dataclass
class DropoutEntry(Entry):
    mask: Buf
    scale: float


@dataclass
class ConcatEntry(Entry):
    cols: list[tuple[int, int, int]]  # each input's (first column, width, positions) in a row
    ones: Buf | None = None  # H·W ones, when a flat input is broadcast among images


# ---- alias: linear, reshape, flatten, an inactive dropout -------------------------------------

def _alias_fwd(lw: "Lowering", fp: ForwardPass, step: "Step") -> Buf:
    n = step.out
    y = fp.value[n.inputs[0]]
    fp.entries.append(Entry(step.emit, n, n.name, [y], y))
    return y


def _alias_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    n = e.node
    lw.contribute(bp, n.inputs[0], bp.rows * width(n), n.name, src=g)


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
                                               lw.next_stream(), *one_copy(4)), n.name))
    fp.entries.append(DropoutEntry(step.emit, n, n.name, [h], y, mask=mask,
                                   scale=n.attrs["scale"]))
    return y


def _dropout_bwd(lw: "Lowering", bp: BackwardPass, e: Entry, g: Buf) -> None:
    assert isinstance(e, DropoutEntry)
    _elementwise_grad(lw, bp, e.node, "dropout_bwd",
                      lambda dx, size: (g, e.mask, dx, size, f32(e.scale)))


def _elementwise_grad(lw: "Lowering", bp: BackwardPass, n: Node, kernel: str, args) -> None:
    """The input gradient of an elementwise node: one launch of `kernel` over its elements,
    with the arguments `args(dx, size)`."""
    size = bp.rows * width(n)
    gg, b = ew_grid(size)
    lw.contribute(bp, n.inputs[0], size, n.name, lambda dx, _: bp.out.append(
        Launch(kernel, gg, b, args(dx, i32(size)), n.name)))


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
    _elementwise_grad(lw, bp, e.node, "act_bwd", lambda dx, size: (
        e.out, g, dx, size, i32(EPILOGUES[e.act]), f32(e.slope)))


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


ALIAS_EMITTER = FAMILY.op(ALIAS, _alias_fwd, _alias_bwd)
FAMILY.op(ACT, _act_fwd, _act_bwd)
FAMILY.op(Op.DROPOUT, _dropout_fwd, _dropout_bwd)
FAMILY.op(Op.CONCAT, _concat_fwd, _concat_bwd)
