"""Typed graph: nodes with op, inputs, attributes, static shape (batch axis symbolic), dtype."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ops import Op


@dataclass(frozen=True)
class Init:
    """How a tensor starts: uniform(range) | normal(std) | xavier(gain) | const(value) |
    marginals (logit of the training data's per-feature mean, set by the trainer)."""

    kind: str
    args: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Tensor:
    """A parameter (trainable) or buffer (state, e.g. batchnorm running statistics)."""

    name: str  # full, stable name: "G.h0.weight"
    shape: tuple[int, ...]
    init: Init
    trainable: bool = True
    dtype: str = "float32"

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class Node:
    name: str  # "G.h0"
    op: Op
    inputs: tuple[str, ...]
    shape: tuple[int, ...]  # per example; the batch axis is symbolic
    attrs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)  # local name ("weight") → Tensor
    dtype: str = "float32"
    origin: tuple[Any, ...] = ()  # where it came from in the spec (a path), for messages

    @property
    def params(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.trainable]


@dataclass
class Graph:
    name: str  # "G" or "D"
    nodes: list[Node]  # in topological order
    output: str
    logits: str | None = None  # D: the node whose output is the logit of the final sigmoid

    def __post_init__(self) -> None:
        self._by_name = {n.name: n for n in self.nodes}

    def node(self, name: str) -> Node:
        return self._by_name[name]

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.op is Op.INPUT]

    def input_of(self, source: str) -> Node | None:
        """The INPUT node fed from `source` ("z", "x" or "y"), if the graph has one."""
        return next((n for n in self.inputs if n.attrs.get("source") == source), None)

    def is_chain(self) -> bool:
        """One input, and every other node reads the node just before it."""
        return all(n.inputs == (prev.name,) for prev, n in zip(self.nodes, self.nodes[1:]))

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.node(self.output).shape

    def tensors(self) -> list[Tensor]:
        return [t for n in self.nodes for t in n.tensors.values()]

    def params(self) -> list[Tensor]:
        return [t for t in self.tensors() if t.trainable]

    def num_params(self) -> int:
        return sum(t.size for t in self.params())

    def has_op(self, *ops: Op) -> bool:
        return any(n.op in ops for n in self.nodes)

    def verify(self) -> None:
        """Structural invariants the compiler guarantees (a failure here is our bug)."""
        seen: set[str] = set()
        assert self.nodes and self.nodes[0].op is Op.INPUT, "first node must be an input"
        used: set[str] = set()
        for n in self.nodes:
            assert n.name not in seen, f"duplicate node {n.name}"
            assert (n.op is Op.INPUT) == (not n.inputs), f"{n.name}: inputs do not fit its op"
            assert len(n.inputs) == 1 or n.op in (Op.INPUT, Op.CONCAT), f"{n.name}: arity"
            for i in n.inputs:
                assert i in seen, f"{n.name} uses {i} before it is defined"
            used.update(n.inputs)
            seen.add(n.name)
        assert self.output in seen
        dead = [n.name for n in self.nodes if n.name not in used and n.name != self.output]
        assert not dead, f"nodes that reach no output: {dead}"


@dataclass(frozen=True)
class Prior:
    """The noise prior p_z: U(low, high)^dim or N(mean, std²)^dim. Build it with
    `Prior.uniform` or `Prior.gaussian`; the other kind's fields are unused."""

    kind: str  # "uniform" | "gaussian"
    dim: int
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    std: float = 0.0

    def __post_init__(self) -> None:
        ok = (self.low < self.high) if self.kind == "uniform" else \
            (self.kind == "gaussian" and self.std > 0)
        if not ok or self.dim < 1:
            raise ValueError(f"not a prior: {self}")  # the spec validates what users give

    @classmethod
    def uniform(cls, dim: int, low: float, high: float) -> "Prior":
        return cls("uniform", dim, low=low, high=high)

    @classmethod
    def gaussian(cls, dim: int, mean: float, std: float) -> "Prior":
        return cls("gaussian", dim, mean=mean, std=std)

    @property
    def pair(self) -> tuple[float, float]:
        """(low, high) or (mean, std): the two numbers a noise kernel takes with the kind."""
        return (self.low, self.high) if self.kind == "uniform" else (self.mean, self.std)


@dataclass
class Program:
    """What a backend needs to build a trainer: both graphs, the prior and the loss."""

    G: Graph
    D: Graph
    prior: Prior
    g_loss: str  # "non_saturating" | "minimax"
    data_shape: tuple[int, ...]
    classes: int | None = None  # conditional GAN: y is a one-hot label of this many classes

    @property
    def conditional(self) -> bool:
        return self.classes is not None

    def tensors(self) -> list[Tensor]:
        return self.G.tensors() + self.D.tensors()
