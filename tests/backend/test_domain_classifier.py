"""The domain classifier: learns a labelled data set, is cached by the data's digest with its
SHA-256 and test accuracy, reloads without training, and retrains when its file is damaged."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.errors import DataError  # noqa: E402
from advgraph.evaluate import classifier as C  # noqa: E402


def _patterns(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 16×16 images: a bright row band, column band or centre square."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.3, (n, 1, 16, 16)).astype(np.float32)
    x[y == 0, :, 2:5, :] += 0.7
    x[y == 1, :, :, 11:14] += 0.7
    x[y == 2, :, 6:10, 6:10] += 0.7
    return x, y


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "advgraph" / "classifiers"


def test_learns_caches_and_reloads(cache, monkeypatch):
    x, y = _patterns(600, 0)
    xt, yt = _patterns(200, 1)
    c = C.domain_classifier(x, y, xt, yt, 3, (1, 16, 16))
    assert c.accuracy > 0.95
    feats, probs = c.features_and_probs(xt)
    assert feats.shape == (200, C.RECIPE["features"]) and probs.shape == (200, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    meta = json.loads(next(cache.glob("*.json")).read_text())
    assert meta["test_accuracy"] == c.accuracy and len(meta["sha256"]) == 64

    monkeypatch.setattr(C, "_train", lambda *a, **k: pytest.fail("retrained a cached classifier"))
    again = C.domain_classifier(x, y, xt, yt, 3, (1, 16, 16))
    assert again.accuracy == c.accuracy
    np.testing.assert_array_equal(again.features_and_probs(xt)[0], feats)


def test_damaged_cache_is_retrained_with_a_warning(cache):
    x, y = _patterns(300, 0)
    C.domain_classifier(x, y, x, y, 3, (1, 16, 16))
    f = next(cache.glob("*.safetensors"))
    blob = bytearray(f.read_bytes())
    blob[-5] ^= 0xFF
    f.write_bytes(bytes(blob))
    warnings: list[str] = []
    c = C.domain_classifier(x, y, x, y, 3, (1, 16, 16), warn=warnings.append)
    assert warnings and "SHA-256" in warnings[0]
    assert c.accuracy > 0.9


def test_an_unwritable_cache_warns_and_keeps_the_classifier(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # no directory can go there
    x, y = _patterns(300, 0)
    warnings: list[str] = []
    c = C.domain_classifier(x, y, x, y, 3, (1, 16, 16), warn=warnings.append)
    assert c.accuracy > 0.9
    assert len(warnings) == 1 and warnings[0].startswith("domain classifier not cached (cannot")


def test_different_data_is_a_different_classifier(cache):
    x, y = _patterns(300, 0)
    C.domain_classifier(x, y, x, y, 3, (1, 16, 16))
    C.domain_classifier(x[:250], y[:250], x, y, 3, (1, 16, 16))
    assert len(list(cache.glob("*.safetensors"))) == 2


def test_flat_data_gets_an_mlp(cache):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = (rng.normal(size=(400, 2)) * 0.3 + np.where(y[:, None] == 1, 2.0, -2.0)).astype(np.float32)
    assert C.domain_classifier(x, y, x, y, 2, (2,)).accuracy > 0.95


def test_unlabelled_data_is_refused(cache):
    x, y = _patterns(50, 0)
    with pytest.raises(DataError, match="labelled"):
        C.domain_classifier(x, None, x, y, 3, (1, 16, 16))
    with pytest.raises(DataError, match="labelled"):
        C.domain_classifier(x, np.full(50, -1), x, y, 3, (1, 16, 16))
