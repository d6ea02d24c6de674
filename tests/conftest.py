"""Shared fixtures. Tests never touch the network nor the user's runs or caches."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

if "PYTEST_XDIST_WORKER" in os.environ:
    # Under pytest-xdist the workers share the cores: torch's OpenMP pool at its default (one
    # thread per core) in each of them, and in the CLI subprocesses they start, oversubscribes
    # them, and OpenMP's spinning threads then made training tests run up to 10x slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def host_kernel_cache(request, tmp_path_factory) -> Path:
    """The host executor's compiled kernels, shared by every test (keyed by a hash of every
    input, so a stale build is never used): pytest's cache, or one temporary directory, which
    the pytest-xdist workers of a run share (a build is renamed into place whole, so workers
    building the same library at once both end up with one good copy)."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return cache.mkdir("advgraph-host")
    if "PYTEST_XDIST_WORKER" in os.environ:  # each worker's basetemp is popen-gwN/ in the run's
        shared = tmp_path_factory.getbasetemp().parent / "host"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("host")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, tmp_path_factory, monkeypatch, host_kernel_cache):
    """A fresh cache root per test (advgraph.cache; beside tmp_path, so tests that list tmp_path
    do not see it), whose host-kernels/ is a link to the session's."""
    monkeypatch.setenv("ADVGRAPH_OFFLINE", "1")
    monkeypatch.delenv("ADVGRAPH_CACHE", raising=False)
    monkeypatch.setenv("ADVGRAPH_RUNS", str(tmp_path / "runs"))
    xdg = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    kernels = host_kernel_cache / "host-kernels"
    kernels.mkdir(exist_ok=True)
    (xdg / "advgraph").mkdir()
    (xdg / "advgraph" / "host-kernels").symlink_to(kernels)
    monkeypatch.delenv("ADVGRAPH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


IDX_TYPES = {0x08: np.uint8, 0x0D: ">f4", 0x0E: ">f8"}  # type code → big-endian element type


def write_idx(path: Path, arr: np.ndarray, compress: bool = True, code: int = 0x08) -> Path:
    """An IDX file as the MNIST distribution ships them (uint8), or of floats (code 0x0D
    float32, 0x0E float64)."""
    arr = np.ascontiguousarray(arr, dtype=IDX_TYPES[code])
    payload = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_mnist_dir(root: Path, n_train: int = 300, n_test: int = 60, seed: int = 0,
                   compress: bool = True) -> Path:
    """A small MNIST-shaped dataset: digit-like blobs, one bright square per class."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        imgs = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for i, c in enumerate(labels):
            r, q = divmod(int(c), 5)
            imgs[i, 4 + 10 * r: 12 + 10 * r, 2 + 5 * q: 6 + 5 * q] = 255
        write_idx(root / f"{split}-images-idx3-ubyte", imgs, compress)
        write_idx(root / f"{split}-labels-idx1-ubyte", labels, compress)
    return root


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    return make_mnist_dir(tmp_path / "mnist")


@pytest.fixture
def one_torch_thread():
    """In-process torch on one thread, as the training subprocesses of the interrupt tests run
    (OMP_NUM_THREADS=1, so they leave a core to the test's polling): torch's CPU kernels may
    round differently with another thread count, and a resume is bit-exact only with the same."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
