"""The loaded data set: float32 train/valid/test arrays and their labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError


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
    class_names: list[str] | None = None  # by label, where the data itself names its classes
    provenance: dict[str, Any] | None = None  # what a run records of its data (run.json `data`)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    def labels(self, split: str) -> np.ndarray | None:
        return getattr(self, f"{split}_y")

    def check_labels(self, classes: int) -> None:
        """A conditional model needs every training label in [0, classes) (and any
        valid/test label it will be evaluated on), and as many classes as the data names."""
        if self.class_names is not None and len(self.class_names) != classes:
            raise DataError(f"{self.source}: holds {len(self.class_names)} classes "
                            f"({', '.join(self.class_names[:8])}), but condition.classes is "
                            f"{classes}")
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
