"""One cache root (advgraph.cache): $ADVGRAPH_CACHE, else $XDG_CACHE_HOME/advgraph, else
~/.cache/advgraph; every cache (data sets, classifiers, k-means centres, host kernels) lives
under it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from advgraph.cache import cache_root
from tests.conftest import ROOT


def test_the_root_is_advgraph_cache_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == tmp_path / "home" / ".cache" / "advgraph"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "advgraph"
    monkeypatch.setenv("ADVGRAPH_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_every_cache_lands_under_advgraph_cache(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from advgraph.data.idx import cache_dir
    from advgraph.evaluate.classifier import domain_classifier
    from advgraph.evaluate.kmeans import kmeans_centres

    moved = tmp_path / "moved"
    monkeypatch.setenv("ADVGRAPH_CACHE", str(moved))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    x = (rng.random((60, 4)) * 0.2 + y[:, None]).astype(np.float32)
    kmeans_centres(x, 3, seed=0)
    domain_classifier(x, y, x, y, 2, (4,))
    assert cache_dir("mnist") == moved / "mnist"  # where data sets are downloaded to
    expected = ["classifiers", "kmeans"]
    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available, build_library

    if available() is None:  # (g++ there): the host executor's kernels too
        tiny = {"tiny.cu": '#include "common.cuh"\n'
                           'extern "C" __global__ void one(float* x) { x[0] = 1.f; }\n'}
        assert build_library("release", sources=tiny).is_relative_to(moved / "host-kernels")
        expected.append("host-kernels")
    assert sorted(p.name for p in moved.iterdir()) == sorted(expected)
    for name in expected:
        assert any(p.is_file() for p in (moved / name).rglob("*"))
    xdg = Path(os.environ["XDG_CACHE_HOME"]) / "advgraph"  # (conftest's): nothing new there
    assert sorted(p.name for p in xdg.iterdir()) == ["host-kernels"]
