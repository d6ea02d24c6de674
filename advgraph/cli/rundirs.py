"""`advgraph runs` and `rm`: the run directories, listed and deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import UsageError
from ..jsontext import dumps
from .common import RunsDirOpt, console, complete_run, err, runs_root, user_errors


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
    _print_sweeps(root)
    damaged = [r for r in rows if r["status"] == "damaged"]
    for r in damaged:
        err.print(f"warning: run {r['name']} is damaged: {r['error']}", markup=False)


def _print_sweeps(root: Path) -> None:
    """One line per sweep under the table: its members are the runs named <sweep>.…"""
    from collections import Counter

    from ..errors import RunError
    from ..sweep.directory import list_sweeps

    for sw in list_sweeps(root):
        try:
            info = sw.info()
        except RunError as e:
            err.print(f"warning: sweep {sw.name} is damaged: {e}", markup=False)
            continue
        counts = Counter(_member_status(m, r) for m, r in zip(info["members"],
                                                              sw.member_runs(info)))
        states = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        console.print(f"sweep {sw.name}: {len(info['members'])} members ({states}), step "
                      f"{info['step']}, {info.get('engine', '?')} engine")


def _member_status(m: dict[str, Any], run) -> str:
    """A member's status as `runs` shows its run's: 'stopped' when sweep.json says running
    but its process is gone (killed), 'missing' when its run was deleted."""
    from ..errors import RunError

    if not run.path.is_dir():
        return "missing"
    if m["status"] != "running":
        return m["status"]
    try:
        return run.status()
    except RunError:
        return "damaged"


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


def rm(
    names: List[str] = typer.Argument(..., metavar="RUN...", help="Runs to delete.",
                                      autocompletion=complete_run),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    runs_dir: Optional[Path] = RunsDirOpt,
) -> None:
    """Delete runs, such as ones that died before their first checkpoint, or a sweep with all
    its members; a run or sweep being written is refused."""
    import sys

    from ..run.directory import RunDir
    from ..run.removal import remove_runs

    with user_errors():
        root = runs_root(runs_dir)
        runs = [r for n in names for r in _runs_named(root, n)]  # all checked before deleting
        if not yes and not sys.stdin.isatty():
            raise UsageError("rm deletes runs for good: add --yes to confirm (no terminal to "
                             "ask on)")

        def confirm() -> bool:  # asked once every run is locked: none can be refused after
            listing = ", ".join(r.name for r in runs)
            return yes or typer.confirm(f"delete {listing} in {root}?", default=False)

        if not remove_runs(runs, confirm, lambda r: console.print(f"deleted {r.path}")):
            raise typer.Exit(1)


def _runs_named(root: Path, name: str) -> list:
    """The run `name`, or a sweep's directory and its members' runs: those still there whose
    run.json names the sweep (a run made since under a removed member's name is not one)."""
    from ..errors import RunError
    from ..names import check_name
    from ..run.directory import RunDir
    from ..sweep.directory import SweepDir

    if not SweepDir.is_sweep(root / check_name(name)):
        return [RunDir.open(root, name)]
    sweep = SweepDir.resolve(name, root)
    try:
        members = sweep.member_runs()
    except RunError as e:  # which runs are its members is what the file says
        raise RunError(f"{e}; rm cannot tell the sweep's members: repair the file, or delete "
                       f"{sweep.path} and its members' runs yourself") from None
    mine = []
    for r in members:
        if not r.path.is_dir():
            continue
        try:  # not yet recorded (no run.json), or damaged: made by the sweep, as named
            owner = r.info().get("sweep") if r.info_path.exists() else sweep.name
        except RunError:
            owner = sweep.name
        if owner == sweep.name:
            mine.append(r)
        else:
            err.print(f"warning: run {r.name} is not a member of sweep {sweep.name} (its "
                      "run.json does not name it): kept", markup=False)
    return [RunDir(sweep.path)] + mine
