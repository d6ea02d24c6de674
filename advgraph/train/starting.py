"""Starting a new run: its directory, its recorded spec and provenance, then the loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..data.report import LoadReport
from ..errors import RunError
from ..run.context import Context
from ..run.directory import RunDir
from ..run.session import Session, build_session
from ..spec import LoadedSpec, dump_resolved
from ..spec.gan import GanSpec
from .hooks import NO_HOOKS, TrainingHooks
from .loop import Outcome, run_loop
from .provenance import owner, versions


def start(loaded: LoadedSpec, runs_root: Path, name: str | None, ctx: Context,
          data_root: str | None, hooks: TrainingHooks = NO_HOOKS,
          report: LoadReport | None = None) -> tuple[RunDir, Outcome]:
    """Train a new run of `loaded` under `runs_root`. Distributed: rank 0 creates the run
    directory and tells the other ranks its name. `report` hears of the data's loading."""
    spec = absolute_paths(loaded.spec, loaded.base_dir)
    loaded = LoadedSpec(spec, loaded.positions, loaded.path)
    session = build_session(loaded, ctx, data_root, report)  # before any directory
    loaded = _with_class_names(loaded, session)
    if not ctx.is_main:
        created = ctx.dist.broadcast(None)  # type: ignore[union-attr]
        if created is None:
            raise RunError("rank 0 could not create the run directory")
        run = RunDir(runs_root / created)
        return run, run_loop(run, session)
    try:
        run = RunDir.create(runs_root, name, stem=spec.name or (loaded.path.stem if loaded.path
                                                                else "run"))
    except BaseException:
        if ctx.dist is not None:
            ctx.dist.broadcast(None)
        raise
    if ctx.dist is not None:
        ctx.dist.broadcast(run.name)
    run.lock()
    try:
        run.clean_stale_tmp()
        _record(run, loaded, ctx, data_root, session.splits.provenance)
        return run, run_loop(run, session, hooks)
    finally:
        run.unlock()


def _with_class_names(loaded: LoadedSpec, session: Session) -> LoadedSpec:
    """The classes' names the data gave (a folder's class folders) written into the run's
    spec (data.class_names), so that sample --by-label, interpolate and eval name them
    without reading the data, and a later load can tell the folder's classes changed."""
    names, data = session.splits.class_names, loaded.spec.data
    if not names or getattr(data, "class_names", names) is not None:
        return loaded  # nothing found, or a dataset without the field, or already recorded
    spec = loaded.spec.model_copy(update={"data": data.model_copy(update={"class_names":
                                                                           list(names)})})
    session.spec = spec  # the checkpoints embed the spec as recorded
    return LoadedSpec(spec, loaded.positions, loaded.path)


def _record(run: RunDir, loaded: LoadedSpec, ctx: Context, data_root: str | None,
            data: dict[str, Any] | None = None) -> None:
    """The resolved spec and run.json (with the data's provenance, where the dataset gives
    one), before the first step."""
    atomic_write(run.spec_path, dump_resolved(loaded.spec).encode())
    if data_root is not None:  # the run must find its data again from any directory
        data_root = str(Path(data_root).expanduser().resolve())
    run.write_info(status="running", step=0, epoch=0, backend=ctx.backend, device=ctx.device,
                   data_root=data_root, **owner(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   spec_source=str(loaded.path) if loaded.path else None,
                   versions=versions(ctx.backend), world_size=ctx.world,
                   **({"data": data} if data is not None else {}))


def absolute_paths(spec: GanSpec, base_dir: Path) -> GanSpec:
    """Make data paths absolute, so the run's copy of the spec works from anywhere."""
    from ..data import dataset_for

    return spec.model_copy(update={"data": dataset_for(spec.data, base_dir).with_absolute_paths()})
