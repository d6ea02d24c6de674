"""`advgraph sample`, `interpolate`, `eval` and `plot`: figures and numbers from a trained run
(the work itself is advgraph.evaluate's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import CheckpointError, UsageError
from . import app
from .common import (RunArg, RunsDirOpt, console, err, png_out, positive, print_wrote, runs_root,
                     user_errors, warn)
from .reports import print_by_label, print_parzen, print_quality, print_theory
from .completion import choices
from .ranks import ranks

CheckpointOpt = typer.Option(None, "--checkpoint", metavar="STEP",
                             help="Use the checkpoint at STEP [default: the latest good one].")
DeviceOpt = typer.Option("auto", "--device", autocompletion=choices("auto", "cpu", "cuda"),
                         help="auto (CUDA when available, else the CPU), "
                         "cpu, cuda or cuda:N.")
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


def _restore(run: str, runs_dir: Optional[Path], checkpoint: Optional[int], device: str,
             data_root: Optional[str], backend: Optional[str] = None):
    from ..backend_protocol import resolve_device
    from ..run.restore import restore_run

    from ..errors import BackendError, LoweringError

    r = _open_run(run, runs_dir)
    trained_on = r.info().get("backend") or "torch"
    device = resolve_device(device, backend or trained_on)
    try:
        return restore_run(r, checkpoint, backend=backend, device=device, data_root=data_root,
                           warn=warn)
    except (BackendError, LoweringError) as e:
        if backend is not None or trained_on == "torch":
            raise
        # the run's own backend is the default, and building it (its kernels) failed here
        raise BackendError(f"{e}\n(run {r.name} trained on {trained_on}, its default here; "
                           "checkpoints are backend-neutral: --backend torch reads it with "
                           "torch)") from None


@app.command()
def sample(
    run: str = RunArg,
    grid: bool = typer.Option(False, "--grid", help="With --npz: also write the PNG grid (or "
                              "toy plot). Without --npz the grid is written anyway, to the same "
                              "file: --grid changes nothing."),
    rows: Optional[int] = typer.Option(None, "--rows", help="Grid rows [default: 4]."),
    cols: Optional[int] = typer.Option(None, "--cols", help="Grid columns [default: 5]."),
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
    from ..run import sample_files
    from ..run.samples import image_shape

    shape_given = rows is not None or cols is not None
    rows, cols = rows if rows is not None else 4, cols if cols is not None else 5

    def check() -> None:  # once before --nproc launches its ranks, and in every process
        png_out(out)
        positive("--rows", rows)
        positive("--cols", cols)
        if n is not None:
            positive("--n", n)
        _open_run(run, runs_dir)

    with user_errors(_rank(), "a smaller --n, --rows or --cols"), \
            ranks(nproc, device, check) as dist:
        check()
        restored = _restore(run, runs_dir, checkpoint, dist.device if dist else device,
                            data_root, backend)
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


@app.command()
def interpolate(
    run: str = RunArg,
    rows: int = typer.Option(4, "--rows", help="Number of interpolation paths."),
    steps: int = typer.Option(10, "--steps", help="Images per path, endpoints included."),
    slerp: bool = typer.Option(False, "--slerp", help="Spherical interpolation (for Gaussian priors)."),
    label: Optional[int] = LabelOpt,
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt,
    runs_dir: Optional[Path] = RunsDirOpt,
) -> None:
    """Figure 3: images decoded along straight lines between pairs of z drawn from the prior."""
    from ..evaluate.interpolation import interpolate as draw_path

    with user_errors(lower="a smaller --rows or --steps"):
        png_out(out)
        positive("--rows", rows)
        if steps < 2:
            raise UsageError(f"--steps must be at least 2, got {steps}")
        restored = _restore(run, runs_dir, checkpoint, device, None, backend)
        _fits(restored, "--rows or --steps", f"--rows {rows:,} × --steps {steps:,}",
              rows * steps, FIGURE_COPIES)
        if slerp and restored.program.prior.kind == "uniform":
            warn("--slerp follows great circles, which suit a Gaussian prior; this run's prior "
                  "is uniform, and the paths leave its box")
        print_wrote(draw_path(restored, rows=rows, steps=steps, seed=seed,
                              spherical=slerp, out=out, label=label))


@app.command("eval")
def eval_(
    run: str = RunArg,
    parzen: bool = typer.Option(False, "--parzen", help="Parzen-window log-likelihood (Table 1)."),
    theory: bool = typer.Option(False, "--theory", help="1-D runs: D vs D*, JSD, C(G) (Figure 1)."),
    samples: int = typer.Option(10_000, "--samples", help="Samples drawn from G."),
    sigmas: Optional[str] = typer.Option(None, "--sigmas", help="Comma-separated σ grid "
                                         "[default: logspace(-1, 0, 10) for data in [0, 1], else "
                                         "logspace(-3, 0, 19) × the data's scale]."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Fix σ (no selection)."),
    valid_limit: Optional[int] = typer.Option(1000, "--valid-limit", help="Validation points "
                                              "used to choose σ (0: all)."),
    split: str = typer.Option("test", "--split", autocompletion=choices("test", "valid", "train"),
                              help="Split to score: test, valid or train."),
    baseline: Optional[str] = typer.Option(None, "--baseline",
                                           autocompletion=choices("train", "kmeans"), help="'train': score training "
                                           "examples used as samples; 'kmeans': k-means "
                                           "centres of the training set (k = --samples, "
                                           "cached): the references to read G's figure "
                                           "against."),
    by_label: bool = typer.Option(False, "--by-label", help="Conditional runs: a Parzen "
                                  "figure per class, from samples of G(·|class)."),
    fid: bool = typer.Option(False, "--fid", help="Fréchet distance in the features of a "
                             "classifier of the run's data (FID's form; labelled data)."),
    prdc: bool = typer.Option(False, "--prdc", help="Precision, recall, density and coverage "
                              "(k = 5) in the same features."),
    score: bool = typer.Option(False, "--score", help="Classifier score exp(E KL(p(y|x) ‖ "
                               "p(y))) (the Inception Score's form)."),
    retrain_classifier: bool = typer.Option(False, "--retrain-classifier", help="Train the "
                                            "data's classifier again instead of using the cached "
                                            "one."),
    all_checkpoints: bool = typer.Option(False, "--all-checkpoints", help="Evaluate every "
                                         "checkpoint the run keeps, oldest first."),
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt,
    data_root: Optional[str] = DataRootOpt,
    runs_dir: Optional[Path] = RunsDirOpt, nproc: int = typer.Option(
        1, "--nproc", help="Share the Parzen distance work over this many processes."),
) -> None:
    """Evaluate a run: --parzen (any data), --fid/--prdc/--score (labelled data), --theory
    (1-D data). Every result is also appended to eval/metrics.jsonl."""
    from ..evaluate.quality import quality as measure_quality
    from ..evaluate.theory import theory as measure_theory

    which = {m for m, on in (("fid", fid), ("prdc", prdc), ("score", score)) if on}
    def check() -> Optional[list[float]]:  # once before --nproc launches its ranks, and in each
        png_out(out)
        grid = _check_eval_options(parzen, which, theory, by_label, samples, split, baseline,
                                   sigmas, sigma, valid_limit)
        if all_checkpoints and checkpoint is not None:
            raise UsageError("give either --checkpoint or --all-checkpoints, not both")
        _open_run(run, runs_dir)
        return grid

    with user_errors(_rank(), "a smaller --samples"), ranks(nproc, device, check) as dist:
        grid = check()
        steps = [checkpoint]
        if all_checkpoints and baseline and not (which or theory):
            # --parzen --baseline scores the baseline alone, which no checkpoint of G changes
            if not _rank():
                warn(f"--all-checkpoints does nothing with --parzen --baseline {baseline}: the "
                      "baseline does not depend on G's checkpoint, so it is scored once; run "
                      "--all-checkpoints without --baseline for G's history")
        elif all_checkpoints:
            steps = [c.step for c in _open_run(run, runs_dir).checkpoints()] or [None]
        restored = None
        memo: dict = {}  # what the quality metrics share across checkpoints
        for i, step in enumerate(steps):
            try:
                if restored is None:
                    restored = _restore(run, runs_dir, step, dist.device if dist else device,
                                        data_root, backend)
                else:  # the same program, trainer and data: only the weights change
                    restored.load_checkpoint(step, warn=warn)
            except CheckpointError:
                if not all_checkpoints or step is None or _still_listed(run, runs_dir, step):
                    raise
                if not _rank():
                    warn(f"skipped the checkpoint at step {step}: it was removed after eval "
                          "listed it (the run is still training and keeps only its newest)")
                continue
            _fits(restored, "--samples", f"--samples {samples:,}", samples, EVAL_COPIES,
                  EVAL_PER_SAMPLE)
            # A baseline does not depend on G's checkpoint: it is evaluated once, with the last.
            base = baseline if i == len(steps) - 1 else None
            if parzen and (base or not baseline):  # --baseline scores the baseline, not G
                _eval_parzen(restored, dist, by_label, samples=samples, sigmas=grid, sigma=sigma,
                             valid_limit=valid_limit or None, split=split, baseline=base,
                             seed=seed, progress=lambda m: err.print(m, markup=False))
            if dist is not None and not dist.is_main:
                continue
            if which:
                rep = measure_quality(restored, which=which, samples=samples, seed=seed,
                                      split=split, baseline=base, retrain=retrain_classifier,
                                      warn=warn, progress=lambda m: err.print(m, markup=False),
                                      memo=memo)
                print_quality(rep)
                print_wrote(Path(rep["written"]))
            if theory:
                print_theory(measure_theory(restored, samples=samples, seed=seed, out=out))
        if restored is None:
            raise CheckpointError(f"run {run!r}: every checkpoint eval listed was removed "
                                  "before it could be read; run eval again")


def _still_listed(run: str, runs_dir: Optional[Path], step: Optional[int]) -> bool:
    """Whether the run still has a checkpoint at `step` (False: it vanished, pruned by a run
    still training, so there is nothing left to evaluate there)."""
    return any(c.step == step for c in _open_run(run, runs_dir).checkpoints())


# Lower bounds on the float32 copies of the samples a command holds at its peak (see
# memory.generation_bytes): G's batches and their concatenation (2), plus for a figure the
# float64 pixels and their scaling (4) and the grid image (2); for --npz the file's bytes and
# their copy (2); for eval the Parzen centres in float32 and float64 and centred (4), and per
# sample a row of the distance block (2,048 points) and of the kernel terms (128), in float32.
FIGURE_COPIES, NPZ_COPIES, EVAL_COPIES = 8, 4, 6
EVAL_PER_SAMPLE = 4 * (2048 + 128)


def _fits(restored, option: str, what: str, n: int, copies: int, per_sample: int = 0) -> None:
    """Refuse, before G draws anything, `n` samples that cannot fit in the memory available
    (memory.check_fits), naming `option`."""
    from math import prod

    from .. import memory

    size = prod(restored.program.data_shape)
    memory.check_fits(option, f"{what}: {n:,} samples of {size:,} values need",
                      memory.generation_bytes(restored.program, n, copies, per_sample))


def _check_sample_memory(restored, rows: int, cols: int, n: Optional[int], npz: bool,
                         figure: bool, toy: bool, nearest: bool, by_label: bool) -> None:
    """`sample`'s sizes against the memory available: the --npz samples, the toy plot's
    --n, the grid's --rows × --cols (a row per class with --by-label)."""
    if npz:
        if n is not None:
            _fits(restored, "--n", f"--n {n:,}", n, NPZ_COPIES)
        else:
            _fits(restored, "--rows or --cols", f"--rows {rows:,} × --cols {cols:,}",
                  rows * cols, NPZ_COPIES)
    if figure and toy:
        _fits(restored, "--n", f"--n {n or 5000:,}", n or 5000, FIGURE_COPIES)
    elif figure:
        r = (restored.program.classes or rows) if by_label else rows
        option = "--cols" if by_label else "--rows or --cols"
        _fits(restored, option, f"--rows {r:,} × --cols {cols:,}", r * (cols + nearest),
              FIGURE_COPIES)


def _eval_parzen(restored, dist, by_label: bool, **settings: Any) -> None:
    """One Parzen evaluation; rank 0 (or the only process) prints it."""
    from ..evaluate.likelihood import parzen

    rep = parzen(restored, dist=dist, per_label=by_label, **settings)
    if dist is not None and not dist.is_main:
        return
    if by_label:
        print_by_label(rep)
    else:
        print_parzen(rep)
    console.print(f"caveat: {rep['caveat']}")
    print_wrote(Path(rep["written"]))


def _rank() -> int:
    """This process's rank when launched as one of --nproc's ranks (0 otherwise): its errors
    say which rank they come from."""
    from ..distributed import world_from_env

    return world_from_env()[0]


def _open_run(run: str, runs_dir: Optional[Path]):
    """The run directory, or the error that names what is wrong with it."""
    from ..run.directory import RunDir

    return RunDir.resolve(run, runs_root(runs_dir))


def _check_eval_options(parzen: bool, which: set[str], theory: bool, by_label: bool,
                        samples: int, split: str, baseline: Optional[str], sigmas: Optional[str],
                        sigma: Optional[float], valid_limit: Optional[int]
                        ) -> Optional[list[float]]:
    """eval's options, checked; returns the σ grid from --sigmas (None: the default)."""
    if not (parzen or which or theory):
        raise UsageError("choose --parzen, --fid, --prdc, --score and/or --theory")
    if by_label and not parzen:
        raise UsageError("--by-label goes with --parzen")
    positive("--samples", samples)
    if split not in ("test", "valid", "train"):
        raise UsageError(f"--split must be test, valid or train, not {split!r}")
    if baseline not in (None, "train", "kmeans"):
        raise UsageError(f"--baseline must be 'train' or 'kmeans', not {baseline!r}")
    grid = _parse_sigmas(sigmas)
    if sigma is not None and not (0 < sigma < float("inf")):
        raise UsageError(f"--sigma must be positive and finite, got {sigma}")
    if valid_limit is not None and valid_limit < 0:
        raise UsageError(f"--valid-limit must be ≥ 0, got {valid_limit}")
    return grid


def _parse_sigmas(sigmas: Optional[str]) -> Optional[list[float]]:
    """--sigmas as a list of positive, finite numbers (None when not given)."""
    if sigmas is None:
        return None
    try:
        grid = [float(v) for v in sigmas.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--sigmas: not a comma-separated list of numbers: {sigmas!r}") from None
    if not grid or any(not (v > 0) or v != v or v == float("inf") for v in grid):
        raise UsageError("--sigmas: give positive, finite values")
    return grid


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


@app.command()
def plot(run: str = RunArg, out: Optional[Path] = OutOpt,
         runs_dir: Optional[Path] = RunsDirOpt) -> None:
    """Loss and D-output curves from metrics.jsonl as a PNG."""
    from ..errors import RunError
    from ..figures import plot_metrics
    from ..run.directory import RunDir

    with user_errors():
        png_out(out)
        r = RunDir.resolve(run, runs_root(runs_dir))
        metrics = r.metrics()  # a damaged metrics.jsonl: an error naming the file and line
        rows = [x for x in metrics
                if all(k in x for k in ("step", "d_loss", "g_loss", "d_real", "d_fake"))]
        parzen = [x for x in metrics if x.get("parzen_valid") is not None]
        if not rows:
            raise RunError(f"{r.metrics_path}: no training metrics yet (run {run!r})")
        print_wrote(plot_metrics(rows, out or r.path / "plots" / "metrics.png",
                                 title=f"run {r.name}", parzen=parzen, evals=_eval_history(r),
                                 follow=out is not None))
