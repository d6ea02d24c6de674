"""The training loop: Algorithm 1 step by step, with metrics, monitoring and checkpoints.

One *step* is one iteration of Algorithm 1: k D-updates, each on a fresh minibatch of m
examples and m noise samples, then one G-update on fresh noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend_protocol import Trainer
from ..errors import AdvGraphError, TrainingDiverged
from ..run.context import Context
from ..run.directory import RunDir
from ..run.session import Session
from ..run.stream import DataStream
from .checkpoint import save
from .hooks import NO_HOOKS, SAMPLE_GRID, StartInfo, TrainingHooks
from .interrupt import graceful
from .monitor import monitor_parzen

LOSSES = ("d_loss", "g_loss", "d_real", "d_fake")


@dataclass
class Outcome:
    status: str  # finished | interrupted
    step: int
    epoch: int
    last: dict[str, Any] | None


def run_loop(run: RunDir, s: Session, hooks: TrainingHooks = NO_HOOKS) -> Outcome:
    """Train until the stop condition or an interrupt. Only the main rank writes the run
    directory and tells `hooks`; the others train in lockstep."""
    if s.is_main:
        hooks.start(start_info(run, s))
    else:
        run, hooks = _ReadOnlyRun(run), NO_HOOKS  # type: ignore[assignment]
    t = s.spec.training
    pz = t.monitor.parzen if s.is_main else None
    clock = _Clock(s)
    last: dict[str, Any] | None = None
    status = "finished"
    try:
        with graceful() as interrupt:
            while not _reached_stop(s):
                epoch_before = s.stream.epoch
                momentum = train_step(s)
                s.elapsed = clock.elapsed()
                hooks.tick(s.step, s.stream.epoch_float)
                stop_now = _anyone(interrupt.requested, s.ctx)
                ending = stop_now or _reached_stop(s)
                on_schedule = s.step % t.log_every == 0
                if on_schedule or ending:
                    last, finite = _log_metrics(run, s, clock, momentum, reset=on_schedule)
                    _check_finite(s.step, last, finite)
                    hooks.report(last)
                new_epoch = s.stream.epoch > epoch_before
                if pz is not None and interval_ends(pz.every, s.step, s.stream.epoch,
                                                    new_epoch):
                    row = monitor_parzen(s, pz)
                    run.append_metrics(row)
                    hooks.report(row)
                checkpoint = ending or _checkpoint_due(s, new_epoch)
                if checkpoint:
                    save(run, s)  # refuses non-finite tensors
                    run.write_info(status="running", step=s.step, epoch=s.stream.epoch,
                                   last_metrics=last)
                if s.is_main and _snapshot_due(s, checkpoint, new_epoch):
                    _snapshot(run, s, hooks)
                if stop_now:
                    status = "interrupted"
                    break
    except TrainingDiverged as e:
        raise _diverged(run, s, last, e) from None
    run.write_info(status=status, step=s.step, epoch=s.stream.epoch, last_metrics=last,
                   elapsed_s=round(s.elapsed, 3))
    return Outcome(status, s.step, s.stream.epoch, last)


def start_info(run: RunDir, s: Session) -> StartInfo:
    stop = s.spec.training.stop
    total, unit = (stop.steps, "steps") if stop.steps is not None else (stop.epochs, "epochs")
    return StartInfo(run.name, run.path, s.step, total, unit,  # type: ignore[arg-type]
                     s.stream.per_epoch, s.stream.epoch_float, s.ctx.device)


def train_step(s: Session) -> float:
    """One iteration of Algorithm 1; returns D's momentum (for the metrics row)."""
    sd, sg = s.sched["D"], s.sched["G"]
    mom_d, mom_g = sd.momentum(s.stream.epoch), sg.momentum(s.stream.epoch)
    objective = s.program.objective
    for _ in range(s.spec.training.k):
        due = tuple(p.kind for p in objective.penalties if p.due(s.updates["D"]))
        s.trainer.d_step(next_minibatch(s.stream, s.trainer), sd.lr(s.updates["D"]), mom_d,
                         penalties=due)
        s.updates["D"] += 1
    s.trainer.g_step(sg.lr(s.updates["G"]), mom_g)
    s.updates["G"] += 1
    if objective.ema is not None:
        s.trainer.ema_step(objective.ema.rate(s.updates["G"]))
    s.step += 1
    return mom_d


def next_minibatch(stream: DataStream, trainer: Trainer) -> int:
    """The next minibatch's position; a new epoch's order reaches the trainer before it."""
    pos, reshuffled = stream.next()
    if reshuffled:
        trainer.set_order(stream.order)
    return pos


def interval_ends(every, step: int, epoch: int, new_epoch: bool) -> bool:
    """Whether an interval of `every` (steps, or epochs) ends at this step: when the Parzen
    monitor runs, a checkpoint is saved, a sample grid is drawn."""
    if every.steps is not None:
        return step % every.steps == 0
    return new_epoch and epoch % every.epochs == 0


def _reached_stop(s: Session) -> bool:
    stop = s.spec.training.stop
    return (stop.steps is not None and s.step >= stop.steps) or \
           (stop.epochs is not None and s.stream.epoch >= stop.epochs)


def _checkpoint_due(s: Session, new_epoch: bool) -> bool:
    return interval_ends(s.spec.training.checkpoint, s.step, s.stream.epoch, new_epoch)


def _snapshot_due(s: Session, checkpoint: bool, new_epoch: bool) -> bool:
    grid = s.spec.training.sample_grid
    if grid is None:
        return False
    if grid.every is None:
        return checkpoint
    return interval_ends(grid.every, s.step, s.stream.epoch, new_epoch)


def _snapshot(run: RunDir, s: Session, hooks: TrainingHooks) -> None:
    """The sample grid; failing to draw or write it costs the image, not the run."""
    from .snapshots import write_snapshot

    try:
        path = write_snapshot(run, s)
    except (AdvGraphError, OSError, ValueError) as e:
        hooks.warn(f"step {s.step}: sample grid not written: {e}")
        return
    hooks.image(SAMPLE_GRID, path, s.step)


def _anyone(requested: bool, ctx: Context) -> bool:
    """Ranks must stop at the same step: whether any of them was interrupted."""
    return requested if ctx.dist is None else ctx.dist.any(requested)


class _Clock:
    """Training time (carried over a resume) and the step rate of each logging interval."""

    def __init__(self, s: Session):
        self.t0 = self.interval_t0 = time.perf_counter()
        self.elapsed0, self.interval_step = s.elapsed, s.step

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def rate_now(self, step: int) -> float:
        return self.rate(time.perf_counter(), step)

    def rate(self, now: float, step: int) -> float:
        """Steps per second since the last call (or the start); starts the next interval."""
        rate = round((step - self.interval_step) / max(now - self.interval_t0, 1e-9), 2)
        self.interval_t0, self.interval_step = now, step
        return rate


def _log_metrics(run: RunDir, s: Session, clock: _Clock, momentum: float,
                 reset: bool) -> tuple[dict[str, Any], bool]:
    """The interval's metrics row, written, and whether the parameters are all finite."""
    now = time.perf_counter()
    # Off the schedule (a stop, an interrupt) the sums run on: they are checkpointed, and a
    # resumed run logs the whole interval on schedule.
    m = s.trainer.read_metrics(reset=reset)
    row = metrics_row(s, m, momentum, clock.rate(now, s.step))
    run.append_metrics(row)
    return row, m["finite"]


def metrics_row(s: Session, m: dict[str, float], momentum: float,
                rate: float) -> dict[str, Any]:
    """A metrics.jsonl row from the trainer's interval means `m`."""
    sd, sg = s.sched["D"], s.sched["G"]
    return {"step": s.step, "epoch": round(s.stream.epoch_float, 4),
            **{key: m[key] for key in LOSSES + s.program.objective.metric_names()},
            "lr_d": sd.lr(s.updates["D"]), "lr_g": sg.lr(s.updates["G"]), "momentum": momentum,
            "steps_per_s": rate, "time_s": round(s.elapsed, 3)}


def is_finite(row: dict[str, Any], finite: bool) -> bool:
    """Whether the interval's losses and the parameters (`finite`) are all finite."""
    return bool(finite) and all(np.isfinite(row[key]) for key in LOSSES)


def _check_finite(step: int, row: dict[str, Any], finite: bool) -> None:
    """A non-finite loss or parameter stops the run (after its row is written)."""
    if not is_finite(row, finite):
        raise TrainingDiverged(f"step {step}: training diverged (d_loss={row['d_loss']}, "
                               f"g_loss={row['g_loss']}, parameters finite: {bool(finite)})")


def _diverged(run: RunDir, s: Session, last: dict[str, Any] | None,
              e: TrainingDiverged) -> TrainingDiverged:
    """Mark the run diverged; the error to raise says what was kept."""
    run.write_info(status="diverged", step=s.step, epoch=s.stream.epoch, last_metrics=last)
    good = run.checkpoints()
    return TrainingDiverged(
        f"{e}; " + (f"the last good checkpoint (step {good[-1].step}) is kept"
                    if good else "no checkpoint had been written")
        + "; try a smaller learning rate")


class _ReadOnlyRun:
    """A run directory as a non-main rank sees it: readable, never written."""

    def __init__(self, run: RunDir):
        self._run = run

    def __getattr__(self, name: str):
        return getattr(self._run, name)

    def append_metrics(self, row: dict[str, Any]) -> None:
        pass

    def write_info(self, **updates: Any) -> dict[str, Any]:
        return {}

    def truncate_metrics(self, *args: Any, **kwargs: Any) -> None:
        pass
