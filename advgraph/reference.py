"""NumPy forward of every op: the living definition of op semantics and the test oracle.

Computes in float64. Dropout in training mode draws its masks from `rng`; batchnorm in training
mode uses the batch statistics (running statistics are not updated here).
"""

from __future__ import annotations

import numpy as np

from .ir import Graph, Node, Op


def apply(node: Node, x: np.ndarray, params: dict[str, np.ndarray], *, train: bool = False,
          rng: np.random.Generator | None = None) -> np.ndarray:
    op, a = node.op, node.attrs

    def p(local: str) -> np.ndarray:
        return np.asarray(params[f"{node.name}.{local}"], dtype=np.float64)

    if op is Op.INPUT or op is Op.LINEAR:
        return x
    if op is Op.DENSE:
        return x @ p("weight") + p("bias")
    if op is Op.MAXOUT:
        z = x @ p("weight") + p("bias")
        return z.reshape(len(x), a["units"], a["pieces"]).max(axis=2)
    if op is Op.RELU:
        return np.maximum(x, 0.0)
    if op is Op.LEAKY_RELU:
        return np.where(x > 0, x, a["slope"] * x)
    if op is Op.TANH:
        return np.tanh(x)
    if op is Op.SIGMOID:
        return sigmoid(x)
    if op is Op.DROPOUT:
        if not train:
            return x
        if rng is None:
            raise ValueError("dropout in training mode needs an rng")
        return x * (rng.random(x.shape) < a["keep"]) * a["scale"]
    if op is Op.RESHAPE:
        return x.reshape(len(x), *a["shape"])
    if op is Op.BATCHNORM:
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, -1) + (1,) * (x.ndim - 2)
        if train:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
        else:
            mean, var = p("running_mean"), p("running_var")
        xhat = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + a["eps"])
        return xhat * p("weight").reshape(bshape) + p("bias").reshape(bshape)
    raise NotImplementedError(op)  # pragma: no cover


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Stable on both tails.
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def forward(graph: Graph, params: dict[str, np.ndarray], x: np.ndarray, *, train: bool = False,
            rng: np.random.Generator | None = None, upto: str | None = None) -> np.ndarray:
    """Run the graph on a batch; `upto` stops after that node (e.g. D's logits)."""
    h = np.asarray(x, dtype=np.float64)
    for node in graph.nodes:
        h = apply(node, h, params, train=train, rng=rng)
        if node.name == upto:
            break
    return h


def d_loss(D: Graph, params: dict[str, np.ndarray], x_real: np.ndarray,
           x_fake: np.ndarray) -> float:
    """−(1/m)Σ[log D(x) + log(1 − D(G(z)))], through logits (no dropout)."""
    lr = forward(D, params, x_real, upto=D.logits)
    lf = forward(D, params, x_fake, upto=D.logits)
    return float(softplus(-lr).mean() + softplus(lf).mean())


def g_loss(G: Graph, D: Graph, params: dict[str, np.ndarray], z: np.ndarray, kind: str) -> float:
    """non_saturating: −(1/m)Σ log D(G(z));  minimax: (1/m)Σ log(1 − D(G(z)))."""
    lf = forward(D, params, forward(G, params, z), upto=D.logits)
    return float(softplus(-lf).mean() if kind == "non_saturating" else -softplus(lf).mean())
