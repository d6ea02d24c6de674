"""`advgraph check`: validate a spec and show both graphs with shapes, parameters and FLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table

from ..jsontext import dumps
from .common import SetOpt, SpecArg, console, user_errors


def _graph_rows(graph) -> list[dict[str, Any]]:
    from ..ops.costs import flops

    rows = []
    for n in graph.nodes:
        in_shape = graph.node(n.inputs[0]).shape if n.inputs else n.shape
        rows.append({
            "name": n.name, "op": n.op.value, "shape": list(n.shape),
            "params": sum(t.size for t in n.params),
            "flops": flops(n, in_shape) if n.inputs else 0,
            "attrs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in n.attrs.items()},
            "inputs": list(n.inputs),
        })
    return rows


def check(
    spec: Path = SpecArg,
    set_: Optional[List[str]] = SetOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Also check that this "
                                          "backend supports the spec, and print what it "
                                          "reports of it (cupy: its device memory)."),
) -> None:
    """Validate a spec and show both graphs with shapes, parameters and FLOPs."""
    from ..compile import compile_spec
    from ..data import data_info
    from ..spec import load_file

    with user_errors():
        loaded = load_file(spec, set_ or [])
        program = compile_spec(loaded, data_info(loaded))
        report = _backend_report(backend, program, loaded.spec.training)
    summary = _summary(spec, program, loaded.spec.training)
    if report is not None:
        summary["backend"] = {"name": backend, "report": report}
    if as_json:
        console.print_json(dumps(summary, "the summary"))
        return
    for key, title in (("G", "generator"), ("D", "discriminator")):
        console.print(_graph_table(f"{key} ({title})", summary[key]["nodes"]))
    console.print(f"G parameters: {summary['G']['params']:,}")
    console.print(f"D parameters: {summary['D']['params']:,}")
    console.print(f"estimated FLOPs per training iteration (m={summary['batch_size']}, "
                  f"k={summary['k']}): {summary['flops_per_iteration']:,} "
                  f"({summary['flops_per_iteration'] / 1e9:.2f} GFLOP)")
    console.print(_objective_line(summary["objective"]))
    console.print(f"memory to train, at least (parameters, gradients, optimiser slots, "
                  f"activations): {summary['training_bytes_min'] / 2**20:,.1f} MiB")
    for line in report or []:
        console.print(line, markup=False)
    console.print(f"{spec}: ok")


def _backend_report(name: Optional[str], program, t) -> Optional[list[str]]:
    """The backend's lines on the spec (its memory_report hook; none without one); raises
    when the backend cannot load or lacks one of the spec's ops. Nothing is built on a
    device, and the backend need not be usable here."""
    if name is None:
        return None
    from ..backend_protocol import check_supported, get_backend
    from ..errors import BackendError
    from ..run.schedule import Schedule

    backend = get_backend(name, usable=False)
    try:  # a backend's lowering table may import its framework
        check_supported(backend, program)
    except ImportError as e:
        raise BackendError(f"--backend {name}: its lowering cannot be loaded here ({e}); "
                           "install what the backend needs") from None
    hook = getattr(backend, "memory_report", None)
    if hook is None:
        return [f"{name}: supports every op of the spec (no memory report)"]
    optim = {g: Schedule(t.optimizer_for(g)).config() for g in ("G", "D")}
    return list(hook(program, t.batch_size, optim))


def _summary(spec: Path, program, t) -> dict[str, Any]:
    """What --json prints and the tables show."""
    from ..ops.costs import graph_flops, iteration_flops, training_bytes

    return {
        "spec": str(spec),
        "data_shape": list(program.data_shape),
        "prior": {"type": program.prior.kind, "dim": program.prior.dim},
        "G": {"nodes": _graph_rows(program.G), "params": program.G.num_params(),
              "flops_per_example": graph_flops(program.G)},
        "D": {"nodes": _graph_rows(program.D), "params": program.D.num_params(),
              "flops_per_example": graph_flops(program.D)},
        "batch_size": t.batch_size, "k": t.k,
        "flops_per_iteration": iteration_flops(program.G, program.D, t.batch_size, t.k),
        "training_bytes_min": training_bytes(program.G, program.D, t.batch_size),
        "objective": _objective(program.objective),
    }


def _objective(o) -> dict[str, Any]:
    """The loss and each regulariser as resolved (spectral norm: the weights it normalises)."""
    regs: dict[str, Any] = {p.kind: {"weight": p.weight, "every": p.every,
                                     **({"target": p.target} if p.kind == "gradient_penalty"
                                        else {})} for p in o.penalties}
    if o.spectral:
        regs["spectral_norm"] = {"weights": [s.tensor for s in o.spectral],
                                 "iterations": o.spectral_iterations}
    if o.ema is not None:
        regs["ema"] = {"decay": o.ema.decay, "start": o.ema.start}
    return {"loss": o.loss, "regularizers": regs}


def _objective_line(obj: dict[str, Any]) -> str:
    regs = obj["regularizers"]
    parts = []
    for kind, r in regs.items():
        if kind == "spectral_norm":
            parts.append(f"spectral_norm on {', '.join(r['weights'])}")
        else:
            parts.append(f"{kind} (" + ", ".join(f"{k} {v:.10g}" for k, v in r.items()) + ")")
    return f"objective: {obj['loss']} loss" + ("; " + "; ".join(parts) if parts else "")


def _graph_table(title: str, nodes: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("node")
    table.add_column("op")
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("FLOPs/example", justify="right")
    for r in nodes:
        attrs = ", ".join(f"{k}={v}" for k, v in r["attrs"].items())
        if len(r["inputs"]) > 1:
            attrs = " + ".join(r["inputs"])
        table.add_row(r["name"], r["op"] + (f" ({attrs})" if attrs else ""),
                      "(B, " + ", ".join(map(str, r["shape"])) + ")",
                      f"{r['params']:,}" if r["params"] else "",
                      f"{r['flops']:,}" if r["flops"] else "")
    return table
