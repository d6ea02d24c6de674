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

__all__ = ["apply", "d_loss", "forward", "g_loss", "loss_values", "one_hot", "softplus"]


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
           x_fake: np.ndarray, y: np.ndarray | None = None, loss: str = "non_saturating") -> float:
    """D's loss (`loss_values`) on D's logits or scores (no dropout)."""
    lr = forward(D, params, x_real, upto=D.logits, y=y)
    lf = forward(D, params, x_fake, upto=D.logits, y=y)
    return loss_values(loss, lr, lf)[0]


def g_loss(G: Graph, D: Graph, params: dict[str, np.ndarray], z: np.ndarray, kind: str,
           y: np.ndarray | None = None) -> float:
    """G's loss (`loss_values`) for `kind`, e.g. non_saturating: −(1/m)Σ log D(G(z));
    minimax: (1/m)Σ log(1 − D(G(z)))."""
    lf = forward(D, params, forward(G, params, z, y=y), upto=D.logits, y=y)
    return loss_values(kind, lf, lf)[1]


def loss_values(loss: str, l_real: np.ndarray, l_fake: np.ndarray) -> tuple[float, float]:
    """(D's loss on real and fake logits/scores, G's loss on the fake ones), each a mean over
    the batch, as every backend computes them:
    - minimax / non_saturating: D softplus(−l_r) + softplus(l_f) (BCE through the logit);
      G −softplus(l_f) = log(1 − D) (minimax) or softplus(−l_f) = −log D (non_saturating);
    - least_squares (Mao et al., targets 0 and 1): D ½(l_r − 1)² + ½l_f², G ½(l_f − 1)²;
    - hinge: D relu(1 − l_r) + relu(1 + l_f), G −l_f;
    - wasserstein: D l_f − l_r, G −l_f."""
    lr, lf = np.asarray(l_real, np.float64), np.asarray(l_fake, np.float64)
    if loss in ("minimax", "non_saturating"):
        d = softplus(-lr).mean() + softplus(lf).mean()
        g = softplus(-lf).mean() if loss == "non_saturating" else -softplus(lf).mean()
    elif loss == "least_squares":
        d = 0.5 * ((lr - 1) ** 2).mean() + 0.5 * (lf ** 2).mean()
        g = 0.5 * ((lf - 1) ** 2).mean()
    elif loss == "hinge":
        d = np.maximum(1 - lr, 0).mean() + np.maximum(1 + lf, 0).mean()
        g = -lf.mean()
    elif loss == "wasserstein":
        d = lf.mean() - lr.mean()
        g = -lf.mean()
    else:
        raise ValueError(f"not a loss: {loss!r}")
    return float(d), float(g)
