"""NumPy forward of a graph: the oracle every backend is tested against.

Each op's forward is defined with the op (advgraph/ops, `OpDef.reference`); this module runs
them in graph order and adds the losses. Computes in float64. Dropout in training mode draws
its masks from `rng`; batchnorm in training mode uses the batch statistics (running
statistics are not updated here).
"""

from __future__ import annotations

import numpy as np

from .ir import Graph, Node, Op
from .ops import OPS

__all__ = ["apply", "d_loss", "forward", "g_loss", "one_hot", "softplus"]


def apply(node: Node, x: np.ndarray, params: dict[str, np.ndarray], *, train: bool = False,
          rng: np.random.Generator | None = None) -> np.ndarray:
    """One node's forward on its input (an op of arity "several": the list of its inputs)."""

    def p(local: str) -> np.ndarray:
        return np.asarray(params[f"{node.name}.{local}"], dtype=np.float64)

    return OPS[node.op].reference(x, p, node.attrs, train, rng)


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[np.asarray(y, dtype=np.int64)]


def forward(graph: Graph, params: dict[str, np.ndarray], x: np.ndarray, *, train: bool = False,
            rng: np.random.Generator | None = None, upto: str | None = None,
            y: np.ndarray | None = None) -> np.ndarray:
    """Run the graph on a batch; `upto` stops after that node (e.g. D's logits). `y`: the
    class labels (N,) of a conditional graph."""
    env: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if node.op is Op.INPUT:
            if node.attrs.get("source") == "y":
                if y is None:
                    raise ValueError(f"{graph.name} is conditional: give the labels y")
                h = one_hot(y, node.shape[0])
            else:
                h = np.asarray(x, dtype=np.float64)
        else:
            ins = [env[i] for i in node.inputs]
            h = apply(node, ins if OPS[node.op].arity == "several" else ins[0], params,
                      train=train, rng=rng)
        env[node.name] = h
        if node.name == upto:
            return h
    return env[graph.output]


def d_loss(D: Graph, params: dict[str, np.ndarray], x_real: np.ndarray,
           x_fake: np.ndarray, y: np.ndarray | None = None) -> float:
    """−(1/m)Σ[log D(x|y) + log(1 − D(G(z|y)|y))], through logits (no dropout)."""
    lr = forward(D, params, x_real, upto=D.logits, y=y)
    lf = forward(D, params, x_fake, upto=D.logits, y=y)
    return float(softplus(-lr).mean() + softplus(lf).mean())


def g_loss(G: Graph, D: Graph, params: dict[str, np.ndarray], z: np.ndarray, kind: str,
           y: np.ndarray | None = None) -> float:
    """non_saturating: −(1/m)Σ log D(G(z));  minimax: (1/m)Σ log(1 − D(G(z)))."""
    lf = forward(D, params, forward(G, params, z, y=y), upto=D.logits, y=y)
    return float(softplus(-lf).mean() if kind == "non_saturating" else -softplus(lf).mean())
