"""`advgraph eval`: a run's checkpoints measured (advgraph.evaluate.evaluation does the work;
this parses, checks what typer cannot, and prints each report as it comes)."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from ..errors import UsageError
from .common import (CheckpointOpt, DataRootOpt, DeviceOpt, EvalBackendOpt, OutOpt, RawOpt,
                     RunArg,
                     RunsDirOpt, SeedOpt, console, err, open_run, png_out, print_wrote,
                     sweep_at, user_errors, warn)
from .ranks import ranks
from .reports import print_by_label, print_modes, print_parzen, print_quality, print_theory
from .restoring import EVAL_COPIES, EVAL_PER_SAMPLE, current_rank, fits, restore
from .sweep_eval import evaluate_sweep


class Split(str, Enum):
    test = "test"
    valid = "valid"
    train = "train"


class Baseline(str, Enum):
    train = "train"
    kmeans = "kmeans"


def _flag(name: str, help: str) -> Any:
    return typer.Option(False, name, help=help)


ParzenOpt = _flag("--parzen", "Parzen-window log-likelihood (Table 1).")
TheoryOpt = _flag("--theory", "1-D runs: D vs D*, JSD, C(G) (Figure 1).")
ModesOpt = _flag("--modes", "toy-ring2d runs: modes covered, high-quality share and KL to "
                            "uniform (the 8-Gaussians probe of Metz et al. 2017).")
MODE_SAMPLES, MODE_SHARE = 2500, 20 / 2500  # evaluate.modes' defaults (imported only to run)
ModeSamplesOpt = typer.Option(MODE_SAMPLES, "--mode-samples", min=1,
                              help="Samples drawn for --modes.")
ModeShareOpt = typer.Option(MODE_SHARE, "--mode-share", help="--modes: the "
                            "share of the samples a mode needs within 3 std to count as "
                            "covered [default: 20 of 2500].")
JsonOpt = _flag("--json", "Print each report as one line of JSON instead of tables.")
FidOpt = _flag("--fid", "Fréchet distance in the features of a classifier of the run's data "
                        "(FID's form; labelled data).")
PrdcOpt = _flag("--prdc", "Precision, recall, density and coverage (k = 5) in the same "
                          "features.")
ScoreOpt = _flag("--score", "Classifier score exp(E KL(p(y|x) ‖ p(y))) (the Inception Score's "
                            "form).")
ByLabelOpt = _flag("--by-label", "Conditional runs: a Parzen figure per class, from samples of "
                                 "G(·|class).")
RetrainOpt = _flag("--retrain-classifier", "Train the data's classifier again instead of using "
                                           "the cached one.")
AllCheckpointsOpt = _flag("--all-checkpoints", "Evaluate every checkpoint the run keeps, "
                                               "oldest first.")
SamplesOpt = typer.Option(10_000, "--samples", min=1, help="Samples drawn from G.")
SigmasOpt = typer.Option(None, "--sigmas", help="Comma-separated σ grid [default: "
                         "logspace(-1, 0, 10) for data in [0, 1], else logspace(-3, 0, 19) × "
                         "the data's scale].")
SigmaOpt = typer.Option(None, "--sigma", help="Fix σ (no selection).")
ValidLimitOpt = typer.Option(1000, "--valid-limit", min=0, help="Validation points used to "
                             "choose σ (0: all).")
SplitOpt = typer.Option(Split.test, "--split", help="Split to score: test, valid or train.")
BaselineOpt = typer.Option(None, "--baseline", help="'train': score training examples used as "
                           "samples; 'kmeans': k-means centres of the training set (k = "
                           "--samples, cached): the references to read G's figure against.")
NprocOpt = typer.Option(1, "--nproc", min=1, help="Share the Parzen distance work over this "
                        "many processes.")


def eval_(
    run: str = RunArg, parzen: bool = ParzenOpt, theory: bool = TheoryOpt,
    samples: int = SamplesOpt, sigmas: Optional[str] = SigmasOpt,
    sigma: Optional[float] = SigmaOpt, valid_limit: Optional[int] = ValidLimitOpt,
    split: Split = SplitOpt, baseline: Optional[Baseline] = BaselineOpt,
    by_label: bool = ByLabelOpt, fid: bool = FidOpt, prdc: bool = PrdcOpt, score: bool = ScoreOpt,
    retrain_classifier: bool = RetrainOpt, all_checkpoints: bool = AllCheckpointsOpt,
    seed: int = SeedOpt, out: Optional[Path] = OutOpt, checkpoint: Optional[int] = CheckpointOpt,
    device: str = DeviceOpt, backend: Optional[str] = EvalBackendOpt,
    data_root: Optional[str] = DataRootOpt, runs_dir: Optional[Path] = RunsDirOpt,
    nproc: int = NprocOpt, modes: bool = ModesOpt, mode_samples: int = ModeSamplesOpt,
    mode_share: float = ModeShareOpt, raw: bool = RawOpt, as_json: bool = JsonOpt,
) -> None:
    """Evaluate a run: --parzen (any data), --fid/--prdc/--score (labelled data), --theory
    (1-D data), --modes (toy-ring2d data). Every result is also appended to
    eval/metrics.jsonl. Given a sweep, every member that did not diverge is evaluated so, then
    each figure's mean ± standard error over the seeds is printed per setting (and written to
    the sweep's eval/)."""
    from ..evaluate.evaluation import Evaluation

    quality = frozenset(m for m, on in (("fid", fid), ("prdc", prdc), ("score", score)) if on)

    def check(open_it: bool = True) -> Evaluation:  # before --nproc launches its ranks, in each
        png_out(out)
        grid = _check_eval_options(parzen or bool(quality) or theory or modes, parzen, by_label,
                                   sigmas, sigma, all_checkpoints, checkpoint)
        if modes and not 0 < mode_share <= 1:  # (NaN too)
            raise UsageError(f"--mode-share must be in (0, 1], got {mode_share}")
        if not modes and (mode_samples != MODE_SAMPLES or mode_share != MODE_SHARE):
            raise UsageError("--mode-samples and --mode-share go with --modes")
        if open_it:
            open_run(run, runs_dir)
        return Evaluation(parzen=parzen, quality=quality, theory=theory, per_label=by_label,
                          samples=samples, seed=seed, split=split.value,
                          baseline=baseline.value if baseline else None, sigmas=grid,
                          sigma=sigma, valid_limit=valid_limit or None,
                          retrain_classifier=retrain_classifier, out=out, modes=modes,
                          mode_samples=mode_samples, mode_share=mode_share)

    restoring = dict(device=device, data_root=data_root, backend=backend, raw=raw)
    sw = sweep_at(run, runs_dir)
    if sw is not None:  # every member evaluated as `eval MEMBER` would, then summarised
        with user_errors(0, "a smaller --samples"):
            ev = check(open_it=False)
            _sweep_only_options(nproc, all_checkpoints, out)
        # a memo of its own per member: what quality keeps is keyed without the member's data
        evaluate_sweep(sw, lambda name: evaluate_run(name, sw.path.parent, replace(ev, memo={}),
                                                    checkpoint, False, restoring), as_json)
        return
    rank = current_rank()
    with user_errors(rank, "a smaller --samples"), ranks(nproc, device, check) as dist:
        for kind, report in evaluate_run(run, runs_dir, check(), checkpoint, all_checkpoints,
                                         restoring, dist, rank):
            _print_report(kind, report, as_json)


def evaluate_run(run: str, runs_dir: Optional[Path], ev, checkpoint: Optional[int],
                 all_checkpoints: bool, restoring: dict[str, Any], dist=None,
                 rank: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """`eval RUN`'s work on one run, report by report as each is written: its checkpoints
    (`checkpoint`, or every one) restored as `restoring` says (device, data_root, backend,
    raw), their samples' memory checked, then `ev`'s metrics on each."""
    from ..evaluate.evaluation import checkpoint_steps, restored_checkpoints

    r = open_run(run, runs_dir)
    if all_checkpoints and ev.baseline_only and not rank:
        warn(f"--all-checkpoints does nothing with --parzen --baseline {ev.baseline}: the "
             "baseline does not depend on G's checkpoint, so it is scored once; run "
             "--all-checkpoints without --baseline for G's history")
    steps = checkpoint_steps(r, checkpoint, all_checkpoints and not ev.baseline_only)
    device = dist.device if dist else restoring["device"]

    def restored_at(step: Optional[int]):
        return restore(run, runs_dir, step, device, restoring["data_root"], restoring["backend"],
                       restoring["raw"])

    for restored, last in restored_checkpoints(r, steps, restored_at, dist=dist, warn=warn,
                                               skip_vanished=all_checkpoints):
        if ev.parzen or ev.quality or ev.theory:
            fits(restored, "--samples", f"--samples {ev.samples:,}", ev.samples, EVAL_COPIES,
                 EVAL_PER_SAMPLE)
        if ev.modes:
            fits(restored, "--mode-samples", f"--mode-samples {ev.mode_samples:,}",
                 ev.mode_samples, EVAL_COPIES, _mode_bytes(restored))
        yield from ev.reports(restored, last=last, dist=dist, warn=warn,
                              progress=lambda m: err.print(m, markup=False))


def _sweep_only_options(nproc: int, all_checkpoints: bool, out: Optional[Path]) -> None:
    """The options of eval that do not apply to a sweep's members one after another."""
    if nproc != 1:
        raise UsageError("--nproc goes with a run; a sweep's members are evaluated one after "
                         "another (evaluate a member with --nproc: advgraph eval MEMBER)")
    if all_checkpoints:
        raise UsageError("--all-checkpoints goes with a run; a sweep is summarised at one "
                         "checkpoint (--checkpoint STEP, default each member's latest)")
    if out is not None:
        raise UsageError("--out goes with a run: every member of a sweep would write its "
                         "--theory figure there (each writes under its own eval/ without it)")


def _mode_bytes(restored) -> int:
    """--modes' work per sample: its float64 distances and differences to each mode centre."""
    return 32 * int(getattr(restored.spec.data, "modes", 0))


def _print_report(kind: str, report: dict[str, Any], as_json: bool = False) -> None:
    """One report of eval, as tables (or a line of JSON); where it was written."""
    if as_json:
        from ..jsontext import dumps

        console.print(dumps({"metric": kind, **report}, "the report", nonfinite=True))
        return
    if kind == "modes":
        print_modes(report)
        print_wrote(Path(report["written"]))
        return
    if kind == "theory":
        print_theory(report)
        return
    if kind == "quality":
        print_quality(report)
    else:
        (print_by_label if "by_label" in report else print_parzen)(report)
        console.print(f"caveat: {report['caveat']}")
    print_wrote(Path(report["written"]))


def _check_eval_options(any_metric: bool, parzen: bool, by_label: bool, sigmas: Optional[str],
                        sigma: Optional[float], all_checkpoints: bool,
                        checkpoint: Optional[int]) -> Optional[list[float]]:
    """What typer cannot check of eval's options; returns the σ grid from --sigmas (None: the
    default)."""
    if not any_metric:
        raise UsageError("choose --parzen, --fid, --prdc, --score, --theory and/or --modes")
    if by_label and not parzen:
        raise UsageError("--by-label goes with --parzen")
    grid = _parse_sigmas(sigmas)
    if sigma is not None and not (0 < sigma < float("inf")):
        raise UsageError(f"--sigma must be positive and finite, got {sigma}")
    if all_checkpoints and checkpoint is not None:
        raise UsageError("give either --checkpoint or --all-checkpoints, not both")
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
