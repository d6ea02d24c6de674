"""Samples of G from a restored run (or a live training session): noise from the prior with a
seed, labels for a conditional G, and what the data says about drawing them."""

from __future__ import annotations

import numpy as np

from ..data import dataset_for
from ..errors import UsageError
from ..sampling import sample_prior
from .restore import RestoredRun


def check_label(restored: RestoredRun, label: int | None) -> None:
    if label is not None and not 0 <= label < condition_classes(restored, "`label`"):
        raise UsageError(f"`label` must be one of 0..{restored.program.classes - 1}, got {label}")


def condition_classes(restored: RestoredRun, param: str) -> int:
    """The classes of the run's condition; a run without one is refused, naming `param`."""
    if restored.program.classes is None:
        raise UsageError(f"{param}: run {restored.run.name!r} is not a conditional GAN (its spec "
                         "has no condition)")
    return restored.program.classes


def draw_labels(restored: RestoredRun, n: int, rng: np.random.Generator,
                label: int | None = None) -> np.ndarray | None:
    """Labels for n samples of a conditional G: all `label`, or uniform over the classes
    (None for an unconditional G)."""
    check_label(restored, label)
    classes = restored.program.classes
    if classes is None:
        return None
    return np.full(n, label) if label is not None else rng.integers(0, classes, n)


def run_generator(restored: RestoredRun, z: np.ndarray, y: np.ndarray | None,
                  batch: int = 1000) -> np.ndarray:
    """G(z) (or G(z|y)) for given z (and y), in batches of the trainer's `generate`."""
    return np.concatenate([restored.trainer.generate(z[i:i + batch],
                                                   None if y is None else y[i:i + batch])
                           for i in range(0, len(z), batch)])


def draw_samples_and_labels(restored: RestoredRun, n: int, seed: int, label: int | None = None,
                            labels: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """n samples of G, z drawn from the prior with `seed`, and the labels they were drawn for:
    a conditional G gets `labels`, or all `label`, or uniform labels."""
    rng = np.random.default_rng(seed)
    z = sample_prior(restored.program.prior, n, rng)  # before the labels: same z as unconditional
    y = labels if labels is not None else draw_labels(restored, n, rng, label)
    return run_generator(restored, z, y), y


def draw_samples(restored: RestoredRun, n: int, seed: int, label: int | None = None,
                 labels: np.ndarray | None = None) -> np.ndarray:
    """draw_samples_and_labels without the labels."""
    return draw_samples_and_labels(restored, n, seed, label, labels)[0]


def draw_samples_per_class(restored: RestoredRun, per_class: int,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """per_class samples of every class, class-major; column j of every class shares its z,
    so a row of a grid shows one class and a column one z across the classes."""
    classes = condition_classes(restored, "`per_label`")
    z = sample_prior(restored.program.prior, per_class, np.random.default_rng(seed))
    y = np.repeat(np.arange(classes), per_class)
    return run_generator(restored, np.tile(z, (classes, 1)), y), y


def labels_like_training(restored: RestoredRun, n: int, seed: int) -> np.ndarray | None:
    """n labels drawn from the training labels, for a conditional G to model p(x) =
    Σ p(y)·p(x|y) (None for an unconditional G)."""
    if restored.program.classes is None:
        return None
    sp = restored.splits
    sp.check_labels(restored.program.classes)
    rng = np.random.default_rng([seed, 0x1AB])
    return sp.train_y[rng.integers(0, len(sp.train_y), n)]  # type: ignore[index]


def class_names(restored: RestoredRun) -> list[str] | None:
    return dataset_for(restored.spec.data).class_names


def image_shape(restored: RestoredRun) -> tuple[int, ...] | None:
    """How an example is drawn (None: toy data, plotted instead)."""
    return dataset_for(restored.spec.data).image_shape(restored.program.data_shape)
