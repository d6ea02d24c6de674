"""`advgraph sweep`: seeds × varied values of one spec, trained side by side as one program."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .common import RunsDirOpt, SetOpt, complete_spec, console, err, runs_root, user_errors
from .completion import choices
from .train import BackendOpt, DataRootOpt, DeviceOpt, _auto_device, _load_display

SeedsOpt = typer.Option(None, "--seeds", metavar="SEEDS", help="The members' seeds: 0-15, "
                        "0,3,7 or 0-3,10-12 (each seed a member per setting of --vary).")
VaryOpt = typer.Option(None, "--vary", metavar="KEY=V1,V2,…", help="A spec value to sweep, "
                       "e.g. training.optimizer.lr=0.05,0.1 (repeatable: the cross product).")
EngineOpt = typer.Option("auto", "--engine", autocompletion=choices("auto", "batched", "loop"),
                         help="batched: one program for all members (torch, cupy); loop: "
                         "one trainer per member, in turn (any backend, members may differ "
                         "in shape); auto: batched where the backend and members allow (on "
                         "--resume: a sweep that ran as a loop stays one).")
SweepNameOpt = typer.Option(None, "--name", help="Sweep name [default: the spec's name, "
                            "-sweep and a counter]; members are named <sweep>.<values>.s<seed>.")
ResumeOpt = typer.Option(None, "--resume", metavar="SWEEP",
                         help="Continue SWEEP from the last step every live member was "
                         "checkpointed at.")


def sweep(
    spec: Optional[Path] = typer.Argument(None, metavar="SPEC", autocompletion=complete_spec,
                                          help="The spec file (omit with --resume)."),
    seeds: Optional[str] = SeedsOpt, vary: Optional[List[str]] = VaryOpt,
    backend: Optional[str] = BackendOpt, device: Optional[str] = DeviceOpt,
    engine: str = EngineOpt, name: Optional[str] = SweepNameOpt,
    resume: Optional[str] = ResumeOpt, set_: Optional[List[str]] = SetOpt,
    data_root: Optional[str] = DataRootOpt, runs_dir: Optional[Path] = RunsDirOpt,
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes on this machine, each "
                              "training its share of the members as one program, on either "
                              "backend (with --device cuda, each process its own GPU; "
                              "torch.distributed coordinates them; torchrun works too)."),
) -> None:
    """Train many members of one spec (seeds × --vary values) side by side, each a run of its
    own (runs/<sweep>.<values>.s<seed>/) that sample, eval, export and plot read as any run;
    `advgraph eval SWEEP` averages over seeds. Ctrl-C checkpoints every member and stops."""
    from ..distributed import world_from_env
    from ..run.context import Context
    from ..sweep.starting import resume_sweep, start_sweep
    from ..train.hooks import NO_HOOKS
    from .progress import Display
    from .ranks import ranks

    root, rank = runs_root(runs_dir), world_from_env()[0]
    display = Display() if rank == 0 else None
    hooks = display or NO_HOOKS
    try:
        with user_errors(rank, "fewer members (--seeds, --vary) or smaller nets"):
            _check_args(spec, seeds, vary, name, resume, engine)
            dev = None if device is None and resume is not None else \
                _auto_device(device, backend or "torch")
            with ranks(nproc, dev or "cpu", lambda: _check_once(spec, set_ or [], seeds,
                                                                vary or [], nproc)) as dist:
                if resume is not None:
                    sw, outcome, why = resume_sweep(root, resume, data_root, set_ or [], hooks,
                                                    backend, dev, engine,
                                                    _load_display(rank), dist)
                else:
                    ctx = Context(backend or "torch", dev, dist)  # type: ignore[arg-type]
                    sw, outcome, why = start_sweep(spec, set_ or [], seeds, vary or [],  # type: ignore[arg-type]
                                                   name, root, ctx, data_root, engine, hooks,
                                                   _load_display(rank))
    finally:
        if display is not None:
            display.stop()
    if rank != 0:
        if outcome.status == "interrupted":
            raise typer.Exit(130)
        return
    _print_outcome(sw, outcome, why)


def _print_outcome(sw, outcome, why: str | None) -> None:
    """The last line: how the members trained, who diverged, where the sweep is."""
    info = sw.info()
    n = len(info["members"])
    diverged = [m["name"] for m in info["members"] if m["status"] == "diverged"]
    world = info.get("world_size") or 1
    if world > 1:  # each process a share of the members
        how = (f"over {world} processes, each its share as one batched program" if why is None
               else f"over {world} processes, each its share one after another ({why})")
    else:
        how = "as one batched program" if why is None else f"one after another ({why})"
    if outcome.status == "interrupted":
        err.print(f"interrupted at step {outcome.step}; every member checkpointed. Continue "
                  f"with: advgraph sweep --resume {sw.name}")
        raise typer.Exit(130)
    console.print(f"sweep {sw.name} {outcome.status}: {n} member{'s' * (n != 1)} {how}, "
                  f"step {outcome.step}"
                  + (f"; diverged: {', '.join(diverged)}" if diverged else "")
                  + f" → {sw.path}")
    if outcome.status == "diverged":
        raise typer.Exit(1)


def _check_args(spec, seeds, vary, name, resume, engine) -> None:
    if engine not in ("auto", "batched", "loop"):
        raise UsageError(f"--engine {engine!r}: use auto, batched or loop")
    if resume is not None:
        if spec is not None or seeds is not None or vary or name is not None:
            raise UsageError("--resume continues a sweep as it was: give no spec, --seeds, "
                             "--vary or --name with it")
        return
    if spec is None:
        raise UsageError("missing spec file (or --resume SWEEP)")
    if seeds is None:
        raise UsageError("--seeds is required: e.g. --seeds 0-15")


def _check_once(spec, overrides, seeds, vary, nproc) -> None:
    """Before starting the ranks: the arguments and every member's spec, checked once."""
    if spec is None:
        return
    from ..spec import load_file
    from ..sweep.plan import load_members, members, parse_seeds, parse_vary

    planned = members("sweep", parse_seeds(seeds), parse_vary(vary))
    load_file(spec, overrides)
    load_members(spec, overrides, planned)
    if nproc > len(planned):
        raise UsageError(f"--nproc {nproc} for {len(planned)} member(s): each process trains "
                         "at least one member; lower --nproc")
