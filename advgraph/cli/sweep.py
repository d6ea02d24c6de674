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
                         help="batched: one program for all members (torch); loop: one "
                         "trainer per member, in turn (any backend, members may differ in "
                         "shape); auto: batched where the backend and members allow.")
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
) -> None:
    """Train many members of one spec (seeds × --vary values) side by side, each a run of its
    own (runs/<sweep>.<values>.s<seed>/) that sample, eval, export and plot read as any run;
    `advgraph eval SWEEP` averages over seeds. Ctrl-C checkpoints every member and stops."""
    from ..run.context import Context
    from ..sweep.starting import resume_sweep, start_sweep
    from .progress import Display

    root = runs_root(runs_dir)
    display = Display()
    try:
        with user_errors():
            if engine not in ("auto", "batched", "loop"):
                raise UsageError(f"--engine {engine!r}: use auto, batched or loop")
            if resume is not None:
                if spec is not None or seeds is not None or vary or name is not None:
                    raise UsageError("--resume continues a sweep as it was: give no spec, "
                                     "--seeds, --vary or --name with it")
                sw, outcome, why = resume_sweep(
                    root, resume, data_root, set_ or [], display, backend,
                    None if device is None else _auto_device(device, backend or "torch"),
                    engine, _load_display(0))
            else:
                if spec is None:
                    raise UsageError("missing spec file (or --resume SWEEP)")
                if seeds is None:
                    raise UsageError("--seeds is required: e.g. --seeds 0-15")
                ctx = Context(backend or "torch", _auto_device(device, backend or "torch"))
                sw, outcome, why = start_sweep(spec, set_ or [], seeds, vary or [], name, root,
                                               ctx, data_root, engine, display,
                                               _load_display(0))
    finally:
        display.stop()
    info = sw.info()
    n = len(info["members"])
    diverged = [m["name"] for m in info["members"] if m["status"] == "diverged"]
    how = "as one batched program" if why is None else f"one after another ({why})"
    if outcome.status == "interrupted":
        err.print(f"interrupted at step {outcome.step}; every member checkpointed. Continue "
                  f"with: advgraph sweep --resume {sw.name}")
        raise typer.Exit(130)
    console.print(f"sweep {sw.name} {outcome.status}: {n} members {how}, step {outcome.step}"
                  + (f"; diverged: {', '.join(diverged)}" if diverged else "")
                  + f" → {sw.path}")
    if outcome.status == "diverged":
        raise typer.Exit(1)
