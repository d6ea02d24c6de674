"""The sweep's loop: Algorithm 1 for every member at once, in lockstep, each member's metrics,
monitor, sample grids and checkpoints written into its own run as the training loop writes a
run's. A member that diverges is frozen and marked; the others go on."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import TrainingDiverged
from ..run.directory import RunDir
from ..train.checkpoint import save
from ..train.hooks import NO_HOOKS, TrainingHooks
from ..train.interrupt import graceful
from ..train.loop import (LOSSES, Outcome, _checkpoint_due, _Clock, _reached_stop, _snapshot,
                          _snapshot_due, interval_ends, is_finite, metrics_row, start_info)
from ..train.monitor import monitor_parzen
from .directory import SweepDir
from .session import SweepSession


def run_sweep(sweep: SweepDir, runs: list[RunDir], sw: SweepSession,
              hooks: TrainingHooks) -> Outcome:
    """Train every live member to the stop condition or an interrupt."""
    s0 = sw.first
    if not sw.is_main:
        hooks = NO_HOOKS
    hooks.start(replace(start_info(sweep, s0), kind="sweep"))  # type: ignore[arg-type]
    t = s0.spec.training
    pz = t.monitor.parzen
    clock = _Clock(s0)
    last: dict[str, Any] | None = None
    status = "finished"
    alive = True
    with graceful() as interrupt:
        while not _reached_stop(s0) and alive:
            epoch_before = s0.stream.epoch
            moms = sweep_step(sw)
            elapsed = clock.elapsed()
            for s in sw.sessions:
                s.elapsed = elapsed
            hooks.tick(s0.step, s0.stream.epoch_float)
            stop_now = _anyone(sw.dist, interrupt.requested)
            ending = stop_now or _reached_stop(s0)
            on_schedule = s0.step % t.log_every == 0
            if on_schedule or ending:
                last = _log(sweep, runs, sw, clock.rate_now(s0.step), moms, on_schedule, hooks)
                alive = _anyone(sw.dist, any(sw.live))  # the ranks stop together
            new_epoch = s0.stream.epoch > epoch_before
            if pz is not None and interval_ends(pz.every, s0.step, s0.stream.epoch, new_epoch):
                for i in sw.live_indices():
                    runs[i].append_metrics(monitor_parzen(sw.sessions[i], pz))
            checkpoint = ending or _checkpoint_due(s0, new_epoch)
            if checkpoint:
                _checkpoint(sweep, runs, sw, hooks)
            # interrupted: checkpoints only (a sample grid per member can take minutes)
            if not stop_now and _snapshot_due(s0, checkpoint, new_epoch):
                for i in sw.live_indices():
                    _snapshot(runs[i], sw.sessions[i], hooks)
            if stop_now:
                status = "interrupted"
                break
    if not alive:
        status = "diverged"
    for i in sw.live_indices():
        runs[i].write_info(status=status, step=s0.step, epoch=s0.stream.epoch,
                           last_metrics=sw.last[i], elapsed_s=round(s0.elapsed, 3))
    _write_statuses(sweep, sw, runs, status)
    return Outcome(status, s0.step, s0.stream.epoch, last)


def _anyone(dist, flag: bool) -> bool:
    return flag if dist is None else dist.any(flag)


def sweep_step(sw: SweepSession) -> list[float]:
    """One iteration of Algorithm 1 for every member (train.loop.train_step, per member);
    returns D's momenta. Every member's counters move, a frozen member's too (its steps are
    the engine's to skip), so they all stay at the same step."""
    ss, eng = sw.sessions, sw.engine
    mom_d = [s.sched["D"].momentum(s.stream.epoch) for s in ss]
    mom_g = [s.sched["G"].momentum(s.stream.epoch) for s in ss]
    for _ in range(ss[0].spec.training.k):
        due = [tuple(p.kind for p in s.program.objective.penalties if p.due(s.updates["D"]))
               for s in ss]
        pos = 0
        for i, s in enumerate(ss):
            pos, reshuffled = s.stream.next()  # the same position for all: same n, same m
            if reshuffled:
                eng.set_order(i, s.stream.order)
        eng.d_step(pos, [s.sched["D"].lr(s.updates["D"]) for s in ss], mom_d, due)
        for s in ss:
            s.updates["D"] += 1
    eng.g_step([s.sched["G"].lr(s.updates["G"]) for s in ss], mom_g)
    for s in ss:
        s.updates["G"] += 1
    ema = [s.program.objective.ema for s in ss]
    if any(e is not None for e in ema):
        eng.ema_step([None if e is None else e.rate(s.updates["G"])  # type: ignore[misc]
                      for e, s in zip(ema, ss)])
    for s in ss:
        s.step += 1
    return mom_d


def _log(sweep: SweepDir, runs: list[RunDir], sw: SweepSession, rate: float,
         moms: list[float], reset: bool, hooks: TrainingHooks) -> dict[str, Any] | None:
    """Every live member's metrics row (one read for all); a member whose losses or
    parameters are not finite is frozen. Returns the live members' mean row (the display's)."""
    ms = sw.engine.read_metrics(reset=reset)
    rows = []
    for i in sw.live_indices():
        s = sw.sessions[i]
        row = metrics_row(s, ms[i], moms[i], rate)
        runs[i].append_metrics(row)
        if is_finite(row, ms[i]["finite"]):
            rows.append(row)
            sw.last[i] = row  # into run.json with the next checkpoint, as train does
        else:
            _diverge(sweep, runs, sw, i, hooks, f"d_loss={row['d_loss']}, g_loss="
                     f"{row['g_loss']}, parameters finite: {bool(ms[i]['finite'])}", row)
    if not rows:
        return None
    mean = {**rows[0], **{k: float(np.mean([r[k] for r in rows])) for k in LOSSES},
            "members": len(rows)}
    hooks.report(mean)
    return mean


def _diverge(sweep: SweepDir, runs: list[RunDir], sw: SweepSession, i: int,
             hooks: TrainingHooks, why: str, row: dict[str, Any] | None = None) -> None:
    s, run = sw.sessions[i], runs[i]
    sw.freeze(i)
    good = run.checkpoints()
    run.write_info(status="diverged", step=s.step, epoch=s.stream.epoch,
                   **({"last_metrics": row} if row is not None else {}))
    if sw.is_main:  # (another rank's members are gathered at the end: _write_statuses)
        sweep.set_member_status(run.name, "diverged")
    hooks.warn(f"member {run.name} diverged at step {s.step} ({why}); frozen, "
               + (f"its last good checkpoint (step {good[-1].step}) kept"
                  if good else "no checkpoint had been written")
               + f"; {sum(sw.live)} member(s) go on")


def _checkpoint(sweep: SweepDir, runs: list[RunDir], sw: SweepSession,
                hooks: TrainingHooks) -> None:
    """Every live member's checkpoint, then the sweep's step (the resume point), then the old
    checkpoints pruned: an interrupt at any point leaves a step every member has."""
    for i in sw.live_indices():
        s = sw.sessions[i]
        try:
            save(runs[i], s, extra_kept=1)
        except TrainingDiverged as e:
            _diverge(sweep, runs, sw, i, hooks, str(e).split(": ", 1)[-1])
            continue
        runs[i].write_info(status="running", step=s.step, epoch=s.stream.epoch,
                           last_metrics=sw.last[i])
    s0 = sw.first
    if sw.dist is not None:
        sw.dist.gather(None)  # every rank has written its members' checkpoints
    if sw.is_main:
        sweep.write_info(step=s0.step, epoch=s0.stream.epoch)
    if sw.dist is not None:
        sw.dist.broadcast(None)  # … and the sweep's step is on disk: prune
    for i in sw.live_indices():
        runs[i].prune_checkpoints(sw.sessions[i].spec.training.keep_checkpoints)


def _write_statuses(sweep: SweepDir, sw: SweepSession, runs: list[RunDir],
                    status: str) -> None:
    """The sweep's status and every member's, from every rank, written by the main one."""
    mine = {r.name: (status if live else "diverged") for r, live in zip(runs, sw.live)}
    parts = [mine] if sw.dist is None else sw.dist.gather(mine)
    if not sw.is_main:
        return
    done = {k: v for part in parts or [] for k, v in part.items()}
    members = sweep.info()["members"]
    for m in members:
        m["status"] = done.get(m["name"], m["status"])
    sweep.write_info(status=status, members=members)
