"""Convolutional layers on images (channels, height, width)."""

from __future__ import annotations

from math import prod
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from advgraph.ir.ops import Op
from advgraph.fields import Init, Layer, Pieces, Real, Size, default_init

from .base import OpDef, Param, ShapeError, bias_init, fmt_shape, weight_init

Kernel = Annotated[int, Field(ge=1, le=64)]


class _Conv(Layer):
    channels: Size
    kernel: Kernel
    stride: Kernel = 1
    pad: Annotated[int, Field(ge=0, le=64)] = 0
    init: Init = Field(default_factory=default_init)
    bias: Real = 0.0


class Conv2d(_Conv):
    """2-D convolution over (C, H, W) inputs; weight (channels, C_in, kernel, kernel)."""

    type: Literal["conv2d"]


class ConvTranspose2d(_Conv):
    """The paper's "deconvolution": out = (in − 1)·stride − 2·pad + kernel + output_pad;
    weight (C_in, channels, kernel, kernel)."""

    type: Literal["conv_transpose2d"]
    output_pad: Annotated[int, Field(ge=0, le=63)] = 0


class MaxoutConv(_Conv):
    """Convolution to channels·pieces maps, then the max over each channel's `pieces`
    consecutive maps (Pylearn2's MaxoutConvC01B)."""

    type: Literal["maxout_conv"]
    pieces: Pieces


class MaxPool(Layer):
    type: Literal["max_pool"]
    kernel: Kernel
    stride: Kernel | None = None  # default: kernel
    pad: Annotated[int, Field(ge=0, le=32)] = 0


# ---- shape rules --------------------------------------------------------------------------------


def _image(op: Op, in_shape):
    if len(in_shape) != 3:
        raise ShapeError(f"{op.value} needs images (channels, height, width), got "
                         f"{fmt_shape(in_shape)}; add a reshape layer first")
    return in_shape


def _window(op: Op, in_shape, a) -> tuple[int, int]:
    """Output height and width of a strided window over padded input (conv, pool)."""
    _, h, w = _image(op, in_shape)
    k, s, p = a["kernel"], a["stride"], a["pad"]
    if op is Op.MAX_POOL and 2 * p > k:
        raise ShapeError(f"pad {p} is more than half the kernel {k}")
    if h + 2 * p < k or w + 2 * p < k:
        raise ShapeError(f"kernel {k} larger than input {h}×{w} after padding {p}")
    return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


def _conv_infer(op: Op):
    return lambda i, a: (a["channels"], *_window(op, i, a))


def _conv_t_infer(in_shape, a):
    _, h, w = _image(Op.CONV_T2D, in_shape)
    k, s, p, op_ = a["kernel"], a["stride"], a["pad"], a["output_pad"]
    if op_ >= s:
        raise ShapeError(f"output_pad ({op_}) must be smaller than stride ({s})")
    oh, ow = (h - 1) * s - 2 * p + k + op_, (w - 1) * s - 2 * p + k + op_
    if oh < 1 or ow < 1:
        raise ShapeError(f"padding {p} leaves no output from a {h}×{w} input")
    return (a["channels"], oh, ow)


# ---- reference forwards (plain loops over kernel offsets: obviously right) ---------------------


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation with zero padding."""
    b, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((b, o, oh, ow))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]  # (b, c, oh, ow)
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out


def conv_transpose2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int,
                     output_pad: int) -> np.ndarray:
    """Each input pixel scatters weight·value onto a kernel-sized window of the output."""
    b, c, h, wd = x.shape
    _, o, k, _ = w.shape
    full_h, full_w = (h - 1) * stride + k + output_pad, (wd - 1) * stride + k + output_pad
    out = np.zeros((b, o, full_h, full_w))
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + stride * h:stride, j:j + stride * wd:stride] += \
                np.einsum("bchw,co->bohw", x, w[:, :, i, j])
    return out[:, :, pad:full_h - pad, pad:full_w - pad]


def max_pool(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """Padding counts as −∞."""
    b, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.full((b, c, oh, ow), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride])
    return out


def _conv(x, p, a, train, rng):
    y = conv2d(x, p("weight"), a["stride"], a["pad"]) + p("bias")[None, :, None, None]
    if "pieces" in a:  # maxout_conv
        b, _, h, w = y.shape
        y = y.reshape(b, a["channels"], a["pieces"], h, w).max(axis=2)
    return y


def _conv_t(x, p, a, train, rng):
    return (conv_transpose2d(x, p("weight"), a["stride"], a["pad"], a["output_pad"])
            + p("bias")[None, :, None, None])


# ---- definitions --------------------------------------------------------------------------------


def _conv_attrs(l) -> dict:
    a = {"channels": l.channels, "kernel": l.kernel, "stride": l.stride, "pad": l.pad}
    if isinstance(l, MaxoutConv):
        a["pieces"] = l.pieces
    if isinstance(l, ConvTranspose2d):
        a["output_pad"] = l.output_pad
    return a


def _maps(a) -> int:
    return a["channels"] * a.get("pieces", 1)


def _conv_weight_init(layer, s):
    """(out, in, k, k) or, transposed, (in, out, k, k): fans = (in + out)·k²."""
    return weight_init(layer.init, (s[0] + s[1]) * s[2] * s[3])


CONV_PARAMS = {
    "weight": Param(lambda i, a: (_maps(a), i[0], a["kernel"], a["kernel"]), _conv_weight_init),
    "bias": Param(lambda i, a: (_maps(a),), lambda l, s: bias_init(l.bias)),
}
CONV_T_PARAMS = {
    "weight": Param(lambda i, a: (i[0], a["channels"], a["kernel"], a["kernel"]),
                    _conv_weight_init),
    "bias": Param(lambda i, a: (a["channels"],), lambda l, s: bias_init(l.bias)),
}


def _conv_flops(i, o, a) -> int:
    return 2 * i[0] * a["kernel"] ** 2 * _maps(a) * o[1] * o[2]


DEFS = [
    OpDef(Op.CONV2D, "x: (B, C, H, W) → (B, channels, H', W'), H' = ⌊(H + 2·pad − kernel)/stride⌋ "
          "+ 1; cross-correlation with zero padding.  weight: (channels, C, k, k), bias: "
          "(channels,).  attrs: channels, kernel, stride, pad.",
          _conv_infer(Op.CONV2D), _conv_flops, _conv, layer=Conv2d, attrs=_conv_attrs,
          params=CONV_PARAMS, spectral_axis=0,
          examples=(((3, 9, 9), {"channels": 5, "kernel": 3, "stride": 2, "pad": 1}),
                    ((2, 7, 7), {"channels": 4, "kernel": 4, "stride": 1, "pad": 0}))),
    OpDef(Op.CONV_T2D, "the transpose (gradient) of CONV2D: H' = (H − 1)·stride − 2·pad + kernel "
          "+ output_pad.  weight: (C, channels, k, k), bias: (channels,).  attrs: channels, "
          "kernel, stride, pad, output_pad.",
          _conv_t_infer, lambda i, o, a: 2 * prod(i) * a["channels"] * a["kernel"] ** 2, _conv_t,
          layer=ConvTranspose2d, attrs=_conv_attrs, params=CONV_T_PARAMS, spectral_axis=1,
          examples=(((4, 5, 5), {"channels": 3, "kernel": 5, "stride": 3, "pad": 0,
                                 "output_pad": 0}),
                    ((2, 4, 4), {"channels": 2, "kernel": 3, "stride": 2, "pad": 1,
                                 "output_pad": 1}))),
    OpDef(Op.MAXOUT_CONV, "CONV2D to channels·pieces maps; map c·pieces + p is piece p of "
          "channel c; y[:, c] = max_p.  weight: (channels·pieces, C, k, k).  attrs: as CONV2D + "
          "pieces.", _conv_infer(Op.MAXOUT_CONV), _conv_flops, _conv, layer=MaxoutConv,
          attrs=_conv_attrs, params=CONV_PARAMS, spectral_axis=0,
          examples=(((3, 8, 8), {"channels": 4, "pieces": 2, "kernel": 3, "stride": 1,
                                 "pad": 2}),)),
    OpDef(Op.MAX_POOL, "max over kernel × kernel windows moved by stride, padding counts as −∞.  "
          "attrs: kernel, stride, pad.",
          lambda i, a: (i[0], *_window(Op.MAX_POOL, i, a)),
          lambda i, o, a: prod(o) * a["kernel"] ** 2,
          lambda x, p, a, train, rng: max_pool(x, a["kernel"], a["stride"], a["pad"]),
          layer=MaxPool,
          attrs=lambda l: {"kernel": l.kernel, "stride": l.stride or l.kernel, "pad": l.pad},
          examples=(((3, 9, 9), {"kernel": 4, "stride": 2, "pad": 0}),
                    ((2, 7, 7), {"kernel": 3, "stride": 2, "pad": 1}))),
]
