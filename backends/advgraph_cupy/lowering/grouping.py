"""Which launches a forward pass needs: the nodes the end value depends on, grouped into steps.

A node whose value is its input's (linear, reshape, flatten, an inactive dropout: the op's
`is_identity` in the registry) is an alias: nothing to launch. A node whose output is a GEMM's
(`OpDef.epilogue`: dense) and whose only reader is an activation is computed with it, in the
GEMM's epilogue. Every other node is one step, lowered by its op's emitter (`kernels.EMITTERS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from advgraph.errors import LoweringError
from advgraph.ir import Graph, Node, Op
from advgraph.ops import OPS

from ..emitter import Step
from ..kernels import EMITTERS
from ..kernels.elementwise import ACT, ALIAS_EMITTER


@dataclass(frozen=True)
class Groups:
    steps: list[Step]  # in graph order
    end: str  # the node whose value the pass computes
    root: str  # the node that actually computes it (aliases resolved)


def group_forward(graph: Graph, train: bool, to_logits: bool) -> Groups:
    """How the nodes the end value needs group into launches: which are aliases of their input
    (nothing to launch), which GEMM nodes fuse with the activation that is their only reader,
    and which node computes the end value. Raises LoweringError when none does."""
    end = graph.logits if (to_logits and graph.logits is not None) else graph.output
    need = ancestors(graph, end)
    nodes = [n for n in graph.nodes if n.name in need]
    readers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            readers[i].append(n.name)

    def is_alias(n: Node) -> bool:  # inactive dropout too: inference, or keep 1 and scale 1
        return OPS[n.op].is_identity(n.attrs, train)

    fused = {n.name for n in nodes if OPS[n.op].epilogue and len(readers[n.name]) == 1
             and graph.node(readers[n.name][0]).op in ACT}
    root = end
    while is_alias(graph.node(root)):
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
            gemm = graph.node(n.inputs[0])
            steps.append(Step(EMITTERS[gemm.op], gemm, n))
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
