"""Deterministic train/valid/test: a permutation of the sorted file list by a seed."""

from __future__ import annotations

import numpy as np


def split_indices(n: int, valid: int | float, test: int | float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (into the sorted list of usable images) of train, valid and test.
    `valid`/`test`: a count, or a fraction in (0, 1) of n (rounded). DataError when they leave
    no training example."""
    raise NotImplementedError
