"""Starting a sweep (its directory, every member's run, then the loop) and resuming one from
the last step at which every live member was checkpointed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..data.report import LoadReport
from ..errors import CheckpointError, RunError, UsageError
from ..names import check_name, is_name_stem
from ..run.context import Context
from ..run.directory import RunDir
from ..run.restore import load_state, validate_and_restore
from ..spec import LoadedSpec, load_file
from ..train.hooks import TrainingHooks
from ..train.loop import Outcome
from ..train.resuming import _check_not_stopped, _check_spec_unchanged, _resumed_spec
from ..train.starting import _record, _with_class_names, absolute_paths
from .directory import SweepDir
from .loop import run_sweep
from .plan import Member, load_members, members as plan_members, parse_seeds, parse_vary
from .session import SweepSession, build_sweep


def start_sweep(spec: Path, overrides: list[str], seeds_text: str, vary_items: list[str],
                name: str | None, root: Path, ctx: Context, data_root: str | None,
                engine: str, hooks: TrainingHooks, report: LoadReport | None = None
                ) -> tuple[SweepDir, Outcome, str | None]:
    """A new sweep of `spec`: every member checked and built before any directory is made."""
    seeds, vary = parse_seeds(seeds_text), parse_vary(vary_items)
    base = load_file(spec, overrides)  # the spec's own problems, before any member's
    stem = name or f"{_stem(base, spec)}-sweep"
    planned = plan_members(check_name(stem), seeds, vary)
    loaded = [_absolute(ls) for ls in load_members(spec, overrides, planned)]
    sw, why = build_sweep(planned, loaded, ctx, data_root, engine, report)
    sweep_run = RunDir.create(root, name, stem=stem)
    sweep = SweepDir(sweep_run.path)
    final = plan_members(sweep.name, seeds, vary) if name is None else planned
    runs = _create_members(sweep, final)
    sw.members = final
    locked: list[Any] = []
    try:
        for r in [sweep, *runs]:
            r.lock()
            locked.append(r)
        for i, (m, run) in enumerate(zip(final, runs)):
            ls = _with_class_names(loaded[i], sw.sessions[i])
            _record(run, ls, ctx, data_root, sw.first.splits.provenance)
            run.write_info(sweep=sweep.name, setting=m.setting)
        sweep.write_info(**_sweep_info(sweep.name, spec, ctx, sw, vary, seeds, why))
        return sweep, run_sweep(sweep, runs, sw, hooks), why
    finally:
        for r in locked:
            r.unlock()


def _stem(base: LoadedSpec, spec: Path) -> str:
    stem = base.spec.name or spec.stem
    return stem if is_name_stem(stem + "-sweep") else "run"


def _absolute(ls: LoadedSpec) -> LoadedSpec:
    return LoadedSpec(absolute_paths(ls.spec, ls.base_dir), ls.positions, ls.path)


def _create_members(sweep: SweepDir, members: list[Member]) -> list[RunDir]:
    """Every member's run directory; one whose name is taken leaves nothing behind."""
    root = sweep.path.parent
    taken = [m.name for m in members if (root / m.name).exists()]
    made: list[RunDir] = []
    try:
        if taken:
            raise RunError(f"run {taken[0]!r} already exists in {root}: a member of sweep "
                           f"{sweep.name!r} would be written there; pick another --name")
        for m in members:
            made.append(RunDir.create(root, m.name))
    except BaseException:
        for r in made:
            shutil.rmtree(r.path, ignore_errors=True)
        shutil.rmtree(sweep.path, ignore_errors=True)
        raise
    return made


def _sweep_info(name: str, spec: Path, ctx: Context, sw: SweepSession, vary, seeds,
                why: str | None) -> dict[str, Any]:
    return {"name": name, "status": "running", "step": 0, "epoch": 0,
            "spec_source": str(spec), "backend": ctx.backend, "device": ctx.device,
            "engine": sw.engine.engine, "why_loop": why, "seeds": seeds,
            "vary": {v.key: list(v.values) for v in vary},
            "members": [{"name": m.name, "seed": m.seed, "values": m.values,
                         "setting": m.setting, "status": "running"} for m in sw.members]}


def resume_sweep(root: Path, name: str, data_root: str | None, overrides: list[str],
                 hooks: TrainingHooks, backend: str | None, device: str | None,
                 engine: str, report: LoadReport | None = None
                 ) -> tuple[SweepDir, Outcome, str | None]:
    """Continue sweep `name` from the newest step every live member has a checkpoint of."""
    sweep = SweepDir.resolve(name, root)
    locked: list[Any] = []
    try:
        sweep.lock()
        locked.append(sweep)
        info = sweep.info()
        runs = sweep.member_runs(info)
        for r in runs:
            r.lock()
            locked.append(r)
        return _resume(sweep, info, runs, data_root, overrides, hooks, backend, device,
                       engine, report)
    finally:
        for r in locked:
            r.unlock()


def _resume(sweep: SweepDir, info: dict[str, Any], runs: list[RunDir], data_root, overrides,
            hooks, backend, device, engine, report) -> tuple[SweepDir, Outcome, str | None]:
    members = [Member(m["name"], m["seed"], m.get("values", {}),
                      {k: str(v) for k, v in m.get("values", {}).items()})
               for m in info["members"]]
    live = [m.get("status") != "diverged" for m in info["members"]]
    if not any(live):
        raise UsageError(f"sweep {sweep.name!r}: every member diverged; nothing to resume")
    specs = [_resumed_spec(r, overrides) for r in runs]
    first = runs[0].info()
    ctx = Context(backend or info.get("backend") or "torch",
                  device or info.get("device") or "cpu", None)
    engine = engine if engine != "auto" else ("loop" if info.get("engine") == "loop" else "auto")
    sw, why = build_sweep(members, [s[0] for s in specs], ctx,
                          data_root or first.get("data_root"), engine, report)
    step = _common_step(runs, live)
    partial = [False] * len(runs)  # an interval logged off the schedule (see truncate_metrics)
    for i, run in enumerate(runs):
        if not live[i]:
            sw.engine.freeze(i)
            sw.live[i] = False
            continue
        counts = _restore_member(sw, i, run, step, specs[i][1], hooks)
        partial[i] = counts is not None and bool(counts.any())
    ref = sw.sessions[sw.live_indices()[0]]
    for i, ok in enumerate(live):  # a frozen member keeps the others' counters
        if not ok:
            s = sw.sessions[i]
            s.step, s.updates = ref.step, dict(ref.updates)
            s.stream.batches = ref.stream.batches
    _check_not_stopped(sweep.name, ref)
    for i in sw.live_indices():
        loaded, _, changed = specs[i]
        if changed:
            from ..atomic import atomic_write
            from ..spec import dump_resolved

            atomic_write(runs[i].spec_path, dump_resolved(loaded.spec).encode())
        runs[i].truncate_metrics(step, partial_at_step=partial[i])
        runs[i].write_info(status="running", step=step, resumed_from=step)
    sweep.write_info(status="running", step=step, backend=ctx.backend, device=ctx.device,
                     engine=sw.engine.engine, why_loop=why)
    return sweep, run_sweep(sweep, runs, sw, hooks), why


def _common_step(runs: list[RunDir], live: list[bool]) -> int:
    steps = None
    for r, ok in zip(runs, live):
        if ok:
            have = {c.step for c in r.checkpoints()}
            steps = have if steps is None else steps & have
    if not steps:
        raise CheckpointError("no checkpoint step is common to every live member of the "
                              "sweep; resume a member on its own with `advgraph train --resume`")
    return max(steps)


def _restore_member(sw: SweepSession, i: int, run: RunDir, step: int, original,
                    hooks: TrainingHooks):
    """Member i from its checkpoint at `step`; returns the checkpoint's metric counts."""
    s = sw.sessions[i]
    ckpt, tensors, state = run.latest_checkpoint(step=step, warn=hooks.warn)
    _check_spec_unchanged(run, ckpt, state, original)
    same = (state.get("backend") == s.ctx.backend and state.get("device") == s.ctx.device
            and state.get("world_size", 1) == 1)
    validate_and_restore(ckpt, tensors, state, s, same)
    load_state(s.trainer, ckpt, tensors, s.program)
    sw.engine.set_order(i, s.stream.order)
    return tensors.get("metrics/counts")
