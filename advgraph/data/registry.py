"""Datasets by name: their per-example shape (cheap, for `check`) and their splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, Problem, SpecError
from ..spec.gan import Cifar10Data, Gaussian1dData, IdxData, NpzData, Ring2dData

if TYPE_CHECKING:
    from ..spec.load import LoadedSpec

IMAGE_SHAPE = (28, 28)


@dataclass
class Splits:
    """float32 arrays (N, *shape); `image_shape` tells figures how to draw one example."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, ...] | None
    source: str  # where the data came from, for provenance

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])


def resolve_path(p: str, base_dir: Path) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base_dir / q)


def sample_shape(data: Any, base_dir: Path, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
    if isinstance(data, IdxData):
        return (IMAGE_SHAPE[0] * IMAGE_SHAPE[1],) if data.flatten else (1, *IMAGE_SHAPE)
    if isinstance(data, Cifar10Data):
        return (3 * 32 * 32,) if data.flatten else (3, 32, 32)
    if isinstance(data, Gaussian1dData):
        return (1,)
    if isinstance(data, Ring2dData):
        return (2,)
    if isinstance(data, NpzData):
        from .npz import peek_shape

        try:
            shape = peek_shape(resolve_path(data.path, base_dir), data.key)
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
    if isinstance(data, Gaussian1dData):
        from .toy import gaussian1d

        rng = np.random.default_rng(data.seed)
        parts = [gaussian1d(n, data.mean, data.std, rng) for n in (data.train, data.valid, data.test)]
        return Splits("toy-gaussian1d", *parts, image_shape=None,
                      source=f"N({data.mean}, {data.std}²), seed {data.seed}")
    if isinstance(data, Ring2dData):
        from .toy import ring2d

        rng = np.random.default_rng(data.seed)
        parts = [ring2d(n, data.modes, data.radius, data.std, rng)[0]
                 for n in (data.train, data.valid, data.test)]
        return Splits("toy-ring2d", *parts, image_shape=None,
                      source=f"{data.modes} Gaussians on radius {data.radius}, std {data.std}, "
                             f"seed {data.seed}")
    if isinstance(data, NpzData):
        from .npz import load

        path = resolve_path(data.path, base_dir)
        arr = load(path, data.key)
        n = arr.shape[0]
        if data.valid + data.test >= n:
            raise DataError(f"{path}: {n} examples cannot give valid={data.valid} and "
                            f"test={data.test} and still leave training examples")
        if data.flatten:
            arr = arr.reshape(n, -1)
        n_train = n - data.valid - data.test
        return Splits("npz", arr[:n_train], arr[n_train:n_train + data.valid],
                      arr[n_train + data.valid:], image_shape=None, source=str(path))
    raise AssertionError(f"unhandled dataset {data!r}")  # pragma: no cover


def _load_idx(data: IdxData, base_dir: Path, data_root: str | None) -> Splits:
    from .idx import load_images, locate

    spec_root = resolve_path(data.root, base_dir) if data.root else None
    files = locate(data.dataset, data_root, spec_root, data.download)
    train_imgs, _, test_imgs, _ = load_images(files)
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
    test = prep(test_imgs[: data.test] if data.test else test_imgs)
    return Splits(data.dataset, train, valid, test, image_shape=IMAGE_SHAPE,
                  source=str(files["train_images"].parent))


def _load_cifar(data: Cifar10Data, base_dir: Path, data_root: str | None) -> Splits:
    from .cifar10 import FILES, global_contrast_normalize, locate, read_batch

    folder = locate(data_root, resolve_path(data.root, base_dir) if data.root else None,
                    data.download)
    train_imgs = np.concatenate([read_batch(folder / f)[0] for f in FILES[:5]])
    test_imgs = read_batch(folder / FILES[5])[0]
    if data.test:
        test_imgs = test_imgs[: data.test]

    def prep(a: np.ndarray) -> np.ndarray:
        x = a.astype(np.float32) / 255.0
        if data.gcn is not None:
            x = global_contrast_normalize(x, data.gcn)
        return x.reshape(len(x), int(np.prod(x.shape[1:]))) if data.flatten else x

    return Splits("cifar10", prep(train_imgs[: data.train]),
                  prep(train_imgs[data.train: data.train + data.valid]), prep(test_imgs),
                  image_shape=(3, 32, 32), source=str(folder))
