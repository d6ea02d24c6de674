"""One class per data model of the spec (`data:`): its per-example shape and classes (cheap,
for `check` and the compiler), how to draw it, what loading it takes, and its splits.

The readers (idx, cifar10, tfd, npz, toy) are imported only when a file is read, so that
`check` stays cheap."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, Problem, SpecError
from ..ir import DataInfo
from ..spec.gan import (LABEL_WORDS, Cifar10Data, Gaussian1dData, IdxData, ImagesData, NpzData,
                        Ring2dData, TfdData)
from .splits import Splits

if TYPE_CHECKING:
    from ..spec.load import LoadedSpec
    from .report import LoadReport


def resolve_path(p: str, base_dir: Path) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base_dir / q)


class Dataset:
    """A data model (`self.data`); `base_dir`, the spec file's directory, is needed only where
    a file is read (the loaders, an npz's shape, absolute paths)."""

    def __init__(self, data: Any, base_dir: Path | None = None):
        self.data = data
        self.base_dir = base_dir

    def path(self, p: str) -> Path:
        assert self.base_dir is not None, f"{type(self).__name__}: no base directory for {p!r}"
        return resolve_path(p, self.base_dir)

    @property
    def classes(self) -> int | None:
        """How many classes the labels have: None without labels, 0 when only the file can tell."""
        return None

    @property
    def class_names(self) -> list[str] | None:
        """The classes' names, by label, where the dataset defines them (figures show them)."""
        return None

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        """One example's shape; `loaded` locates a problem with the data file in the spec."""
        raise NotImplementedError

    def info(self, loaded: "LoadedSpec | None" = None) -> DataInfo:
        return DataInfo(self.shape(loaded), self.classes)

    def image_shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """How to draw one example of `shape` as an image ((H, W) or (C, H, W)), or None for
        non-image data."""
        if len(shape) == 3 and shape[0] in (1, 3):
            return shape
        if len(shape) == 2:
            return shape
        return None

    def with_absolute_paths(self) -> Any:
        """The data model with its paths absolute, so a run's copy of the spec works anywhere."""
        return self.data

    def _absolute(self, field: str) -> Any:
        value = getattr(self.data, field)
        return self.data.model_copy(update={field: str(self.path(value).resolve())})

    def memory_bytes(self, shape: tuple[int, ...]) -> int:
        """What loading takes in memory, from the spec alone (before loading): the files' raw
        arrays where they are read whole, and the float32 splits."""
        return 0

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        """The splits; `report` is told of progress and warnings where loading takes a while
        (a folder of images being prepared) and is ignored by the others."""
        raise NotImplementedError

    def check_paths(self, loaded: "LoadedSpec") -> None:
        """Before loading: a SpecError located at the spec's line for a path that is not
        there (the datasets whose loaders name their own files need nothing here)."""


# The labels' meanings as the datasets' authors publish them (MNIST's labels are the digits).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


class _TenClassImages(Dataset):
    """Image files of ten classes in a folder (`data.root`): IDX and CIFAR-10."""

    IMAGE: tuple[int, ...]

    @property
    def classes(self) -> int | None:
        return 10

    def image_shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        return self.IMAGE

    def with_absolute_paths(self) -> Any:
        return self._absolute("root") if self.data.root else self.data


class IdxDataset(_TenClassImages):
    """MNIST / Fashion-MNIST."""

    IMAGE = (28, 28)

    data: IdxData

    @property
    def class_names(self) -> list[str] | None:
        return list(FASHION_MNIST_CLASSES) if self.data.dataset == "fashion-mnist" else None

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        return (self.IMAGE[0] * self.IMAGE[1],) if self.data.flatten else (1, *self.IMAGE)

    def memory_bytes(self, shape: tuple[int, ...]) -> int:
        from ..spec.gan import MNIST_TRAIN_FILE_SIZE

        data, per = self.data, _per_example(shape)
        test = data.test or 10_000
        raw = (MNIST_TRAIN_FILE_SIZE + test) * per  # uint8 files, read whole
        return raw + (data.train + data.valid + test) * per * 4

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        from .idx import load_images, locate

        data, image = self.data, self.IMAGE
        spec_root = self.path(data.root) if data.root else None
        files = locate(data.dataset, data_root, spec_root, data.download)
        train_imgs, train_lab, test_imgs, test_lab = load_images(files)
        n = train_imgs.shape[0]
        if data.train + data.valid > n:
            raise DataError(f"{files['train_images']}: holds {n:,} examples, fewer than "
                            f"train + valid = {data.train + data.valid:,}")
        if tuple(train_imgs.shape[1:]) != image or tuple(test_imgs.shape[1:]) != image:
            raise DataError(f"{files['train_images']}: images are {train_imgs.shape[1:]}, "
                            f"expected {image}")

        def prep(a: np.ndarray) -> np.ndarray:
            x = a.astype(np.float32) / 255.0
            if data.flatten:  # explicit width: an empty split (valid 0) must keep its shape
                return x.reshape(len(x), int(np.prod(x.shape[1:])))
            return x.reshape(len(x), 1, *image)

        # The original split: train = first `train`, valid = the `valid` after them.
        train = prep(train_imgs[: data.train])
        valid = prep(train_imgs[data.train: data.train + data.valid])
        n_test = data.test or len(test_imgs)
        test = prep(test_imgs[:n_test])
        lab = train_lab.astype(np.int64)
        return Splits(data.dataset, train, valid, test, image_shape=image,
                      source=str(files["train_images"].parent), train_y=lab[: data.train],
                      valid_y=lab[data.train: data.train + data.valid],
                      test_y=test_lab[:n_test].astype(np.int64))


class Cifar10Dataset(_TenClassImages):
    IMAGE = (3, 32, 32)

    data: Cifar10Data

    @property
    def class_names(self) -> list[str] | None:
        return list(CIFAR10_CLASSES)

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        return (3 * 32 * 32,) if self.data.flatten else self.IMAGE

    def memory_bytes(self, shape: tuple[int, ...]) -> int:
        data, per = self.data, _per_example(shape)
        return 60_000 * per * (1 + 4) + (data.train + data.valid + (data.test or 10_000)) * per * 4

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        from .cifar10 import FILES, global_contrast_normalize, locate, read_batch

        data = self.data
        folder = locate(data_root, self.path(data.root) if data.root else None, data.download)
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
                      image_shape=self.IMAGE, source=str(folder), train_y=train_lab[: data.train],
                      valid_y=train_lab[data.train: data.train + data.valid], test_y=test_lab)


class TfdDataset(Dataset):
    """The Toronto Face Database, 48×48."""

    data: TfdData

    @property
    def classes(self) -> int | None:
        return 7

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        from .tfd import SIDE

        return (SIDE * SIDE,) if self.data.flatten else (1, SIDE, SIDE)

    def image_shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        from .tfd import SIDE

        return (SIDE, SIDE)

    def with_absolute_paths(self) -> Any:
        return self._absolute("path") if self.data.path else self.data

    def memory_bytes(self, shape: tuple[int, ...]) -> int:
        return 102_236 * _per_example(shape) * (1 + 4)  # the distributed file's examples

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        from . import tfd

        data = self.data
        path = tfd.locate(self.path(data.path) if data.path else None, data_root)
        images, folds, labels = tfd.read(path)
        parts = tfd.split(images, folds, labels, data.fold, data.train_on)
        if len(parts["train"][0]) == 0:
            raise DataError(f"{path}: fold {data.fold} has no {data.train_on} examples")

        def prep(a: np.ndarray) -> np.ndarray:
            x = a.astype(np.float32) / 255.0
            return x.reshape(len(x), tfd.SIDE * tfd.SIDE) if data.flatten else x[:, None]

        return Splits("tfd", *(prep(parts[k][0]) for k in ("train", "valid", "test")),
                      image_shape=(tfd.SIDE, tfd.SIDE), source=f"{path} (fold {data.fold})",
                      train_y=parts["train"][1], valid_y=parts["valid"][1],
                      test_y=parts["test"][1])


class NpzDataset(Dataset):
    """A user's own array in an .npz file; valid/test are cut from its end."""

    data: NpzData

    @property
    def classes(self) -> int | None:
        return 0 if self.data.labels else None

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        from .npz import peek, pixels_refused

        data = self.data
        try:
            shape, dtype, key = peek(self.path(data.path), data.key, data.labels)
        except DataError as e:
            if loaded is None:
                raise
            raise SpecError(loaded.problem(("data", "path"), str(e))) from None
        if data.pixels and dtype != np.uint8:
            why = pixels_refused(self.path(data.path), key, dtype)
            raise SpecError(loaded.problem(("data", "pixels"), why) if loaded is not None
                            else Problem("data.pixels", why))
        per = shape[1:]
        if not per:
            raise SpecError(Problem("data.path", f"array shape {shape}: expected (N, features...)"))
        return (int(np.prod(per)),) if data.flatten else tuple(per)

    @property
    def class_names(self) -> list[str] | None:
        """The file's `class_names` array (as `data prepare` writes it), for figures; None
        without one, or where the file cannot be read here (the loader names the problem)."""
        from .npz import class_names

        if not self.data.labels:
            return None
        try:
            return class_names(resolve_path(self.data.path, self.base_dir or Path.cwd()))
        except DataError:
            return None

    def with_absolute_paths(self) -> Any:
        return self._absolute("path")

    # memory_bytes stays 0: the loader checks the arrays its file declares against the memory
    # available itself.

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        from .npz import load, load_labels

        data = self.data
        path = self.path(data.path)
        arr = load(path, data.key, data.labels, data.pixels)
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


class ImagesDataset(Dataset):
    """A user's folder (or .zip) of image files, prepared once into the cache (imageset.py);
    shape and classes come from the spec alone, so `check` reads no file."""

    data: ImagesData

    @property
    def classes(self) -> int | None:
        if self.data.labels == "none":
            return None
        return len(self.data.class_names) if self.data.class_names else 0

    @property
    def class_names(self) -> list[str] | None:
        return list(self.data.class_names) if self.data.class_names else None

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        c, (h, w) = self.data.channels, self.data.size
        return (c * h * w,) if self.data.flatten else (c, h, w)

    def image_shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        from .imageset import image_shape

        return image_shape(self.data)

    def _labels_file(self) -> bool:
        """`labels` is a path (not a word: none, subdirs, or dataset.json, which means the
        one at the root of the folder or zip and is found by scan)."""
        return self.data.labels not in LABEL_WORDS

    def with_absolute_paths(self) -> Any:
        data = self._absolute("path")
        if self._labels_file():
            data = data.model_copy(update={"labels": str(self.path(self.data.labels).resolve())})
        return data

    def check_paths(self, loaded: "LoadedSpec") -> None:
        for field, value in (("path", self.data.path),
                             ("labels", self.data.labels if self._labels_file() else None)):
            if value is not None and not self.path(value).exists():
                what = "folder or .zip" if field == "path" else "labels file"
                raise SpecError(loaded.problem(("data", field),
                                               f"no such {what}: {self.path(value)}"))

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        from .imageset import load_folder

        data = self.data
        labels = str(self.path(data.labels)) if self._labels_file() else data.labels
        return load_folder(data, self.path(data.path), labels, report)


class _ToyDataset(Dataset):
    """Data made by code from the data's own seed."""

    def memory_bytes(self, shape: tuple[int, ...]) -> int:
        data = self.data
        n = data.train + data.valid + data.test
        # float32 splits; float64 draws while making them
        return n * _per_example(shape) * 4 + n * 2 * 8 * 3

    def _sizes(self) -> tuple[int, int, int]:
        return self.data.train, self.data.valid, self.data.test


class Gaussian1dDataset(_ToyDataset):
    data: Gaussian1dData

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        return (1,)

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        from .toy import gaussian1d

        data = self.data
        rng = np.random.default_rng(data.seed)
        parts = [gaussian1d(n, data.mean, data.std, rng) for n in self._sizes()]
        return Splits("toy-gaussian1d", *parts, image_shape=None,
                      source=f"N({data.mean}, {data.std}²), seed {data.seed}")


class Ring2dDataset(_ToyDataset):
    """Labelled: an example's class is the mode it was drawn from."""

    data: Ring2dData

    @property
    def classes(self) -> int | None:
        return self.data.modes

    def shape(self, loaded: "LoadedSpec | None" = None) -> tuple[int, ...]:
        return (2,)

    def load(self, data_root: str | None = None, report: LoadReport | None = None) -> Splits:
        from .toy import ring2d

        data = self.data
        rng = np.random.default_rng(data.seed)
        parts = [ring2d(n, data.modes, data.radius, data.std, rng) for n in self._sizes()]
        return Splits("toy-ring2d", *(x for x, _ in parts), image_shape=None,
                      source=f"{data.modes} Gaussians on radius {data.radius}, std {data.std}, "
                             f"seed {data.seed}",
                      train_y=parts[0][1], valid_y=parts[1][1], test_y=parts[2][1])


def _per_example(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


DATASETS: dict[type, type[Dataset]] = {
    IdxData: IdxDataset, Cifar10Data: Cifar10Dataset, TfdData: TfdDataset, NpzData: NpzDataset,
    Gaussian1dData: Gaussian1dDataset, Ring2dData: Ring2dDataset, ImagesData: ImagesDataset,
}


def dataset_for(data: Any, base_dir: Path | None = None) -> Dataset:
    """The dataset of a spec's data model; `base_dir` (the spec file's directory) resolves its
    relative paths, and is needed only to read files."""
    try:
        cls = DATASETS[type(data)]
    except KeyError:  # pragma: no cover - the spec's Data union lists exactly these
        raise AssertionError(f"unhandled dataset {data!r}") from None
    return cls(data, base_dir)


def data_info(loaded: "LoadedSpec") -> DataInfo:
    """The shape and classes of a loaded spec's data, for compile_spec."""
    return dataset_for(loaded.spec.data, loaded.base_dir).info(loaded)
