"""`advgraph train`: one code path for a single process and for each rank of `--nproc N`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import UsageError
from .common import (RunsDirOpt, SetOpt, complete_run, complete_spec, console, err, runs_root,
                     sweep_at, user_errors)
from .completion import choices
from .ranks import ranks


SpecOrNoneArg = typer.Argument(None, metavar="SPEC", help="The spec file (omit with --resume).",
                               autocompletion=complete_spec)
BackendOpt = typer.Option(None, "--backend", "-b", help="Backend plugin [default: torch, or the "
                          "run's own on --resume].")
DeviceOpt = typer.Option(None, "--device", autocompletion=choices("auto", "cpu", "cuda"),
                         help="auto, cpu, cuda or cuda:N [default: auto (CUDA when available, "
                         "else the CPU), or the run's own on --resume].")
DataRootOpt = typer.Option(None, "--data-root", help="Directory holding the dataset's files "
                           "(overrides data.root).")
NameOpt = typer.Option(None, "--name", help="Run name [default: the spec's name and a counter, "
                       "e.g. mnist-001].")
ResumeOpt = typer.Option(None, "--resume", metavar="RUN", autocompletion=complete_run,
                         help="Continue RUN from its latest good checkpoint.")
NprocOpt = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine "
                        "(torch.distributed: gloo on CPU, NCCL on CUDA). The spec's batch size "
                        "is the global one.")
TensorBoardOpt = typer.Option(False, "--tensorboard", help="Also write TensorBoard events "
                              "(metrics, Parzen monitor, sample grids) to "
                              "runs/<name>/tensorboard/; needs 'advgraph[tensorboard]'.")


def train(
    spec: Optional[Path] = SpecOrNoneArg, backend: Optional[str] = BackendOpt,
    device: Optional[str] = DeviceOpt, data_root: Optional[str] = DataRootOpt,
    name: Optional[str] = NameOpt, resume: Optional[str] = ResumeOpt,
    set_: Optional[List[str]] = SetOpt, runs_dir: Optional[Path] = RunsDirOpt,
    nproc: int = NprocOpt, tensorboard: bool = TensorBoardOpt,
) -> None:
    """Train G and D with Algorithm 1 into runs/<name>/ (Ctrl-C checkpoints and stops)."""
    from ..distributed import world_from_env
    from ..train.hooks import NO_HOOKS, Fanout

    root, overrides = runs_root(runs_dir), set_ or []
    with user_errors():
        rank = world_from_env()[0]
        _check_source(spec, resume, name)
        if resume is not None and sweep_at(resume, runs_dir) is not None:
            raise UsageError(f"{resume} is a sweep: continue it with advgraph sweep --resume "
                             f"{resume} (or one member with train --resume <member>)")
        if tensorboard:  # before any rank starts or any directory is made
            from ..train.tensorboard import require

            require()
        if resume is None or device == "auto":
            device = _auto_device(device, backend or "torch")
    display, board = _reporters(rank, tensorboard)
    hooks = Fanout(display, board) if board is not None else display or NO_HOOKS
    with user_errors(rank):
        try:
            with ranks(nproc, device or "cpu",
                       lambda: _check_once(nproc, spec, resume, backend, overrides)) as dist:
                world = dist.world if dist is not None else 1
                run, outcome = _train(spec, resume, name, backend, device, data_root, overrides,
                                      root, dist, hooks, _load_display(rank))
        finally:
            if board is not None:
                board.close()
            if display is not None:
                display.stop()
    if rank == 0:
        _print_outcome(run, outcome, world)
    elif outcome.status == "interrupted":
        raise typer.Exit(130)


def _reporters(rank: int, tensorboard: bool) -> tuple[Any, Any]:
    """The progress display and the TensorBoard writer (with --tensorboard): rank 0 alone
    reports, as it alone writes the run directory (None, None on the other ranks)."""
    if rank != 0:
        return None, None
    from .progress import Display

    display = Display()
    if not tensorboard:
        return display, None
    from ..train.tensorboard import TensorBoardHooks

    return display, TensorBoardHooks(warn=display.warn)


def _load_display(rank: int):
    """The data's loading shown on rank 0 (a folder of images being prepared), as sample and
    eval show it."""
    if rank != 0:
        return None
    from .progress import LoadDisplay

    return LoadDisplay()


def _auto_device(device: Optional[str], backend: str) -> str:
    """What --device auto means here (the start line says where the run trains)."""
    from ..backend_protocol import resolve_device

    return resolve_device(device, backend)


def _check_source(spec: Optional[Path], resume: Optional[str], name: Optional[str]) -> None:
    """A new run from a spec, or a resumed one: not both, not neither."""
    if resume is not None:
        if spec is not None:
            raise UsageError("give either a spec file or --resume RUN, not both")
        if name is not None:
            raise UsageError("--name cannot rename a resumed run")
    elif spec is None:
        raise UsageError("missing spec file (or --resume RUN)")


def _check_once(nproc: int, spec: Optional[Path], resume: Optional[str],
                backend: Optional[str], overrides: list[str]) -> None:
    """Before starting `nproc` ranks, what can be checked once (not once per rank)."""
    if (backend or "torch") != "torch":
        raise UsageError(f"--nproc needs the torch backend; {backend!r} trains on one device only")
    if spec is not None and resume is None:
        from ..compile import compile_spec
        from ..data import data_info
        from ..spec import load_file

        loaded = load_file(spec, overrides)
        compile_spec(loaded, data_info(loaded))
        m = loaded.spec.training.batch_size
        if m % nproc:
            raise UsageError(f"training.batch_size = {m} does not split evenly over {nproc} "
                             "processes")


def _train(spec: Optional[Path], resume: Optional[str], name: Optional[str],
           backend: Optional[str], device: Optional[str], data_root: Optional[str],
           overrides: list[str], root: Path, dist, hooks, report) -> tuple[Any, Any]:
    if resume is not None:
        from ..train.resuming import resume as resume_run

        return resume_run(root, resume, data_root, overrides, hooks, backend=backend,
                          device=device, dist=dist, report=report)
    from ..spec import load_file
    from ..run.context import Context
    from ..train.starting import start

    return start(load_file(spec, overrides), root, name,  # type: ignore[arg-type]
                 Context(backend or "torch", device or "cpu", dist), data_root, hooks, report)


def _print_outcome(run, outcome, world: int) -> None:
    if outcome.status == "interrupted":
        err.print(f"interrupted at step {outcome.step}; checkpoint saved. "
                  f"Continue with: advgraph train --resume {run.name}"
                  + (f" --nproc {world}" if world > 1 else ""))
        raise typer.Exit(130)
    last = outcome.last or {}
    summary = ", ".join([f"{k} {last[k]:.4f}" for k in ("d_loss", "g_loss", "d_real", "d_fake")
                         if k in last] + ([f"{world} processes"] if world > 1 else []))
    console.print(f"run {run.name} finished: step {outcome.step}, epoch {outcome.epoch}"
                  + (f" ({summary})" if summary else "") + f" → {run.path}")
