"""Datasets by name: their per-example shape (cheap, for `check`) and their splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, Problem, SpecError
from ..spec.gan import Cifar10Data, Gaussian1dData, IdxData, NpzData, Ring2dData, TfdData

if TYPE_CHECKING:
    from ..spec.load import LoadedSpec

IMAGE_SHAPE = (28, 28)


@dataclass
class Splits:
    """float32 arrays (N, *shape); `image_shape` tells figures how to draw one example.
    `*_y` are the examples' class labels (int64 (N,)) where the dataset has them; −1 marks an
    unlabelled example."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, ...] | None
    source: str  # where the data came from, for provenance
    train_y: np.ndarray | None = None
    valid_y: np.ndarray | None = None
    test_y: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    def labels(self, split: str) -> np.ndarray | None:
        return getattr(self, f"{split}_y")

    def check_labels(self, classes: int) -> None:
        """A conditional model needs every training label in [0, classes) (and any
        valid/test label it will be evaluated on)."""
        for split in ("train", "valid", "test"):
            y = self.labels(split)
            if y is None:
                if split == "train":
                    raise DataError(f"{self.source}: the data has no labels to condition on")
                continue
            bad = (y < 0) | (y >= classes)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{self.source}: {int(bad.sum())} {split} example(s) have no label in "
                    f"0..{classes - 1} (e.g. example {i}: {int(y[i])})"
                    + ("; unlabelled examples cannot train a conditional model"
                       if y[i] < 0 else "; condition.classes too small?"))


def num_classes(data: Any) -> int | None:
    """How many classes the dataset's labels have: None without labels, 0 when only the data
    file can tell (npz)."""
    if isinstance(data, (IdxData, Cifar10Data)):
        return 10
    if isinstance(data, TfdData):
        return 7
    if isinstance(data, Ring2dData):
        return data.modes
    if isinstance(data, NpzData):
        return 0 if data.labels else None
    return None


def resolve_path(p: str, base_dir: Path) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base_dir / q)


def sample_shape(data: Any, base_dir: Path, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
    if isinstance(data, IdxData):
        return (IMAGE_SHAPE[0] * IMAGE_SHAPE[1],) if data.flatten else (1, *IMAGE_SHAPE)
    if isinstance(data, Cifar10Data):
        return (3 * 32 * 32,) if data.flatten else (3, 32, 32)
    if isinstance(data, TfdData):
        from .tfd import SIDE

        return (SIDE * SIDE,) if data.flatten else (1, SIDE, SIDE)
    if isinstance(data, Gaussian1dData):
        return (1,)
    if isinstance(data, Ring2dData):
        return (2,)
    if isinstance(data, NpzData):
        from .npz import peek_shape

        try:
            shape = peek_shape(resolve_path(data.path, base_dir), data.key, data.labels)
        except DataError as e:
            if loaded is None:
                raise
            raise SpecError(loaded.problem(("data", "path"), str(e))) from None
        per = shape[1:]
        if not per:
            raise SpecError(Problem("data.path", f"array shape {shape}: expected (N, features...)"))
        return (int(np.prod(per)),) if data.flatten else tuple(per)
    raise AssertionError(f"unhandled dataset {data!r}")  # pragma: no cover


def image_shape(data: Any, data_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """How to draw one example as an image ((H, W) or (C, H, W)), or None for non-image data."""
    if isinstance(data, IdxData):
        return IMAGE_SHAPE
    if isinstance(data, Cifar10Data):
        return (3, 32, 32)
    if isinstance(data, TfdData):
        return (48, 48)
    if len(data_shape) == 3 and data_shape[0] in (1, 3):
        return data_shape
    if len(data_shape) == 2:
        return data_shape
    return None


def load_data(data: Any, base_dir: Path, data_root: str | None = None) -> Splits:
    if isinstance(data, IdxData):
        return _load_idx(data, base_dir, data_root)
    if isinstance(data, Cifar10Data):
        return _load_cifar(data, base_dir, data_root)
    if isinstance(data, TfdData):
        return _load_tfd(data, base_dir, data_root)
    if isinstance(data, Gaussian1dData):
        from .toy import gaussian1d

        rng = np.random.default_rng(data.seed)
        parts = [gaussian1d(n, data.mean, data.std, rng) for n in (data.train, data.valid, data.test)]
        return Splits("toy-gaussian1d", *parts, image_shape=None,
                      source=f"N({data.mean}, {data.std}²), seed {data.seed}")
    if isinstance(data, Ring2dData):
        from .toy import ring2d

        rng = np.random.default_rng(data.seed)
        parts = [ring2d(n, data.modes, data.radius, data.std, rng)
                 for n in (data.train, data.valid, data.test)]
        return Splits("toy-ring2d", *(x for x, _ in parts), image_shape=None,
                      source=f"{data.modes} Gaussians on radius {data.radius}, std {data.std}, "
                             f"seed {data.seed}",
                      train_y=parts[0][1], valid_y=parts[1][1], test_y=parts[2][1])
    if isinstance(data, NpzData):
        from .npz import load, load_labels

        path = resolve_path(data.path, base_dir)
        arr = load(path, data.key, data.labels)
        n = arr.shape[0]
        y = load_labels(path, data.labels, n) if data.labels else None
        if data.valid + data.test >= n:
            raise DataError(f"{path}: {n} examples cannot give valid={data.valid} and "
                            f"test={data.test} and still leave training examples")
        if data.flatten:
            arr = arr.reshape(n, -1)
        n_train = n - data.valid - data.test
        cut = (slice(0, n_train), slice(n_train, n_train + data.valid),
               slice(n_train + data.valid, n))
        ys = [y[c] if y is not None else None for c in cut]
        return Splits("npz", *(arr[c] for c in cut), image_shape=None, source=str(path),
                      train_y=ys[0], valid_y=ys[1], test_y=ys[2])
    raise AssertionError(f"unhandled dataset {data!r}")  # pragma: no cover


def _load_idx(data: IdxData, base_dir: Path, data_root: str | None) -> Splits:
    from .idx import load_images, locate

    spec_root = resolve_path(data.root, base_dir) if data.root else None
    files = locate(data.dataset, data_root, spec_root, data.download)
    train_imgs, train_lab, test_imgs, test_lab = load_images(files)
    n = train_imgs.shape[0]
    if data.train + data.valid > n:
        raise DataError(f"{files['train_images']}: holds {n:,} examples, fewer than "
                        f"train + valid = {data.train + data.valid:,}")
    if tuple(train_imgs.shape[1:]) != IMAGE_SHAPE or tuple(test_imgs.shape[1:]) != IMAGE_SHAPE:
        raise DataError(f"{files['train_images']}: images are {train_imgs.shape[1:]}, "
                        f"expected {IMAGE_SHAPE}")

    def prep(a: np.ndarray) -> np.ndarray:
        x = a.astype(np.float32) / 255.0
        if data.flatten:  # explicit width: an empty split (valid 0) must keep its shape
            return x.reshape(len(x), int(np.prod(x.shape[1:])))
        return x.reshape(len(x), 1, *IMAGE_SHAPE)

    # The original split: train = first `train`, valid = the `valid` after them.
    train = prep(train_imgs[: data.train])
    valid = prep(train_imgs[data.train: data.train + data.valid])
    n_test = data.test or len(test_imgs)
    test = prep(test_imgs[:n_test])
    lab = train_lab.astype(np.int64)
    return Splits(data.dataset, train, valid, test, image_shape=IMAGE_SHAPE,
                  source=str(files["train_images"].parent), train_y=lab[: data.train],
                  valid_y=lab[data.train: data.train + data.valid],
                  test_y=test_lab[:n_test].astype(np.int64))


def _load_cifar(data: Cifar10Data, base_dir: Path, data_root: str | None) -> Splits:
    from .cifar10 import FILES, global_contrast_normalize, locate, read_batch

    folder = locate(data_root, resolve_path(data.root, base_dir) if data.root else None,
                    data.download)
    batches = [read_batch(folder / f) for f in FILES[:5]]
    train_imgs = np.concatenate([b[0] for b in batches])
    train_lab = np.concatenate([b[1] for b in batches])
    test_imgs, test_lab = read_batch(folder / FILES[5])
    if data.test:
        test_imgs, test_lab = test_imgs[: data.test], test_lab[: data.test]

    def prep(a: np.ndarray) -> np.ndarray:
        x = a.astype(np.float32) / 255.0
        if data.gcn is not None:
            x = global_contrast_normalize(x, data.gcn)
        return x.reshape(len(x), int(np.prod(x.shape[1:]))) if data.flatten else x

    return Splits("cifar10", prep(train_imgs[: data.train]),
                  prep(train_imgs[data.train: data.train + data.valid]), prep(test_imgs),
                  image_shape=(3, 32, 32), source=str(folder), train_y=train_lab[: data.train],
                  valid_y=train_lab[data.train: data.train + data.valid], test_y=test_lab)


def _load_tfd(data: TfdData, base_dir: Path, data_root: str | None) -> Splits:
    from . import tfd

    path = tfd.locate(resolve_path(data.path, base_dir) if data.path else None, data_root)
    images, folds, labels = tfd.read(path)
    parts = tfd.split(images, folds, labels, data.fold, data.train_on)
    if len(parts["train"][0]) == 0:
        raise DataError(f"{path}: fold {data.fold} has no {data.train_on} examples")

    def prep(a: np.ndarray) -> np.ndarray:
        x = a.astype(np.float32) / 255.0
        return x.reshape(len(x), tfd.SIDE * tfd.SIDE) if data.flatten else x[:, None]

    return Splits("tfd", *(prep(parts[k][0]) for k in ("train", "valid", "test")),
                  image_shape=(tfd.SIDE, tfd.SIDE), source=f"{path} (fold {data.fold})",
                  train_y=parts["train"][1], valid_y=parts["valid"][1], test_y=parts["test"][1])


def data_bytes(data: Any, shape: tuple[int, ...]) -> int:
    """What loading the data set takes in memory, from the spec alone (before loading): the
    files' raw arrays where they are read whole, and the float32 splits. 0 for an npz, whose
    loader checks the arrays its file declares against the memory available itself."""
    per = int(np.prod(shape)) if shape else 1
    if isinstance(data, (Gaussian1dData, Ring2dData)):
        n = data.train + data.valid + data.test
        return n * per * 4 + n * 2 * 8 * 3  # float32 splits; float64 draws while making them
    if isinstance(data, IdxData):
        from ..spec.gan import MNIST_TRAIN_FILE_SIZE

        test = data.test or 10_000
        raw = (MNIST_TRAIN_FILE_SIZE + test) * per  # uint8 files, read whole
        return raw + (data.train + data.valid + test) * per * 4
    if isinstance(data, Cifar10Data):
        return 60_000 * per * (1 + 4) + (data.train + data.valid + (data.test or 10_000)) * per * 4
    if isinstance(data, TfdData):
        return 102_236 * per * (1 + 4)  # the distributed file's examples
    return 0
