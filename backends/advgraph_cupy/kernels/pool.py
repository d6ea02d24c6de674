"""pool.cu: max pooling, a thread per output (the backward a thread per input); the op lowered
to it: max_pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advgraph.ir import Op

from ..emitter import BackwardPass, Entry, ForwardPass, Step
from ..emitter import LoweringContext as Lowering  # what an emitter may ask of it
from ..plan import Buf, Launch, ew_grid, i32
from .common import Family, width

FAMILY = Family("pool")


# ---- kernels: twins and footprints -------------------------------------------------------------

def _pool_windows(planes, H, W, OH, OW, k, s, p):
    """For every output, the flat input index (h·W + w) of each window position in scan
    order, or -1 where the position is padding: (planes·OH·OW, k·k) per plane-relative index."""
    oh, ow = np.meshgrid(np.arange(OH), np.arange(OW), indexing="ij")
    kh, kw = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    h = (oh.reshape(-1, 1) * s - p + kh.reshape(1, -1))
    w = (ow.reshape(-1, 1) * s - p + kw.reshape(1, -1))
    return np.where((h >= 0) & (h < H) & (w >= 0) & (w < W), h * W + w, -1)


@FAMILY.kernel("maxpool_fwd", footprint=lambda s: {
    "x": s["planes"] * s["H"] * s["W"], "y": s["planes"] * s["OH"] * s["OW"],
    "arg": s["planes"] * s["OH"] * s["OW"]}, writes={"y": None, "arg": None}, rows="planes")
def k_maxpool_fwd(x, y, arg, planes, H, W, OH, OW, k, s, p):
    idx = _pool_windows(planes, H, W, OH, OW, k, s, p)  # (OH·OW, k·k)
    xs = x[: planes * H * W].reshape(planes, H * W)
    vals = np.where(idx >= 0, xs[:, np.maximum(idx, 0)], -np.inf)  # (planes, OH·OW, k·k)
    first = vals.argmax(2)  # the first maximum in scan order
    y[: planes * OH * OW] = np.take_along_axis(vals, first[..., None], 2).ravel()
    arg[: planes * OH * OW] = idx[np.arange(OH * OW)[None, :], first].ravel()


@FAMILY.kernel("maxpool_bwd", footprint=lambda s: {
    "dy": s["planes"] * s["OH"] * s["OW"], "arg": s["planes"] * s["OH"] * s["OW"],
    "dx": s["planes"] * s["H"] * s["W"]}, writes={"dx": None}, rows="planes")
def k_maxpool_bwd(dy, arg, dx, planes, H, W, OH, OW, k, s, p):
    out = np.zeros((planes, H * W))
    a = arg[: planes * OH * OW].reshape(planes, OH * OW)
    np.add.at(out, (np.arange(planes)[:, None], a), dy[: planes * OH * OW].reshape(planes, -1))
    dx[: planes * H * W] = out.ravel()


# ---- max_pool ----------------------------------------------------------------------------------

@dataclass
class PoolEntry(Entry):
    """max_pool: the winning input position of each output, and the kernels' geometry."""

    arg: Buf
    geometry: tuple  # planes, H, W, OH, OW, kernel, stride, pad (np.int32)
    in_size: int  # the input's elements: rows × C × H × W


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


FAMILY.op(Op.MAX_POOL, _maxpool_fwd, _maxpool_bwd)
