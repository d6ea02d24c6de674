"""What `sample`, `interpolate`, `eval` and `plot` do, on a run restored by train.load_trainer.
Every output lands under the run directory unless the user names a path."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data.registry import image_shape
from ..errors import DataError, UsageError
from ..atomic import atomic_write
from ..runs import RunDir
from ..sampling import lerp, sample_prior, slerp
from ..spec.gan import Cifar10Data, Gaussian1dData, Ring2dData
from ..train import Loaded


def _out_path(run: RunDir, given: Path | None, sub: str, name: str) -> Path:
    if given is not None:
        return Path(given)
    return run.path / sub / name


def generate(loaded: Loaded, n: int, seed: int, batch: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = sample_prior(loaded.program.prior, n, rng)
    return np.concatenate([loaded.trainer.generate(z[i:i + batch]) for i in range(0, n, batch)])


# ---- sample ---------------------------------------------------------------------------------


def sample(loaded: Loaded, *, figure: bool, rows: int, cols: int, seed: int, out: Path | None,
           nearest: bool, n: int | None, npz: Path | None, dist=None) -> list[Path]:
    """Raw samples to `npz` and/or a figure (an image grid, or a plot for toy data). With
    `dist`, the nearest-neighbour search is shared over the ranks and rank 0 writes."""
    if dist is not None and not dist.is_main:
        if nearest and image_shape(loaded.spec.data, loaded.program.data_shape) is not None:
            from .nearest import nearest as nn

            neighbours = generate(loaded, rows * cols, seed).reshape(rows, cols, -1)[:, -1]
            nn(neighbours, loaded.splits.train, device=loaded.device, dist=dist)
        return []
    written: list[Path] = []
    run = loaded.run
    if npz is not None:
        count = n or rows * cols
        x = generate(loaded, count, seed)
        import io

        buf = io.BytesIO()
        np.savez(buf, samples=x, step=np.int64(loaded.step), seed=np.int64(seed))
        atomic_write(Path(npz), buf.getvalue())
        written.append(Path(npz))
    if not figure:
        return written
    shape = image_shape(loaded.spec.data, loaded.program.data_shape)
    tag = f"step-{loaded.step:07d}-seed{seed}"
    if shape is None:
        return written + [_toy_plot(loaded, seed, n or 5000, _out_path(run, out, "samples", f"{tag}.png"))]
    samples = generate(loaded, rows * cols, seed)
    per_image = _contrast_normalised(loaded)
    imgs = _images(samples, shape, per_image)
    if nearest:
        # Figure 2: the rightmost column shows the nearest training example of the sample
        # beside it (the last sample of each row).
        from .nearest import nearest as nn

        neighbours = samples.reshape(rows, cols, -1)[:, -1]
        idx, _ = nn(neighbours, loaded.splits.train, device=loaded.device, dist=dist)
        train_imgs = _images(loaded.splits.train[idx], shape, per_image)
        imgs = np.concatenate([imgs.reshape(rows, cols, *imgs.shape[1:]),
                               train_imgs[:, None]], axis=1).reshape(rows * (cols + 1), *imgs.shape[1:])
        from ..figures import grid

        img = grid(imgs, rows, cols + 1, separator_after=cols)
        name = f"{tag}-nearest.png"
    else:
        from ..figures import grid

        img = grid(imgs, rows, cols)
        name = f"{tag}.png"
    from ..figures import save_png

    written.append(save_png(img, _out_path(run, out, "samples", name)))
    return written


def _images(x: np.ndarray, shape: tuple[int, ...], per_image: bool = False) -> np.ndarray:
    from ..figures import to_images

    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if per_image:  # contrast-normalised data, shown as the original did: each image by its max |x|
        x = 0.5 + 0.5 * x / np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12)
    else:
        lo, hi = float(np.min(x)), float(np.max(x))
        if lo < -1e-3 or hi > 1 + 1e-3:  # not [0, 1] data: stretch for display
            x = (x - lo) / max(hi - lo, 1e-12)
    return to_images(x, shape)


def _contrast_normalised(loaded: Loaded) -> bool:
    return isinstance(loaded.spec.data, Cifar10Data) and loaded.spec.data.gcn is not None


def _toy_plot(loaded: Loaded, seed: int, n: int, path: Path) -> Path:
    from ..figures import plot_1d, plot_2d

    x = generate(loaded, n, seed)
    data = loaded.splits.train[:n]
    d = loaded.program.data_shape[0] if len(loaded.program.data_shape) == 1 else 0
    title = f"{loaded.run.name}, step {loaded.step}"
    if d == 1:
        spec = loaded.spec.data
        density = None
        if isinstance(spec, Gaussian1dData):
            from .theory import normal_pdf

            density = lambda xs: normal_pdf(xs, spec.mean, spec.std)  # noqa: E731
        return plot_1d(x, data, path, density, title)
    if d == 2:
        centres = None
        if isinstance(loaded.spec.data, Ring2dData):
            from ..data.toy import ring2d_centres

            centres = ring2d_centres(loaded.spec.data.modes, loaded.spec.data.radius)
        return plot_2d(x, data, path, centres, title)
    raise UsageError(f"cannot draw {loaded.program.data_shape}-shaped non-image data; "
                     "use --npz PATH to save raw samples")


# ---- interpolate ----------------------------------------------------------------------------


def interpolate(loaded: Loaded, *, rows: int, steps: int, seed: int, spherical: bool,
                out: Path | None) -> Path:
    shape = image_shape(loaded.spec.data, loaded.program.data_shape)
    if shape is None:
        raise UsageError("interpolate draws images; this run's data "
                         f"({loaded.program.data_shape}) is not images")
    rng = np.random.default_rng(seed)
    ends = sample_prior(loaded.program.prior, 2 * rows, rng)
    path_fn = slerp if spherical else lerp
    z = np.concatenate([path_fn(ends[2 * r], ends[2 * r + 1], steps) for r in range(rows)])
    from ..figures import grid, save_png

    img = grid(_images(loaded.trainer.generate(z), shape, _contrast_normalised(loaded)), rows, steps)
    kind = "slerp" if spherical else "lerp"
    return save_png(img, _out_path(loaded.run, out, "samples",
                                   f"interp-step-{loaded.step:07d}-seed{seed}-{kind}.png"))


# ---- eval -----------------------------------------------------------------------------------


def parzen(loaded: Loaded, *, samples: int, sigmas: list[float] | None, sigma: float | None,
           valid_limit: int | None, split: str, baseline: str | None, seed: int,
           chunk: int = 1000, dist=None) -> dict[str, Any]:
    """The paper's Table 1 protocol. With `dist`, every rank draws the same samples (same
    checkpoint, same seed) and scores its share of the points; rank 0 reports and writes."""
    from .parzen import PAPER_SIGMAS, select_and_score

    sp = loaded.splits
    evaluate = getattr(sp, split)
    if len(evaluate) == 0:
        raise DataError(f"the {split} split of this run's data is empty")
    valid = sp.valid[:valid_limit] if valid_limit else sp.valid
    if sigma is None and len(valid) == 0:
        raise DataError("choosing σ needs validation data and the valid split is empty; "
                        "give --sigma")
    t0 = time.perf_counter()
    if baseline == "train":
        if samples > len(sp.train):
            raise UsageError(f"--baseline train: only {len(sp.train)} training examples "
                             f"for --samples {samples}")
        mu = sp.train[np.random.default_rng(seed).permutation(len(sp.train))[:samples]]
        source = f"{samples} training examples used as samples (baseline)"
    else:
        mu = generate(loaded, samples, seed)
        source = f"{samples} samples of G"
    grid = list(sigmas) if sigmas else list(PAPER_SIGMAS)
    res = select_and_score(mu, valid, evaluate, grid, sigma, chunk, loaded.device, dist)
    took = time.perf_counter() - t0
    report = {
        "run": loaded.run.name, "checkpoint_step": loaded.step, "mean_log_likelihood": res.mean,
        "stderr": res.stderr, "sigma": res.sigma, "sigma_fixed": sigma is not None,
        "sigma_grid": grid if sigma is None else None,
        "valid_scores": [{"sigma": k, "mean_log_likelihood": v}
                         for k, v in res.valid_scores.items()],
        "samples": samples, "source": source, "baseline": baseline,
        "evaluated_split": split, "n_evaluated": res.n_eval,
        "valid_used": 0 if sigma is not None else len(valid),
        "split_sizes": {"train": len(sp.train), "valid": len(sp.valid), "test": len(sp.test)},
        "data": sp.source, "seed": seed, "device": loaded.device, "seconds": round(took, 3),
        "processes": dist.world if dist is not None else 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
        "caveat": "Parzen-window estimates have high variance, work poorly in high dimensions "
                  "and reward memorisation; compare with --baseline train.",
    }
    name = "parzen-baseline-train.json" if baseline == "train" else "parzen.json"
    if dist is not None and not dist.is_main:
        return report
    atomic_write(loaded.run.path / "eval" / name, (json.dumps(report, indent=2) + "\n").encode())
    report["written"] = str(loaded.run.path / "eval" / name)
    return report


def theory(loaded: Loaded, *, samples: int, seed: int, out: Path | None) -> dict[str, Any]:
    from . import theory as T

    if loaded.program.data_shape != (1,):
        raise UsageError(f"--theory needs 1-D data; this run's data is {loaded.program.data_shape}")
    g = generate(loaded, samples, seed)
    data = loaded.splits.test if len(loaded.splits.test) else loaded.splits.train
    spec = loaded.spec.data
    p_data = None
    if isinstance(spec, Gaussian1dData):
        p_data = lambda xs: T.normal_pdf(xs, spec.mean, spec.std)  # noqa: E731
    fake = generate(loaded, min(samples, 20_000), seed + 1)
    th, curves = T.measure(loaded.trainer.discriminate, g, data, p_data, fake)
    png = T.plot(curves, th, _out_path(loaded.run, out, "eval", f"theory-step-{loaded.step:07d}.png"))
    report = {"run": loaded.run.name, "checkpoint_step": loaded.step, **th.as_dict(),
              "samples": samples, "seed": seed, "figure": str(png)}
    atomic_write(loaded.run.path / "eval" / "theory.json", (json.dumps(report, indent=2) + "\n").encode())
    return report
