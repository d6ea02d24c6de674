"""Datasets: IDX parsing and its failures, splits, search order, download, npz, toy data."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from advgraph.data import dataset_for, idx
from advgraph.errors import DataError
from advgraph.spec.gan import Gaussian1dData, IdxData, NpzData, Ring2dData
from tests.conftest import make_mnist_dir, write_idx


def test_read_idx_raw_and_gz(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for compress in (True, False):
        p = write_idx(tmp_path / f"a{compress}", a, compress)
        np.testing.assert_array_equal(idx.read_idx(p), a)


def test_truncated_and_bad_files(tmp_path):
    p = write_idx(tmp_path / "t", np.zeros((5, 28, 28), np.uint8), compress=False)
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t: truncated: dims \(5, 28, 28\) need 3,920 bytes"):
        idx.read_idx(p)
    p.write_bytes(b"\x12\x34\x08\x03")
    with pytest.raises(DataError, match="not an IDX file"):
        idx.read_idx(p)
    g = tmp_path / "x.gz"
    g.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x05" + b"12345")[:-6])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        idx.read_idx(g)


def test_mnist_splits_follow_the_original(tmp_path):
    root = make_mnist_dir(tmp_path / "m", n_train=300, n_test=60)
    raw = idx.read_idx(root / "train-images-idx3-ubyte.gz")
    s = dataset_for(IdxData(dataset="mnist", train=200, valid=100), tmp_path).load(str(root))
    assert s.train.shape == (200, 784) and s.valid.shape == (100, 784) and s.test.shape == (60, 784)
    assert s.train.dtype == np.float32 and 0.0 <= s.train.min() and s.train.max() == 1.0
    np.testing.assert_allclose(s.train[0], raw[0].reshape(-1) / 255.0)
    np.testing.assert_allclose(s.valid[0], raw[200].reshape(-1) / 255.0)


def test_spec_root_relative_to_spec_file(tmp_path):
    make_mnist_dir(tmp_path / "specdir" / "data")
    s = dataset_for(IdxData(dataset="mnist", root="data", train=100, valid=50), tmp_path / "specdir").load()
    assert len(s.train) == 100


def test_env_var_and_subfolder(tmp_path, monkeypatch):
    make_mnist_dir(tmp_path / "store" / "fashion-mnist")
    monkeypatch.setenv("ADVGRAPH_DATA", str(tmp_path / "store"))
    s = dataset_for(IdxData(dataset="fashion-mnist", train=100, valid=50), tmp_path).load()
    assert str(tmp_path / "store" / "fashion-mnist") == s.source


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DataError) as e:
        dataset_for(IdxData(dataset="mnist", train=100, valid=50), tmp_path).load(str(tmp_path / "empty"))
    msg = str(e.value)
    assert f"not found in {tmp_path / 'empty'}" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "pass it with `data_root` DIR" in msg
    # the library names its parameter; the CLI names the flag that sets it
    from advgraph.cli.common import FLAGS

    assert "pass it with --data-root DIR, the spec's" in e.value.worded(FLAGS)


def test_too_few_examples(tmp_path):
    root = make_mnist_dir(tmp_path / "m", n_train=100)
    with pytest.raises(DataError, match="holds 100 examples, fewer than train"):
        dataset_for(IdxData(dataset="mnist", train=80, valid=50), tmp_path).load(str(root))


def test_download_verifies_checksums(tmp_path, monkeypatch):
    """The download path against a loopback server: good files land, a bad checksum fails."""
    served = tmp_path / "served"
    make_mnist_dir(served)
    md5 = {s: hashlib.md5((served / f"{s}.gz").read_bytes()).hexdigest() for s in idx.FILES.values()}

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        monkeypatch.setitem(idx.SOURCES, "mnist", idx.Source(mirrors=(url,), md5=md5))
        monkeypatch.delenv("ADVGRAPH_OFFLINE")
        s = dataset_for(IdxData(dataset="mnist", train=200, valid=100), tmp_path).load()
        assert len(s.train) == 200
        assert s.source == str(idx.cache_dir("mnist"))
        bad = dict(md5, **{"t10k-labels-idx1-ubyte": "0" * 32})
        monkeypatch.setitem(idx.SOURCES, "mnist", idx.Source(mirrors=(url,), md5=bad))
        problem = idx.download_dataset("mnist", tmp_path / "other")
        assert "checksum mismatch" in problem
        assert not (tmp_path / "other" / "t10k-labels-idx1-ubyte.gz").exists()
    finally:
        httpd.shutdown()


def test_toy_data_is_deterministic_and_right():
    a = dataset_for(Gaussian1dData(dataset="toy-gaussian1d", train=20000, valid=10, test=10), Path(".")).load()
    b = dataset_for(Gaussian1dData(dataset="toy-gaussian1d", train=20000, valid=10, test=10), Path(".")).load()
    np.testing.assert_array_equal(a.train, b.train)
    assert abs(a.train.mean() - 4.0) < 0.02 and abs(a.train.std() - 0.5) < 0.01
    r = dataset_for(Ring2dData(dataset="toy-ring2d", train=4000, valid=10, test=10), Path(".")).load()
    radius = np.linalg.norm(r.train, axis=1)
    assert abs(radius.mean() - 2.0) < 0.01
    angles = np.round(np.arctan2(r.train[:, 1], r.train[:, 0]) / (2 * np.pi / 8)) % 8
    assert len(np.unique(angles)) == 8


def test_npz(tmp_path):
    x = np.random.default_rng(0).random((50, 3, 4))
    np.savez(tmp_path / "d.npz", x=x)
    from advgraph.data.npz import peek_shape

    assert peek_shape(tmp_path / "d.npz", None) == (50, 3, 4)  # from the header alone
    assert dataset_for(NpzData(dataset="npz", path="d.npz"), tmp_path).shape() == (12,)
    assert dataset_for(NpzData(dataset="npz", path="d.npz", flatten=False), tmp_path).shape() == (3, 4)
    s = dataset_for(NpzData(dataset="npz", path="d.npz", valid=5, test=5), tmp_path).load()
    assert s.train.shape == (40, 12) and s.valid.shape == (5, 12)
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(DataError, match="holds 2 arrays"):
        dataset_for(NpzData(dataset="npz", path="two.npz"), tmp_path).load()
    (tmp_path / "cut.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:300])
    with pytest.raises(DataError, match="not a readable .npz"):
        dataset_for(NpzData(dataset="npz", path="cut.npz"), tmp_path).load()
    np.savez(tmp_path / "nan.npz", x=np.full((4, 2), np.nan))
    with pytest.raises(DataError, match="NaN"):
        dataset_for(NpzData(dataset="npz", path="nan.npz"), tmp_path).load()
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 3, dtype=object))
    with pytest.raises(DataError):
        dataset_for(NpzData(dataset="npz", path="obj.npz"), tmp_path).load()  # never unpickles
