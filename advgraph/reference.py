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
    if op is Op.FLATTEN:
        return x.reshape(len(x), -1)
    if op in (Op.CONV2D, Op.MAXOUT_CONV):
        y = conv2d(x, p("weight"), a["stride"], a["pad"]) + p("bias")[None, :, None, None]
        if op is Op.MAXOUT_CONV:
            b, _, h, w = y.shape
            y = y.reshape(b, a["channels"], a["pieces"], h, w).max(axis=2)
        return y
    if op is Op.CONV_T2D:
        return conv_transpose2d(x, p("weight"), a["stride"], a["pad"], a["output_pad"]) + \
            p("bias")[None, :, None, None]
    if op is Op.MAX_POOL:
        return max_pool(x, a["kernel"], a["stride"], a["pad"])
    raise NotImplementedError(op)  # pragma: no cover


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation, written as a sum over kernel offsets (plain and obviously right)."""
    b, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((b, o, oh, ow))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]  # (b, c, oh, ow)
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out


def conv_transpose2d(x: np.ndarray, w: np.ndarray, stride: int, pad: int,
                     output_pad: int) -> np.ndarray:
    """Each input pixel scatters weight·value onto a kernel-sized window of the output."""
    b, c, h, wd = x.shape
    _, o, k, _ = w.shape
    full_h, full_w = (h - 1) * stride + k + output_pad, (wd - 1) * stride + k + output_pad
    out = np.zeros((b, o, full_h, full_w))
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + stride * h:stride, j:j + stride * wd:stride] += \
                np.einsum("bchw,co->bohw", x, w[:, :, i, j])
    return out[:, :, pad:full_h - pad, pad:full_w - pad]


def max_pool(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    b, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.full((b, c, oh, ow), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride])
    return out


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


def concat(xs: list[np.ndarray]) -> np.ndarray:
    """CONCAT along axis 1; flat inputs among images become constant maps."""
    images = [x for x in xs if x.ndim == 4]
    if images:
        _, _, h, w = images[0].shape
        xs = [x if x.ndim == 4 else np.broadcast_to(x[:, :, None, None], (*x.shape, h, w))
              for x in xs]
    return np.concatenate(xs, axis=1)


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
        elif node.op is Op.CONCAT:
            h = concat([env[i] for i in node.inputs])
        else:
            h = apply(node, env[node.inputs[0]], params, train=train, rng=rng)
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
