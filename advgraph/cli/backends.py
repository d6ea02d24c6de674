"""`advgraph backends` and `parity`: the installed backends, listed and compared."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import UsageError
from ..jsontext import dumps
from .common import SetOpt, SpecArg, console, user_errors


def backends() -> None:
    """List installed backends and whether they can run here."""
    from ..backend_protocol import list_backends

    for name, ok, why, about in list_backends(about=True):
        console.print(f"{name}: " + (("available" + (f" ({why})" if why else "")) if ok
                                     else f"unavailable ({why})"))
        if about:
            console.print(f"  {about}")


def parity(
    spec: Path = SpecArg,
    backends_: str = typer.Option("torch,cupy", "--backends", help="Two backends, A,B."),
    devices: str = typer.Option("cpu", "--devices", help="Device for both, or one each: A,B."),
    batch: int = typer.Option(64, "--batch", min=1, help="Examples in the compared minibatch."),
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
