"""Sample-quality metrics on feature vectors (a classifier's penultimate layer) and class
probabilities: the Fréchet distance (FID's form), precision/recall/density/coverage, and the
classifier score (the Inception Score's form). Pure NumPy in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    """Mean and covariance of a set of feature vectors."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, feats: np.ndarray) -> "Moments":
        f = np.asarray(feats, dtype=np.float64)
        if len(f) < 2:
            raise ValueError("the Fréchet distance needs at least 2 feature vectors")
        return cls(f.mean(axis=0), np.cov(f, rowvar=False))


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: Moments, b: Moments) -> float:
    """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½): the 2-Wasserstein distance between the Gaussians
    with these moments. tr (Σa Σb)^½ = tr (Σa^½ Σb Σa^½)^½, whose argument is symmetric positive
    semi-definite, so both square roots come from eigendecompositions (no complex sqrtm)."""
    ra = _psd_sqrt(a.cov)
    cross = np.linalg.eigvalsh(ra @ b.cov @ ra)
    tr_sqrt = float(np.sqrt(np.clip(cross, 0, None)).sum())
    d = float(((a.mean - b.mean) ** 2).sum() + np.trace(a.cov) + np.trace(b.cov) - 2 * tr_sqrt)
    return max(d, 0.0)


def _sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.maximum(d, 0.0)


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row."""
    d = _sq_distances(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision and recall (Kynkäänniemi et al., 2019) and density and coverage (Naeem et al.,
    2020) with k nearest neighbours. Each set's manifold is the union of balls around its points
    reaching their k-th nearest neighbour in the same set.

    precision: share of fake points inside the real manifold; recall: share of real points
    inside the fake manifold; density: mean number of real balls containing a fake point, / k;
    coverage: share of real balls that contain at least one fake point."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k = {k} need more than {k} points per set")
    r_real = _kth_neighbour_radius(real, k)
    r_fake = _kth_neighbour_radius(fake, k)
    d = _sq_distances(real, fake)  # (real, fake)
    inside_real = d <= r_real[:, None]  # fake j inside the ball of real i
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d <= r_fake[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) <= r_real).mean()),
    }


def classifier_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))), p(y) the mean of p(y|x) over the samples: from 1 (every
    sample gets the same class distribution) to the number of classes (each sample certain of
    its class, and the classes equally frequent)."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    marginal = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(marginal)[None, :]), 0.0)
    return float(np.exp(terms.sum(axis=1).mean()))
