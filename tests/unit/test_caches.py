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


def _plant(path: Path, kind: str, tmp_path: Path) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)  # read: blocks for ever
    else:
        victim = tmp_path / "victim"
        victim.write_bytes(b"a file of the user's")
        path.symlink_to(victim)


_CACHING = '''
import sys
import numpy as np
from advgraph.evaluate.classifier import domain_classifier
from advgraph.evaluate.kmeans import kmeans_centres
rng = np.random.default_rng(0)
y = rng.integers(0, 2, 60)
x = (rng.random((60, 4)) * 0.2 + y[:, None]).astype(np.float32)
warnings = []
km = kmeans_centres(x, 3, seed=0, warn=warnings.append)
c = domain_classifier(x, y, x, y, 2, (4,), warn=warnings.append)
print(km.cached, c.path is not None and c.not_cached is None)
print(*warnings, sep="\\n", file=sys.stderr)
'''


def _caching(cache: Path):
    """The k-means centres and the domain classifier of a small data set, in a process of
    their own with ADVGRAPH_CACHE=cache."""
    import subprocess

    env = {**os.environ, "ADVGRAPH_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", _CACHING], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory) -> Path:
    """A cache the script filled once (computed, not read: False True), for each case to copy."""
    pytest.importorskip("torch")
    cache = tmp_path_factory.mktemp("filled") / "cache"
    first = _caching(cache)
    assert first.returncode == 0 and first.stdout.split() == ["False", "True"], first.stderr
    return cache


@pytest.mark.parametrize("kind", ["fifo", "link to a file"])
@pytest.mark.parametrize("which", ["kmeans record", "kmeans centres", "classifier record",
                                   "classifier weights"])
@pytest.mark.slow
def test_a_cache_entry_that_is_not_a_regular_file_is_not_read(tmp_path, filled_cache, kind,
                                                              which):
    """A FIFO or a link planted in place of a cached file (k-means centres, the domain
    classifier, or their records) is refused before it is read, with a warning, and the
    result is computed again: reading it blocked for ever (FIFO) or until memory ran out
    (a link to /dev/zero: not planted here, since without the check it takes all the
    memory; it is refused as a link). The file the link names is left alone."""
    import shutil

    shutil.copytree(filled_cache, tmp_path / "cache")
    folder, suffix = {"kmeans record": ("kmeans", ".json"), "kmeans centres": ("kmeans", ".npy"),
                      "classifier record": ("classifiers", ".json"),
                      "classifier weights": ("classifiers", ".safetensors")}[which]
    (entry,) = (tmp_path / "cache" / folder).glob("*" + suffix)
    _plant(entry, kind, tmp_path)
    again = _caching(tmp_path / "cache")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "unusable" in again.stderr and str(entry) in again.stderr
    assert "not a regular file" in again.stderr or "a symbolic link" in again.stderr
    if kind == "link to a file":
        assert (tmp_path / "victim").read_bytes() == b"a file of the user's"
