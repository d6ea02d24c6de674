"""The data order: epochs of shuffled minibatch positions."""

from __future__ import annotations

from typing import Any

import numpy as np


class DataStream:
    """Epochs of shuffled minibatch positions; the partial batch at an epoch's end is dropped.
    It only counts and shuffles: handing a new order to the trainer is the loop's job."""

    def __init__(self, n: int, m: int, rng: np.random.Generator):
        self.n, self.m, self.rng = n, m, rng
        self.per_epoch = n // m
        self.batches = 0  # minibatches drawn so far
        self.order = rng.permutation(n)

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.batches // self.per_epoch

    @property
    def epoch_float(self) -> float:
        return self.batches / self.per_epoch

    def next(self) -> tuple[int, bool]:
        """The next minibatch: its first position in `order`, and whether it begins a new
        epoch, i.e. whether `order` was just reshuffled."""
        i = self.batches % self.per_epoch
        reshuffled = i == 0 and self.batches > 0
        if reshuffled:
            self.order = self.rng.permutation(self.n)
        self.batches += 1
        return i * self.m, reshuffled

    def state(self) -> dict[str, Any]:
        return {"batches": self.batches, "rng": self.rng.bit_generator.state}

    def restore(self, state: dict[str, Any], order: np.ndarray) -> None:
        self.batches = int(state["batches"])
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(order, dtype=np.int64)
