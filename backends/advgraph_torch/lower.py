"""IR → PyTorch: one function per op, applied in graph order.

Parameters are plain leaf tensors named as in the IR (no nn.Module), so the optimiser and the
checkpoint see exactly the IR's names. `LOWERINGS` is the whole lowering: one entry per op of
the registry (advgraph/ops), or a reason in `UNSUPPORTED`; a test checks that every op has one.
An op of arity "several" (`OpDef.arity`) is given the list of its inputs, any other its input.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from advgraph.ir import Graph, Node, Op
from advgraph.ops import OPS

from .maxout import maxout_gemm

# fn(x, node, params, ctx) -> y; ctx carries the training flags and the generator.
OpFn = Callable[[torch.Tensor, Node, dict[str, torch.Tensor], "Ctx"], torch.Tensor]


def label_tensor(y, classes: int, device) -> torch.Tensor:
    """Class labels as an int64 tensor on `device`, each checked to lie in 0..classes-1."""
    import numpy as np

    from advgraph.errors import BackendError

    y = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise BackendError(f"labels must lie in 0..{classes - 1}")
    return y


class Ctx:
    """The training flags and the generator; `linear_layout`: the weights of the GEMM ops
    (`OpDef.gemm`) are given as nn.Linear's (out, in), for modules leaving advgraph."""

    __slots__ = ("train", "update_stats", "gen", "linear_layout")

    def __init__(self, train: bool, update_stats: bool, gen: torch.Generator | None,
                 linear_layout: bool = False):
        self.train, self.update_stats, self.gen = train, update_stats, gen
        self.linear_layout = linear_layout


def _gemm(x, n, p, ctx):
    """x @ W + b. In the linear layout, F.linear on the (out, in) view of the (in, out) memory
    calls addmm(b, x, W) on the very same memory, so results are bit-identical; and
    TorchScript keeps aten::linear, whereas its optimiser splits a traced addmm into mm + add,
    which rounds differently."""
    if ctx.linear_layout:
        return F.linear(x, p[n.name + ".weight"], p[n.name + ".bias"])
    return torch.addmm(p[n.name + ".bias"], x, p[n.name + ".weight"])


def _maxout(x, n, p, ctx):
    """The gradient goes to the first winning piece at a tie (as in the cupy kernel); in
    training through maxout.maxout_gemm, fast on the CPU."""
    units, pieces = n.attrs["units"], n.attrs["pieces"]
    if ctx.train and not ctx.linear_layout:
        return maxout_gemm(x, p[n.name + ".weight"], p[n.name + ".bias"], units, pieces,
                           lambda x, w, b: torch.addmm(b, x, w))
    return _gemm(x, n, p, ctx).view(x.shape[0], units, pieces).max(dim=2).values


def dropout(x, n, ctx, draw: Callable[[torch.Tensor, float], torch.Tensor]) -> torch.Tensor:
    """x · mask · scale in training, where `draw(x, keep)` gives the 0/1 mask; x in inference."""
    if not ctx.train:
        return x
    keep, scale = n.attrs["keep"], n.attrs["scale"]
    if keep >= 1.0:
        return x * scale if scale != 1.0 else x
    return x * draw(x, keep).mul_(scale)


def _dropout(x, n, p, ctx):
    return dropout(x, n, ctx,
                   lambda x, keep: torch.empty_like(x).bernoulli_(keep, generator=ctx.gen))


def _batchnorm(x, n, p, ctx):
    stats = ctx.train and ctx.update_stats
    return F.batch_norm(
        x,
        p[n.name + ".running_mean"] if (stats or not ctx.train) else None,
        p[n.name + ".running_var"] if (stats or not ctx.train) else None,
        p[n.name + ".weight"], p[n.name + ".bias"],
        training=ctx.train, momentum=n.attrs["momentum"], eps=n.attrs["eps"])


def _layernorm(x, n, p, ctx):
    return F.layer_norm(x, x.shape[1:], p[n.name + ".weight"], p[n.name + ".bias"],
                        eps=n.attrs["eps"])


def _conv(x, n, p, ctx):
    a = n.attrs
    return F.conv2d(x, p[n.name + ".weight"], p[n.name + ".bias"], stride=a["stride"],
                    padding=a["pad"])


def _maxout_conv(x, n, p, ctx):
    y = _conv(x, n, p, ctx)
    b, _, h, w = y.shape
    return y.view(b, n.attrs["channels"], n.attrs["pieces"], h, w).max(dim=2).values


def _conv_t(x, n, p, ctx):
    a = n.attrs
    return F.conv_transpose2d(x, p[n.name + ".weight"], p[n.name + ".bias"], stride=a["stride"],
                              padding=a["pad"], output_padding=a["output_pad"])


def _max_pool(x, n, p, ctx):
    a = n.attrs
    return F.max_pool2d(x, a["kernel"], a["stride"], a["pad"])


def concat(xs: list[torch.Tensor]) -> torch.Tensor:
    """CONCAT along dim 1; flat inputs among images become constant maps."""
    images = [x for x in xs if x.dim() == 4]
    if images:
        h, w = images[0].shape[2:]
        xs = [x if x.dim() == 4 else x[:, :, None, None].expand(-1, -1, h, w) for x in xs]
    return torch.cat(xs, dim=1)


LOWERINGS: dict[Op, OpFn] = {
    Op.INPUT: lambda x, n, p, ctx: x,
    Op.CONCAT: lambda xs, n, p, ctx: concat(xs),  # given the list of its inputs
    Op.DENSE: _gemm,
    Op.MAXOUT: _maxout,
    Op.RELU: lambda x, n, p, ctx: torch.relu(x),
    Op.LEAKY_RELU: lambda x, n, p, ctx: F.leaky_relu(x, n.attrs["slope"]),
    Op.TANH: lambda x, n, p, ctx: torch.tanh(x),
    Op.SIGMOID: lambda x, n, p, ctx: torch.sigmoid(x),
    Op.LINEAR: lambda x, n, p, ctx: x,
    Op.DROPOUT: _dropout,
    Op.RESHAPE: lambda x, n, p, ctx: x.reshape(x.shape[0], *n.attrs["shape"]),
    Op.FLATTEN: lambda x, n, p, ctx: x.reshape(x.shape[0], -1),
    Op.BATCHNORM: _batchnorm,
    Op.LAYERNORM: _layernorm,
    Op.CONV2D: _conv,
    Op.MAXOUT_CONV: _maxout_conv,
    Op.CONV_T2D: _conv_t,
    Op.MAX_POOL: _max_pool,
}
UNSUPPORTED: dict[Op, str] = {}  # op → why this backend cannot run it


class Net:
    """A lowered graph: (fn, node) steps over a shared parameter table. A chain passes one
    tensor along; a graph with branches keeps each value until its last reader has run."""

    def __init__(self, graph: Graph, params: dict[str, torch.Tensor],
                 lowerings: dict[Op, OpFn] | None = None):
        """`lowerings`: another table of the same ops (members_lower's, over stacked members)."""
        table = LOWERINGS if lowerings is None else lowerings
        self.graph = graph
        self.params = params
        self.chain = graph.is_chain()
        body = [n for n in graph.nodes if n.op is not Op.INPUT]
        self.steps = [(table[n.op], n) for n in body]
        self.listed = {n.name for n in body if OPS[n.op].arity == "several"}  # given a list
        names = [n.name for n in body]
        self.logit_steps = self.steps[: names.index(graph.logits) + 1] if graph.logits else None
        self.y_node = graph.input_of("y")
        self.x_node = graph.inputs[0].name
        last_use: dict[str, int] = {}
        for i, n in enumerate(body):
            for src in n.inputs:
                last_use[src] = i
        self.free = [[src for src in n.inputs if last_use[src] == i] for i, n in enumerate(body)]

    def __call__(self, x: torch.Tensor, ctx: Ctx, logits: bool = False,
                 y: torch.Tensor | None = None,
                 params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """`y`: the one-hot labels of a conditional graph; `params`: a table to use instead of
        the net's own (the trainer's, with spectrally normalised weights as W / σ)."""
        steps = self.logit_steps if logits else self.steps
        p = self.params if params is None else params
        if self.chain:
            for fn, node in steps:  # type: ignore[union-attr]
                x = fn(x, node, p, ctx)
            return x
        env = {self.x_node: x}
        if self.y_node is not None:
            if y is None:
                raise ValueError(f"{self.graph.name} is conditional: give the labels")
            env[self.y_node.name] = y
        for i, (fn, node) in enumerate(steps):  # type: ignore[arg-type]
            ins = [env[s] for s in node.inputs]
            out = fn(ins if node.name in self.listed else ins[0], node, p, ctx)
            for src in self.free[i]:
                del env[src]
            env[node.name] = out
        return out
