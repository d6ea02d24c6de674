"""What `sample`, `interpolate`, `eval` and `plot` do, on a run from train.restore.restore_run.
Every output lands under the run directory unless the user names a path."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data import dataset_for
from ..errors import DataError, RunError, UsageError
from ..atomic import append_line, atomic_write
from ..jsontext import dump_bytes, dumps
from ..run.directory import RunDir
from ..sampling import lerp, sample_prior, slerp
from ..spec.gan import Cifar10Data, Gaussian1dData, Ring2dData
from ..run.restore import RestoredRun


def _out_path(run: RunDir, given: Path | None, sub: str, name: str) -> Path:
    if given is not None:
        return Path(given)
    return run.path / sub / name


def check_label(restored: RestoredRun, label: int | None) -> None:
    if label is not None and not 0 <= label < _classes(restored, "--label"):
        raise UsageError(f"--label must be one of 0..{restored.program.classes - 1}, got {label}")


def _classes(restored: RestoredRun, flag: str) -> int:
    if restored.program.classes is None:
        raise UsageError(f"{flag}: run {restored.run.name!r} is not a conditional GAN (its spec "
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
    classes = _classes(restored, "--by-label")
    z = sample_prior(restored.program.prior, per_class, np.random.default_rng(seed))
    y = np.repeat(np.arange(classes), per_class)
    return run_generator(restored, np.tile(z, (classes, 1)), y), y


# ---- sample ---------------------------------------------------------------------------------


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
            raise UsageError("give either --label or --by-label, not both")
        rows = _classes(restored, "--by-label")

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
    suffix = f"-label{label}" if label is not None else ("-by-label" if per_label else "")
    if npz is not None:
        written.append(_write_npz(restored, Path(npz), n or rows * cols, seed, label,
                                  rows if per_label else None))
    if not figure:
        return written
    shape = image_shape(restored)
    tag = f"step-{restored.step:07d}-seed{seed}{suffix}"
    if shape is None:
        path = _out_path(run, out, "samples", f"{tag}.png")
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
    written.append(save_png(img, _out_path(run, out, "samples", name), follow=out is not None))
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
    np.savez(buf, samples=x, step=np.int64(restored.step), seed=np.int64(seed), **extra)
    atomic_write(path, buf.getvalue(), follow=True)  # --npz: the user's path
    return path


def _sample_grid(restored: RestoredRun, samples: np.ndarray, rows: int, cols: int,
                 shape: tuple[int, ...], nearest: bool, dist, row_labels: list[str] | None):
    """The image grid of `samples`; with `nearest`, Figure 2's extra column: the nearest
    training example of the sample beside it (the last sample of each row)."""
    from ..figures import grid

    per_image = _contrast_normalised(restored)
    imgs = _images(samples, shape, per_image)
    if not nearest:
        return grid(imgs, rows, cols, row_labels=row_labels)
    from ..nearest import nearest as nn

    neighbours = samples.reshape(rows, cols, -1)[:, -1]
    idx, _ = nn(neighbours, restored.splits.train, device=restored.device, dist=dist)
    train_imgs = _images(restored.splits.train[idx], shape, per_image)
    imgs = np.concatenate([imgs.reshape(rows, cols, *imgs.shape[1:]), train_imgs[:, None]],
                          axis=1).reshape(rows * (cols + 1), *imgs.shape[1:])
    return grid(imgs, rows, cols + 1, separator_after=cols, row_labels=row_labels)


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


def class_names(restored: RestoredRun) -> list[str] | None:
    return dataset_for(restored.spec.data).class_names


def class_text(c: int, names: list[str] | None) -> str:
    from ..figures import class_text as text

    return text(int(c), names)


def image_shape(restored: RestoredRun) -> tuple[int, ...] | None:
    """How an example is drawn (None: toy data, plotted instead)."""
    return dataset_for(restored.spec.data).image_shape(restored.program.data_shape)


def _contrast_normalised(restored: RestoredRun) -> bool:
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
                     "use --npz PATH to save raw samples")


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

    classes = _classes(restored, "--by-label")
    if len(restored.program.data_shape) != 1 or restored.program.data_shape[0] not in (1, 2):
        raise UsageError(f"cannot draw {restored.program.data_shape}-shaped non-image data; "
                         "use --npz PATH to save raw samples")
    per = -(-n // classes)
    x, y = draw_samples_per_class(restored, per, seed)
    train, train_y = restored.splits.train, restored.splits.train_y
    if train_y is not None:  # up to `per` training points of each class
        keep = np.concatenate([np.flatnonzero(train_y == c)[:per] for c in range(classes)])
        train, train_y = train[keep], train_y[keep]
    return plot_by_label(x, y, train, train_y, classes, path, _ring_centres(restored),
                         f"{restored.run.name}, step {restored.step}: G(z|y) by class",
                         class_names(restored), follow=follow)


# ---- interpolate ----------------------------------------------------------------------------


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
    img = grid(_images(run_generator(restored, z, y), shape, _contrast_normalised(restored)), rows,
               steps, row_labels=row_labels)
    kind = "slerp" if spherical else "lerp"
    suffix = f"-label{label}" if label is not None else ""
    return save_png(img, _out_path(restored.run, out, "samples",
                                   f"interp-step-{restored.step:07d}-seed{seed}-{kind}{suffix}.png"),
                    follow=out is not None)


# ---- eval -----------------------------------------------------------------------------------


def parzen(restored: RestoredRun, *, samples: int, sigmas: list[float] | None, sigma: float | None,
           valid_limit: int | None, split: str, baseline: str | None, seed: int,
           chunk: int = 128, dist=None, per_label: bool = False,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The paper's Table 1 protocol. With `dist`, every rank draws the same samples (same
    checkpoint, same seed) and scores its share of the points; rank 0 reports and writes.

    A conditional G is scored as the model of p(x) it defines, Σ_y p(y)·p(x|y): its samples
    take their labels from the training labels. `per_label`: for each class c, `samples`
    samples of G(·|c) score the points of class c, with σ chosen on the validation points of
    class c."""
    from ..parzen import default_sigmas

    evaluate = _parzen_points(restored, split, sigma, samples, baseline, per_label)
    grid = list(sigmas) if sigmas else list(default_sigmas(restored.splits.train))
    est = _ParzenSetting(restored, split, samples, grid,
                         sigma, valid_limit, baseline, seed, chunk, dist, progress)
    t0 = time.perf_counter()
    report: dict[str, Any] = {"run": restored.run.name, "checkpoint_step": restored.step}
    if per_label:
        report["by_label"], source = _parzen_by_label(est, evaluate)
    else:
        overall, source = _parzen_overall(est, evaluate)
        report.update(overall)
    report.update(_parzen_provenance(est, source, t0))
    if dist is not None and not dist.is_main:
        return report
    name = ("parzen" + ("-by-label" if per_label else "")
            + (f"-baseline-{baseline}" if baseline else "") + ".json")
    _write_report(restored.run, name, report, "parzen")
    return report


def quality(restored: RestoredRun, **kwargs: Any) -> dict[str, Any]:
    """`eval --fid/--prdc/--score` (see evaluate/quality.py), written to eval/quality.json."""
    from .quality import quality as measure

    report = measure(restored, **kwargs)
    _write_report(restored.run, "quality.json", report, "quality")
    return report


def _write_report(run: RunDir, name: str, report: dict[str, Any], metric: str) -> None:
    """The latest report as eval/<name>, and one line of eval/metrics.jsonl per evaluation,
    so results accumulate across checkpoints and settings."""
    path = run.path / "eval" / name
    atomic_write(path, dump_bytes(report, str(path), indent=2))
    report["written"] = str(path)
    line = {"metric": metric, "checkpoint_step": report.get("checkpoint_step"),
            "report": name, **{k: v for k, v in report.items() if k != "written"}}
    jsonl = run.path / "eval" / "metrics.jsonl"
    append_line(jsonl, dumps(line, str(jsonl)))


@dataclass(frozen=True)
class _ParzenSetting:
    """What every estimate of one `eval --parzen` shares."""

    restored: RestoredRun
    split: str  # the split whose points are scored
    samples: int
    grid: list[float]  # the σ to choose from on the validation points
    sigma: float | None  # a fixed σ (no choice)
    valid_limit: int | None
    baseline: str | None
    seed: int
    chunk: int
    dist: Any
    progress: Callable[[str], None] | None = None

    def score(self, mu: np.ndarray, valid: np.ndarray, points: np.ndarray):
        """σ chosen on `valid` (unless fixed), then the mean log-likelihood of `points`."""
        from ..parzen import select_and_score

        return select_and_score(mu, valid, points, self.grid, self.sigma, self.chunk,
                                self.restored.device, self.dist)

    def valid_used(self, valid: np.ndarray) -> int:
        return 0 if self.sigma is not None else len(valid)

    def limited(self, valid: np.ndarray) -> np.ndarray:
        return valid[:self.valid_limit] if self.valid_limit else valid


def _parzen_points(restored: RestoredRun, split: str, sigma: float | None, samples: int,
                   baseline: str | None, per_label: bool) -> np.ndarray:
    """The points to score, once the data can give what the estimate needs."""
    sp = restored.splits
    evaluate = getattr(sp, split)
    if len(evaluate) == 0:
        raise DataError(f"the {split} split of this run's data is empty")
    if sigma is None and len(sp.valid) == 0:
        raise DataError("choosing σ needs validation data and the valid split is empty; "
                        "give --sigma")
    if baseline == "kmeans" and per_label:
        raise UsageError("--baseline kmeans scores the model of p(x); it does not go with "
                         "--by-label (use --baseline train for a per-class reference)")
    if baseline in ("train", "kmeans") and samples > len(sp.train) and not per_label:
        raise UsageError(f"--baseline {baseline}: only {len(sp.train)} training examples "
                         f"for --samples {samples}")
    return evaluate


def _parzen_overall(est: _ParzenSetting, evaluate: np.ndarray) -> tuple[dict[str, Any], str]:
    """One estimate over all the points, σ chosen on the validation split; the report's
    fields and where the samples came from."""
    valid = est.limited(est.restored.splits.valid)
    mu, source = _parzen_samples(est)
    res = est.score(mu, valid, evaluate)
    return {"mean_log_likelihood": res.mean, "stderr": res.stderr, "sigma": res.sigma,
            "valid_scores": _valid_scores(res), "n_evaluated": res.n_eval,
            "valid_used": est.valid_used(valid)}, source


def labels_like_training(restored: RestoredRun, n: int, seed: int) -> np.ndarray | None:
    """n labels drawn from the training labels, for a conditional G to model p(x) =
    Σ p(y)·p(x|y) (None for an unconditional G)."""
    if restored.program.classes is None:
        return None
    sp = restored.splits
    sp.check_labels(restored.program.classes)
    rng = np.random.default_rng([seed, 0x1AB])
    return sp.train_y[rng.integers(0, len(sp.train_y), n)]  # type: ignore[index]


def _parzen_samples(est: _ParzenSetting) -> tuple[np.ndarray, str]:
    """The window centres: training examples (the baseline) or samples of G, whose labels a
    conditional G draws from the training labels."""
    restored, sp, n = est.restored, est.restored.splits, est.samples
    if est.baseline == "train":
        mu = sp.train[np.random.default_rng(est.seed).permutation(len(sp.train))[:n]]
        return mu, f"{n} training examples used as samples (baseline)"
    if est.baseline == "kmeans":
        km = kmeans_baseline(restored, n, est.seed, est.dist, est.progress)
        return km.centres, f"{n} {km.describe()} used as samples (baseline)"
    labels = labels_like_training(restored, n, est.seed)
    mu = draw_samples(restored, n, est.seed, labels=labels)
    return mu, f"{n} samples of G" + (
        ", labels drawn from the training labels" if labels is not None else "")


def kmeans_baseline(restored: RestoredRun, k: int, seed: int, dist=None,
                    progress: Callable[[str], None] | None = None):
    """k-means centres of the training set (cached); with `dist`, rank 0 computes them and
    the other ranks receive them, or None when rank 0 failed (it reports why), so that they
    stop with it instead of dying in the collective when it exits."""
    from .kmeans import kmeans_centres

    if dist is not None and not dist.is_main:
        km = dist.broadcast(None)
        if km is None:
            raise RunError("rank 0 could not compute the k-means centres")
        return km
    try:
        warn = (lambda m: progress(f"warning: {m}")) if progress else None
        km = kmeans_centres(restored.splits.train, k, seed, device=restored.device,
                            warn=warn, progress=progress)
    except BaseException:
        if dist is not None:
            dist.broadcast(None)
        raise
    return dist.broadcast(km) if dist is not None else km


def _parzen_by_label(est: _ParzenSetting,
                     evaluate: np.ndarray) -> tuple[list[dict[str, Any]], str]:
    """One estimate per class: its rows, and where the samples came from."""
    sp = est.restored.splits
    classes = _classes(est.restored, "--by-label")
    ey, vy = sp.labels(est.split), sp.labels("valid")
    if ey is None or (est.sigma is None and vy is None):
        raise DataError(f"--by-label needs the labels of the {est.split} and valid splits")
    rows = [_parzen_of_class(est, c, evaluate[ey == c], vy) for c in range(classes)]
    source = (f"per class: up to {est.samples} training examples of that class (baseline)"
              if est.baseline == "train" else f"per class: {est.samples} samples of G(·|class)")
    return rows, source


def _parzen_of_class(est: _ParzenSetting, c: int, points: np.ndarray,
                     vy: np.ndarray | None) -> dict[str, Any]:
    """Class c's points scored by samples of G(·|c) (or class c's training examples), σ chosen
    on class c's validation points."""
    if len(points) == 0:
        return {"label": c, "n_evaluated": 0, "mean_log_likelihood": None, "stderr": None,
                "sigma": None, "valid_used": 0}
    sp = est.restored.splits
    valid = est.limited(sp.valid[vy == c] if vy is not None else sp.valid[:0])
    if est.sigma is None and len(valid) == 0:
        raise DataError(f"class {c} has no validation points to choose σ on; give --sigma")
    if est.baseline == "train":
        ty = sp.train_y
        own = sp.train[ty == c] if ty is not None else sp.train[:0]
        mu = own[np.random.default_rng([est.seed, c]).permutation(len(own))[:est.samples]]
    else:
        mu = draw_samples(est.restored, est.samples, est.seed + c, label=c)
    res = est.score(mu, valid, points)
    return {"label": c, "n_evaluated": res.n_eval, "mean_log_likelihood": res.mean,
            "stderr": res.stderr, "sigma": res.sigma, "valid_used": est.valid_used(valid),
            "samples": len(mu), "valid_scores": _valid_scores(res)}


def _valid_scores(res) -> list[dict[str, Any]]:
    """The mean validation log-likelihood per σ of the grid; a σ too small for the data's
    distances in float64 has a mean of −∞ (not chosen): null, with the reason."""
    return [{"sigma": k, "mean_log_likelihood": v} if np.isfinite(v) else
            {"sigma": k, "mean_log_likelihood": None, "why_null": "−∞: at this σ some points' "
             "squared distance to the nearest sample over 2σ² passes float64's range"}
            for k, v in res.valid_scores.items()]


def _parzen_provenance(est: _ParzenSetting, source: str, t0: float) -> dict[str, Any]:
    """The report's fields shared by both kinds of estimate: settings, data, where and when."""
    restored, sp, dist = est.restored, est.restored.splits, est.dist
    return {
        "sigma_fixed": est.sigma is not None, "sigma_grid": est.grid if est.sigma is None else None,
        "samples": est.samples, "source": source, "baseline": est.baseline,
        "evaluated_split": est.split,
        "split_sizes": {"train": len(sp.train), "valid": len(sp.valid), "test": len(sp.test)},
        "data": sp.source, "seed": est.seed, "backend": restored.backend, "device": restored.device,
        "seconds": round(time.perf_counter() - t0, 3),
        "processes": dist.world if dist is not None else 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
        "caveat": "Parzen-window estimates have high variance, work poorly in high dimensions "
                  "and reward memorisation" + ("." if est.baseline
                                               else "; compare with --baseline train and "
                                                    "--baseline kmeans."),
    }


def theory(restored: RestoredRun, *, samples: int, seed: int, out: Path | None) -> dict[str, Any]:
    from . import theory as T

    if restored.program.data_shape != (1,):
        raise UsageError(f"--theory needs 1-D data; this run's data is {restored.program.data_shape}")
    if restored.program.conditional:
        raise UsageError("--theory compares D with D* of an unconditional GAN; this run is "
                         "conditional")
    g = draw_samples(restored, samples, seed)
    data = restored.splits.test if len(restored.splits.test) else restored.splits.train
    spec = restored.spec.data
    p_data = None
    if isinstance(spec, Gaussian1dData):
        p_data = lambda xs: T.normal_pdf(xs, spec.mean, spec.std)  # noqa: E731
    fake = draw_samples(restored, min(samples, 20_000), seed + 1)
    th, curves = T.measure(restored.trainer.discriminate, g, data, p_data, fake)
    png = T.plot(curves, th, _out_path(restored.run, out, "eval",
                                       f"theory-step-{restored.step:07d}.png"),
                 follow=out is not None)
    report = {"run": restored.run.name, "checkpoint_step": restored.step, **th.as_dict(),
              "samples": samples, "seed": seed, "figure": str(png)}
    _write_report(restored.run, "theory.json", report, "theory")
    return report
