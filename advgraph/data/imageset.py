"""`dataset: images` loaded: the folder scanned, prepared (packed once into the cache), its
classes held against the names a run recorded, then split and scaled to float32 [0, 1]."""

from __future__ import annotations

from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..spec.gan import LABEL_WORDS, ImagesData
from .report import LoadReport
from .splits import Splits

STEP = "preparing images"  # what the progress bar is called


def preparation(data: ImagesData):
    """The images package's Preparation of the spec's data model."""
    from .images import Preparation

    return Preparation(size=(int(data.size[0]), int(data.size[1])), channels=data.channels,
                       fit=data.fit, background=tuple(int(c) for c in data.background))


def load_folder(data: ImagesData, path: Path, labels: str,
                report: LoadReport | None = None) -> Splits:
    """The splits of the folder (or .zip) `path`; `labels` is "none", "subdirs", "dataset.json"
    (the one at the folder's root) or the labels file's absolute path. DataError when the classes found differ from `data.class_names`
    (the folder changed since a run recorded them), or the float32 splits would not fit."""
    try:
        return _load(data, path, labels, report)
    except DataError as e:  # the images package names its parameters: here, the spec's keys
        raise DataError(e.worded({k: f"data.{k}" for k in ImagesData.model_fields})) from None


def image_shape(data: ImagesData) -> tuple[int, ...]:
    """How one example is drawn: (3, H, W) in colour, (H, W) in grey."""
    c, (h, w) = data.channels, data.size
    return (c, h, w) if c == 3 else (h, w)


def _load(data: ImagesData, path: Path, labels: str, report: LoadReport | None) -> Splits:
    from .images import prepare, scan, split_indices

    prep = preparation(data)
    listing = scan(path, labels)
    progress = None
    if report is not None:
        def progress(done: int, total: int) -> None:
            report.progress(STEP, done, total)
    packed = prepare(listing, prep, progress=progress,
                     warn=report.warn if report is not None else None)
    names = class_names(path, data, packed.class_names, packed.labels)
    n = len(packed.images)  # their float32 copies' memory was checked by prepare
    parts = split_indices(n, data.valid, data.test, data.split_seed)
    xs = [_scaled(packed.images, idx, data.flatten) for idx in parts]
    ys: list[Any] = [None] * 3 if packed.labels is None or data.labels == "none" else \
        [np.asarray(packed.labels)[idx].astype(np.int64) for idx in parts]
    image = image_shape(data)
    provenance = {
        "path": str(path), "fingerprint": packed.fingerprint, "sha256": packed.sha256,
        "labels_sha256": _labels_sha256(packed.labels if data.labels != "none" else None),
        "images": n, "skipped": len(packed.skipped), "labels": data.labels,
        "class_names": names, "preparation": prep.as_dict(),
        "split": {"seed": data.split_seed, "train": len(parts[0]), "valid": len(parts[1]),
                  "test": len(parts[2])},
        "cached": bool(packed.cached)}
    return Splits("images", *xs, image_shape=image, source=str(path), train_y=ys[0],
                  valid_y=ys[1], test_y=ys[2], class_names=names, provenance=provenance)


def _labels_sha256(labels: np.ndarray | None) -> str | None:
    """SHA-256 of the rows' labels (int64): a labels file edited, or files moved between
    class folders, changes it where the pixels' SHA-256 stays."""
    if labels is None:
        return None
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(labels, np.int64).tobytes()).hexdigest()


def _scaled(images: np.ndarray, idx: np.ndarray, flatten: bool) -> np.ndarray:
    x = np.asarray(images[idx], dtype=np.float32)  # one copy: the rows, as float32
    np.divide(x, 255.0, out=x)
    # an explicit width: an empty split (valid 0) keeps its shape
    return x.reshape(len(x), prod(x.shape[1:])) if flatten else x


def class_names(path: Path, data: ImagesData, found: list[str] | None,
                labels: np.ndarray | None) -> list[str] | None:
    """The classes' names: those the files give, checked against the spec's (or the run's
    recorded) `class_names`; the spec's where the files give integer labels only."""
    if data.labels == "none":
        return None
    want = list(data.class_names) if data.class_names is not None else None
    if found is not None:
        if len(found) < 2:
            raise DataError(f"{path}: labels: {_labels_word(data)} found "
                            f"{len(found)} class{'' if len(found) == 1 else 'es'}"
                            f"{' (' + found[0] + ')' if found else ''}; a labelled data set "
                            "needs at least two (or use labels: none)")
        if want is not None and want != list(found):
            raise DataError(_names_differ(path, data, list(found), want))
        return list(found)
    if want is not None and labels is not None and len(labels):
        top = int(np.max(labels))
        if top >= len(want):
            raise DataError(f"{path}: label {top} has no name in data.class_names "
                            f"({len(want)} names)")
    return want


def _names_differ(path: Path, data: ImagesData, found: list[str], want: list[str]) -> str:
    if data.recorded:  # a run's spec.yaml: the names it found when it began
        return (f"{path}: holds the classes {_listed(found)}, but data.class_names (recorded "
                f"when the run began) are {_listed(want)}: the folder's classes changed")
    if data.labels == "subdirs":
        return (f"{path}: the folder's classes (sorted by name) are {_listed(found)}, but "
                f"data.class_names gives {_listed(want)} (in label order: the folders sorted "
                "by name)")
    return (f"{path}: the labels ({_labels_word(data)}) give the classes {_listed(found)}, but "
            f"data.class_names gives {_listed(want)} (in label order)")


def _labels_word(data: ImagesData) -> str:
    return data.labels if data.labels in LABEL_WORDS else "a labels file"


def _listed(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", … ({len(names)} in all)" if len(names) > most else "")
