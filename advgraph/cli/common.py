"""What the commands share: the consoles, errors as messages (the library's parameters
named by their flags), and common options."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console

from ..errors import AdvGraphError, UsageError
from .completion import choices, complete_run, complete_spec

console = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

SetOpt = typer.Option(None, "--set", metavar="PATH=VALUE",
                      help="Override a spec value, e.g. --set training.optimizer.lr=0.05 "
                           "(repeatable; validated like the file).")
RunArg = typer.Argument(..., metavar="RUN", help="A run name (under --runs-dir), or a path to a run directory "
                        "(with a '/' or a leading '.', e.g. ./fm).", autocompletion=complete_run)
SpecArg = typer.Argument(..., metavar="SPEC", help="The spec file.", autocompletion=complete_spec)
RunsDirOpt = typer.Option(None, "--runs-dir", envvar="ADVGRAPH_RUNS",
                          help="Where runs live [default: ./runs].")

# the options of the commands that read a trained run (sample, interpolate, eval, export)
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
RawOpt = typer.Option(False, "--raw", help="Use G's trained weights, not their moving average "
                      "(runs with training.regularizers.ema use the average by default).")
DataRootOpt = typer.Option(None, "--data-root", help="Where the run's dataset is now "
                                                     "[default: where it was trained from].")

# The library's errors name the caller's parameters in backquotes (`per_label`); a user of the
# command line reads the flag that sets each one.
FLAGS = {
    "label": "--label", "per_label": "--by-label", "npz": "--npz", "samples": "--samples",
    "split": "--split", "baseline": "--baseline", "sigma": "--sigma", "sigmas": "--sigmas",
    "theory": "--theory", "fid": "--fid", "prdc": "--prdc", "score": "--score",
    "fmt": "--format", "out": "--out", "force": "--force", "device": "--device",
    "data_root": "--data-root", "name": "--name", "resume": "--resume",
    "overrides": "--set", "nproc": "--nproc", "tensorboard": "--tensorboard",
    # `data inspect|prepare` (a spec's images data says data.labels etc. instead: ImagesDataset)
    "labels": "--labels", "workers": "--workers", "size": "--size", "channels": "--channels",
    "fit": "--fit", "background": "--background", "raw": "--raw", "modes": "--modes",
}


@contextmanager
def user_errors(rank: int = 0,
                lower: str = "a smaller batch size or smaller layers") -> Iterator[None]:
    """AdvGraphError (and running out of memory, advising `lower`: the command's options that
    size its work) as `error:` lines and the error's exit code; ranks other than 0 of a
    distributed run say which they are."""
    prefix = "error: " if rank == 0 else f"error (rank {rank}): "
    try:
        yield
    except AdvGraphError as e:
        for line in e.worded(FLAGS).splitlines():
            err.print(prefix + line, markup=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except MemoryError:  # cupy's OutOfMemoryError on a GPU is one too
        err.print(prefix + f"out of memory; try {lower}", markup=False)
        raise typer.Exit(1) from None
    except RuntimeError as e:
        if type(e).__name__ != "OutOfMemoryError":  # torch.cuda's (without importing torch)
            raise
        err.print(prefix + f"out of GPU memory; try {lower}", markup=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as e:  # typer would end silently with 130
        from ..data.images.parallel import Terminated

        term = isinstance(e, Terminated)  # SIGTERM while a folder of images was prepared
        err.print("terminated" if term else "interrupted", markup=False)
        raise typer.Exit(143 if term else 130) from None


def runs_root(runs_dir: Optional[Path]) -> Path:
    from ..run.directory import default_root

    return runs_dir if runs_dir is not None else default_root()


def open_run(run: str, runs_dir: Optional[Path]):
    """The run directory, or the error that names what is wrong with it (a sweep's names its
    members: a command that reads one run is given one of them)."""
    from ..run.directory import RunDir

    sw = sweep_at(run, runs_dir)
    if sw is not None:
        names = [m["name"] for m in sw.info()["members"]]
        shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
        raise UsageError(f"{run} is a sweep of {len(names)} members ({shown}): give one member, "
                         f"e.g. {names[0]}")
    return RunDir.resolve(run, runs_root(runs_dir))


def sweep_at(run: str, runs_dir: Optional[Path]):
    """The sweep RUN names (as a name under the runs directory or a path, as runs are
    given), or None when it names none."""
    from ..names import is_run_path
    from ..sweep.directory import SweepDir

    path = Path(run) if is_run_path(run) else runs_root(runs_dir) / run
    try:
        return SweepDir(path) if SweepDir.is_sweep(path) else None
    except OSError:  # (a name too long for the file system): open_run says what is wrong
        return None


def warn(msg: str) -> None:
    err.print(f"warning: {msg}", markup=False)


def print_wrote(p: Path) -> None:
    console.print(f"wrote {p}")


def png_out(out: Path | None) -> None:
    """--out names a PNG figure: an explicit other extension would be silently wrong."""
    if out is not None and out.suffix and out.suffix.lower() != ".png":
        raise UsageError(f"--out: figures are written as PNG; give a path ending in .png, "
                         f"not {out.suffix!r}")
