"""The state of a forward or backward pass while its launches are emitted, and the tape: what
each forward step kept for the backward, in order. An entry is a `kernels.common.Entry`, or the
subclass its op's family declares beside its emitters (kernels/<family>.py) when the backward
needs more than the step's inputs and output."""

from __future__ import annotations

from dataclasses import dataclass, field

from advgraph.ir import Graph, Op

from ..kernels.common import Entry
from ..plan import Buf, Launch


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
