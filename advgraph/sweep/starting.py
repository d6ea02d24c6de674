"""Starting a sweep (its directory, every member's run, then the loop) and resuming one from
the last step at which every live member was checkpointed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..data.report import LoadReport
from ..errors import CheckpointError, RunError, UsageError
from ..names import check_name, is_name_stem
from ..run.context import Context
from ..run.directory import RunDir
from ..run.restore import load_state, validate_and_restore
from ..spec import LoadedSpec, dump_resolved, load_file
from ..train.hooks import TrainingHooks
from ..train.loop import Outcome
from ..train.resuming import _check_not_stopped, _check_spec_unchanged, _resumed_spec
from ..train.provenance import versions
from ..train.starting import _record, _with_class_names, absolute_paths
from .directory import SweepDir
from .loop import run_sweep
from .plan import Member, load_members, members as plan_members, parse_seeds, parse_vary
from .session import SweepSession, build_sweep, shard


def start_sweep(spec: Path, overrides: list[str], seeds_text: str, vary_items: list[str],
                name: str | None, root: Path, ctx: Context, data_root: str | None,
                engine: str, hooks: TrainingHooks, report: LoadReport | None = None
                ) -> tuple[SweepDir, Outcome, str | None]:
    """A new sweep of `spec`: every member checked and built before any directory is made.
    With `ctx.dist`, each rank trains its shard of the members and rank 0 makes the
    directories and writes sweep.json."""
    dist = ctx.dist
    seeds, vary = parse_seeds(seeds_text), parse_vary(vary_items)
    base = load_file(spec, overrides)  # the spec's own problems, before any member's
    stem = name or f"{_stem(base, spec)}-sweep"
    planned = plan_members(check_name(stem), seeds, vary)
    loaded = [_absolute(ls) for ls in load_members(spec, overrides, planned)]
    mine = shard(_check_world(len(planned), dist), dist)
    local = Context(ctx.backend, dist.device if dist is not None else ctx.device)
    sw, why = build_sweep(planned, loaded, local, data_root, engine, report, dist, mine)
    sweep = _create(root, name, stem, seeds, vary, dist)
    final = plan_members(sweep.name, seeds, vary)
    runs = [RunDir(root / final[i].name) for i in mine]
    sw.members = [final[i] for i in mine]
    locked: list[Any] = []
    try:
        for r in ([sweep] if sw.is_main else []) + runs:
            r.lock()
            locked.append(r)
        if sw.is_main:  # first: a sweep killed while its members are recorded is one that
            # `rm SWEEP` deletes and `sweep --resume` names, not directories no command knows
            sweep.write_info(**_sweep_info(sweep.name, spec, ctx, sw, final, vary, seeds, why))
        for i, (m, run) in enumerate(zip(sw.members, runs)):
            ls = _with_class_names(loaded[mine[i]], sw.sessions[i])
            _record(run, ls, local, data_root, sw.first.splits.provenance)
            run.write_info(sweep=sweep.name, setting=m.setting)
        if dist is not None:
            dist.broadcast(None)  # sweep.json is there before any rank trains
        return sweep, run_sweep(sweep, runs, sw, hooks), why
    finally:
        for r in locked:
            r.unlock()


def _create(root: Path, name: str | None, stem: str, seeds, vary, dist) -> SweepDir:
    """The sweep's directory and every member's run directory, made by rank 0, whose name
    the other ranks are told (None: it failed, and says why itself)."""
    made = None
    try:
        if dist is None or dist.is_main:
            sweep = SweepDir(RunDir.create(root, name, stem=stem).path)
            _create_members(sweep, plan_members(sweep.name, seeds, vary))
            made = sweep.name
    finally:
        if dist is not None:
            made = dist.broadcast(made)
    if made is None:
        raise RunError("rank 0 could not create the sweep's directories")
    return SweepDir(root / made)


def _check_world(n: int, dist) -> int:
    if dist is not None and dist.world > n:
        raise UsageError(f"{dist.world} processes for {n} member(s): each process trains at "
                         "least one member; lower --nproc")
    return n


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


def _sweep_info(name: str, spec: Path, ctx: Context, sw: SweepSession, members: list[Member],
                vary, seeds, why: str | None) -> dict[str, Any]:
    return {"name": name, "status": "running", "step": 0, "epoch": 0,
            "spec_source": str(spec), "backend": ctx.backend, "device": ctx.device,
            "engine": sw.engine.engine, "why_loop": why, "world_size": ctx.world,
            "seeds": seeds, "vary": {v.key: list(v.values) for v in vary},
            "members": [{"name": m.name, "seed": m.seed, "values": m.values,
                         "setting": m.setting, "status": "running"} for m in members]}


def resume_sweep(root: Path, name: str, data_root: str | None, overrides: list[str],
                 hooks: TrainingHooks, backend: str | None, device: str | None,
                 engine: str, report: LoadReport | None = None, dist=None
                 ) -> tuple[SweepDir, Outcome, str | None]:
    """Continue sweep `name` from the newest step every live member has a checkpoint of
    (with `dist`, each rank its shard of the members, however many ranks trained it)."""
    sweep = SweepDir.resolve(name, root)
    info = _without_missing(sweep, sweep.info(), hooks, dist)  # (before a lock could make one)
    runs = sweep.member_runs(info)
    mine = shard(_check_world(len(runs), dist), dist)
    locked: list[Any] = []
    try:
        refused = None
        try:
            for r in ([sweep] if dist is None or dist.is_main else []) + [runs[i] for i in mine]:
                r.lock()
                locked.append(r)
                r.clean_stale_tmp()  # left by a writer killed mid-write (as train --resume)
        except RunError as e:
            refused = str(e)
        if dist is not None:  # every rank stops when one could not take its locks
            parts = dist.gather(refused)
            refused = dist.broadcast(next((x for x in parts or [] if x), None))
        if refused is not None:
            raise RunError(refused)
        return _resume(sweep, info, runs, mine, data_root, overrides, hooks, backend, device,
                       engine, report, dist)
    finally:
        for r in locked:
            r.unlock()


def _without_missing(sweep: SweepDir, info: dict[str, Any], hooks: TrainingHooks,
                     dist) -> dict[str, Any]:
    """sweep.json's members less those whose run was deleted (`rm MEMBER`): the sweep goes
    on without them, each marked `missing` in sweep.json, as eval, plot and runs leave out."""
    runs = sweep.member_runs(info)
    gone = [m for m, r in zip(info["members"], runs)
            if m.get("status") == "missing" or not r.path.is_dir()]
    if not gone:
        return info
    kept = [m for m in info["members"] if m not in gone]
    if not any(m.get("status") != "diverged" for m in kept):
        raise RunError(f"sweep {sweep.name!r}: no member left to train (deleted: "
                       f"{', '.join(m['name'] for m in gone)})")
    new = [m["name"] for m in gone if m.get("status") != "missing"]
    if new and (dist is None or dist.is_main):
        hooks.warn(f"member(s) {', '.join(new)} deleted: the sweep goes on without them")
        for m in gone:
            m["status"] = "missing"
        sweep.write_info(members=info["members"])
    return {**info, "members": kept}


def _live(info: dict[str, Any], runs: list[RunDir]) -> list[bool]:
    """Members not diverged, by sweep.json and by their own run.json (a rank other than the
    main one marks only its member's run)."""
    out = []
    for m, r in zip(info["members"], runs):
        out.append(m.get("status") != "diverged" and r.info().get("status") != "diverged")
    return out


def _resume(sweep: SweepDir, info: dict[str, Any], runs: list[RunDir], mine: list[int],
            data_root, overrides, hooks, backend, device, engine, report,
            dist) -> tuple[SweepDir, Outcome, str | None]:
    members = [Member(m["name"], m["seed"], m.get("values", {}),
                      {k: str(v) for k, v in m.get("values", {}).items()})
               for m in info["members"]]
    live_all = _live(info, runs)
    if not any(live_all):
        raise UsageError(f"sweep {sweep.name!r}: every member diverged; nothing to resume")
    step = _common_step(sweep.name, runs, live_all, hooks.warn)
    specs = [_resumed_spec(r, overrides) for r in runs]
    dev = device or info.get("device") or "cpu"
    ctx = Context(backend or info.get("backend") or "torch",
                  dist.device if dist is not None else dev)
    engine = engine if engine != "auto" else ("loop" if info.get("engine") == "loop" else "auto")
    sw, why = build_sweep(members, [s[0] for s in specs], ctx,
                          data_root or runs[0].info().get("data_root"), engine, report, dist,
                          mine)
    runs, specs, live = ([xs[i] for i in mine] for xs in (runs, specs, live_all))
    partial = [False] * len(runs)  # an interval logged off the schedule (see truncate_metrics)
    for i, run in enumerate(runs):
        if live[i]:
            counts = _restore_member(sw, i, run, step, specs[i][1], hooks)
            partial[i] = counts is not None and bool(counts.any())
    for i, s in enumerate(sw.sessions):  # a frozen member keeps the others' counters
        if not live[i]:
            sw.freeze(i)
            s.step, s.updates = step, {"D": step * s.spec.training.k, "G": step}
            s.stream.batches = s.updates["D"]
    _check_not_stopped(sweep.name, sw.sessions[0])
    for i in sw.live_indices():
        loaded, _, changed = specs[i]
        if changed:
            atomic_write(runs[i].spec_path, dump_resolved(loaded.spec).encode())
        runs[i].truncate_metrics(step, partial_at_step=partial[i])
        # the backend, device and versions that train from here on, as `train --resume` writes
        runs[i].write_info(status="running", step=step, resumed_from=step,
                           backend=ctx.backend, device=dev, versions=versions(ctx.backend))
    if sw.is_main:
        sweep.write_info(status="running", step=step, backend=ctx.backend, device=dev,
                         engine=sw.engine.engine, why_loop=why,
                         world_size=1 if dist is None else dist.world)
    if dist is not None:
        dist.broadcast(None)
    return sweep, run_sweep(sweep, runs, sw, hooks), why


def _common_step(name: str, runs: list[RunDir], live: list[bool], warn) -> int:
    """The newest step at which every live member's checkpoint verifies; a damaged one
    (checksum, missing file) falls back to the step before, as `train --resume` does. Every
    rank reads every member's, so all ranks agree on the step."""
    steps: set[int] | None = None
    for r, ok in zip(runs, live):
        if ok:
            have = {c.step for c in r.checkpoints()}
            steps = have if steps is None else steps & have
    if not steps:
        if not any(r.checkpoints() for r, ok in zip(runs, live) if ok):
            raise CheckpointError(f"sweep {name!r} has no checkpoint yet (it stopped before "
                                  f"its first); delete it (advgraph rm {name}) and start again")
        bare = [r.name for r, ok in zip(runs, live) if ok and not r.checkpoints()]
        if bare:  # its first checkpoint was cut short (a full disk, a kill) after some members
            raise CheckpointError(
                f"sweep {name!r} has no checkpoint that every member has ({', '.join(bare)} "
                "have none: its first checkpoint was cut short); start it again "
                f"(advgraph rm {name})")
        raise CheckpointError("no checkpoint step is common to every live member of the "
                              "sweep; resume a member on its own with `advgraph train --resume`")
    problems = []
    for step in sorted(steps, reverse=True):
        bad = _unusable_at(runs, live, step)
        if bad is None:
            return step
        warn(f"skipping step {step} for every member: {bad}")
        problems.append(bad)
    raise CheckpointError("no checkpoint step common to every live member is usable:\n"
                          + "\n".join(problems))


def _unusable_at(runs: list[RunDir], live: list[bool], step: int) -> str | None:
    """Why some live member's checkpoint at `step` cannot be restored (None: all verify)."""
    for r, ok in zip(runs, live):
        if not ok:
            continue
        try:
            r.latest_checkpoint(step=step)
        except CheckpointError as e:
            return str(e).removeprefix("no usable checkpoint:\n")
    return None


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
