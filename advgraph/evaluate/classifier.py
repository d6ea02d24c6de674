"""The domain classifier whose features the sample-quality metrics use.

Inception weights cannot be downloaded here, and for 28×28 data the practice is a feature
extractor of the data's own domain: a small LeNet-like convnet (an MLP for flat data) trained
on the run's training set and labels with a fixed seed. It is trained once per data set and
cached under the cache root (advgraph.cache: <root>/classifiers),
keyed by a digest of the training data and labels, the architecture and the recipe; the cache
records the weights' SHA-256 (checked on every load: a damaged file is retrained) and the test
accuracy, which every result reports. Its penultimate layer (128 features) feeds the Fréchet
distance and precision/recall; its softmax feeds the classifier score.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError, WriteError
from ..jsontext import dump_bytes

WEIGHTS_LIMIT = 2**30  # bytes of cached classifier weights (a few MB): more is not ours
RECIPE = {"version": 1, "features": 128, "epochs": 4, "batch": 128, "lr": 1e-3, "seed": 0}


def cache_root() -> Path:
    from ..cache import cache_dir

    return cache_dir("classifiers")


def data_digest(x: np.ndarray, y: np.ndarray, classes: int, shape: tuple[int, ...]) -> str:
    """SHA-256 of the training data, its labels, the number of classes, the shape the net
    takes and the recipe: the classifier's identity."""
    h = hashlib.sha256()
    h.update(json.dumps({**RECIPE, "data": list(x.shape), "classes": classes,
                         "input": list(shape)}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


def _net(shape: tuple[int, ...], classes: int):
    import torch.nn as nn

    f = RECIPE["features"]
    if len(shape) == 3 and min(shape[1:]) >= 16:  # two 5×5 convolutions and two 2×2 pools
        c, h, w = shape
        hh, ww = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        body = nn.Sequential(nn.Conv2d(c, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * hh * ww, f), nn.ReLU())
    else:
        d = int(np.prod(shape))
        body = nn.Sequential(nn.Flatten(), nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, f),
                             nn.ReLU())
    return body, nn.Linear(f, classes)


def _as_input(x: np.ndarray, shape: tuple[int, ...]):
    import torch

    return torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(len(x), *shape))


@dataclass
class DomainClassifier:
    body: Any  # torch module: input → features
    head: Any  # features → logits
    shape: tuple[int, ...]  # an example's shape as the net takes it
    accuracy: float  # on the data set's test split
    digest: str
    path: Path | None = None  # the cached weights; None when they could not be cached
    not_cached: str | None = None  # why they could not be

    def _run(self, x: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        import torch

        feats, probs = [], []
        with torch.no_grad():
            for s in range(0, len(x), batch):
                f = self.body(_as_input(x[s:s + batch], self.shape))
                feats.append(f.numpy().astype(np.float64))
                probs.append(torch.softmax(self.head(f), dim=1).numpy().astype(np.float64))
        return np.concatenate(feats), np.concatenate(probs)

    def features_and_probs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate-layer features (N, 128) and class probabilities (N, classes)."""
        return self._run(x)


def _train(x: np.ndarray, y: np.ndarray, shape: tuple[int, ...], classes: int,
           progress: Callable[[str], None] | None):
    import torch

    with torch.random.fork_rng():  # the caller's torch RNG stays as it was
        torch.manual_seed(RECIPE["seed"])
        body, head = _net(shape, classes)
    return _fit(body, head, x, y, shape, progress)


def _fit(body, head, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...],
         progress: Callable[[str], None] | None):
    import torch

    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=RECIPE["lr"])
    rng = np.random.default_rng(RECIPE["seed"])
    yt = torch.as_tensor(y, dtype=torch.int64)
    for epoch in range(RECIPE["epochs"]):
        order = rng.permutation(len(x))
        for s in range(0, len(x), RECIPE["batch"]):
            idx = order[s:s + RECIPE["batch"]]
            loss = torch.nn.functional.cross_entropy(head(body(_as_input(x[idx], shape))), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if progress:
            progress(f"domain classifier: epoch {epoch + 1}/{RECIPE['epochs']}, "
                     f"loss {loss.item():.3f}")
    body.eval()
    head.eval()
    return body, head


def _accuracy(c: DomainClassifier, x: np.ndarray, y: np.ndarray) -> float:
    return float((c.features_and_probs(x)[1].argmax(1) == y).mean())


def _state(body, head) -> dict[str, np.ndarray]:
    return {**{f"body.{k}": v.numpy() for k, v in body.state_dict().items()},
            **{f"head.{k}": v.numpy() for k, v in head.state_dict().items()}}


def _load_state(body, head, tensors: dict[str, np.ndarray]) -> None:
    import torch

    for prefix, mod in (("body.", body), ("head.", head)):
        mod.load_state_dict({k[len(prefix):]: torch.as_tensor(v) for k, v in tensors.items()
                             if k.startswith(prefix)})
    body.eval()
    head.eval()


def domain_classifier(x_train: np.ndarray, y_train: np.ndarray | None, x_test: np.ndarray,
                      y_test: np.ndarray | None, classes: int, shape: tuple[int, ...],
                      retrain: bool = False, warn: Callable[[str], None] | None = None,
                      progress: Callable[[str], None] | None = None) -> DomainClassifier:
    """The cached classifier for this training set, trained (and cached) when there is none,
    when its file is damaged, or when `retrain`."""
    if y_train is None or y_test is None or (y_train < 0).any():
        raise DataError("the feature metrics need a labelled data set (they train a classifier "
                        "on its labels); this data set has no labels for every example")
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    from ..cache import read_entry

    digest = data_digest(x_train, y_train, classes, shape)
    root = cache_root()
    path, meta_path = root / f"{digest[:32]}.safetensors", root / f"{digest[:32]}.json"
    if not retrain and path.exists() and meta_path.exists():
        try:
            meta = json.loads(read_entry(meta_path, 2**20))  # a record of a few hundred bytes
            if not isinstance(meta, dict) or not isinstance(meta.get("test_accuracy"), float):
                raise ValueError(f"{meta_path} is not a classifier record")
            blob = read_entry(path, WEIGHTS_LIMIT)
            if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
                raise ValueError("its SHA-256 does not match the record")
            body, head = _net(shape, classes)
            _load_state(body, head, st_load(blob))
            return DomainClassifier(body, head, shape, float(meta["test_accuracy"]), digest, path)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
            if warn:
                warn(f"cached domain classifier {path} is unusable ({e}); training it again")
    body, head = _train(x_train, y_train, shape, classes, progress)
    c = DomainClassifier(body, head, shape, 0.0, digest, path)
    c.accuracy = _accuracy(c, x_test, y_test)
    blob = st_save(_state(body, head))
    try:  # minutes of training are not thrown away because the cache cannot be written
        atomic_write(path, blob)
        atomic_write(meta_path, dump_bytes({"sha256": hashlib.sha256(blob).hexdigest(),
                                            "test_accuracy": c.accuracy, "recipe": RECIPE,
                                            "train_examples": len(x_train), "classes": classes,
                                            "data_digest": digest}, str(meta_path), indent=1))
    except WriteError as e:
        c.path, c.not_cached = None, str(e)  # no report names a file that is not there
        if warn:
            warn(f"domain classifier not cached ({e}); it is trained again next time")
    return c
