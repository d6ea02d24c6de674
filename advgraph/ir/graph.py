"""Typed graph: nodes with op, inputs, attributes and static shape (batch axis symbolic); every
value is float32."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from advgraph.errors import GraphError

from .objective import Objective
from .ops import Op


# The inputs a node reads, by its op's arity: the fewest, the most, and how to say it.
_READS = {"none": (0, 0, "none"), "one": (1, 1, "one"),
          "several": (2, float("inf"), "two or more")}


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

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class Node:
    """One op applied to the values of `inputs`: the names of earlier nodes of its graph, in
    the order the op reads them, as many as the op's arity says (none for an input of the
    graph, one for most ops, two or more for concat). Its value has `shape` per example; its
    parameters and buffers are `tensors`, shaped as the op's registry entry says."""

    name: str  # "G.h0"
    op: Op
    inputs: tuple[str, ...]
    shape: tuple[int, ...]  # per example; the batch axis is symbolic
    attrs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)  # local name ("weight") → Tensor
    origin: tuple[Any, ...] = ()  # where it came from in the spec (a path), for messages

    @property
    def params(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.trainable]


@dataclass
class Graph:
    """One network. The rules every graph keeps (the compiler builds no other; `verify`
    raises GraphError naming the node that breaks one):
    - node names are unique, and the nodes are in topological order: each input of a node is
      the name of an earlier node;
    - each node reads as many inputs as its op's arity says (`ops.ARITY`), so the first node
      is an input of the graph;
    - `output` and `logits` (when set) name nodes, and every node reaches `output`."""

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

    def verify(self, arity: Mapping[Op, str]) -> None:
        """Check the graph rules (the class docstring) against each op's `arity` (`ops.ARITY`);
        raises GraphError naming the node that breaks one (a bug in whatever built the graph:
        never an assert, which `python -O` would skip)."""
        if not self.nodes:
            raise GraphError(f"graph {self.name} has no nodes")
        seen: set[str] = set()
        used: set[str] = set()
        for n in self.nodes:
            if n.name in seen:
                raise GraphError(f"{self.name}: duplicate node {n.name}")
            fewest, most, say = _READS[arity[n.op]]
            if not fewest <= len(n.inputs) <= most:
                raise GraphError(f"{n.name}: {len(n.inputs)} input(s), but {n.op.value} reads "
                                 f"{say}")
            for i in n.inputs:
                if i not in seen:
                    raise GraphError(f"{n.name} uses {i} before it is defined")
            used.update(n.inputs)
            seen.add(n.name)
        for what, name in (("output", self.output), ("logits", self.logits)):
            if name is not None and name not in seen:
                raise GraphError(f"{self.name}: its {what} {name} is not a node")
        dead = [n.name for n in self.nodes if n.name not in used and n.name != self.output]
        if dead:
            raise GraphError(f"{self.name}: nodes that reach no output: {', '.join(dead)}")


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
    data_shape: tuple[int, ...]
    classes: int | None = None  # conditional GAN: y is a one-hot label of this many classes
    objective: Objective = field(default_factory=Objective)  # the loss and the regularisers

    @property
    def loss(self) -> str:
        return self.objective.loss

    @property
    def conditional(self) -> bool:
        return self.classes is not None

    def tensors(self) -> list[Tensor]:
        return self.G.tensors() + self.D.tensors()

    def structure(self) -> tuple:
        """Everything but the tensors' initialisation and the spec positions: what programs
        must share to run as one over stacked members (advgraph sweep), in the order G, D,
        prior, data shape, classes, objective."""
        def graph(g: Graph) -> tuple:
            return (g.name, tuple((n.name, n.op, n.inputs, n.shape, repr(sorted(n.attrs.items())),
                                   tuple((k, t.name, t.shape, t.trainable)
                                         for k, t in n.tensors.items())) for n in g.nodes),
                    g.output, g.logits)
        return (graph(self.G), graph(self.D), self.prior, self.data_shape, self.classes,
                self.objective)
