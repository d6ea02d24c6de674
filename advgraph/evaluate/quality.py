"""`eval --fid --prdc --score`: G judged in the feature space of a classifier of its own data.

Every row is scored against the same reference, the evaluated split (test by default): G's
samples; held-out real data (the validation split), the floor a G is compared with; and with
`--baseline train`, training examples used as samples, or with `--baseline kmeans`, k-means
centres of the training set (evaluate/kmeans.py). Each result carries the classifier's test
accuracy: features of a weak classifier make weak metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..data import dataset_for
from ..errors import DataError, UsageError
from ..run.samples import draw_samples, labels_like_training
from .classifier import domain_classifier
from .feature_metrics import Moments, classifier_score, frechet_distance, prdc
from .kmeans import kmeans_baseline
from .reports import write_report

METRICS = ("fid", "prdc", "score")
PRDC_K = 5
MAX_REFERENCE = 10_000  # precision/recall are O(N²) in memory: at most this many points a side


# How a data set that can have labels is given them, for the message refusing the metrics
LABEL_HINTS = {
    "npz": "; name the labels array with data.labels",
    "images": "; give them with data.labels: subdirs (a folder per class) or a labels file "
              "(CSV file,label or dataset.json); --parzen needs none",
}


def _label_classes(restored) -> int:
    """The classes of the data's own labels (the condition's, the dataset's, or the labels
    array's), which the feature metrics' classifier is trained on."""
    sp = restored.splits
    if restored.program.classes is not None:
        return restored.program.classes
    known = dataset_for(restored.spec.data).classes
    if known:
        return known
    if sp.train_y is None or (sp.train_y < 0).any():
        hint = LABEL_HINTS.get(restored.spec.data.dataset, "")
        raise DataError(f"{sp.source}: the feature metrics (`fid`, `prdc`, `score`) need labels "
                        "for every training example (they train a classifier on the data's own "
                        f"labels), and this data has "
                        f"{'none' if sp.train_y is None else 'unlabelled examples'}{hint}")
    return int(sp.train_y.max()) + 1


def _net_shape(restored) -> tuple[int, ...]:
    """An example's shape as the classifier takes it: images as (C, H, W)."""
    shape = restored.program.data_shape
    image = dataset_for(restored.spec.data).image_shape(shape)
    if image is None or len(shape) == 3:
        return shape
    return (1, *image) if len(image) == 2 else tuple(image)


def _score(feats: np.ndarray, probs: np.ndarray, ref: np.ndarray, ref_moments: Moments,
           which: set[str]) -> dict[str, float]:
    out: dict[str, float] = {"n": len(feats)}
    if "fid" in which:
        out["fid"] = frechet_distance(ref_moments, Moments.of(feats))
    if "prdc" in which:
        out.update(prdc(ref, feats[:MAX_REFERENCE], k=PRDC_K))
    if "score" in which:
        out["score"] = classifier_score(probs)
    return out


def _check(restored, split: str, samples: int, baseline: str | None) -> None:
    """What can be refused before minutes of classifier training."""
    sp = restored.splits
    if samples <= PRDC_K:
        raise UsageError(f"`samples` must be more than {PRDC_K} for the feature metrics "
                         f"(precision/recall use the {PRDC_K} nearest neighbours), got {samples}")
    if split == "train":
        raise UsageError("`split` train: the classifier is trained on the training split, so its "
                         "features cannot judge samples against it; use test or valid")
    if baseline in ("train", "kmeans") and samples > len(sp.train):
        raise UsageError(f"`baseline` {baseline}: only {len(sp.train)} training examples for "
                         f"`samples` {samples}")
    if len(getattr(sp, split)) <= PRDC_K:
        raise DataError(f"{sp.source}: the {split} split has {len(getattr(sp, split))} examples; "
                        f"the feature metrics need more than {PRDC_K}")


@dataclass
class _Reference:
    """What the evaluations of one run's checkpoints share (none of it depends on G): the
    classifier, the reference features, and the held-out row."""

    clf: Any
    feats: np.ndarray
    moments: Moments
    held_out: str  # the split of the held-out row
    real_row: dict[str, Any] | None  # None: too few held-out examples


def _reference(restored, which: set[str], samples: int, split: str, retrain: bool,
               warn, progress) -> _Reference:
    sp = restored.splits
    clf = domain_classifier(sp.train, sp.train_y, sp.test, sp.test_y, _label_classes(restored),
                            _net_shape(restored), retrain=retrain, warn=warn, progress=progress)
    feats, _ = clf.features_and_probs(getattr(sp, split)[:MAX_REFERENCE])
    moments = Moments.of(feats)
    held_out = "valid" if split != "valid" else "test"
    real = getattr(sp, held_out)[:samples]
    row = (_score(*clf.features_and_probs(real), feats, moments, which)
           if len(real) > PRDC_K else None)
    return _Reference(clf, feats, moments, held_out, row)


def measure(restored, *, which: set[str], samples: int, seed: int, split: str = "test",
            baseline: str | None = None, retrain: bool = False,
            warn: Callable[[str], None] | None = None,
            progress: Callable[[str], None] | None = None,
            memo: dict | None = None) -> dict[str, Any]:
    """The report: per row (G, held-out real data, optionally training data) the requested
    metrics against the `split` split, with the classifier's identity and accuracy. A
    conditional G's samples take labels drawn from the training labels, as for --parzen: the
    model of p(x) = Σ p(y)·p(x|y) it defines. `memo` (one dict for the checkpoints of one run)
    keeps what does not depend on G, so that only G's row is computed again."""
    t0 = time.perf_counter()
    sp = restored.splits
    classes = _label_classes(restored)
    _check(restored, split, samples, baseline)
    key = (split, samples, frozenset(which))
    ref = memo.get(key) if memo is not None else None
    if ref is None:
        ref = _reference(restored, which, samples, split, retrain, warn, progress)
        if memo is not None:
            memo[key] = ref
    clf, ref_feats, ref_moments = ref.clf, ref.feats, ref.moments
    rows: dict[str, Any] = {}
    fake = draw_samples(restored, samples, seed, labels=labels_like_training(restored, samples,
                                                                             seed))
    rows["G"] = _score(*clf.features_and_probs(fake), ref_feats, ref_moments, which)
    notes: list[str] = []
    about: dict[str, str] = {}  # what a baseline row is, where its name does not say it all
    if ref.real_row is not None:
        rows[f"real ({ref.held_out} split)"] = dict(ref.real_row)
    else:
        notes.append(f"no held-out row: the {ref.held_out} split has "
                     f"{len(getattr(sp, ref.held_out)[:samples])} examples (set data.valid to "
                     "compare G with real data)")
    if baseline == "train":
        rows["train as samples"] = _score(*clf.features_and_probs(sp.train[:samples]),
                                          ref_feats, ref_moments, which)
    if baseline == "kmeans":
        km = kmeans_baseline(restored, samples, seed, progress=progress)
        about["k-means centres"] = f"{samples} {km.describe()}"
        rows["k-means centres"] = _score(*clf.features_and_probs(km.centres), ref_feats,
                                         ref_moments, which)
    return {
        "run": restored.run.name, "checkpoint_step": restored.step, "metric": "quality",
        "weights": restored.weights,
        "metrics": sorted(which), "rows": rows, "rows_about": about, "reference_split": split,
        "reference_n": len(ref_feats), "samples": samples, "seed": seed, "prdc_k": PRDC_K,
        "classifier": {"test_accuracy": clf.accuracy, "data_digest": clf.digest,
                       "path": None if clf.path is None else str(clf.path),
                       "not_cached": clf.not_cached, "classes": classes},
        "data": sp.source, "backend": restored.backend, "device": restored.device,
        "seconds": round(time.perf_counter() - t0, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notes": notes,
    }


def quality(restored, **kwargs: Any) -> dict[str, Any]:
    """`eval --fid/--prdc/--score`: the report of `measure`, written to eval/quality.json."""
    report = measure(restored, **kwargs)
    write_report(restored.run, "quality.json", report, "quality")
    return report
