"""Resuming a run from its latest good checkpoint, exactly where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..atomic import atomic_write
from ..errors import CheckpointError, RunError, UsageError
from ..run.context import Context
from ..run.directory import RunDir
from ..data.report import LoadReport
from ..run.restore import data_changed, load_state, validate_and_restore
from ..run.session import Session, build_session
from ..spec import LoadedSpec, dump_resolved, load_file
from ..spec.gan import GanSpec
from .hooks import NO_HOOKS, TrainingHooks
from .loop import Outcome, run_loop
from .provenance import owner, versions

# Keys that may change when a run is resumed: when it stops, how it logs and checkpoints.
RESUMABLE = ("stop", "checkpoint", "keep_checkpoints", "log_every", "monitor", "sample_grid")


def resume(runs_root: Path, name: str, data_root: str | None, overrides: list[str],
           hooks: TrainingHooks = NO_HOOKS, *, backend: str | None = None,
           device: str | None = None, dist=None,
           report: LoadReport | None = None) -> tuple[RunDir, Outcome]:
    """Continue run `name`, on its own backend and device unless others are given; `report`
    hears of the data's loading."""
    run = RunDir.resolve(name, runs_root)
    writer = dist is None or dist.is_main
    refused = None
    if writer:
        try:
            run.lock()  # before anything is read: a run being trained is refused
            run.clean_stale_tmp()  # left by a writer killed mid-write
        except RunError as e:
            refused = str(e)
    if dist is not None:  # every rank stops if rank 0 could not take the lock
        refused = dist.broadcast(refused)
    if refused is not None:
        raise RunError(refused)
    try:
        return run, _resume(run, data_root, overrides, hooks, backend, device, dist, report)
    finally:
        if writer:
            run.unlock()


def _resume(run: RunDir, data_root: str | None, overrides: list[str], hooks: TrainingHooks,
            backend: str | None, device: str | None, dist,
            report: LoadReport | None = None) -> Outcome:
    info = run.info()
    loaded, original, changed = _resumed_spec(run, overrides)
    ctx = Context(backend or info.get("backend") or "torch",
                  device or info.get("device") or "cpu", dist)
    session = build_session(loaded, ctx, data_root or info.get("data_root"), report)
    why = data_changed(info, session.splits)
    if why is not None:  # as an edited spec: another data set is another run
        raise UsageError(f"run {run.name!r}: {why}; restore the images, or train a new run "
                         "on them")
    ckpt, tensors = _restore(run, session, original, hooks)
    _check_not_stopped(run.name, session)
    if not ctx.is_main:
        return run_loop(run, session)
    if changed:
        atomic_write(run.spec_path, dump_resolved(loaded.spec).encode())
    counts = tensors.get("metrics/counts")
    run.truncate_metrics(session.step, partial_at_step=counts is not None and bool(counts.any()))
    run.write_info(status="running", step=session.step, epoch=session.stream.epoch,
                   backend=ctx.backend, device=ctx.device, resumed_from=ckpt.step, **owner(),
                   versions=versions(ctx.backend), world_size=ctx.world)
    return run_loop(run, session, hooks)


def _resumed_spec(run: RunDir, overrides: list[str]) -> tuple[LoadedSpec, GanSpec, list[str]]:
    """The run's spec with `overrides`, the spec as it was, and the paths that changed (only
    those in RESUMABLE may)."""
    if not run.spec_path.is_file():
        raise RunError(f"{run.spec_path}: missing; cannot resume")
    loaded = load_file(run.spec_path, overrides, stored=True)
    original = load_file(run.spec_path, stored=True).spec
    changed = _changed_paths(original.model_dump(), loaded.spec.model_dump())
    illegal = _not_resumable(changed)
    if illegal:
        raise UsageError("on `resume` only training." + "/".join(RESUMABLE)
                         + f" may change; `overrides` changes {', '.join(illegal)}")
    return loaded, original, changed


def _restore(run: RunDir, session: Session, original: GanSpec, hooks: TrainingHooks):
    """The latest good checkpoint, checked, into the session. Returns it and its tensors."""
    ctx = session.ctx
    ckpt, tensors, state = run.latest_checkpoint(warn=hooks.warn if ctx.is_main else None)
    _check_spec_unchanged(run, ckpt, state, original)
    same_stream = (state.get("backend") == ctx.backend and state.get("device") == ctx.device
                   and state.get("world_size", 1) == ctx.world)
    validate_and_restore(ckpt, tensors, state, session, same_stream)
    load_state(session.trainer, ckpt, tensors, session.program)
    session.trainer.set_order(session.stream.order)
    if state.get("backend") not in (None, ctx.backend) and ctx.is_main:
        hooks.warn(f"resuming a {state['backend']} checkpoint on {ctx.backend}: parameters, "
                   f"optimiser state and data order carry over; the noise and dropout streams "
                   f"start afresh (each backend has its own generator), so the run is valid but "
                   f"not what {state['backend']} would have computed")
    return ckpt, tensors


def _check_not_stopped(name: str, session: Session) -> None:
    """A run already at its stop is refused, with the override that trains it further."""
    stop = session.spec.training.stop
    if (stop.steps is not None and session.step >= stop.steps) or \
       (stop.epochs is not None and session.stream.epoch >= stop.epochs):
        what = f"{stop.steps} steps" if stop.steps is not None else f"{stop.epochs} epochs"
        raise UsageError(f"run {name!r} already reached its stop ({what}) at step "
                         f"{session.step}; train further with e.g. `overrides` "
                         f"training.stop.{'steps' if stop.steps is not None else 'epochs'}=N")


def _check_spec_unchanged(run: RunDir, ckpt, state: dict[str, Any], on_disk: GanSpec) -> None:
    """The run's spec.yaml against the spec its checkpoint was trained with: a change outside
    the keys that may change on resume (an edited learning rate, say) is refused, as it is
    through --set."""
    trained = state.get("spec")
    if trained is None:  # checkpoints from before specs were embedded
        return
    try:  # through the model: fields added by a later advgraph get their defaults
        trained = GanSpec.model_validate(trained).model_dump(mode="json")
    except ValidationError as e:
        raise CheckpointError(f"{ckpt.state_path}: its embedded spec does not validate "
                              f"({e.error_count()} problem(s), e.g. {e.errors()[0]['msg']})"
                              ) from None
    illegal = _not_resumable(_changed_paths(trained, on_disk.model_dump(mode="json")))
    if illegal:
        raise UsageError(f"{run.spec_path}: edited since the checkpoint at step {ckpt.step} "
                         f"outside the keys that may change on resume (training."
                         + "/".join(RESUMABLE) + f"): {', '.join(illegal)}; restore it, or "
                         "train a new run with the new spec")


def _not_resumable(changed: list[str]) -> list[str]:
    """The changed spec paths that may not change on resume."""
    return [p for p in changed if not any(p == f"training.{k}" or p.startswith(f"training.{k}.")
                                          for k in RESUMABLE)]


def _changed_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _changed_paths(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if a == b else [prefix]
