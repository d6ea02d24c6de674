"""`eval --parzen`: the Parzen log-likelihood of a run's test (or other) points under G's
samples, the paper's Table 1 protocol (the estimator is advgraph/parzen.py), with its
baselines (training examples, k-means centres) and per-class estimates of a conditional G."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import DataError, UsageError
from ..run.restore import RestoredRun
from ..run.samples import condition_classes, draw_samples, labels_like_training
from .kmeans import kmeans_baseline
from .reports import write_report


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
    report: dict[str, Any] = {"run": restored.run.name, "checkpoint_step": restored.step,
                              "weights": restored.weights}
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
    write_report(restored.run, name, report, "parzen")
    return report


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
        raise DataError(f"the {split} split of this run's data is empty{_how(restored, split)}")
    if sigma is None and len(sp.valid) == 0:
        raise DataError("choosing σ needs validation data and the valid split is empty; "
                        "give `sigma`")
    if baseline == "kmeans" and per_label:
        raise UsageError("`baseline` kmeans scores the model of p(x); it does not go with "
                         "`per_label` (use `baseline` train for a per-class reference)")
    if baseline in ("train", "kmeans") and samples > len(sp.train) and not per_label:
        raise UsageError(f"`baseline` {baseline}: only {len(sp.train)} training examples "
                         f"for `samples` {samples}")
    return evaluate


def _how(restored: RestoredRun, split: str) -> str:
    """How to get an empty split: the data key that sizes it, and another split that has
    examples."""
    data, sp = restored.spec.data, restored.splits
    how = []
    if split in ("valid", "test") and split in type(data).model_fields:
        kind = "a count or a share, e.g. 0.1" if data.dataset == "images" else "a count"
        how.append(f"set data.{split} ({kind}) when training")
    other = [s for s in ("test", "valid", "train") if s != split and len(getattr(sp, s))]
    if other:
        how.append(f"use `split` {other[0]}")
    return ": " + ", or ".join(how) if how else ""


def _parzen_overall(est: _ParzenSetting, evaluate: np.ndarray) -> tuple[dict[str, Any], str]:
    """One estimate over all the points, σ chosen on the validation split; the report's
    fields and where the samples came from."""
    valid = est.limited(est.restored.splits.valid)
    mu, source = _parzen_samples(est)
    res = est.score(mu, valid, evaluate)
    return {"mean_log_likelihood": res.mean, "stderr": res.stderr, "sigma": res.sigma,
            "valid_scores": _valid_scores(res), "n_evaluated": res.n_eval,
            "valid_used": est.valid_used(valid)}, source


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


def _parzen_by_label(est: _ParzenSetting,
                     evaluate: np.ndarray) -> tuple[list[dict[str, Any]], str]:
    """One estimate per class: its rows, and where the samples came from."""
    sp = est.restored.splits
    classes = condition_classes(est.restored, "`per_label`")
    ey, vy = sp.labels(est.split), sp.labels("valid")
    if ey is None or (est.sigma is None and vy is None):
        raise DataError(f"`per_label` needs the labels of the {est.split} and valid splits")
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
        raise DataError(f"class {c} has no validation points to choose σ on; give `sigma`")
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
