"""Noise for sampling and interpolation, drawn in NumPy so figures do not depend on a backend."""

from __future__ import annotations

import numpy as np

from .ir import Prior


def sample_prior(prior: Prior, n: int, rng: np.random.Generator) -> np.ndarray:
    if prior.kind == "uniform":
        return rng.uniform(prior.low, prior.high, size=(n, prior.dim)).astype(np.float32)
    return (prior.mean + prior.std * rng.standard_normal((n, prior.dim))).astype(np.float32)


def lerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * z0[None] + t * z1[None]).astype(np.float32)


def slerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation (better suited to Gaussian priors); lerp when nearly parallel."""
    a = np.asarray(z0, np.float64)
    b = np.asarray(z1, np.float64)
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(z0, z1, steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    out = (np.sin((1 - t) * omega) * a[None] + np.sin(t * omega) * b[None]) / np.sin(omega)
    return out.astype(np.float32)
