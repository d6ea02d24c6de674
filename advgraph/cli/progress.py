"""`advgraph train`'s display: the training hooks as a progress bar and metric lines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..train.hooks import StartInfo
from .common import err


class Display:
    """Progress on a terminal; plain metric lines otherwise (CI logs, pipes). Implements
    advgraph.train.hooks.TrainingHooks."""

    def __init__(self, console=err) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = None
        self.task = None
        self._last = 0.0
        self.unit = "steps"

    def start(self, info: StartInfo) -> None:
        self.unit = info.unit
        resumed = f"resumed at step {info.step}; " if info.step else ""
        self.console.print(f"run {info.run_name}: {info.run_path}  ({resumed}on {info.device}; "
                           f"stop after {info.total} {info.unit}; {info.per_epoch} minibatches "
                           "per epoch)")
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            of = f"/{info.total}" if info.unit == "steps" else ""
            self.progress = Progress(
                TextColumn("[bold]{task.fields[name]}"), BarColumn(bar_width=30),
                TextColumn("step {task.fields[step]}" + of + " · epoch {task.fields[epoch]:.2f}"
                           + ("/" + str(info.total) if info.unit == "epochs" else "")),
                TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[losses]}"),
                TextColumn("ETA"), TimeRemainingColumn(), console=self.console,
                transient=False)
            done = info.step if info.unit == "steps" else info.epoch
            self.task = self.progress.add_task("train", total=info.total, completed=done,
                                               name=info.run_name, step=info.step,
                                               epoch=info.epoch, rate="", losses="")
            self.progress.start()

    def tick(self, step: int, epoch: float) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        self.progress.update(self.task, completed=step if self.unit == "steps" else epoch,
                             step=step, epoch=epoch)

    def report(self, row: dict[str, Any]) -> None:
        # One line per logging interval; on a terminal it scrolls above the progress bar, which
        # keeps the latest losses, D outputs and speed.
        if "parzen_valid" in row:
            v = row["parzen_valid"]
            self.console.print(f"step {row['step']} epoch {row['epoch']:.2f}: Parzen log-likelihood of "
                      f"validation data (σ {row['parzen_sigma']}, {row['parzen_samples']} "
                      f"samples): " + ("n/a (no validation data)" if v is None else f"{v:.2f}"),
                      markup=False)
            return
        losses = (f"D {row['d_loss']:.4f} G {row['g_loss']:.4f} "
                  f"D(x) {row['d_real']:.3f} D(G(z)) {row['d_fake']:.3f}")
        self.console.print(f"step {row['step']} epoch {row['epoch']:.2f}: {losses} "
                           f"{row['steps_per_s']:.1f} steps/s", markup=False)
        if self.progress is not None:
            self.progress.update(self.task, rate=f"{row['steps_per_s']:.1f} steps/s",
                                 losses=losses)

    def warn(self, msg: str) -> None:
        self.console.print(f"warning: {msg}", markup=False)

    def image(self, tag: str, path: Path, step: int) -> None:
        pass  # the grid's files are listed by the run directory, not on the terminal

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
