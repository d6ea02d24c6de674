"""`advgraph eval SWEEP`: every member that did not diverge evaluated as `eval MEMBER` would
(each report written into the member's run), then per setting each figure's mean ± standard
error over the seeds (advgraph.sweep.aggregate), printed and written to the sweep's eval/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import typer
from rich.console import Console
from rich.table import Table

from ..errors import AdvGraphError, RunError
from .common import FLAGS, console, err, print_wrote, user_errors

Reports = Iterable[tuple[str, dict[str, Any]]]
SE_NOTE = "s.e. = sample std (ddof 1) / √n over the seeds; n = 1: no s.e."


def evaluate_sweep(sw, evaluate: Callable[[str], Reports], as_json: bool) -> None:
    """`evaluate(member)` for each member that did not diverge, in the order sweep.json lists
    them; a member that fails is reported and the others still evaluated, and the command
    then exits non-zero (2 where one's error was a usage error, e.g. --theory of 2-D data). One summary per kind of report."""
    with user_errors():
        info = sw.info()
    members = info["members"]
    out = ("diverged", "missing")  # missing: its run was deleted
    excluded = [m["name"] for m in members if m.get("status") in out]
    live = [m for m in members if m.get("status") not in out]
    if not live:
        with user_errors():
            raise RunError(f"every member of sweep {sw.name} diverged: nothing to evaluate")
    by_kind: dict[str, list[tuple[dict, dict]]] = {}  # kind → (member, report)
    failed, code = [], 1  # the exit code: the failures' highest (2: a usage error)
    for i, m in enumerate(live):
        err.print(f"[{i + 1}/{len(live)}] {m['name']}", markup=False)
        try:
            for kind, report in evaluate(m["name"]):
                by_kind.setdefault(kind, []).append((m, report))
        except AdvGraphError as e:
            failed.append({"name": m["name"], "error": " ".join(e.worded(FLAGS).split())})
            code = max(code, e.exit_code)
        except MemoryError:
            failed.append({"name": m["name"], "error": "out of memory; try a smaller --samples"})
        else:
            continue
        err.print(f"error: member {failed[-1]['name']}: {failed[-1]['error']}", markup=False)
    for kind, got in by_kind.items():
        summary = _summary(sw, kind, got, excluded, failed)
        path = _write(sw, got[0][1], summary)
        if as_json:
            from ..jsontext import dumps

            console.print(dumps(summary, "the summary", nonfinite=True))
        else:
            print_summary(summary)
            print_wrote(path)
    if failed:
        err.print(f"error: {len(failed)} of {len(live)} members failed: "
                  + ", ".join(f["name"] for f in failed), markup=False)
        raise typer.Exit(code)


def _summary(sw, kind: str, got: list[tuple[dict, dict]], excluded: list[str],
             failed: list[dict]) -> dict[str, Any]:
    from ..sweep.aggregate import figures, summarise

    rows = [{"name": m["name"], "seed": m["seed"], "setting": m.get("setting", "all"),
             "values": m.get("values", {}), "checkpoint_step": rep.get("checkpoint_step"),
             **figures(kind, rep)} for m, rep in got]
    return {"metric": kind, "sweep": sw.name, "settings": summarise(rows), "members": rows,
            "excluded": excluded, "failed": failed, "se": SE_NOTE,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _write(sw, first: dict[str, Any], summary: dict[str, Any]) -> Path:
    """runs/<sweep>/eval/<the members' report's file name> (parzen-by-label.json, …)."""
    from ..atomic import atomic_write
    from ..jsontext import dump_bytes

    name = Path(first["written"]).name if first.get("written") else f"{summary['metric']}.json"
    path = sw.path / "eval" / name
    with user_errors():
        atomic_write(path, dump_bytes(summary, str(path), nonfinite=True, indent=2))
    return path


def print_summary(s: dict[str, Any]) -> None:
    """Per setting, each figure's mean ± s.e. over the seeds, with n; then who is left out."""
    names = list(dict.fromkeys(k for row in s["settings"] for k in row
                               if isinstance(row[k], dict) and "mean" in row[k]))
    table = Table(title=f"Sweep {s['sweep']} — {s['metric']}, mean ± s.e. over seeds",
                  title_justify="left")
    table.add_column("setting", min_width=max(len(r["setting"]) for r in s["settings"]))
    table.add_column("n", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for row in s["settings"]:
        table.add_row(row["setting"], str(row["n"]),
                      *(_cell(row.get(name), row["n"]) for name in names))
    _print_wide(table)
    console.print(SE_NOTE)
    steps = {m["checkpoint_step"] for m in s["members"]}
    if len(steps) > 1:
        console.print("note: members evaluated at different checkpoints: " + ", ".join(
            f"{m['name']} step {m['checkpoint_step']}" for m in s["members"]))
    if s["excluded"]:
        console.print("excluded (diverged or deleted): " + ", ".join(s["excluded"]))
    for f in s["failed"]:
        console.print(f"failed: {f['name']}: {f['error']}")


def _print_wide(table: Table) -> None:
    """The table at its natural width where the output is not a terminal (a pipe, a file),
    whose 80 columns would wrap a cell and split its "mean ± s.e." over two lines."""
    if console.is_terminal:
        console.print(table)
        return
    need = console.measure(table, options=console.options.update_width(10_000)).maximum
    Console(file=console.file, width=max(console.width, need), highlight=False,
            soft_wrap=True, markup=False).print(table)


def _cell(fig: dict[str, Any] | None, n: int) -> str:
    if fig is None:
        return "—"
    text = _mean_se(fig["mean"], fig["se"])
    return text + (f" (n={fig['n']})" if fig["n"] != n else "")


def _mean_se(mean: float, se: float | None) -> str:
    """The mean to the decimal place of its s.e.'s second significant digit: 6.88 ± 0.22,
    0.655 ± 0.056."""
    import math

    if se is None:
        return f"{mean:.4g} (no s.e.)"
    if not (se > 0 and math.isfinite(se) and math.isfinite(mean)):
        return f"{mean:.4g} ± {se:.2g}"
    places = max(0, 1 - math.floor(math.log10(se)))
    return f"{mean:.{places}f} ± {se:.{places}f}"
