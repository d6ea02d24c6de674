"""`advgraph parity`, `runs` and `backends`: comparing backends, listing runs and backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import UsageError
from ..jsontext import dumps
from . import app
from .common import (RunsDirOpt, SetOpt, SpecArg, console, complete_run, err, positive,
                     runs_root, user_errors)


@app.command()
def parity(
    spec: Path = SpecArg,
    backends_: str = typer.Option("torch,cupy", "--backends", help="Two backends, A,B."),
    devices: str = typer.Option("cpu", "--devices", help="Device for both, or one each: A,B."),
    batch: int = typer.Option(64, "--batch", help="Examples in the compared minibatch."),
    tol: float = typer.Option(1e-4, "--tol", help="Pass when max |a − b| ≤ tol × the tensor's "
                                                   "largest magnitude."),
    set_: Optional[List[str]] = SetOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Compare two backends from identical weights, inputs and noise: forward outputs,
    gradients, and one optimiser step, per tensor (dropout off: masks cannot match)."""
    from ..compile import compile_spec
    from ..data import data_info
    from ..ops import too_small_batch
    from ..parity import compare
    from ..spec import load_file

    with user_errors(lower="a smaller --batch"):
        names = tuple(x.strip() for x in backends_.split(","))
        devs = tuple(x.strip() for x in devices.split(","))
        if len(names) != 2 or not all(names):
            raise UsageError(f"--backends wants two names, A,B; got {backends_!r}")
        if len(devs) == 1:
            devs = devs * 2
        if len(devs) != 2:
            raise UsageError(f"--devices wants one device or two, A,B; got {devices!r}")
        positive("--batch", batch)
        if not 0 < tol < float("inf"):  # inf would pass every row: no check at all
            raise UsageError(f"--tol must be positive and finite, got {tol}")
        loaded = load_file(spec, set_ or [])
        program = compile_spec(loaded, data_info(loaded))
        small = too_small_batch((program.G, program.D), batch)
        if small is not None:
            raise UsageError(f"--batch {batch}: {small[0].name} ({small[0].op.value}) needs at "
                             f"least 2 values per channel in a minibatch; use --batch ≥ "
                             f"{small[1]}")
        _check_parity_memory(program, batch)
        rows = compare(program, loaded.spec.training, names, devs, batch, tol)  # type: ignore[arg-type]
    if as_json:
        console.print_json(dumps([r.__dict__ for r in rows], "the rows", nonfinite=True))
    else:
        _print_parity(rows, names, devs, tol)
    if any(not r.ok for r in rows):
        raise typer.Exit(1)


def _check_parity_memory(program, batch: int) -> None:
    """Refuse, before either trainer is built, a --batch that cannot fit: two trainers (each
    its parameters, gradients, optimiser state and activations) and the shared inputs."""
    from math import prod

    from .. import memory
    from ..ops.costs import training_bytes

    inputs = 4 * batch * (prod(program.data_shape) + 2 * program.prior.dim)
    memory.check_fits("--batch", f"--batch {batch:,}: two trainers with this minibatch need",
                      2 * training_bytes(program.G, program.D, batch) + inputs,
                      " (parameters, gradients, optimiser state and activations, each)")


def _print_parity(rows: list, names: tuple[str, ...], devs: tuple[str, ...], tol: float) -> None:
    table = Table(title=f"parity {names[0]} ({devs[0]}) vs {names[1]} ({devs[1]}): ok when "
                        f"max |a − b| ≤ allowed = {tol:g} × the tensor's max |a|, |b| (a gradient: "
                        "or its float32 floor: 4 × the change the backends show at parameters "
                        "nudged by 1e-6, at most 1 % and at least 64 ulps of the net's largest "
                        "gradient; carried into the step)",
                  title_justify="left")
    # the pass rule's own terms (a relative difference of 0.5 where values are tiny beside
    # the tensor's largest one would sit confusingly next to "ok")
    for col in ("stage", "tensor", "max |a − b|", "allowed", ""):
        table.add_column(col, justify="right" if col in ("max |a − b|", "allowed") else "left")
    for r in rows:
        table.add_row(r.stage, r.tensor, *_shown(r.max_abs, r.allowed, r.ok),
                      "ok" if r.ok else "FAIL")
    console.print(table)
    failed = sum(not r.ok for r in rows)
    console.print(f"{len(rows) - failed} passed, {failed} failed")


def _shown(diff: float, allowed: float, ok: bool) -> tuple[str, str]:
    """Both numbers with the fewest digits (3 at least) that show the verdict: a FAIL at
    1.0001e-07 against 1e-07 must not read 1e-07 against 1e-07."""
    for digits in range(3, 18):
        a, b = f"{diff:.{digits}g}", f"{allowed:.{digits}g}"
        if (float(a) <= float(b)) == ok:
            break
    return a, b


@app.command()
def runs(runs_dir: Optional[Path] = RunsDirOpt,
         as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List runs with status, step, epoch and last metrics (a damaged run as `damaged`)."""
    from ..run.directory import list_runs

    root = runs_root(runs_dir)
    with user_errors():
        rows = [_run_row(r) for r in list_runs(root)]
    if as_json:
        console.print_json(dumps(rows, "the runs", nonfinite=True))
        return
    if not rows:
        console.print(f"no runs in {root}")
        return
    # Too wide for the terminal (80 columns when piped): the least useful columns go first;
    # name and status stay whole, the lines running long if they alone do not fit.
    shown = list(RUN_COLUMNS)
    table = _runs_table(rows, shown)
    while _width(table) > console.width and len(shown) > 2:
        gone = next(g for g in DROP_ORDER if g[0] in shown)  # a pair goes together
        shown = [c for c in shown if c not in gone]
        table = _runs_table(rows, shown)
    width = max(console.width, _width(table))
    Console(file=console.file, width=width, highlight=False, soft_wrap=True,
            markup=False).print(table, crop=False)  # print(width=) caps at console.width
    damaged = [r for r in rows if r["status"] == "damaged"]
    for r in damaged:
        err.print(f"warning: run {r['name']} is damaged: {r['error']}", markup=False)


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


# heading → the cell of a row (from _run_row); name and status always show
RUN_COLUMNS = {
    "name": lambda r: r["name"], "status": lambda r: r["status"],
    "step": lambda r: _fmt(r["step"], "d"), "epoch": lambda r: _fmt(r["epoch"], "d" if isinstance(r["epoch"], int) else ".2f"),
    "backend": lambda r: r["backend"] or "", "D loss": lambda r: _fmt(r["d_loss"], ".4f"),
    "G loss": lambda r: _fmt(r["g_loss"], ".4f"), "D(x)": lambda r: _fmt(r["d_real"], ".3f"),
    "D(G(z))": lambda r: _fmt(r["d_fake"], ".3f"),
}
DROP_ORDER = (("backend",), ("D(x)", "D(G(z))"), ("epoch",), ("D loss", "G loss"), ("step",))


def _runs_table(rows: list[dict[str, Any]], columns: list[str]) -> Table:
    from rich import box

    table = Table(box=box.SIMPLE_HEAD)
    for col in columns:
        table.add_column(col, no_wrap=True,
                         justify="left" if col in ("name", "status", "backend") else "right")
    for r in rows:
        table.add_row(*(RUN_COLUMNS[c](r) for c in columns))
    return table


def _width(table: Table) -> int:
    return console.measure(table, options=console.options.update_width(10**5)).maximum


def _run_row(r) -> dict[str, Any]:
    """One run for `advgraph runs`: from its run.json (and a check of its metrics.jsonl); a
    damaged run is a row with status `damaged` and the problem, never an error for the list."""
    from ..errors import RunError
    from ..jsontext import restored

    try:
        info = r.info()
    except RunError as e:
        return {"name": r.name, "status": "damaged", "step": None, "epoch": None,
                "backend": None, "d_loss": None, "g_loss": None, "d_real": None,
                "d_fake": None, "updated": None, "error": str(e)}
    # a diverged run's NaN losses are null in run.json, with a record of what they were
    last = restored(info.get("last_metrics") or {})
    row = {"name": r.name, "status": r.status(info),
           "step": info.get("step", 0), "epoch": info.get("epoch", 0),
           "backend": info.get("backend") or "", "d_loss": last.get("d_loss"),
           "g_loss": last.get("g_loss"), "d_real": last.get("d_real"),
           "d_fake": last.get("d_fake"), "updated": info.get("updated", ""), "error": None}
    try:
        r.metrics()  # damaged lines are worth knowing about before `plot` or a resume
    except RunError as e:
        row.update(status="damaged", error=str(e))
    return row


@app.command()
def backends() -> None:
    """List installed backends and whether they can run here."""
    from ..backend_protocol import list_backends

    for name, ok, why, about in list_backends(about=True):
        console.print(f"{name}: " + (("available" + (f" ({why})" if why else "")) if ok
                                     else f"unavailable ({why})"))
        if about:
            console.print(f"  {about}")


@app.command("rm")
def rm(
    names: List[str] = typer.Argument(..., metavar="RUN...", help="Runs to delete.",
                                      autocompletion=complete_run),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    runs_dir: Optional[Path] = RunsDirOpt,
) -> None:
    """Delete runs, such as ones that died before their first checkpoint; a run being written
    is refused."""
    import sys

    from ..run.directory import RunDir
    from ..run.removal import remove_runs

    with user_errors():
        root = runs_root(runs_dir)
        runs = [RunDir.open(root, n) for n in names]  # every name checked before any deletion
        if not yes and not sys.stdin.isatty():
            raise UsageError("rm deletes runs for good: add --yes to confirm (no terminal to "
                             "ask on)")

        def confirm() -> bool:  # asked once every run is locked: none can be refused after
            listing = ", ".join(r.name for r in runs)
            return yes or typer.confirm(f"delete {listing} in {root}?", default=False)

        if not remove_runs(runs, confirm, lambda r: console.print(f"deleted {r.path}")):
            raise typer.Exit(1)
