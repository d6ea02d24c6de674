"""The k-means baseline: Lloyd's algorithm against a literal NumPy one, closed forms, the cache."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.evaluate.kmeans import kmeans_centres, lloyd  # noqa: E402


def numpy_lloyd(x: np.ndarray, start: np.ndarray, rounds: int) -> np.ndarray:
    """The textbook algorithm in float64: assign each point to its nearest centre (full
    differences), move each non-empty centre to its points' mean."""
    c = x[start].astype(np.float64)
    for _ in range(rounds):
        a = ((x[:, None, :] - c[None]) ** 2).sum(2).argmin(1)
        for j in range(len(c)):
            if (a == j).any():
                c[j] = x[a == j].mean(0)
    return c


def test_lloyd_matches_the_textbook_algorithm():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(400, 6)) + rng.integers(0, 4, size=(400, 1)) * 3).astype(np.float32)
    km = lloyd(x, 12, seed=5, iterations=6, chunk=64)  # chunks smaller than the data
    start = np.sort(np.random.default_rng([5, 0x6B6D]).choice(400, 12, replace=False))
    ref = numpy_lloyd(x.astype(np.float64), start, km.iterations)
    np.testing.assert_allclose(km.centres, ref, atol=1e-4)
    assert km.centres.dtype == np.float32 and km.centres.shape == (12, 6)
    assert km.iterations <= 6


def test_separated_clusters_end_at_their_means():
    rng = np.random.default_rng(0)
    means = np.array([[0, 0], [50, 0], [0, 50]], np.float64)
    x = np.concatenate([m + rng.normal(size=(100, 2)) for m in means]).astype(np.float32)
    # with one start point in each cluster Lloyd converges to the exact means in one round
    for seed in range(50):
        start = np.random.default_rng([seed, 0x6B6D]).choice(300, 3, replace=False)
        if sorted(start // 100) == [0, 1, 2]:
            break
    km = lloyd(x, 3, seed=seed, iterations=10)
    assert km.changed == 0 and km.iterations == 2  # the second round changes nothing
    got = km.centres[np.argsort(km.centres[:, 0] + 2 * km.centres[:, 1])]
    want = np.stack([x[i * 100:(i + 1) * 100].astype(np.float64).mean(0) for i in range(3)])
    np.testing.assert_allclose(got, want, atol=1e-4)
    spread = np.mean([((x[i * 100:(i + 1) * 100] - want[i]) ** 2).sum(1).mean() for i in range(3)])
    assert km.inertia == pytest.approx(spread, rel=1e-4)
    assert "converged" in km.describe()


@pytest.mark.parametrize("iterations", [1, 3, 50])
def test_inertia_is_that_of_the_centres_returned(iterations):
    """The reported mean squared distance is measured to the centres returned (their nearest
    one), also when the round limit stops Lloyd before it converges."""
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(300, 5)) + rng.integers(0, 5, size=(300, 1)) * 2).astype(np.float32)
    km = lloyd(x, 9, seed=1, iterations=iterations, chunk=64)
    c, x64 = km.centres.astype(np.float64), x.astype(np.float64)
    want = ((x64[:, None, :] - c[None]) ** 2).sum(2).min(1).mean()
    assert km.inertia == pytest.approx(want, rel=1e-5)
    assert (km.changed == 0) == (iterations == 50)


def test_k_equal_to_n_gives_the_data_and_bad_k_is_refused():
    x = np.random.default_rng(1).random((30, 4)).astype(np.float32)
    km = lloyd(x, 30, seed=0)
    np.testing.assert_array_equal(np.sort(km.centres, 0), np.sort(x, 0))
    assert km.inertia == pytest.approx(0.0, abs=1e-5)
    for k in (0, 31):
        with pytest.raises(ValueError, match="1 ≤ k ≤ 30"):
            lloyd(x, k, seed=0)


def test_centres_are_cached_and_a_damaged_cache_is_recomputed():
    x = np.random.default_rng(2).random((200, 1, 3, 3)).astype(np.float32)
    first = kmeans_centres(x, 10, seed=0)
    assert not first.cached and first.centres.shape == (10, 1, 3, 3)
    again = kmeans_centres(x, 10, seed=0)
    assert again.cached and np.array_equal(again.centres, first.centres)
    assert again.iterations == first.iterations and again.inertia == first.inertia
    assert not kmeans_centres(x, 10, seed=1).cached  # the seed is part of the key
    from advgraph.cache import cache_dir

    [npy] = [p for p in cache_dir("kmeans").glob("*.npy")
             if np.load(p).shape == (10, 1, 3, 3) and np.array_equal(np.load(p), first.centres)]
    npy.write_bytes(npy.read_bytes()[:-8])
    warnings: list[str] = []
    redone = kmeans_centres(x, 10, seed=0, warn=warnings.append)
    assert not redone.cached and np.array_equal(redone.centres, first.centres)
    assert len(warnings) == 1 and "unusable" in warnings[0] and "SHA-256" in warnings[0]


def test_an_unwritable_cache_warns_and_keeps_the_centres(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # no directory can go there
    x = np.random.default_rng(4).random((50, 3)).astype(np.float32)
    warnings: list[str] = []
    km = kmeans_centres(x, 5, seed=0, warn=warnings.append)
    np.testing.assert_array_equal(km.centres, lloyd(x, 5, seed=0).centres)
    assert len(warnings) == 1 and warnings[0].startswith("k-means centres not cached (cannot write")


class _Group:
    """Two ranks' broadcast, seen from one rank: rank 0's object reaches rank 1."""

    def __init__(self, rank: int, sent: list):
        self.rank, self.is_main, self.sent = rank, rank == 0, sent

    def broadcast(self, obj):
        if self.is_main:
            self.sent.append(obj)
            return obj
        return self.sent.pop(0)


def test_when_rank_0_fails_the_other_ranks_stop_with_an_error(monkeypatch):
    """eval --baseline kmeans --nproc: rank 0 computes, the others receive; a failure on rank 0
    still reaches the collective (None), so the others stop with a message instead of hanging
    in it or dying when rank 0 exits."""
    from types import SimpleNamespace

    import advgraph.evaluate.kmeans as K
    from advgraph.errors import RunError
    from advgraph.evaluate.kmeans import kmeans_baseline

    x = np.random.default_rng(5).random((40, 2)).astype(np.float32)
    restored = SimpleNamespace(splits=SimpleNamespace(train=x), device="cpu")
    sent: list = []
    km = kmeans_baseline(restored, 4, 0, _Group(0, sent))
    assert kmeans_baseline(restored, 4, 0, _Group(1, sent)) is km

    def broken(*a, **k):
        raise MemoryError
    monkeypatch.setattr(K, "kmeans_centres", broken)
    with pytest.raises(MemoryError):
        kmeans_baseline(restored, 4, 0, _Group(0, sent))
    assert sent == [None]
    with pytest.raises(RunError, match="rank 0 could not compute the k-means centres"):
        kmeans_baseline(restored, 4, 0, _Group(1, sent))
