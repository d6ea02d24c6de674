"""`advgraph sample`, `interpolate` and `plot`: figures from a trained run (the work itself is
advgraph.run.sample_files', advgraph.evaluate.interpolation's and advgraph.figures')."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import (CheckpointOpt, DataRootOpt, DeviceOpt, EvalBackendOpt, LabelOpt, OutOpt,
                     RawOpt, RunArg, RunsDirOpt, SeedOpt, open_run, png_out, print_wrote,
                     sweep_at, user_errors, warn)
from .ranks import ranks
from .restoring import FIGURE_COPIES, NPZ_COPIES, current_rank, fits, restore


def sample(
    run: str = RunArg,
    grid: bool = typer.Option(False, "--grid", help="With --npz: also write the PNG grid (or "
                              "toy plot). Without --npz the grid is written anyway, to the same "
                              "file: --grid changes nothing."),
    rows: Optional[int] = typer.Option(None, "--rows", min=1, help="Grid rows [default: 4]."),
    cols: Optional[int] = typer.Option(None, "--cols", min=1, help="Grid columns [default: 5]."),
    nearest: bool = typer.Option(False, "--nearest", help="Add a column with, for the sample "
                                 "beside it, the nearest training example (Figure 2)."),
    n: Optional[int] = typer.Option(None, "--n", min=1,
                                    help="Number of samples for --npz or a toy plot."),
    npz: Optional[Path] = typer.Option(None, "--npz", help="Save raw samples to this .npz."),
    label: Optional[int] = LabelOpt,
    by_label: bool = typer.Option(False, "--by-label", help="Conditional runs: one row per "
                                  "class (each column shares its z)."),
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt,
    data_root: Optional[str] = DataRootOpt, raw: bool = RawOpt,
    runs_dir: Optional[Path] = RunsDirOpt, nproc: int = typer.Option(
        1, "--nproc", min=1, help="Share the --nearest search over this many processes."),
) -> None:
    """Draw samples from G: an image grid (or a plot for 1-D/2-D toy data), or raw arrays."""
    from ..run import sample_files
    from ..run.samples import image_shape

    shape_given = rows is not None or cols is not None
    rows, cols = rows if rows is not None else 4, cols if cols is not None else 5

    def check() -> None:  # once before --nproc launches its ranks, and in every process
        png_out(out)
        open_run(run, runs_dir)

    with user_errors(current_rank(), "a smaller --n, --rows or --cols"), \
            ranks(nproc, device, check) as dist:
        check()
        restored = restore(run, runs_dir, checkpoint, dist.device if dist else device,
                           data_root, backend, raw)
        figure = grid or nearest or out is not None or npz is None
        toy = image_shape(restored) is None
        _check_sample_memory(restored, rows, cols, n, npz is not None, figure, toy,
                             nearest, by_label)
        if grid and npz is None:
            warn("--grid changes nothing without --npz: the grid is what sample writes anyway")
        if nearest and toy:
            warn("--nearest adds a column of nearest training images to an image grid; toy "
                 "data is plotted without it")
        if shape_given and figure and toy and not (npz is not None and n is None):
            warn("--rows and --cols shape an image grid; toy data is plotted, with --n "
                 "samples (default 5000)")
        if n is not None and figure and not toy and npz is None:
            warn("--n sets the number of samples for --npz and toy plots; an image grid shows "
                 "--rows × --cols samples")
        paths = sample_files.sample(restored, figure=figure, rows=rows, cols=cols, seed=seed,
                                    nearest=nearest, n=n, npz=npz, out=out, dist=dist,
                                    label=label, per_label=by_label)
    for p in paths:
        print_wrote(p)


def interpolate(
    run: str = RunArg,
    rows: int = typer.Option(4, "--rows", min=1, help="Number of interpolation paths."),
    steps: int = typer.Option(10, "--steps", min=2, help="Images per path, endpoints included."),
    slerp: bool = typer.Option(False, "--slerp", help="Spherical interpolation (for Gaussian priors)."),
    label: Optional[int] = LabelOpt,
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt, raw: bool = RawOpt,
    runs_dir: Optional[Path] = RunsDirOpt,
) -> None:
    """Figure 3: images decoded along straight lines between pairs of z drawn from the prior."""
    from ..evaluate.interpolation import interpolate as draw_path

    with user_errors(lower="a smaller --rows or --steps"):
        png_out(out)
        restored = restore(run, runs_dir, checkpoint, device, None, backend, raw)
        fits(restored, "--rows or --steps", f"--rows {rows:,} × --steps {steps:,}",
             rows * steps, FIGURE_COPIES)
        if slerp and restored.program.prior.kind == "uniform":
            warn("--slerp follows great circles, which suit a Gaussian prior; this run's prior "
                 "is uniform, and the paths leave its box")
        print_wrote(draw_path(restored, rows=rows, steps=steps, seed=seed,
                              spherical=slerp, out=out, label=label))


def _check_sample_memory(restored, rows: int, cols: int, n: Optional[int], npz: bool,
                         figure: bool, toy: bool, nearest: bool, by_label: bool) -> None:
    """`sample`'s sizes against the memory available: the --npz samples, the toy plot's
    --n, the grid's --rows × --cols (a row per class with --by-label)."""
    if npz:
        if n is not None:
            fits(restored, "--n", f"--n {n:,}", n, NPZ_COPIES)
        else:
            fits(restored, "--rows or --cols", f"--rows {rows:,} × --cols {cols:,}",
                 rows * cols, NPZ_COPIES)
    if figure and toy:
        fits(restored, "--n", f"--n {n or 5000:,}", n or 5000, FIGURE_COPIES)
    elif figure:
        r = (restored.program.classes or rows) if by_label else rows
        option = "--cols" if by_label else "--rows or --cols"
        fits(restored, option, f"--rows {r:,} × --cols {cols:,}", r * (cols + nearest),
             FIGURE_COPIES)


def _eval_history(run) -> list[dict[str, Any]]:
    """eval/metrics.jsonl's lines; a line that does not parse (a crash mid-write) is skipped
    with a warning, never fatal for a plot."""
    import json

    path = run.path / "eval" / "metrics.jsonl"
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    except (OSError, UnicodeDecodeError) as e:
        warn(f"{path}: not read ({e}); the plot leaves out the evaluations")
        return []
    for i, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("checkpoint_step"), int):
            out.append(row)
        elif line.strip():
            warn(f"{path}:{i}: not an evaluation record; skipped")
    return out


def _raw_scores(r) -> bool:
    """Whether the run's D gives raw scores (its spec's loss), not probabilities."""
    from ..errors import AdvGraphError
    from ..ir.objective import SCORE_LOSSES
    from ..spec.load import load_file

    try:
        return load_file(r.spec_path, stored=True).spec.training.loss in SCORE_LOSSES
    except (AdvGraphError, OSError):  # the curves do not need the spec
        return False


def plot(run: str = RunArg, out: Optional[Path] = OutOpt,
         runs_dir: Optional[Path] = RunsDirOpt) -> None:
    """Loss and D-output curves from metrics.jsonl as a PNG (of a sweep: per setting, the
    median over its members with the 25–75% band)."""
    from ..errors import RunError
    from ..figures import plot_metrics

    with user_errors():
        png_out(out)
        sw = sweep_at(run, runs_dir)
        if sw is not None:
            return _plot_sweep(sw, out)
        r = open_run(run, runs_dir)
        metrics = r.metrics()  # a damaged metrics.jsonl: an error naming the file and line
        rows = [x for x in metrics
                if all(k in x for k in ("step", "d_loss", "g_loss", "d_real", "d_fake"))]
        parzen = [x for x in metrics if x.get("parzen_valid") is not None]
        if not rows:
            raise RunError(f"{r.metrics_path}: no training metrics yet (run {run!r})")
        print_wrote(plot_metrics(rows, out or r.path / "plots" / "metrics.png",
                                 title=f"run {r.name}", parzen=parzen, evals=_eval_history(r),
                                 follow=out is not None, scores=_raw_scores(r)))


CURVES = ("step", "d_loss", "g_loss", "d_real", "d_fake")


def _plot_sweep(sw, out: Optional[Path]) -> None:
    """`plot SWEEP`: per setting, the members' curves as a median and a 25–75% band; diverged
    members left out (named in the title), as are members with no metrics yet."""
    from ..errors import RunError
    from ..figures import plot_sweep_metrics

    info = sw.info()
    settings: dict[str, list[list[dict]]] = {}
    left_out = [m["name"] for m in info["members"] if m.get("status") == "diverged"]
    runs = sw.member_runs(info)
    for m, r in zip(info["members"], runs):
        if m.get("status") == "diverged":
            continue
        if not r.path.is_dir():
            warn(f"member {m['name']} is gone ({r.path}); left out")
            continue
        rows = [x for x in r.metrics() if all(k in x for k in CURVES)]  # damage: names the file
        if rows:
            settings.setdefault(m.get("setting", "all"), []).append(rows)
        else:
            warn(f"{r.metrics_path}: no training metrics yet; member {m['name']} left out")
    if not settings:
        raise RunError(f"sweep {sw.name}: no member has training metrics to plot")
    title = f"sweep {sw.name}: median over seeds, band 25–75%"
    if left_out:
        title += f"\ndiverged, left out: {', '.join(left_out)}"
    first = next(r for m, r in zip(info["members"], runs)
                 if m.get("status") not in ("diverged", "missing") and r.path.is_dir())
    print_wrote(plot_sweep_metrics(settings, out or sw.path / "plots" / "metrics.png",
                                   title=title, follow=out is not None,
                                   scores=_raw_scores(first)))
