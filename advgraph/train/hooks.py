"""What a front end (the CLI's progress display) is told while a run trains."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SAMPLE_GRID = "samples/training"  # the image tag of the fixed-noise grid (snapshots.py)


@dataclass(frozen=True)
class StartInfo:
    """A run about to train (or to continue)."""

    run_name: str
    run_path: Path
    step: int  # the step it resumes at; 0 for a new run
    total: int  # the stop condition: `total` `unit`
    unit: str  # "steps" or "epochs"
    per_epoch: int  # minibatches per epoch
    epoch: float  # epochs done so far
    device: str = "cpu"  # where it trains (what --device auto chose)
    kind: str = "run"  # or "sweep" (advgraph sweep)


class TrainingHooks(Protocol):
    def start(self, info: StartInfo) -> None:
        """Before the first step (rank 0 only)."""

    def tick(self, step: int, epoch: float) -> None:
        """After every step: keep it cheap."""

    def report(self, row: dict[str, Any]) -> None:
        """Each metrics row as it is written (training metrics, Parzen monitoring)."""

    def warn(self, msg: str) -> None:
        """Something the user should know that does not stop the run."""

    def image(self, tag: str, path: Path, step: int) -> None:
        """An image just written into the run directory (the sample grid), as its PNG file."""


class NoHooks:
    """Tell nobody: the default for library callers, and what non-main ranks use."""

    def start(self, info: StartInfo) -> None:
        pass

    def tick(self, step: int, epoch: float) -> None:
        pass

    def report(self, row: dict[str, Any]) -> None:
        pass

    def warn(self, msg: str) -> None:
        pass

    def image(self, tag: str, path: Path, step: int) -> None:
        pass


NO_HOOKS = NoHooks()


class Fanout:
    """Several front ends told the same things, in the order given (the display, then
    TensorBoard)."""

    def __init__(self, *hooks: TrainingHooks) -> None:
        self.hooks = hooks

    def start(self, info: StartInfo) -> None:
        for h in self.hooks:
            h.start(info)

    def tick(self, step: int, epoch: float) -> None:
        for h in self.hooks:
            h.tick(step, epoch)

    def report(self, row: dict[str, Any]) -> None:
        for h in self.hooks:
            h.report(row)

    def warn(self, msg: str) -> None:
        for h in self.hooks:
            h.warn(msg)

    def image(self, tag: str, path: Path, step: int) -> None:
        for h in self.hooks:
            h.image(tag, path, step)
