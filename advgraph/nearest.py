"""Nearest training example (squared Euclidean distance) for each query, in bounded memory."""

from __future__ import annotations

import numpy as np


def nearest(queries: np.ndarray, train: np.ndarray, chunk: int = 10_000,
            device: str = "cpu", dist=None) -> tuple[np.ndarray, np.ndarray]:
    """(index into train, squared distance) of each query's nearest training example.

    The training set is scanned in chunks of `chunk` rows, so memory stays at
    queries × chunk distances whatever the training set's size. Distances of the winners are
    recomputed directly in float64, so the reported value is exact. With `dist`, each rank scans
    its own share of the training set and the best of the ranks' winners is kept (every rank
    gets the answer).
    """
    if dist is not None:
        bounds = np.linspace(0, len(train), dist.world + 1).astype(int)
        lo, hi = bounds[dist.rank], bounds[dist.rank + 1]
        idx, d2 = nearest(queries, train[lo:hi], chunk, device) if hi > lo else (
            np.zeros(len(queries), np.int64), np.full(len(queries), np.inf))
        parts = dist.gather((idx + lo, d2))
        if dist.is_main:
            all_idx = np.stack([p[0] for p in parts])
            all_d2 = np.stack([p[1] for p in parts])
            best = all_d2.argmin(0)
            cols = np.arange(len(queries))
            result = (all_idx[best, cols], all_d2[best, cols])
        else:
            result = None
        return dist.broadcast(result)
    import torch

    q = torch.as_tensor(np.asarray(queries, np.float32).reshape(len(queries), -1), device=device)
    q_sq = (q * q).sum(1)
    best = torch.full((len(q),), float("inf"), device=device)
    arg = torch.zeros(len(q), dtype=torch.int64, device=device)
    flat = np.asarray(train).reshape(len(train), -1)
    with torch.no_grad():
        for start in range(0, len(flat), chunk):
            t = torch.as_tensor(flat[start:start + chunk], dtype=torch.float32, device=device)
            d2 = torch.addmm((t * t).sum(1).unsqueeze(0), q, t.T, alpha=-2.0).add_(q_sq.unsqueeze(1))
            val, idx = d2.min(1)
            better = val < best
            best = torch.where(better, val, best)
            arg = torch.where(better, idx + start, arg)
    idx = arg.cpu().numpy()
    exact = ((flat[idx].astype(np.float64) - np.asarray(queries, np.float64).reshape(len(q), -1)) ** 2).sum(1)
    return idx, exact
