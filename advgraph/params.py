"""Backend-neutral parameter initialisation (NumPy), so every backend starts from the same
weights for the same seed and a checkpoint means the same thing everywhere."""

from __future__ import annotations

import numpy as np

from .errors import DataError
from .ir import Program, Tensor

MARGINAL_CLIP = 1e-7  # as the original: logit of clip(mean, 1e-7, 1 − 1e-7)


def init_tensor(t: Tensor, rng: np.random.Generator,
                train_data: np.ndarray | None = None) -> np.ndarray:
    kind, args = t.init.kind, t.init.args
    if kind == "uniform":
        r = args["range"]
        return rng.uniform(-r, r, size=t.shape).astype(np.float32)
    if kind == "normal":
        return (args["std"] * rng.standard_normal(t.shape)).astype(np.float32)
    if kind == "xavier":  # the op gives fan-in + fan-out (ops/base.py weight_init)
        r = args.get("gain", 1.0) * np.sqrt(6.0 / args["fans"])
        return rng.uniform(-r, r, size=t.shape).astype(np.float32)
    if kind == "const":
        return np.full(t.shape, args["value"], dtype=np.float32)
    if kind == "marginals":
        if train_data is None:
            raise DataError(f"{t.name}: bias 'marginals' needs the training data")
        flat = train_data.reshape(len(train_data), -1)
        if flat.shape[1] != t.shape[0]:
            raise DataError(f"{t.name}: {t.shape[0]} outputs but the data has "
                            f"{flat.shape[1]} features")
        lo, hi = float(flat.min()), float(flat.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(f"{t.name}: bias 'marginals' needs data in [0, 1] (a sigmoid "
                            f"output), but the training data spans [{lo:g}, {hi:g}]")
        m = np.clip(flat.mean(axis=0, dtype=np.float64), MARGINAL_CLIP, 1 - MARGINAL_CLIP)
        return np.log(m / (1 - m)).astype(np.float32)
    raise ValueError(f"{t.name}: unknown init {kind!r}")  # pragma: no cover


def init_params(program: Program, rng: np.random.Generator,
                train_data: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every parameter and buffer of G and D, in graph order (draws are order-dependent), then
    the regularisers' state (advgraph.objective.init_state)."""
    from .objective import init_state

    params = {t.name: init_tensor(t, rng, train_data) for t in program.tensors()}
    params.update(init_state(program, rng, params))
    return params


def bad_value(program: Program, tensors: dict[str, np.ndarray]) -> str | None:
    """What is wrong with the values of a program's tensors from a checkpoint: one that is not
    finite, or one an op requires positive (batchnorm's running variance) that is not; None
    when all are usable. (Backends would silently differ: NaN through torch's ReLU stays NaN,
    through our kernels' it becomes 0.)"""
    from .ops import OPS

    for graph in (program.G, program.D):
        for node in graph.nodes:
            for local, t in node.tensors.items():
                v = np.asarray(tensors.get(t.name, 0.0))
                if v.dtype.kind == "f" and not np.isfinite(v).all():
                    return f"{t.name} holds non-finite values"
                if OPS[node.op].params[local].positive and not (v > 0).all():
                    return f"{t.name} must be positive (a variance), holds {float(v.min()):g}"
    return None
