"""The random streams a run derives from its one seed."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Seeds(NamedTuple):
    """Independent streams for parameter init, data order, and the backend's noise/dropout."""

    init: np.random.Generator
    data: np.random.Generator
    backend: int


def seeds(seed: int) -> Seeds:
    init_ss, data_ss, backend_ss = np.random.SeedSequence(seed).spawn(3)
    return Seeds(np.random.default_rng(init_ss), np.random.default_rng(data_ss),
                 int(backend_ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))


def rank_seed(seed: int, rank: int) -> int:
    """The backend seed (noise, dropout) of a rank; rank 0 keeps the single-process one."""
    if rank == 0:
        return seeds(seed).backend
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> np.uint64(1))
