"""`advgraph train`'s display: the training hooks as a progress bar and metric lines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..train.hooks import StartInfo
from .common import err

LOSSES_WIDTH = len("D 1.2345 G 0.9876 D(x) 0.610 D(G(z)) 0.420")


class _Fields:
    """Stands in for a rich task in a column's format string, to measure its widest text."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields


class Display:
    """Progress on a terminal; plain metric lines otherwise (CI logs, pipes). Implements
    advgraph.train.hooks.TrainingHooks."""

    def __init__(self, console=err) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = None
        self.task = None
        self._last = 0.0
        self._at = (0, 0.0)  # the latest step and epoch, for the bar's last frame
        self.unit = "steps"
        self.total = 0
        self._losses = False

    def start(self, info: StartInfo) -> None:
        self.unit, self.total = info.unit, info.total
        self._at = (info.step, info.epoch)
        resumed = f"resumed at step {info.step}; " if info.step else ""
        self.console.print(f"{info.kind} {info.run_name}: {info.run_path}  ({resumed}on {info.device}; "
                           f"stop after {info.total} {info.unit}; {info.per_epoch} minibatches "
                           "per epoch)")
        if self.live:
            self._start_bar(info)

    def _start_bar(self, info: StartInfo) -> None:
        """Name, position, speed and ETA are never cut: the bar takes what width is left (down
        to 10 columns), and the losses (also on the metric lines above) show only where they
        fit whole."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        total = str(info.total)
        where = (f"step {{task.fields[step]}}/{total} · epoch {{task.fields[epoch]:.2f}}"
                 if info.unit == "steps" else
                 f"step {{task.fields[step]}} · epoch {{task.fields[epoch]:.2f}}/{total}")
        # the widest each text gets: the last step and epoch (by steps, epochs for up to 10
        # D-updates per step), 99,999.9 steps/s, ETA h:mm:ss; one space between columns
        per_epoch = max(info.per_epoch, 1)
        last = ((info.total, 10 * info.total / per_epoch) if info.unit == "steps" else
                (info.total * per_epoch, float(info.total)))
        widest = where.format(task=_Fields(step=last[0], epoch=last[1]))
        room = self.console.width - len(widest) - len("99999.9 steps/s ETA 0:00:00") - 3
        name = room - len(info.run_name) - 1 >= 10  # else it is only on the line above
        room -= (len(info.run_name) + 1) * name
        self._losses = room >= 10 + 1 + LOSSES_WIDTH
        columns = [BarColumn(bar_width=max(10, min(30, room - (LOSSES_WIDTH + 1) * self._losses))),
                   TextColumn(where), TextColumn("{task.fields[rate]}"),
                   TextColumn("ETA"), TimeRemainingColumn()]
        if name:
            columns.insert(0, TextColumn("[bold]{task.fields[name]}"))
        if self._losses:
            columns.insert(-2, TextColumn("{task.fields[losses]}"))
        self.progress = Progress(*columns, console=self.console, transient=False)
        done = info.step if info.unit == "steps" else info.epoch
        self.task = self.progress.add_task("train", total=info.total, completed=done,
                                           name=info.run_name, step=info.step,
                                           epoch=info.epoch, rate="", losses="")
        self.progress.start()

    def tick(self, step: int, epoch: float) -> None:
        self._at = (step, epoch)
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        self._show(step, epoch)

    def _show(self, step: int, epoch: float) -> None:
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
        eta = self._eta(row)
        self.console.print(f"step {row['step']} epoch {row['epoch']:.2f}: {losses} "
                           f"{row['steps_per_s']:.1f} steps/s"
                           + (f", ETA {eta}" if eta else ""), markup=False)
        if self.progress is not None:
            self.progress.update(self.task, rate=f"{row['steps_per_s']:.1f} steps/s",
                                 losses=losses)

    def _eta(self, row: dict[str, Any]) -> str | None:
        """The time left at the interval's speed (for logs without the bar); None before the
        speed is known. By epochs, the steps left follow from steps per epoch so far."""
        step, epoch, rate = row["step"], row["epoch"], row["steps_per_s"]
        if self.unit == "steps":
            left = self.total - step
        elif epoch > 0:
            left = (self.total - epoch) * step / epoch
        else:
            return None
        if not rate or rate <= 0 or left < 0:
            return None
        secs = round(left / rate)
        return f"{secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}"

    def warn(self, msg: str) -> None:
        self.console.print(f"warning: {msg}", markup=False)

    def image(self, tag: str, path: Path, step: int) -> None:
        pass  # the grid's files are listed by the run directory, not on the terminal

    def stop(self) -> None:
        if self.progress is not None:
            self._show(*self._at)  # the last frame shows where training ended, not the last tick
            self.progress.stop()



class LoadDisplay:
    """The data's loading, as the commands show it (advgraph.data.report.LoadReport): a bar
    while a folder of images is prepared on a terminal, a line at its start and end
    otherwise; warnings as every command prints them."""

    def __init__(self, console=err) -> None:
        self.console = console
        self._bar = None
        self._task = None
        self._last = 0.0

    def warn(self, msg: str) -> None:
        self.console.print(f"warning: {msg}", markup=False)

    def progress(self, what: str, done: int, total: int) -> None:
        if not self.console.is_terminal:
            if done == 0 or done >= total:
                self.console.print(f"{what}: {done:,}/{total:,}"
                                   + (" done" if done >= total else ""), markup=False)
            return
        if self._bar is None:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
            self._task = self._bar.add_task(what, total=total)
            self._bar.start()
        now = time.monotonic()
        if done >= total or now - self._last >= 0.1:  # a redraw at most every 0.1 s
            self._last = now
            self._bar.update(self._task, completed=done, total=total)
        if done >= total:
            self._bar.stop()
            self._bar = None
