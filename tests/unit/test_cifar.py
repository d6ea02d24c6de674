"""CIFAR-10 python batches: splits, the paper's global contrast normalisation, and a restricted
unpickler that loads the batches and nothing else."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from advgraph.data import dataset_for
from advgraph.data.cifar10 import FILES, global_contrast_normalize, read_batch
from advgraph.errors import DataError
from advgraph.spec.gan import Cifar10Data


def make_cifar_dir(root: Path, per_batch: int = 20) -> Path:
    """Batches shaped like the real ones (a dict with bytes keys, pickled as Python 2 did)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(FILES):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        data[:, 0] = i  # which batch, for the split test
        obj = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
               b"data": data, b"filenames": [b"x.png"] * per_batch}
        (root / name).write_bytes(pickle.dumps(obj, protocol=2))
    return root


def test_splits_and_shapes(tmp_path):
    root = make_cifar_dir(tmp_path / "c")
    s = dataset_for(Cifar10Data(dataset="cifar10", train=70, valid=20, flatten=False), tmp_path).load(str(root))
    assert s.train.shape == (70, 3, 32, 32) and s.valid.shape == (20, 3, 32, 32)
    assert s.test.shape == (20, 3, 32, 32) and s.image_shape == (3, 32, 32)
    # train = the first 70 of batches 1-5 in order, valid the 20 after them
    assert round(s.train[0, 0, 0, 0] * 255) == 0 and round(s.train[69, 0, 0, 0] * 255) == 3
    assert round(s.valid[-1, 0, 0, 0] * 255) == 4 and round(s.test[0, 0, 0, 0] * 255) == 5
    flat = dataset_for(Cifar10Data(dataset="cifar10", train=10), tmp_path).load(str(root))
    assert flat.train.shape == (10, 3072)


def test_global_contrast_normalisation(tmp_path):
    root = make_cifar_dir(tmp_path / "c")
    s = dataset_for(Cifar10Data(dataset="cifar10", train=50, gcn=55), tmp_path).load(str(root))
    np.testing.assert_allclose(s.train.mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(s.train, axis=1), 55, rtol=1e-5)
    flat = np.zeros((2, 12), np.float32)  # a constant image stays finite
    assert np.isfinite(global_contrast_normalize(flat, 55)).all()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_restricted_unpickler_refuses_anything_else(tmp_path):
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": _Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load (posix|os|nt)\.system"):
        read_batch(evil)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_damaged_and_missing_batches(tmp_path):
    root = make_cifar_dir(tmp_path / "c")
    (root / "data_batch_3").write_bytes((root / "data_batch_3").read_bytes()[:500])
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR-10 batch"):
        dataset_for(Cifar10Data(dataset="cifar10", train=50), tmp_path).load(str(root))
    (root / "test_batch").unlink()
    with pytest.raises(DataError, match="cifar10: the python batches were not found"):
        dataset_for(Cifar10Data(dataset="cifar10", train=50), tmp_path).load(str(root))


def test_contrast_normalised_samples_are_shown_per_image():
    from advgraph.run.sample_files import display_images

    x = np.stack([np.linspace(-2, 2, 3072), np.linspace(-50, 50, 3072)]).astype(np.float32)
    imgs = display_images(x, (3, 32, 32), per_image=True)
    assert imgs.shape == (2, 32, 32, 3)
    assert imgs[0].min() == 0 and imgs[0].max() == 255 and imgs[1].max() == 255
