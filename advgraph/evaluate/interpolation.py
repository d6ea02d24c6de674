"""`interpolate`: Figure 3, G along straight or spherical paths between noise vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..run import samples
from ..run.restore import RestoredRun
from ..run.sample_files import (class_text, contrast_normalised, display_images, out_path,
                                raw_suffix)
from ..run.samples import check_label, class_names, image_shape
from ..sampling import lerp, sample_prior, slerp


def interpolate(restored: RestoredRun, *, rows: int, steps: int, seed: int, spherical: bool,
                out: Path | None, label: int | None = None) -> Path:
    """Figure 3. A conditional G keeps the class fixed along each path: `label`, or else
    class r mod classes on row r."""
    check_label(restored, label)
    shape = image_shape(restored)
    if shape is None:
        raise UsageError("interpolate draws images; this run's data "
                         f"({restored.program.data_shape}) is not images")
    rng = np.random.default_rng(seed)
    ends = sample_prior(restored.program.prior, 2 * rows, rng)
    path_fn = slerp if spherical else lerp
    z = np.concatenate([path_fn(ends[2 * r], ends[2 * r + 1], steps) for r in range(rows)])
    from ..figures import grid, save_png

    y, row_labels = None, None
    if restored.program.classes is not None:
        row_label = (np.full(rows, label) if label is not None
                     else np.arange(rows) % restored.program.classes)
        y = np.repeat(row_label, steps)
        row_labels = [class_text(c, class_names(restored)) for c in row_label]
    x = samples.run_generator(restored, z, y)
    img = grid(display_images(x, shape, contrast_normalised(restored)), rows, steps,
               row_labels=row_labels)
    kind = "slerp" if spherical else "lerp"
    suffix = (f"-label{label}" if label is not None else "") + raw_suffix(restored)
    return save_png(img, out_path(restored.run, out, "samples",
                                  f"interp-step-{restored.step:07d}-seed{seed}-{kind}{suffix}.png"),
                    follow=out is not None)
