"""The members of a sweep trained in lockstep: the `Members` protocol, and the generic engine
that any backend gives (`LoopMembers`: one solo trainer per member, stepped one after another).

A backend can do better with `build_members(programs, device, seeds, batch_size, optim)`: one
program for all members (the torch backend stacks each parameter along a leading member
dimension). Either way member i computes what a solo trainer built from programs[i] and
seeds[i] computes, and its state_dict is a solo trainer's, so every member is a plain run.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from ..backend_protocol import OptimConfig, Trainer
from ..ir import Program


class Members(Protocol):
    """N members sharing the data, the batch size and the step positions; each has its own
    parameters, optimiser state, generator (noise, dropout, labels) and data order. The
    per-member sequences (lr, momentum, penalties, decay) have one entry per member."""

    n: int
    engine: str  # "batched" (one program for all) | "loop" (one trainer per member)

    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None: ...

    def set_order(self, i: int, order: np.ndarray) -> None: ...

    def d_step(self, pos: int, lr: Sequence[float], momentum: Sequence[float],
               penalties: Sequence[tuple[str, ...]]) -> None: ...

    def g_step(self, lr: Sequence[float], momentum: Sequence[float]) -> None: ...

    def ema_step(self, decay: Sequence[float | None]) -> None:
        """None for a member without an EMA."""

    def read_metrics(self, reset: bool = True) -> list[dict[str, float]]:
        """Per member, what Trainer.read_metrics gives (with `finite`)."""

    def freeze(self, i: int) -> None:
        """Member i diverged: it is no longer trained. Whatever it computes from now on never
        changes another member's numbers; its metrics and state are not read again."""

    def member(self, i: int) -> Trainer:
        """Member i as a Trainer (state_dict, load_state_dict, generate, discriminate,
        sample_noise, read_metrics) for checkpoints, sample grids and the Parzen monitor."""


class LoopMembers:
    """One solo trainer per member, stepped in turn: any backend, any mix of programs."""

    engine = "loop"

    def __init__(self, trainers: list[Trainer]):
        self.trainers = trainers
        self.n = len(trainers)
        self.active = [True] * self.n

    def _live(self):
        return [(i, t) for i, t in enumerate(self.trainers) if self.active[i]]

    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        for t in self.trainers:
            t.load_data(x, y)

    def set_order(self, i: int, order: np.ndarray) -> None:
        self.trainers[i].set_order(order)

    def d_step(self, pos: int, lr: Sequence[float], momentum: Sequence[float],
               penalties: Sequence[tuple[str, ...]]) -> None:
        for i, t in self._live():
            t.d_step(pos, lr[i], momentum[i], penalties=penalties[i])

    def g_step(self, lr: Sequence[float], momentum: Sequence[float]) -> None:
        for i, t in self._live():
            t.g_step(lr[i], momentum[i])

    def ema_step(self, decay: Sequence[float | None]) -> None:
        for i, t in self._live():
            if decay[i] is not None:  # (a member without an EMA, among members with one)
                t.ema_step(decay[i])

    def read_metrics(self, reset: bool = True) -> list[dict[str, float]]:
        return [t.read_metrics(reset=reset) if self.active[i] else {"finite": 0.0}
                for i, t in enumerate(self.trainers)]

    def freeze(self, i: int) -> None:
        self.active[i] = False

    def member(self, i: int) -> Trainer:
        return self.trainers[i]


# On the CPU a member step above this many FLOPs is compute-bound already: one program for
# all members was no faster than the members one after another (bench/sweep.py: the paper's
# MNIST nets, 4.0 GFLOP, 0.8-0.9x at 16 members; ring2d, 0.18 GFLOP, 1.3-1.6x; toy1d,
# 0.04 GFLOP, 2x), since the stacked activations leave the caches a solo step works in.
CPU_BATCH_FLOPS = 1e9


def auto_loop(programs: list[Program], device: str, batch_size: int, k: int) -> str | None:
    """Why `--engine auto` trains these members one after another, or None to batch them."""
    from ..ops.costs import iteration_flops

    if len(programs) == 1:
        return "one member: nothing to batch"
    flops = iteration_flops(programs[0].G, programs[0].D, batch_size, k)
    if device.startswith("cpu") and flops > CPU_BATCH_FLOPS:
        return (f"on the CPU, nets of {flops / 1e9:.1f} GFLOP per step are compute-bound: "
                "batched, they train no faster (--engine batched forces it)")
    return None


def build_members(backend: Any, programs: list[Program], device: str, seeds: list[int],
                  batch_size: int, optim: list[dict[str, OptimConfig]],
                  engine: str = "auto") -> Members:
    """The backend's batched engine where it has one and the members can share a program
    (`engine` "auto" or "batched"), else one trainer per member ("loop")."""
    batched = getattr(backend, "build_members", None)
    if engine != "loop" and batched is not None:
        out = batched(programs, device, seeds, batch_size, optim)
        if out is not None:
            return out
    if engine == "batched":
        from ..backend_protocol import why_not_one_program
        from ..errors import UsageError

        why = why_not_one_program(programs, optim) if batched is not None else \
            "it has no batched engine"
        raise UsageError(f"backend {backend.name!r} cannot train these members as one batched "
                         f"program ({why or 'their features'}): use --engine loop")
    return LoopMembers([backend.build(p, device, s, batch_size, o)
                        for p, s, o in zip(programs, seeds, optim)])
