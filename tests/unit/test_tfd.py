"""The Toronto Face Database from a user's file: the folds as Pylearn2 split them, both file
formats, and a message that says what is expected when the file is missing or wrong."""

from __future__ import annotations

import numpy as np
import pytest

from advgraph.data import dataset_for
from advgraph.errors import DataError
from advgraph.spec.gan import TfdData
from tests.conftest import SPECS
from tests.helpers import cli

N = 40


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # as in TFD: an unlabeled image is unlabeled (0) in every fold; a labelled one is in the
    # train, valid or test set of each fold
    unlabeled = rng.random(N) < 0.3
    folds = np.where(unlabeled[:, None], 0, rng.integers(1, 4, size=(N, 5)))
    labs = np.where(unlabeled[:, None], -1, rng.integers(1, 8, size=(N, 1)))
    return {"images": rng.integers(0, 256, size=(N, 48, 48)).astype(np.uint8),
            "folds": folds, "labs_ex": labs}


@pytest.mark.parametrize("fmt", ["npz", "mat"])
def test_folds_split_as_pylearn2(tmp_path, fmt):
    a = arrays()
    if fmt == "mat":
        scipy_io = pytest.importorskip("scipy.io")
        scipy_io.savemat(tmp_path / "TFD_48x48.mat", a)
    else:
        np.savez(tmp_path / "TFD_48x48.npz", **a)
    fold = 2
    col = a["folds"][:, fold]
    s = dataset_for(TfdData(dataset="tfd", fold=fold, train_on="train"), tmp_path).load(str(tmp_path))
    for split, code in (("train", 1), ("valid", 2), ("test", 3)):
        want = a["images"][col == code].reshape(-1, 2304).astype(np.float32) / 255
        np.testing.assert_array_equal(getattr(s, split), want)
        np.testing.assert_array_equal(s.labels(split), a["labs_ex"][col == code, 0] - 1)
    both = dataset_for(TfdData(dataset="tfd", fold=fold, train_on="train+unlabeled",
                             flatten=False), tmp_path).load(str(tmp_path))
    assert len(both.train) == int(np.isin(col, (0, 1)).sum())
    assert both.train.shape[1:] == (1, 48, 48)
    assert s.image_shape == (48, 48)


def test_missing_file_says_what_is_expected(tmp_path):
    with pytest.raises(DataError) as e:
        dataset_for(TfdData(dataset="tfd"), tmp_path).load(str(tmp_path))
    msg = str(e.value)
    assert "not publicly downloadable" in msg and "TFD_48x48.mat" in msg
    assert "folds (N, 5)" in msg and "labs_ex" in msg and str(tmp_path) in msg


@pytest.mark.parametrize("change,what", [
    (lambda a: a.pop("folds"), "lacks folds"),
    (lambda a: a.update(images=a["images"][:, :40]), "expected (N, 48, 48)"),
    (lambda a: a.update(folds=a["folds"][:, :3]), "expected (40, 5)"),
    (lambda a: a.update(folds=a["folds"] + 4), "folds must hold only"),
    (lambda a: a.update(labs_ex=a["labs_ex"][:10]), "one label per example"),
])
def test_wrong_arrays_are_named(tmp_path, change, what):
    a = arrays()
    change(a)
    np.savez(tmp_path / "TFD_48x48.npz", **a)
    with pytest.raises(DataError, match="TFD_48x48.npz") as e:
        dataset_for(TfdData(dataset="tfd"), tmp_path).load(str(tmp_path))
    assert what in str(e.value)


def test_damaged_and_hdf5_mat_files(tmp_path):
    pytest.importorskip("scipy.io")
    bad = tmp_path / "TFD_48x48.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 50)
    with pytest.raises(DataError, match="not a readable MATLAB file"):
        dataset_for(TfdData(dataset="tfd", path=str(bad)), tmp_path).load()
    # A v7.3 file: the 128-byte MATLAB header with version 0x0200, then HDF5.
    header = b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
    bad.write_bytes(header + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(DataError, match="v7.3"):
        dataset_for(TfdData(dataset="tfd", path=str(bad)), tmp_path).load()


def test_tfd_spec_checks_without_the_file_and_trains_on_it(tmp_path):
    r = cli("check", SPECS / "tfd.yaml")
    assert r.exit_code == 0, r.output
    assert "G parameters: 83,250,304" in r.output  # 100→8000→8000→2304
    np.savez(tmp_path / "TFD_48x48.npz", **arrays())
    small = ["--set", "generator.layers[0].units=32", "--set", "generator.layers[2].units=32",
             "--set", "discriminator.layers[1].units=16", "--set", "discriminator.layers[3].units=16",
             "--set", "training.batch_size=5", "--set", "training.stop={steps: 3}"]
    r = cli("train", SPECS / "tfd.yaml", "--data-root", str(tmp_path), "--name", "t", *small)
    assert r.exit_code == 0, r.output
    r = cli("train", SPECS / "tfd.yaml", "--name", "u", *small)
    assert r.exit_code == 1 and "not publicly downloadable" in r.output
