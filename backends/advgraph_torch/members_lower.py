"""IR → PyTorch over N stacked members: lower.py's ops for the batched sweep engine (members.py).

Every tensor has a leading member dimension (N, *shape) and every activation is (N, B, ...),
so one pass runs all members. Each function computes, per member, what lower.py's computes
for a solo trainer: dense and maxout by baddbmm (bit-identical to addmm on CPU here), the
convolutions as grouped convolutions (members folded into the channels, groups=N), batchnorm
with members folded into the channels (its statistics are per channel, so per member), max
pooling with members folded into the batch. Dropout draws each member's mask from that
member's own generator (ctx.gen is the list of them), in the order a solo trainer draws, so a
member's masks are its solo run's. `MEMBER_LOWERINGS` has one entry per op of lower.LOWERINGS
(a test checks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advgraph.ir import Op

from .lower import LOWERINGS, OpFn, dropout
from .maxout import maxout_gemm


# ATen's bmm multiplies matrices this small (in·B·out) with its own loop, which sums in
# another order than addmm's BLAS call; above it, each member's product is that BLAS call.
_SMALL_BMM = 400


def _gemm(x, n, p, ctx):
    """x (N, B, in) @ W (N, in, out) + b (N, out), rounded as the solo addmm, bit for bit:
    baddbmm where it is (checked on CPU), else one addmm per member: for tiny products (see
    _SMALL_BMM) and for one output (D's last layer: addmm takes a matrix-vector path there),
    which cost little as N calls."""
    return _gemm_wb(x, p[n.name + ".weight"], p[n.name + ".bias"])


def _gemm_wb(x, w, b):
    if w.shape[-1] == 1 or x.shape[1] * w.shape[1] * w.shape[2] < _SMALL_BMM:
        # unbind, not x[i]: its backward stacks the N gradients; indexing's adds N full-size
        # zero tensors (quadratic in N)
        return torch.stack([torch.addmm(bi, xi, wi)
                            for bi, xi, wi in zip(b.unbind(0), x.unbind(0), w.unbind(0))])
    return torch.baddbmm(b.unsqueeze(1), x, w)


def _maxout(x, n, p, ctx):
    """As lower._maxout: in training through maxout.maxout_gemm."""
    units, pieces = n.attrs["units"], n.attrs["pieces"]
    if ctx.train:
        return maxout_gemm(x, p[n.name + ".weight"], p[n.name + ".bias"], units, pieces,
                           _gemm_wb)
    y = _gemm(x, n, p, ctx)
    return y.view(*y.shape[:2], units, pieces).max(dim=3).values


def _dropout(x, n, p, ctx):
    def draw(x, keep):
        # One member at a time, each from its own generator, on its own contiguous slice: the
        # draws of member i are those of its solo trainer's mask of shape (B, ...).
        mask = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # contiguous slices
        for i, gen in enumerate(ctx.gen):
            mask[i].bernoulli_(keep, generator=gen)
        return mask
    return dropout(x, n, ctx, draw)


def to_channels(x: torch.Tensor) -> torch.Tensor:
    """(N, B, C, ...) → (B, N·C, ...): the members as channel groups."""
    n, b = x.shape[:2]
    return x.transpose(0, 1).reshape(b, n * x.shape[2], *x.shape[3:])


def from_channels(y: torch.Tensor, n: int) -> torch.Tensor:
    """(B, N·C, ...) → (N, B, C, ...)."""
    b = y.shape[0]
    return y.reshape(b, n, y.shape[1] // n, *y.shape[2:]).transpose(0, 1)


def _flat(t: torch.Tensor | None) -> torch.Tensor | None:
    """(N, C) → (N·C,), a view: F.batch_norm's in-place running-stat update lands in it."""
    return None if t is None else t.view(-1)


def _batchnorm(x, n, p, ctx):
    stats = ctx.train and ctx.update_stats
    keep = stats or not ctx.train
    y = F.batch_norm(
        to_channels(x),
        _flat(p[n.name + ".running_mean"]) if keep else None,
        _flat(p[n.name + ".running_var"]) if keep else None,
        p[n.name + ".weight"].reshape(-1), p[n.name + ".bias"].reshape(-1),
        training=ctx.train, momentum=n.attrs["momentum"], eps=n.attrs["eps"])
    return from_channels(y, x.shape[0])


def _layernorm(x, n, p, ctx):
    """Normalised over each example's features, then each member's own gain and bias."""
    y = F.layer_norm(x, x.shape[2:], eps=n.attrs["eps"])
    return torch.addcmul(p[n.name + ".bias"].unsqueeze(1), y, p[n.name + ".weight"].unsqueeze(1))


def _grouped(w: torch.Tensor) -> torch.Tensor:
    """(N, A, B, k, k) → (N·A, B, k, k): conv2d's (out, in/groups) or conv_transpose2d's
    (in, out/groups) grouped weight."""
    return w.reshape(w.shape[0] * w.shape[1], *w.shape[2:])


def _conv(x, n, p, ctx):
    a = n.attrs
    y = F.conv2d(to_channels(x), _grouped(p[n.name + ".weight"]),
                 p[n.name + ".bias"].reshape(-1), stride=a["stride"], padding=a["pad"],
                 groups=x.shape[0])
    return from_channels(y, x.shape[0])


def _maxout_conv(x, n, p, ctx):
    y = _conv(x, n, p, ctx)
    k, b, _, h, w = y.shape
    return y.reshape(k, b, n.attrs["channels"], n.attrs["pieces"], h, w).max(dim=3).values


def _conv_t(x, n, p, ctx):
    a = n.attrs
    y = F.conv_transpose2d(to_channels(x), _grouped(p[n.name + ".weight"]),
                           p[n.name + ".bias"].reshape(-1), stride=a["stride"],
                           padding=a["pad"], output_padding=a["output_pad"], groups=x.shape[0])
    return from_channels(y, x.shape[0])


def _max_pool(x, n, p, ctx):
    a = n.attrs
    y = F.max_pool2d(x.reshape(-1, *x.shape[2:]), a["kernel"], a["stride"], a["pad"])
    return y.view(*x.shape[:2], *y.shape[1:])


def concat(xs: list[torch.Tensor]) -> torch.Tensor:
    """CONCAT along the feature dim (2); flat inputs among images become constant maps."""
    images = [x for x in xs if x.dim() == 5]
    if images:
        h, w = images[0].shape[3:]
        xs = [x if x.dim() == 5 else x[..., None, None].expand(-1, -1, -1, h, w) for x in xs]
    return torch.cat(xs, dim=2)


MEMBER_LOWERINGS: dict[Op, OpFn] = {
    Op.INPUT: lambda x, n, p, ctx: x,
    Op.CONCAT: lambda xs, n, p, ctx: concat(xs),
    Op.DENSE: _gemm,
    Op.MAXOUT: _maxout,
    Op.RELU: LOWERINGS[Op.RELU],  # elementwise: the solo lowering as it is
    Op.LEAKY_RELU: LOWERINGS[Op.LEAKY_RELU],
    Op.TANH: LOWERINGS[Op.TANH],
    Op.SIGMOID: LOWERINGS[Op.SIGMOID],
    Op.LINEAR: LOWERINGS[Op.LINEAR],
    Op.DROPOUT: _dropout,
    Op.RESHAPE: lambda x, n, p, ctx: x.reshape(*x.shape[:2], *n.attrs["shape"]),
    Op.FLATTEN: lambda x, n, p, ctx: x.reshape(*x.shape[:2], -1),
    Op.BATCHNORM: _batchnorm,
    Op.LAYERNORM: _layernorm,
    Op.CONV2D: _conv,
    Op.MAXOUT_CONV: _maxout_conv,
    Op.CONV_T2D: _conv_t,
    Op.MAX_POOL: _max_pool,
}
