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


def _significant(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those below n·ε·λmax set to zero: below that bound an
    eigenvalue is rounding error (a feature that is always zero makes a covariance singular),
    and its square root (√1e-17 ≈ 3e-9 each) would bias the distance."""
    floor = len(w) * np.finfo(np.float64).eps * max(float(w.max(initial=0.0)), 0.0)
    return np.where(w > floor, w, 0.0)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(_significant(w))) @ v.T


def frechet_distance(a: Moments, b: Moments) -> float:
    """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½): the 2-Wasserstein distance between the Gaussians
    with these moments. tr (Σa Σb)^½ = tr (Σa^½ Σb Σa^½)^½, whose argument is symmetric positive
    semi-definite, so both square roots come from eigendecompositions (no complex sqrtm)."""
    ra = _psd_sqrt(a.cov)
    m = ra @ b.cov @ ra
    cross = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(_significant(cross)).sum())
    d = float(((a.mean - b.mean) ** 2).sum() + np.trace(a.cov) + np.trace(b.cov) - 2 * tr_sqrt)
    return max(d, 0.0)


def _sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.maximum(d, 0.0)


BLOCK = 1024  # rows per distance block: 1024 × 10,000 float64 is 80 MB, not 800


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row."""
    out = np.empty(len(x))
    for s in range(0, len(x), BLOCK):
        d = _sq_distances(x[s:s + BLOCK], x)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf  # not its own neighbour
        out[s:s + BLOCK] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


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
    in_real = np.zeros(len(fake), bool)  # fake j inside some real ball
    balls = np.zeros(len(fake))  # how many real balls contain fake j
    recalled = np.zeros(len(real), bool)  # real i inside some fake ball
    nearest = np.full(len(real), np.inf)  # each real point's nearest fake point
    for s in range(0, len(fake), BLOCK):
        d = _sq_distances(real, fake[s:s + BLOCK])  # (real, block of fake)
        inside = d <= r_real[:, None]
        in_real[s:s + BLOCK] = inside.any(axis=0)
        balls[s:s + BLOCK] = inside.sum(axis=0)
        recalled |= (d <= r_fake[None, s:s + BLOCK]).any(axis=1)
        np.minimum(nearest, d.min(axis=1), out=nearest)
    return {"precision": float(in_real.mean()), "recall": float(recalled.mean()),
            "density": float(balls.mean() / k), "coverage": float((nearest <= r_real).mean())}


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
