"""The k-means baseline of Table 1's protocol: k centres of the training set used as samples.

Theis, van den Oord & Bethge (2016, "A note on the evaluation of generative models") showed that
k-means centres (averages of a few similar training examples) get a higher Parzen estimate than
the 2014 paper's GANs: a figure a G has to be read against, beside training examples used as
samples. Lloyd's algorithm from k distinct training examples drawn with the seed (Forgy's start:
k-means++ would take k sequential passes over the data, 10,000 for Table 1); assignments from
the same ‖x‖² + ‖c‖² − 2x·cᵀ expansion as parzen.py, in chunks; sums in float64; an empty
cluster keeps its centre. It stops when no assignment changes or after `iterations` rounds.

The centres are cached beside the domain classifiers (~/.cache/advgraph/kmeans), keyed by a
digest of the data, k, the seed and the iteration limit, with their SHA-256 checked on load.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..atomic import atomic_write
from ..errors import RunError, WriteError
from ..jsontext import dump_bytes

ITERATIONS = 20  # Lloyd rounds at most (Fashion-MNIST, 50,000 examples, k = 10,000: 13)
RECORD_LIMIT = 2**20  # bytes of a cache record (a few hundred): more is not one
NPY_HEADER_LIMIT = 2**16  # the .npy header beside the centres' float32 bytes
VERSION = 2  # bump when the algorithm changes: cached centres are then recomputed


@dataclass
class KMeans:
    centres: np.ndarray  # (k, features) float32
    iterations: int  # Lloyd rounds run
    changed: int  # assignments that changed in the last round (0: converged)
    inertia: float  # mean squared distance of a training example to its nearest centre
    cached: bool = False

    def describe(self) -> str:
        state = "converged" if self.changed == 0 else f"{self.changed} assignments still moving"
        return (f"k-means centres of the training set ({self.iterations} Lloyd rounds, {state}; "
                f"mean squared distance to the centre {self.inertia:.4g})")


def lloyd(x: np.ndarray, k: int, seed: int, iterations: int = ITERATIONS, device: str = "cpu",
          chunk: int = 2048, progress: Callable[[str], None] | None = None) -> KMeans:
    """k-means of the rows of x (any shape (n, …)); centres start at k distinct rows."""
    import torch

    x2 = np.asarray(x, np.float32).reshape(len(x), -1)
    n = len(x2)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 ≤ k ≤ {n} (the examples), got k = {k}")
    dev = torch.device(device)
    xt = torch.as_tensor(x2, device=dev)
    x_sq = (xt * xt).sum(1)
    start = np.sort(np.random.default_rng([seed, 0x6B6D]).choice(n, k, replace=False))
    centres = xt[torch.as_tensor(start, device=dev)].clone()
    assign = torch.full((n,), -1, dtype=torch.int64, device=dev)
    changed, rounds, inertia = n, 0, float("nan")
    with torch.no_grad():
        for rounds in range(1, iterations + 1):
            c_sq = (centres * centres).sum(1)
            sums = torch.zeros(centres.shape, dtype=torch.float64, device=dev)
            counts = torch.zeros(k, dtype=torch.float64, device=dev)
            changed, total = 0, 0.0
            for s in range(0, n, chunk):
                xs = xt[s:s + chunk]
                d2 = torch.addmm(c_sq.unsqueeze(0), xs, centres.T, alpha=-2.0)
                near, a = d2.min(1)
                total += float((near + x_sq[s:s + chunk]).clamp_(min=0).double().sum())
                changed += int((a != assign[s:s + chunk]).sum())
                assign[s:s + chunk] = a
                sums.index_add_(0, a, xs.double())
                counts.index_add_(0, a, torch.ones(len(a), dtype=torch.float64, device=dev))
            inertia = total / n  # of the assignment just made, to the centres it was made to
            full = counts > 0
            centres[full] = (sums[full] / counts[full].unsqueeze(1)).float()
            if progress:
                progress(f"k-means: round {rounds}/{iterations}, {changed} assignments changed, "
                         f"mean squared distance {inertia:.4g}")
            if changed == 0:
                break  # the update kept the centres: `inertia` is already theirs
        if changed:  # the last update moved the centres: measure the ones returned
            inertia = _mean_sq_distance(xt, x_sq, centres, chunk)
    return KMeans(centres.cpu().numpy(), rounds, changed, inertia)


def _mean_sq_distance(xt, x_sq, centres, chunk: int) -> float:
    """Mean squared distance of the rows of xt to their nearest centre (summed in float64)."""
    import torch

    c_sq = (centres * centres).sum(1)
    total = 0.0
    for s in range(0, len(xt), chunk):
        d2 = torch.addmm(c_sq.unsqueeze(0), xt[s:s + chunk], centres.T, alpha=-2.0)
        total += float((d2.min(1)[0] + x_sq[s:s + chunk]).clamp_(min=0).double().sum())
    return total / len(xt)


def _digest(x: np.ndarray, k: int, seed: int, iterations: int) -> str:
    h = hashlib.sha256(json.dumps({"version": VERSION, "shape": list(x.shape), "k": k,
                                   "seed": seed, "iterations": iterations}).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    return h.hexdigest()


def kmeans_centres(x: np.ndarray, k: int, seed: int, iterations: int = ITERATIONS,
                   device: str = "cpu", warn: Callable[[str], None] | None = None,
                   progress: Callable[[str], None] | None = None) -> KMeans:
    """The cached k-means of x (computed and cached when there is none or it is damaged), its
    centres in x's row shape."""
    from ..cache import cache_dir, read_entry

    digest = _digest(x, k, seed, iterations)
    root = cache_dir("kmeans")
    path, meta_path = root / f"{digest[:32]}.npy", root / f"{digest[:32]}.json"
    if path.exists() and meta_path.exists():
        try:
            meta = json.loads(read_entry(meta_path, RECORD_LIMIT))
            blob = read_entry(path, 4 * k * int(np.prod(x.shape[1:])) + NPY_HEADER_LIMIT)
            if not isinstance(meta, dict) or hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
                raise ValueError("its SHA-256 does not match the record")
            centres = np.load(io.BytesIO(blob), allow_pickle=False)  # the bytes just checked
            if centres.shape != (k, *x.shape[1:]) or centres.dtype != np.float32:
                raise ValueError(f"it holds {centres.shape} {centres.dtype} centres")
            return KMeans(centres, int(meta["iterations"]), int(meta["changed"]),
                          float(meta["inertia"]), cached=True)
        except (OSError, ValueError, KeyError, TypeError) as e:
            if warn:
                warn(f"cached k-means centres {path} are unusable ({e}); computing them again")
    km = lloyd(x, k, seed, iterations, device, progress=progress)
    km.centres = km.centres.reshape(k, *x.shape[1:])
    buf = io.BytesIO()
    np.save(buf, km.centres, allow_pickle=False)
    blob = buf.getvalue()
    try:  # minutes of work are not thrown away because the cache cannot be written
        _write_cache(path, meta_path, blob, km, k, seed, iterations, len(x), digest)
    except WriteError as e:
        if warn:
            warn(f"k-means centres not cached ({e}); they are computed again next time")
    return km


def _write_cache(path, meta_path, blob: bytes, km: KMeans, k: int, seed: int, iterations: int,
                 examples: int, digest: str) -> None:
    atomic_write(path, blob)
    atomic_write(meta_path, dump_bytes({"sha256": hashlib.sha256(blob).hexdigest(), "k": k,
                                        "seed": seed, "iterations": km.iterations,
                                        "max_iterations": iterations, "changed": km.changed,
                                        "inertia": km.inertia, "examples": examples,
                                        "data_digest": digest}, str(meta_path), indent=1))


def kmeans_baseline(restored, k: int, seed: int, dist=None,
                    progress: Callable[[str], None] | None = None):
    """k-means centres of the training set (cached); with `dist`, rank 0 computes them and
    the other ranks receive them, or None when rank 0 failed (it reports why), so that they
    stop with it instead of dying in the collective when it exits."""
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
