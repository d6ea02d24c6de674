"""Toy data made by code, deterministic in the data's own seed."""

from __future__ import annotations

import numpy as np


def gaussian1d(n: int, mean: float, std: float, rng: np.random.Generator) -> np.ndarray:
    return (mean + std * rng.standard_normal((n, 1))).astype(np.float32)


def normal_pdf(xs: np.ndarray, mean: float, std: float) -> np.ndarray:
    """The density gaussian1d draws from."""
    return np.exp(-0.5 * ((xs - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def ring2d(n: int, modes: int, radius: float, std: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points and their mode index: mode j is centred at radius·(cos 2πj/modes, sin 2πj/modes)."""
    which = rng.integers(0, modes, size=n)
    angle = 2 * np.pi * which / modes
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype(np.float32), which


def ring2d_centres(modes: int, radius: float) -> np.ndarray:
    angle = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
