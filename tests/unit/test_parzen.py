"""Parzen-window estimates against a direct float64 computation and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.parzen import (PAPER_SIGMAS, log_densities, log_densities_direct,  # noqa: E402
                             log_densities_original, select_and_score)


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, d)) * (rng.random((n, d)) < 0.3)).astype(np.float32)


def test_paper_sigma_grid():
    assert len(PAPER_SIGMAS) == 10 and PAPER_SIGMAS[0] == pytest.approx(0.1)
    assert PAPER_SIGMAS[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("sigma", [0.1, 0.2, 0.5, 1.0])
def test_matches_direct_float64(sigma):
    mu = _data(700, 784, 1)
    x = np.clip(mu[:40] + 0.05 * np.random.default_rng(2).standard_normal((40, 784)), 0, 1)
    x = np.concatenate([x, _data(40, 784, 3)]).astype(np.float32)  # near and far points
    fast = log_densities(x, mu, [sigma])[0]
    exact = log_densities_direct(x, mu, sigma)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-3)  # the target: 1e-3 nats
    np.testing.assert_allclose(log_densities_original(x, mu, sigma), exact, rtol=1e-5, atol=5e-3)


def test_far_points_and_large_offsets_stay_within_1e3_nats():
    """Terms down at e^-1000 (clamped at e^-80 before exp) and data far from the origin (float32
    cancellation in ‖x‖² + ‖μ‖² − 2x·μ): the nearest sample's exact distance keeps the result."""
    rng = np.random.default_rng(7)
    mu = (50 + rng.standard_normal((500, 100))).astype(np.float32)
    x = np.concatenate([mu[:20] + 0.01 * rng.standard_normal((20, 100)),
                        mu[20:40] + 3.0]).astype(np.float32)
    for sigma in (0.05, 0.1, 1.0):
        np.testing.assert_allclose(log_densities(x, mu, [sigma])[0],
                                   log_densities_direct(x, mu, sigma), rtol=0, atol=1e-3)


def test_closed_form_single_kernel():
    d, sigma = 5, 0.3
    mu = np.zeros((1, d), np.float32)
    x = np.array([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], np.float32)
    got = log_densities(x, mu, [sigma])[0]
    base = -d * np.log(sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(got, [base, base - 1 / (2 * sigma ** 2)], rtol=1e-6)


@pytest.mark.parametrize("chunk,block", [(7, 7), (7, 30), (16, 2048), (5, 12)])
def test_chunk_and_block_sizes_do_not_change_the_result(chunk, block):
    """GEMM blocks of `block` points, σ passes over `chunk` of them: ragged last blocks and
    chunks included (97 points), every point scored once."""
    mu, x = _data(300, 50, 4), _data(97, 50, 5)
    a = log_densities(x, mu, PAPER_SIGMAS, chunk=1000)
    b = log_densities(x, mu, PAPER_SIGMAS, chunk=chunk, block=block)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-4)  # float32 GEMM blocking only
    direct = log_densities_direct(x, mu, PAPER_SIGMAS[3])
    np.testing.assert_allclose(b[3], direct, atol=1e-3)


def test_sigma_selection_and_standard_error():
    mu, valid, test = _data(400, 20, 6), _data(60, 20, 7), _data(80, 20, 8)
    res = select_and_score(mu, valid, test, PAPER_SIGMAS)
    direct = {s: log_densities_direct(valid, mu, s).mean() for s in PAPER_SIGMAS}
    assert res.sigma == pytest.approx(max(direct, key=direct.get))
    for s, v in res.valid_scores.items():
        assert v == pytest.approx(direct[s], abs=1e-5)
    ll = log_densities_direct(test, mu, res.sigma)
    assert res.mean == pytest.approx(ll.mean(), abs=1e-5)
    assert res.stderr == pytest.approx(ll.std() / np.sqrt(len(ll)), rel=1e-4)
    fixed = select_and_score(mu, None, test, sigma=0.25)
    assert fixed.sigma == 0.25 and fixed.valid_scores == {}


@pytest.mark.parametrize("sigma", [1e-10, 1e-30, 1e-150])
def test_a_tiny_sigma_gives_the_float64_value_not_nan(sigma):
    """Every term but the nearest underflows: the estimate is still the definition's value,
    computed in log space (a direct log-sum-exp in float64, scaled so 2σ² cannot underflow:
    the oracle below), where it used to be NaN. A point equal to a sample keeps a finite,
    large log-likelihood."""
    mu, x = _data(50, 6, 9), _data(12, 6, 10)
    x[0] = mu[3]
    fast = log_densities(x, mu, [sigma])[0]
    x64, mu64 = x.astype(np.float64), mu.astype(np.float64)
    d2 = ((x64[:, None, :] - mu64[None]) ** 2).sum(2)
    a = -(d2 / sigma / sigma) / 2
    top = a.max(1)
    want = (top + np.log(np.exp(a - top[:, None]).mean(1))
            - 6 * np.log(sigma * np.sqrt(2 * np.pi)))
    np.testing.assert_allclose(fast, want, rtol=1e-6)
    assert np.isfinite(fast).all()


def test_an_estimate_that_is_minus_infinity_is_refused_naming_the_option():
    """σ so small that d²/2σ² passes float64's range: the density is 0 in float64, the mean
    −∞; refused naming the option (a chosen σ's grid, or the fixed σ), not written as NaN."""
    from advgraph.errors import UsageError

    rng = np.random.default_rng(11)  # dense: no point equals a sample
    mu, valid, test = (rng.random((n, 5)).astype(np.float32) for n in (40, 10, 10))
    with pytest.raises(UsageError, match=r"^`sigma`: at σ = 1e-200, 10 of 10 points have "
                                         r"log-likelihood −∞ .*give a larger σ$"):
        select_and_score(mu, None, test, sigma=1e-200)
    with pytest.raises(UsageError, match=r"^`sigmas`: every σ of the grid gives a mean "
                                         r"validation log-likelihood of −∞"):
        select_and_score(mu, valid, test, [1e-200, 1e-190])
    res = select_and_score(mu, valid, test, [1e-200, 0.3])  # the −∞ σ is not chosen
    assert res.sigma == 0.3 and res.valid_scores[1e-200] == -np.inf and np.isfinite(res.mean)


def test_the_default_sigma_grid_is_the_papers_for_data_in_0_1():
    """MNIST-like data keeps Table 1's protocol exactly: logspace(−1, 0, 10)."""
    from advgraph.parzen import default_sigmas

    x = np.random.default_rng(0).random((500, 784), dtype=np.float32)
    assert default_sigmas(x) == tuple(np.logspace(-1, 0, 10))


def test_the_default_sigma_grid_follows_other_datas_scale():
    """A ring of radius 2 (8 modes of std 0.02): per dimension the variance is r²/2 + 0.02²,
    so s = √(2.0004); the grid spans three decades up to s, reaching the modes' width."""
    from advgraph.parzen import default_sigmas

    rng = np.random.default_rng(1)
    angle = 2 * np.pi * rng.integers(0, 8, 40_000) / 8
    x = 2 * np.stack([np.cos(angle), np.sin(angle)], 1) + rng.normal(0, 0.02, (40_000, 2))
    grid = np.array(default_sigmas(x))
    s = np.sqrt(2.0004)
    assert len(grid) == 19 and np.allclose(grid[[0, -1]], [1e-3 * s, s], rtol=0.03)
    assert np.allclose(grid[1:] / grid[:-1], 10 ** (1 / 6))
    assert grid[0] < 0.006 < grid[-1]  # the σ the data itself scores best with (see above)
