"""The types the ops' emitters (kernels/<family>.py) and the lowering that drives them
(lowering/) share, below both: an op's emitter pair (`OpEmitter`), the step of a forward pass
it lowers (`Step`), the state of a forward or backward pass while its launches are emitted
(`ForwardPass`, `BackwardPass`), and the tape, what each forward step kept for the backward, in
order (`Tape` of `Entry`, or of the subclass an op's family declares beside its emitters when
the backward needs more than the step's inputs and output). `LoweringContext` is what an
emitter may ask of the lowering (`lowering.lowerer.Lowering` provides it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from advgraph.ir import Graph, Node, Op

from .plan import Buf, Launch, Plan


class LoweringContext(Protocol):
    """What an emitter asks of the lowering: the plan it adds buffers to, a parameter's (or
    its gradient's) view, an RNG stream, where a node's value goes, and how a gradient part
    reaches its target (see lowering.lowerer.Lowering for each)."""

    plan: Plan

    def param(self, name: str, grads: bool = False) -> Buf: ...

    def next_stream(self) -> np.uint32: ...

    def dst(self, fp: ForwardPass, n: Node) -> Buf: ...

    def contribute(self, bp: BackwardPass, target: str, size: int, who: str,
                   produce: Callable[[Buf, bool], None] | None = None, src: Buf | None = None,
                   accumulates: bool = False) -> None: ...


@dataclass(frozen=True)
class OpEmitter:
    """An op's emitters. The forward gets the lowering (`lw`: buffers, parameters, RNG
    streams), the pass and its step, appends its launches and a tape entry, and returns the
    buffer holding the step's value; the backward gets that entry and the gradient of that
    value, and hands each input's part to `lw.contribute`."""

    forward: Callable[[LoweringContext, ForwardPass, Step], Buf]
    backward: Callable[[LoweringContext, BackwardPass, Entry, Buf], None]


@dataclass
class Entry:
    """What a forward step kept for the backward: `emit.backward` consumes it. A family declares
    a subclass beside its emitters when the backward needs more than the inputs and output."""

    emit: OpEmitter
    node: Node  # the op's node (the dense node of a fused dense + activation)
    out_node: str  # the node whose value it produced
    ins: list[Buf]
    out: Buf


@dataclass(frozen=True)
class Step:
    """One launch group of a forward pass."""

    emit: OpEmitter | None  # None for an input: its value is given
    node: Node  # the op's node (the GEMM's node of a fused GEMM + activation)
    out: Node  # the node whose value it produces


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
