"""The state of a forward or backward pass while its launches are emitted, and the tape: what
each forward step kept for the backward, one entry type per kind of step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from advgraph.ir import Graph, Node, Op

from ..plan import Buf, Launch

if TYPE_CHECKING:
    from .emitters import OpEmitter


def width(node: Node) -> int:
    return int(np.prod(node.shape))


@dataclass
class Entry:
    """What a forward step kept for the backward: `emit.backward` consumes it."""

    emit: "OpEmitter"
    node: Node  # the op's node (the dense node of a fused dense + activation)
    out_node: str  # the node whose value it produced
    ins: list[Buf]
    out: Buf


@dataclass
class GemmEntry(Entry):
    """dense (its epilogue: the bias, or the bias and an activation) and maxout."""

    k: int  # the GEMM's inner dimension: the input's width
    act: str = "bias"  # the epilogue: "bias" or the fused activation's name
    slope: float = 0.0  # leaky ReLU's
    arg: Buf | None = None  # maxout: the winning piece of each unit


@dataclass
class ActEntry(Entry):
    act: str
    slope: float


@dataclass
class DropoutEntry(Entry):
    mask: Buf
    scale: float


@dataclass
class NormEntry(Entry):
    """layernorm: the normalised input x̂ and each row's 1/√(σ² + eps)."""

    xhat: Buf
    rstd: Buf


@dataclass
class BatchNormEntry(Entry):
    """batchnorm in training mode: x̂, 1/√(σ² + eps) of each (group, channel), and the pass's
    groups (independent batches of its rows, each with its own statistics)."""

    xhat: Buf
    rstd: Buf
    groups: int


@dataclass
class PoolEntry(Entry):
    """max_pool: the winning input position of each output, and the kernels' geometry."""

    arg: Buf
    geometry: tuple  # planes, H, W, OH, OW, kernel, stride, pad (np.int32)
    in_size: int  # the input's elements: rows × C × H × W


@dataclass
class ConvEntry(Entry):
    """conv2d, maxout_conv and conv_transpose2d: the window geometry (np.int32 scalars of im2col/col2im:
    rows, C, H, W, OH, OW, k, s, p, for the image side of the op) and conv2d's columns."""

    geometry: tuple
    in_shape: tuple  # the input's (C, H, W)
    cols: Buf | None  # conv2d: its input's windows, which the weight gradient reads
    arg: Buf | None = None  # maxout_conv: the winning piece of each output


@dataclass
class ConcatEntry(Entry):
    cols: list[tuple[int, int, int]]  # each input's (first column, width, positions) in a row
    ones: Buf | None = None  # H·W ones, when a flat input is broadcast among images


@dataclass
class Tape:
    graph: Graph
    entries: list[Entry]
    end: str  # the node whose value the pass computed


@dataclass
class ForwardPass:
    """The state of one forward pass while its launches are emitted."""

    graph: Graph
    rows: int
    tag: str  # suffix of the pass's buffer names
    final: Buf | None  # where the root's value must land
    root: str
    out: list[Launch]
    train: bool = False  # training mode: dropout active, batchnorm on batch statistics
    groups: int = 1  # the rows are this many independent batches (batch statistics per group)
    update_stats: bool = False  # batchnorm updates its running statistics (training mode)
    value: dict[str, Buf] = field(default_factory=dict)  # node → the buffer holding its value
    entries: list[Entry] = field(default_factory=list)


@dataclass
class BackwardPass:
    """The state of one backward pass while its launches are emitted."""

    rows: int
    tag: str  # suffix of the pass's buffer names
    out: list[Launch]
    weights: bool  # parameter gradients too
    tracked: set[str]  # the nodes whose value needs a gradient
    grad: dict[str, Buf]  # node → the buffer holding its gradient
    fixed: dict[str, Buf]  # node → where its gradient must land (the x input's)


def needs_grad(graph: Graph, weights: bool, input_grad: Buf | None) -> set[str]:
    """The nodes whose value needs a gradient: the x input when its gradient is wanted, nodes
    with parameters when `weights`, and everything downstream of those."""
    tracked: set[str] = set()
    for n in graph.nodes:
        if (n.op is Op.INPUT and n.attrs["source"] == "x" and input_grad is not None) or \
           (weights and n.params) or any(i in tracked for i in n.inputs):
            tracked.add(n.name)
    return tracked
