"""Fréchet distance, precision/recall/density/coverage and the classifier score against closed
forms, an independent square root (SciPy) and a literal implementation of the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from advgraph.evaluate.feature_metrics import Moments, classifier_score, frechet_distance, prdc


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    want = ((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    got = frechet_distance(Moments(m1, np.diag(v1)), Moments(m2, np.diag(v2)))
    assert got == pytest.approx(want, rel=1e-10)


def test_frechet_distance_of_full_covariances_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T + 0.1 * np.eye(8), b @ b.T
    m1, m2 = rng.normal(size=8), rng.normal(size=8)
    want = (((m1 - m2) ** 2).sum() + np.trace(s1 + s2)
            - 2 * np.trace(linalg.sqrtm(s1 @ s2)).real)
    assert frechet_distance(Moments(m1, s1), Moments(m2, s2)) == pytest.approx(want, rel=1e-8)


@pytest.mark.parametrize("seed", range(3))
def test_always_zero_features_do_not_change_the_frechet_distance(seed):
    """Features that are always zero (dead ReLUs) make both covariances singular: the distance
    must be that of the other features, computed independently with SciPy's sqrtm (as
    pytorch-fid does; it and torchmetrics agree to 1e-10 here). Square roots of the rounding
    error in the zero eigenvalues had added about 1e-7 relative."""
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(seed)
    a = np.abs(rng.normal(size=(400, 32)))
    b = np.abs(1.1 * rng.normal(size=(300, 32)) + 0.05)
    dead = rng.choice(32, 12, replace=False)
    a[:, dead], b[:, dead] = 0.0, 0.0
    live = np.setdiff1d(np.arange(32), dead)
    al, bl = a[:, live], b[:, live]
    s1, s2 = np.cov(al, rowvar=False), np.cov(bl, rowvar=False)
    want = (((al.mean(0) - bl.mean(0)) ** 2).sum() + np.trace(s1 + s2)
            - 2 * np.trace(linalg.sqrtm(s1 @ s2)).real)
    assert frechet_distance(Moments.of(a), Moments.of(b)) == pytest.approx(want, rel=1e-10)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(2).normal(size=(500, 16))
    assert frechet_distance(Moments.of(f), Moments.of(f)) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="at least 2"):
        Moments.of(f[:1])


def _literal_prdc(real, fake, k):
    """The papers' definitions, point by point."""
    def radius(s, i):
        return sorted(np.linalg.norm(s[i] - s[j]) for j in range(len(s)) if j != i)[k - 1]

    rr = [radius(real, i) for i in range(len(real))]
    rf = [radius(fake, j) for j in range(len(fake))]
    dist = lambda x, y: np.linalg.norm(x - y)  # noqa: E731
    precision = np.mean([any(dist(f, r) <= rr[i] for i, r in enumerate(real)) for f in fake])
    recall = np.mean([any(dist(r, f) <= rf[j] for j, f in enumerate(fake)) for r in real])
    density = np.sum([[dist(f, r) <= rr[i] for i, r in enumerate(real)] for f in fake]) / (
        k * len(fake))
    coverage = np.mean([min(dist(r, f) for f in fake) <= rr[i] for i, r in enumerate(real)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_prdc_matches_the_definitions_on_random_sets():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(60, 3))
    fake = np.concatenate([rng.normal(size=(30, 3)) * 0.5, rng.normal(size=(25, 3)) + 4])
    got, want = prdc(real, fake, k=5), _literal_prdc(real, fake, 5)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_prdc_of_constructed_sets():
    real = np.arange(100.0)[:, None]  # a line of unit spacing
    evens = real[::2]
    far = 1000 + 3 * np.arange(50.0)[:, None]
    half = prdc(real, np.concatenate([evens, far]), k=2)
    assert half["precision"] == 0.5  # the evens are real; the far half is not
    assert half["recall"] == 1.0 and half["coverage"] == 1.0  # every real point is next to an even
    same = prdc(real, real, k=2)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    apart = prdc(real, far, k=2)
    assert apart == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    with pytest.raises(ValueError, match="more than 5 points"):
        prdc(real[:5], real, k=5)


def test_classifier_score_from_uniform_to_certain_and_balanced():
    assert classifier_score(np.full((40, 10), 0.1)) == pytest.approx(1.0)
    balanced = np.eye(10)[np.arange(40) % 10]
    assert classifier_score(balanced) == pytest.approx(10.0)
    collapsed = np.eye(10)[np.zeros(40, dtype=int)]
    assert classifier_score(collapsed) == pytest.approx(1.0)
    two = np.eye(10)[np.arange(40) % 2]  # certain, but only two classes
    assert classifier_score(two) == pytest.approx(2.0)
