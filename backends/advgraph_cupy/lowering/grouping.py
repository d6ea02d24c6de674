"""Which launches a forward pass needs: the nodes the end value depends on, grouped into steps.

A node whose value is its input's (linear, reshape, flatten, an inactive dropout) is an alias:
nothing to launch. A dense node whose only reader is an activation is computed with it, in the
GEMM's epilogue. Every other node is one step, lowered by its op's emitter (`kernels.EMITTERS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from advgraph.errors import LoweringError
from advgraph.ir import Graph, Node, Op

from ..emitter import Step
from ..kernels import EMITTERS
from ..kernels.elementwise import ACT, ALIAS, ALIAS_EMITTER, active_dropout


@dataclass(frozen=True)
class Groups:
    steps: list[Step]  # in graph order
    end: str  # the node whose value the pass computes
    root: str  # the node that actually computes it (aliases resolved)


def group_forward(graph: Graph, train: bool, to_logits: bool) -> Groups:
    """How the nodes the end value needs group into launches: which are aliases of their input
    (nothing to launch), which dense nodes fuse with the activation that is their only reader,
    and which node computes the end value. Raises LoweringError when none does."""
    end = graph.logits if (to_logits and graph.logits is not None) else graph.output
    need = ancestors(graph, end)
    nodes = [n for n in graph.nodes if n.name in need]
    readers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            readers[i].append(n.name)

    def is_alias(n: Node) -> bool:  # inactive dropout too: inference, or keep 1 and scale 1
        return n.op in ALIAS or (n.op is Op.DROPOUT and not (train and active_dropout(n)))

    fused = {n.name for n in nodes if n.op is Op.DENSE and len(readers[n.name]) == 1
             and graph.node(readers[n.name][0]).op in ACT}
    root = end
    while graph.node(root).op is not Op.INPUT and is_alias(graph.node(root)):
        root = graph.node(root).inputs[0]
    if graph.node(root).op is Op.INPUT:
        raise LoweringError(graph.nodes[-1].name, "identity", "cupy",
                            f"graph {graph.name} computes nothing to launch")

    steps: list[Step] = []
    for n in nodes:
        if n.name in fused:
            continue  # computed with its activation
        if n.op is Op.INPUT:
            steps.append(Step(None, n, n))
        elif is_alias(n):
            steps.append(Step(ALIAS_EMITTER, n, n))
        elif n.op in ACT and n.inputs[0] in fused:
            steps.append(Step(EMITTERS[Op.DENSE], graph.node(n.inputs[0]), n))
        elif n.op in EMITTERS:
            steps.append(Step(EMITTERS[n.op], n, n))
        else:  # pragma: no cover - SUPPORTED is checked in Lowering.__init__
            raise LoweringError(n.name, n.op.value, "cupy")
    return Groups(steps, end, root)


def ancestors(graph: Graph, end: str) -> set[str]:
    need, todo = set(), [end]
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo.extend(graph.node(n).inputs)
    return need
