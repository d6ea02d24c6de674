"""What `sample` writes from a restored run (or a live training session, for the snapshots
written while training): an image grid, with Figure 2's nearest-training-example column on
request, a plot for 1-D/2-D toy data, raw samples as .npz. Every output lands under the run
directory unless the user names a path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import UsageError
from ..spec.gan import Cifar10Data, Gaussian1dData, Ring2dData
from .directory import RunDir
from .restore import RestoredRun
from .samples import (check_label, class_names, condition_classes, draw_samples,
                      draw_samples_and_labels, draw_samples_per_class, image_shape)


def out_path(run: RunDir, given: Path | None, sub: str, name: str) -> Path:
    """The user's path, else runs/<name>/<sub>/<name>."""
    if given is not None:
        return Path(given)
    return run.path / sub / name


def weights_of(restored: RestoredRun) -> str:
    """"ema" or "raw": G's weights in the trainer (a live training session's are raw)."""
    return getattr(restored, "weights", "raw")


def raw_suffix(restored: RestoredRun) -> str:
    """"-raw" in the names of files drawn with G's trained weights where the run was asked for
    them instead of their moving average (which the plain names are drawn with), so neither
    replaces the other."""
    return "-raw" if getattr(restored, "raw", False) and restored.program.objective.ema else ""


def sample(restored: RestoredRun, *, figure: bool, rows: int, cols: int, seed: int, out: Path | None,
           nearest: bool, n: int | None, npz: Path | None, dist=None, label: int | None = None,
           per_label: bool = False) -> list[Path]:
    """Raw samples to `npz` and/or a figure (an image grid, or a plot for toy data). With
    `dist`, the nearest-neighbour search is shared over the ranks and rank 0 writes.
    Conditional runs: `label` fixes the class of every sample; `per_label` draws one grid row
    per class (rows = the number of classes)."""
    check_label(restored, label)
    if per_label:
        if label is not None:
            raise UsageError("give either `label` or `per_label`, not both")
        rows = condition_classes(restored, "`per_label`")

    def grid_samples() -> np.ndarray:
        if per_label:
            return draw_samples_per_class(restored, cols, seed)[0]
        return draw_samples(restored, rows * cols, seed, label=label)

    if dist is not None and not dist.is_main:
        if nearest and image_shape(restored) is not None:
            from ..nearest import nearest as nn

            neighbours = grid_samples().reshape(rows, cols, -1)[:, -1]
            nn(neighbours, restored.splits.train, device=restored.device, dist=dist)
        return []
    written: list[Path] = []
    run = restored.run
    suffix = (f"-label{label}" if label is not None else ("-by-label" if per_label else "")) \
        + raw_suffix(restored)
    if npz is not None:
        written.append(_write_npz(restored, Path(npz), n or rows * cols, seed, label,
                                  rows if per_label else None))
    if not figure:
        return written
    shape = image_shape(restored)
    tag = f"step-{restored.step:07d}-seed{seed}{suffix}"
    if shape is None:
        path = out_path(run, out, "samples", f"{tag}.png")
        if per_label:
            return written + [_toy_plot_by_label(restored, seed, n or 5000, path, out is not None)]
        return written + [_toy_plot(restored, seed, n or 5000, path, label, out is not None)]
    # grids of a known class name it at the start of each row
    row_labels = ([class_text(c, class_names(restored)) for c in range(rows)] if per_label else
                  [class_text(label, class_names(restored))] * rows if label is not None else
                  None)
    img = _sample_grid(restored, grid_samples(), rows, cols, shape, nearest, dist, row_labels)
    from ..figures import save_png

    name = f"{tag}-nearest.png" if nearest else f"{tag}.png"
    written.append(save_png(img, out_path(run, out, "samples", name), follow=out is not None))
    return written


def _write_npz(restored: RestoredRun, path: Path, count: int, seed: int, label: int | None,
               classes: int | None) -> Path:
    """`sample --npz`: `count` raw samples (with `classes`, shared out over them) and, for a
    conditional G, their labels."""
    import io

    if classes is not None:
        x, y = draw_samples_per_class(restored, -(-count // classes), seed)
    else:
        x, y = draw_samples_and_labels(restored, count, seed, label)
    extra = {"labels": y.astype(np.int64)} if y is not None else {}
    buf = io.BytesIO()
    np.savez(buf, samples=x, step=np.int64(restored.step), seed=np.int64(seed),
             weights=np.str_(weights_of(restored)), **extra)
    atomic_write(path, buf.getvalue(), follow=True)  # --npz: the user's path
    return path


def _sample_grid(restored: RestoredRun, samples: np.ndarray, rows: int, cols: int,
                 shape: tuple[int, ...], nearest: bool, dist, row_labels: list[str] | None):
    """The image grid of `samples`; with `nearest`, Figure 2's extra column: the nearest
    training example of the sample beside it (the last sample of each row)."""
    from ..figures import grid

    per_image = contrast_normalised(restored)
    imgs = display_images(samples, shape, per_image)
    if not nearest:
        return grid(imgs, rows, cols, row_labels=row_labels)
    from ..nearest import nearest as nn

    neighbours = samples.reshape(rows, cols, -1)[:, -1]
    idx, _ = nn(neighbours, restored.splits.train, device=restored.device, dist=dist)
    train_imgs = display_images(restored.splits.train[idx], shape, per_image)
    imgs = np.concatenate([imgs.reshape(rows, cols, *imgs.shape[1:]), train_imgs[:, None]],
                          axis=1).reshape(rows * (cols + 1), *imgs.shape[1:])
    return grid(imgs, rows, cols + 1, separator_after=cols, row_labels=row_labels)


def display_images(x: np.ndarray, shape: tuple[int, ...], per_image: bool = False) -> np.ndarray:
    from ..figures import to_images

    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if per_image:  # contrast-normalised data, shown as the original did: each image by its max |x|
        x = 0.5 + 0.5 * x / np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12)
    else:
        lo, hi = float(np.min(x)), float(np.max(x))
        if lo < -1e-3 or hi > 1 + 1e-3:  # not [0, 1] data: stretch for display
            x = (x - lo) / max(hi - lo, 1e-12)
    return to_images(x, shape)


def class_text(c: int, names: list[str] | None) -> str:
    from ..figures import class_text as text

    return text(int(c), names)


def contrast_normalised(restored: RestoredRun) -> bool:
    return isinstance(restored.spec.data, Cifar10Data) and restored.spec.data.gcn is not None


def _toy_plot(restored: RestoredRun, seed: int, n: int, path: Path, label: int | None = None,
              follow: bool = False) -> Path:
    from ..figures import plot_1d, plot_2d

    x, y = draw_samples_and_labels(restored, n, seed, label)
    data = restored.splits.train[:n]
    if label is not None and restored.splits.train_y is not None:
        data = restored.splits.train[restored.splits.train_y == label][:n]
    d = restored.program.data_shape[0] if len(restored.program.data_shape) == 1 else 0
    title = f"{restored.run.name}, step {restored.step}"
    if d == 1:
        spec = restored.spec.data
        density = None
        if isinstance(spec, Gaussian1dData):
            from ..data.toy import normal_pdf

            density = lambda xs: normal_pdf(xs, spec.mean, spec.std)  # noqa: E731
        return plot_1d(x, data, path, density, title, follow=follow)
    if d == 2:
        return plot_2d(x, data, path, _ring_centres(restored), title,
                       labels=y if label is None else None, classes=restored.program.classes,
                       names=class_names(restored), follow=follow)
    raise UsageError(f"cannot draw {restored.program.data_shape}-shaped non-image data; "
                     "use `npz` PATH to save raw samples")


def _ring_centres(restored: RestoredRun) -> np.ndarray | None:
    if not isinstance(restored.spec.data, Ring2dData):
        return None
    from ..data.toy import ring2d_centres

    return ring2d_centres(restored.spec.data.modes, restored.spec.data.radius)


def _toy_plot_by_label(restored: RestoredRun, seed: int, n: int, path: Path,
                       follow: bool = False) -> Path:
    """`sample --by-label` on 1-D/2-D data: one panel per class, n samples shared out over the
    classes, each over the training data of its class."""
    from ..figures import plot_by_label

    classes = condition_classes(restored, "`per_label`")
    if len(restored.program.data_shape) != 1 or restored.program.data_shape[0] not in (1, 2):
        raise UsageError(f"cannot draw {restored.program.data_shape}-shaped non-image data; "
                         "use `npz` PATH to save raw samples")
    per = -(-n // classes)
    x, y = draw_samples_per_class(restored, per, seed)
    train, train_y = restored.splits.train, restored.splits.train_y
    if train_y is not None:  # up to `per` training points of each class
        keep = np.concatenate([np.flatnonzero(train_y == c)[:per] for c in range(classes)])
        train, train_y = train[keep], train_y[keep]
    return plot_by_label(x, y, train, train_y, classes, path, _ring_centres(restored),
                         f"{restored.run.name}, step {restored.step}: G(z|y) by class",
                         class_names(restored), follow=follow)
