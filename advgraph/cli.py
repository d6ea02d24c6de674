"""The `advgraph` command line. Thin: parse, call the library, print.

AdvGraphError → a message on stderr and its exit code (2 for spec/usage problems, 1 otherwise),
never a traceback. `--help` and `check` import neither torch nor cupy (backends load lazily).
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import AdvGraphError, UsageError

app = typer.Typer(
    help="Generative adversarial nets (Goodfellow et al., 2014) declared in YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

SetOpt = typer.Option(None, "--set", metavar="PATH=VALUE",
                      help="Override a spec value, e.g. --set training.optimizer.lr=0.05 "
                           "(repeatable; validated like the file).")
RunsDirOpt = typer.Option(None, "--runs-dir", envvar="ADVGRAPH_RUNS",
                          help="Where runs live [default: ./runs].")


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except AdvGraphError as e:
        for line in e.render().splitlines():
            err.print("error: " + line, markup=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except MemoryError:
        err.print("error: out of memory; try a smaller batch size or smaller layers", markup=False)
        raise typer.Exit(1) from None


def _runs_root(runs_dir: Optional[Path]) -> Path:
    from .runs import default_root

    return runs_dir if runs_dir is not None else default_root()


# ---- check ----------------------------------------------------------------------------------


def _graph_rows(graph) -> list[dict[str, Any]]:
    from .ir.shapes import flops

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


@app.command()
def check(
    spec: Path = typer.Argument(..., help="The spec file."),
    set_: Optional[List[str]] = SetOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Validate a spec and show both graphs with shapes, parameters and FLOPs."""
    from .compile import compile_spec
    from .ir.shapes import graph_flops, iteration_flops, training_bytes
    from .spec import load_file

    with _errors():
        loaded = load_file(spec, set_ or [])
        program = compile_spec(loaded)
    t = loaded.spec.training
    summary = {
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
    }
    if as_json:
        console.print_json(json.dumps(summary))
        return
    for key, title in (("G", "generator"), ("D", "discriminator")):
        table = Table(title=f"{key} ({title})", title_justify="left")
        table.add_column("node")
        table.add_column("op")
        table.add_column("output", justify="right")
        table.add_column("params", justify="right")
        table.add_column("FLOPs/example", justify="right")
        for r in summary[key]["nodes"]:
            attrs = ", ".join(f"{k}={v}" for k, v in r["attrs"].items())
            if len(r["inputs"]) > 1:
                attrs = " + ".join(r["inputs"])
            table.add_row(r["name"], r["op"] + (f" ({attrs})" if attrs else ""),
                          "(B, " + ", ".join(map(str, r["shape"])) + ")",
                          f"{r['params']:,}" if r["params"] else "",
                          f"{r['flops']:,}" if r["flops"] else "")
        console.print(table)
    console.print(f"G parameters: {summary['G']['params']:,}")
    console.print(f"D parameters: {summary['D']['params']:,}")
    console.print(f"estimated FLOPs per training iteration (m={t.batch_size}, k={t.k}): "
              f"{summary['flops_per_iteration']:,} "
              f"({summary['flops_per_iteration'] / 1e9:.2f} GFLOP)")
    console.print(f"memory to train, at least (parameters, gradients, optimiser slots, "
                  f"activations): {summary['training_bytes_min'] / 2**20:,.1f} MiB")
    console.print(f"{spec}: ok")


# ---- train ----------------------------------------------------------------------------------


class _Display:
    """Progress on a terminal; plain metric lines otherwise (CI logs, pipes)."""

    def __init__(self) -> None:
        self.live = err.is_terminal
        self.progress = None
        self.task = None
        self._last = 0.0
        self.row: dict[str, Any] = {}

    def start(self, run, session) -> None:
        t = session.spec.training
        if t.stop.steps is not None:
            self.total, self.unit = t.stop.steps, "steps"
        else:
            self.total, self.unit = t.stop.epochs, "epochs"
        resumed = f"resumed at step {session.step}; " if session.step else ""
        err.print(f"run {run.name}: {run.path}  ({resumed}stop after {self.total} {self.unit}; "
                  f"{session.stream.per_epoch} minibatches per epoch)")
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]{task.fields[name]}"), BarColumn(bar_width=30),
                TextColumn("step {task.fields[step]} · epoch {task.fields[epoch]:.2f}"),
                TimeRemainingColumn(), console=err, transient=False)
            done = session.step if self.unit == "steps" else session.stream.epoch_float
            self.task = self.progress.add_task("train", total=self.total, completed=done,
                                               name=run.name, step=session.step,
                                               epoch=session.stream.epoch_float)
            self.progress.start()

    def tick(self, step: int, epoch: float) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        self.progress.update(self.task, completed=step if self.unit == "steps" else epoch,
                             step=step, epoch=epoch)

    def report(self, row: dict[str, Any]) -> None:
        # One line per logging interval; on a terminal it scrolls above the progress bar.
        if "parzen_valid" in row:
            v = row["parzen_valid"]
            err.print(f"step {row['step']} epoch {row['epoch']:.2f}: Parzen log-likelihood of "
                      f"validation data (σ {row['parzen_sigma']}, {row['parzen_samples']} "
                      f"samples): " + ("n/a (no validation data)" if v is None else f"{v:.2f}"),
                      markup=False)
            return
        err.print(f"step {row['step']} epoch {row['epoch']:.2f}: "
                  f"D {row['d_loss']:.4f} G {row['g_loss']:.4f} "
                  f"D(x) {row['d_real']:.3f} D(G(z)) {row['d_fake']:.3f} "
                  f"{row['steps_per_s']:.1f} steps/s", markup=False)

    def warn(self, msg: str) -> None:
        err.print(f"warning: {msg}", markup=False)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command()
def train(
    spec: Optional[Path] = typer.Argument(None, help="The spec file (omit with --resume)."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b",
                                          help="Backend plugin [default: torch, or the "
                                               "run's own on --resume]."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N "
                                                                "[default: cpu]."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Directory holding the "
                                            "dataset's files (overrides data.root)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name [default: run1, run2, …]."),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="RUN",
                                         help="Continue RUN from its latest good checkpoint."),
    set_: Optional[List[str]] = SetOpt,
    runs_dir: Optional[Path] = RunsDirOpt,
    nproc: int = typer.Option(1, "--nproc", help="Data-parallel processes on this machine "
                              "(torch.distributed: gloo on CPU, NCCL on CUDA). The spec's batch "
                              "size is the global one."),
) -> None:
    """Train G and D with Algorithm 1 into runs/<name>/ (Ctrl-C checkpoints and stops)."""
    from . import train as T
    from .distributed import world_from_env

    root = _runs_root(runs_dir)
    with _errors():
        if nproc < 1:
            raise UsageError(f"--nproc must be at least 1, got {nproc}")
        rank, world, _ = world_from_env()
        if nproc > 1 and world == 1:
            raise typer.Exit(_launch(nproc, spec, resume, backend, set_ or []))
    if world > 1:
        _train_rank(spec, backend, device, data_root, name, resume, set_ or [], root)
        return

    display = _Display()
    hooks = T.Hooks()
    hooks.start, hooks.warn, hooks.report, hooks.tick = (display.start, display.warn,
                                                         display.report, display.tick)
    with _errors():
        try:
            if resume is not None:
                if spec is not None:
                    raise UsageError("give either a spec file or --resume RUN, not both")
                if name is not None:
                    raise UsageError("--name cannot rename a resumed run")
                run, outcome = T.resume(root, resume, backend, device, data_root, set_ or [],
                                        hooks)
            else:
                if spec is None:
                    raise UsageError("missing spec file (or --resume RUN)")
                from .spec import load_file

                loaded = load_file(spec, set_ or [])
                run, outcome = T.start(loaded, root, name, backend or "torch", device or "cpu",
                                       data_root, hooks)
        finally:
            display.stop()
    last = outcome.last or {}
    summary = ", ".join(f"{k} {last[k]:.4f}" for k in ("d_loss", "g_loss", "d_real", "d_fake")
                        if k in last)
    if outcome.status == "interrupted":
        err.print(f"interrupted at step {outcome.step}; checkpoint saved. "
                  f"Continue with: advgraph train --resume {run.name}")
        raise typer.Exit(130)
    console.print(f"run {run.name} finished: step {outcome.step}, epoch {outcome.epoch}"
              + (f" ({summary})" if summary else "") + f" → {run.path}")


def _launch(nproc: int, spec: Optional[Path], resume: Optional[str], backend: Optional[str],
            overrides: list[str]) -> int:
    """Check what can be checked once, then start `nproc` ranks of this same command."""
    if (backend or "torch") != "torch":
        raise UsageError(f"--nproc needs the torch backend; {backend!r} trains on one device only")
    if spec is not None and resume is None:  # spec errors once, not once per rank
        from .compile import compile_spec
        from .spec import load_file

        loaded = load_file(spec, overrides)
        compile_spec(loaded)
        m = loaded.spec.training.batch_size
        if m % nproc:
            raise UsageError(f"training.batch_size = {m} does not split evenly over {nproc} "
                             "processes")
    return _relaunch(nproc)


def _relaunch(nproc: int) -> int:
    """This very command line, minus --nproc, as `nproc` ranks."""
    from .distributed import launch

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    return launch(argv, nproc)


@contextmanager
def _ranks(nproc: int, device: str) -> Iterator[Any]:
    """For sample/eval: relaunch as `nproc` ranks, or join the group when launched as one.
    Yields the Dist (None when single-process)."""
    from . import distributed

    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}")
    _, world, _ = distributed.world_from_env()
    if nproc > 1 and world == 1:
        raise typer.Exit(_relaunch(nproc))
    dist = distributed.init(device) if world > 1 else None
    try:
        yield dist
    finally:
        if dist is not None:
            dist.close()


def _train_rank(spec, backend, device, data_root, name, resume, overrides, root) -> None:
    """One rank of a distributed run (launched by --nproc or torchrun)."""
    from . import distributed
    from . import train as T

    rank = distributed.world_from_env()[0]
    dist = None
    hooks = T.Hooks()
    if rank == 0:
        display = _Display()
        hooks.start, hooks.warn, hooks.report, hooks.tick = (display.start, display.warn,
                                                             display.report, display.tick)
    try:
        dist = distributed.init(device or "cpu")
        if resume is not None:
            run, outcome = T.resume(root, resume, backend, device, data_root, overrides, hooks,
                                    dist=dist)
        else:
            if spec is None:
                raise UsageError("missing spec file (or --resume RUN)")
            from .spec import load_file

            run, outcome = T.start(load_file(spec, overrides), root, name, backend or "torch",
                                   device or "cpu", data_root, hooks, dist=dist)
    except AdvGraphError as e:
        for line in e.render().splitlines():
            err.print(("error: " if rank == 0 else f"error (rank {rank}): ") + line)
        raise typer.Exit(e.exit_code) from None
    finally:
        if dist is not None:
            dist.close()
    if rank == 0:
        if outcome.status == "interrupted":
            err.print(f"interrupted at step {outcome.step}; checkpoint saved. "
                      f"Continue with: advgraph train --resume {run.name} --nproc {dist.world}")
            raise typer.Exit(130)
        console.print(f"run {run.name} finished: step {outcome.step}, epoch {outcome.epoch} "
                      f"({dist.world} processes) → {run.path}")
    elif outcome.status == "interrupted":
        raise typer.Exit(130)


# ---- sample, interpolate, eval, plot ---------------------------------------------------------

CheckpointOpt = typer.Option(None, "--checkpoint", metavar="STEP",
                             help="Use the checkpoint at STEP [default: the latest good one].")
DeviceOpt = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")
EvalBackendOpt = typer.Option(None, "--backend", "-b", help="Backend to run G and D on "
                              "[default: the one the run trained on]; checkpoints are "
                              "backend-neutral.")
SeedOpt = typer.Option(0, "--seed", min=0, max=2**63 - 1,  # as training.seed: 0 … 2^63 − 1
                       help="Seed of the noise drawn for this command (0 … 2^63 − 1).")
OutOpt = typer.Option(None, "--out", help="Where to write the figure [default: under the run].")
LabelOpt = typer.Option(None, "--label", metavar="CLASS",
                        help="Conditional runs: the class every sample is drawn for.")
DataRootOpt = typer.Option(None, "--data-root", help="Where the run's dataset is now "
                                                     "[default: where it was trained from].")


def _load(run: str, runs_dir: Optional[Path], checkpoint: Optional[int], device: str,
          data_root: Optional[str], backend: Optional[str] = None):
    from .runs import RunDir
    from .train import load_trainer

    r = RunDir.open(_runs_root(runs_dir), run)
    return load_trainer(r, checkpoint, backend=backend, device=device, data_root=data_root,
                        warn=lambda m: err.print(f"warning: {m}", markup=False))


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}")


@app.command()
def sample(
    run: str = typer.Argument(..., help="Run name."),
    grid: bool = typer.Option(False, "--grid", help="A PNG grid of fair random samples (the "
                                                    "default unless --npz is given)."),
    rows: int = typer.Option(4, "--rows"), cols: int = typer.Option(5, "--cols"),
    nearest: bool = typer.Option(False, "--nearest", help="Add a column with, for the sample "
                                 "beside it, the nearest training example (Figure 2)."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of samples for --npz or a toy plot."),
    npz: Optional[Path] = typer.Option(None, "--npz", help="Save raw samples to this .npz."),
    label: Optional[int] = LabelOpt,
    by_label: bool = typer.Option(False, "--by-label", help="Conditional runs: one row per "
                                  "class (each column shares its z)."),
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt,
    data_root: Optional[str] = DataRootOpt,
    runs_dir: Optional[Path] = RunsDirOpt, nproc: int = typer.Option(
        1, "--nproc", help="Share the --nearest search over this many processes."),
) -> None:
    """Draw samples from G: an image grid (or a plot for 1-D/2-D toy data), or raw arrays."""
    from .evaluate import commands as C

    with _errors(), _ranks(nproc, device) as dist:
        _positive("--rows", rows)
        _positive("--cols", cols)
        if n is not None:
            _positive("--n", n)
        loaded = _load(run, runs_dir, checkpoint, dist.device if dist else device, data_root,
                       backend)
        figure = grid or nearest or out is not None or npz is None
        paths = C.sample(loaded, figure=figure, rows=rows, cols=cols, seed=seed, nearest=nearest,
                         n=n, npz=npz, out=out, dist=dist, label=label, per_label=by_label)
    for p in paths:
        out_console_path(p)


def out_console_path(p: Path) -> None:
    console.print(f"wrote {p}")


@app.command()
def interpolate(
    run: str = typer.Argument(..., help="Run name."),
    rows: int = typer.Option(4, "--rows", help="Number of interpolation paths."),
    steps: int = typer.Option(10, "--steps", help="Images per path, endpoints included."),
    slerp: bool = typer.Option(False, "--slerp", help="Spherical interpolation (for Gaussian priors)."),
    label: Optional[int] = LabelOpt,
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt,
    runs_dir: Optional[Path] = RunsDirOpt,
) -> None:
    """Figure 3: images decoded along straight lines between pairs of z drawn from the prior."""
    from .evaluate import commands as C

    with _errors():
        _positive("--rows", rows)
        if steps < 2:
            raise UsageError(f"--steps must be at least 2, got {steps}")
        loaded = _load(run, runs_dir, checkpoint, device, None, backend)
        out_console_path(C.interpolate(loaded, rows=rows, steps=steps, seed=seed,
                                       spherical=slerp, out=out, label=label))


@app.command("eval")
def eval_(
    run: str = typer.Argument(..., help="Run name."),
    parzen: bool = typer.Option(False, "--parzen", help="Parzen-window log-likelihood (Table 1)."),
    theory: bool = typer.Option(False, "--theory", help="1-D runs: D vs D*, JSD, C(G) (Figure 1)."),
    samples: int = typer.Option(10_000, "--samples", help="Samples drawn from G."),
    sigmas: Optional[str] = typer.Option(None, "--sigmas", help="Comma-separated σ grid "
                                         "[default: logspace(-1, 0, 10)]."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Fix σ (no selection)."),
    valid_limit: Optional[int] = typer.Option(1000, "--valid-limit", help="Validation points "
                                              "used to choose σ (0: all)."),
    split: str = typer.Option("test", "--split", help="Split to score: test, valid or train."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="'train': score training "
                                           "examples used as samples, the reference to read "
                                           "G's figure against."),
    by_label: bool = typer.Option(False, "--by-label", help="Conditional runs: a Parzen "
                                  "figure per class, from samples of G(·|class)."),
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt,
    data_root: Optional[str] = DataRootOpt,
    runs_dir: Optional[Path] = RunsDirOpt, nproc: int = typer.Option(
        1, "--nproc", help="Share the Parzen distance work over this many processes."),
) -> None:
    """Evaluate a run: --parzen (any data) and/or --theory (1-D data)."""
    from .evaluate import commands as C

    with _errors(), _ranks(nproc, device) as dist:
        if not (parzen or theory):
            raise UsageError("choose --parzen and/or --theory")
        if by_label and not parzen:
            raise UsageError("--by-label goes with --parzen")
        _positive("--samples", samples)
        if split not in ("test", "valid", "train"):
            raise UsageError(f"--split must be test, valid or train, not {split!r}")
        if baseline not in (None, "train"):
            raise UsageError(f"--baseline must be 'train', not {baseline!r}")
        grid = None
        if sigmas is not None:
            try:
                grid = [float(v) for v in sigmas.split(",") if v.strip()]
            except ValueError:
                raise UsageError(f"--sigmas: not a comma-separated list of numbers: {sigmas!r}") from None
            if not grid or any(not (v > 0) or v != v or v == float("inf") for v in grid):
                raise UsageError("--sigmas: give positive, finite values")
        if sigma is not None and not (0 < sigma < float("inf")):
            raise UsageError(f"--sigma must be positive and finite, got {sigma}")
        if valid_limit is not None and valid_limit < 0:
            raise UsageError(f"--valid-limit must be ≥ 0, got {valid_limit}")
        loaded = _load(run, runs_dir, checkpoint, dist.device if dist else device, data_root,
                       backend)
        if parzen:
            rep = C.parzen(loaded, samples=samples, sigmas=grid, sigma=sigma,
                           valid_limit=valid_limit or None, split=split, baseline=baseline,
                           seed=seed, dist=dist, per_label=by_label)
            if dist is not None and not dist.is_main:
                return
            if by_label:
                _print_by_label(rep)
            else:
                _print_parzen(rep)
            console.print(f"caveat: {rep['caveat']}")
            out_console_path(Path(rep["written"]))
        if theory and (dist is None or dist.is_main):
            rep = C.theory(loaded, samples=samples, seed=seed, out=out)
            console.print(f"mean |D − D*| over the data's support: {rep['mean_abs_d_minus_dstar']:.4f}")
            console.print(f"JSD(p_data ‖ p_g): {rep['jsd']:.5f}")
            console.print(f"C(G) = −log 4 + 2·JSD: {rep['c_of_g']:.5f}   (minimum −log 4 = "
                      f"{rep['min_c']:.5f})")
            console.print(f"V(D, G) with the trained D: {rep['v_measured']:.5f}")
            console.print(f"p_data mean/std {rep['data_mean']:.3f}/{rep['data_std']:.3f}, "
                      f"p_g mean/std {rep['g_mean']:.3f}/{rep['g_std']:.3f}")
            out_console_path(Path(rep["figure"]))


def _print_parzen(rep: dict[str, Any]) -> None:
    table = Table(title=f"Parzen window — run {rep['run']}, step {rep['checkpoint_step']}",
                  title_justify="left")
    table.add_column("σ", justify="right")
    table.add_column("mean valid log-lik", justify="right")
    for row in rep["valid_scores"]:
        mark = " ← chosen" if row["sigma"] == rep["sigma"] else ""
        table.add_row(f"{row['sigma']:.4g}", f"{row['mean_log_likelihood']:.2f}{mark}")
    if rep["valid_scores"]:
        console.print(table)
    console.print(f"{rep['evaluated_split']} log-likelihood: {rep['mean_log_likelihood']:.2f} "
              f"± {rep['stderr']:.2f} nats (σ = {rep['sigma']:.4g}, {rep['source']}, "
              f"{rep['n_evaluated']} points, {rep['seconds']:.1f} s)")


def _print_by_label(rep: dict[str, Any]) -> None:
    table = Table(title=f"Parzen window by class — run {rep['run']}, step "
                        f"{rep['checkpoint_step']}", title_justify="left")
    for col in ("class", "points", "σ", f"{rep['evaluated_split']} log-lik"):
        table.add_column(col, justify="right")
    for r in rep["by_label"]:
        if r["n_evaluated"] == 0:
            table.add_row(str(r["label"]), "0", "", "no points")
            continue
        table.add_row(str(r["label"]), str(r["n_evaluated"]), f"{r['sigma']:.4g}",
                      f"{r['mean_log_likelihood']:.2f} ± {r['stderr']:.2f}")
    console.print(table)
    console.print(f"{rep['source']}; σ {'fixed' if rep['sigma_fixed'] else 'chosen per class on its validation points'}; "
                  f"{rep['seconds']:.1f} s")


@app.command()
def plot(run: str = typer.Argument(..., help="Run name."), out: Optional[Path] = OutOpt,
         runs_dir: Optional[Path] = RunsDirOpt) -> None:
    """Loss and D-output curves from metrics.jsonl as a PNG."""
    from .errors import RunError
    from .figures import plot_metrics
    from .runs import RunDir

    with _errors():
        r = RunDir.open(_runs_root(runs_dir), run)
        metrics = r.metrics()  # a damaged metrics.jsonl: an error naming the file and line
        rows = [x for x in metrics
                if all(k in x for k in ("step", "d_loss", "g_loss", "d_real", "d_fake"))]
        parzen = [x for x in metrics if x.get("parzen_valid") is not None]
        if not rows:
            raise RunError(f"{r.metrics_path}: no training metrics yet (run {run!r})")
        out_console_path(plot_metrics(rows, out or r.path / "plots" / "metrics.png",
                                      title=f"run {run}", parzen=parzen))


@app.command()
def parity(
    spec: Path = typer.Argument(..., help="The spec file."),
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
    from .compile import compile_spec
    from .parity import compare
    from .spec import load_file

    with _errors():
        names = tuple(x.strip() for x in backends_.split(","))
        devs = tuple(x.strip() for x in devices.split(","))
        if len(names) != 2 or not all(names):
            raise UsageError(f"--backends wants two names, A,B; got {backends_!r}")
        if len(devs) == 1:
            devs = devs * 2
        if len(devs) != 2:
            raise UsageError(f"--devices wants one device or two, A,B; got {devices!r}")
        _positive("--batch", batch)
        if not tol > 0:
            raise UsageError(f"--tol must be positive, got {tol}")
        loaded = load_file(spec, set_ or [])
        rows = compare(compile_spec(loaded), loaded.spec.training, names, devs, batch, tol)  # type: ignore[arg-type]
    failed = [r for r in rows if not r.ok]
    if as_json:
        console.print_json(json.dumps([r.__dict__ for r in rows]))
    else:
        table = Table(title=f"parity {names[0]} ({devs[0]}) vs {names[1]} ({devs[1]}), tol {tol:g}",
                      title_justify="left")
        for col in ("stage", "tensor", "max |a − b|", "max rel", ""):
            table.add_column(col, justify="right" if col.startswith("max") else "left")
        for r in rows:
            table.add_row(r.stage, r.tensor, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}",
                          "ok" if r.ok else "FAIL")
        console.print(table)
        console.print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


# ---- runs, backends -------------------------------------------------------------------------


@app.command()
def runs(runs_dir: Optional[Path] = RunsDirOpt,
         as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List runs with status, step, epoch and last metrics (a damaged run as `damaged`)."""
    from .runs import list_runs

    root = _runs_root(runs_dir)
    with _errors():
        rows = [_run_row(r) for r in list_runs(root)]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    if not rows:
        console.print(f"no runs in {root}")
        return
    from rich import box

    table = Table(box=box.SIMPLE_HEAD)
    for col in ("name", "status", "step", "epoch", "backend", "D loss", "G loss", "D(x)",
                "D(G(z))"):
        table.add_column(col, no_wrap=True,
                         justify="left" if col in ("name", "status", "backend") else "right")
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    for r in rows:
        table.add_row(r["name"], r["status"], "" if r["step"] is None else str(r["step"]),
                      "" if r["epoch"] is None else str(r["epoch"]), r["backend"] or "",
                      fmt(r["d_loss"]), fmt(r["g_loss"]), fmt(r["d_real"]), fmt(r["d_fake"]))
    # Never cut a cell short: wider than the terminal (or than 80 columns when piped) the
    # lines run long rather than lose a run's name or status.
    width = max(console.width,
                console.measure(table, options=console.options.update_width(10**5)).maximum)
    Console(file=console.file, width=width, highlight=False, soft_wrap=True,
            markup=False).print(table, crop=False)  # print(width=) caps at console.width
    damaged = [r for r in rows if r["status"] == "damaged"]
    for r in damaged:
        err.print(f"warning: run {r['name']} is damaged: {r['error']}", markup=False)


def _run_row(r) -> dict[str, Any]:
    """One run for `advgraph runs`: from its run.json (and a check of its metrics.jsonl); a
    damaged run is a row with status `damaged` and the problem, never an error for the list."""
    from .errors import RunError

    try:
        info = r.info()
    except RunError as e:
        return {"name": r.name, "status": "damaged", "step": None, "epoch": None,
                "backend": None, "d_loss": None, "g_loss": None, "d_real": None,
                "d_fake": None, "updated": None, "error": str(e)}
    last = info.get("last_metrics") or {}
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
    from .backend import list_backends

    for name, ok, why, about in list_backends(about=True):
        console.print(f"{name}: " + (("available" + (f" ({why})" if why else "")) if ok
                                     else f"unavailable ({why})"))
        if about:
            console.print(f"  {about}")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"advgraph {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print advgraph's version and exit.")) -> None:
    """Generative adversarial nets (Goodfellow et al., 2014) declared in YAML."""


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
