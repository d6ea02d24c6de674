"""Deterministic train/valid/test: a permutation of the sorted file list by a seed."""

from __future__ import annotations

import numpy as np

from ...errors import DataError


def _count(n: int, share: int | float, name: str) -> int:
    """A count as given, or a fraction in (0, 1) of n rounded (at least 1 when n > 1)."""
    if isinstance(share, bool) or share < 0:
        raise DataError(f"`{name}` must be a count ≥ 0 or a share in (0, 1); got {share}")
    if isinstance(share, float) and not share.is_integer():
        if share >= 1:
            raise DataError(f"`{name}` must be a count ≥ 0 or a share in (0, 1); got {share}")
        return max(1, round(n * share)) if n > 1 else 0
    return int(share)


def split_indices(n: int, valid: int | float, test: int | float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (into the sorted list of usable images) of train, valid and test, each
    ascending. `valid`/`test`: a count, or a fraction in (0, 1) of n (rounded, at least one
    image when n > 1). Test is the permutation's head, valid the next rows. DataError when they
    leave no training example."""
    v, t = _count(n, valid, "valid"), _count(n, test, "test")
    if v + t >= n:
        raise DataError(f"`valid` ({v}) and `test` ({t}) leave no training image of the {n} "
                        "usable ones")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[t + v:]), np.sort(perm[t:t + v]), np.sort(perm[:t])
