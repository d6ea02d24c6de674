"""`advgraph export`: G alone as safetensors, TorchScript or ONNX (advgraph.export does it)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .common import (CheckpointOpt, RawOpt, RunArg, RunsDirOpt, console, open_run, print_wrote,
                     user_errors, warn)


class Format(str, Enum):
    """advgraph.export.FORMATS, written out: importing advgraph.export would slow --help."""

    safetensors = "safetensors"
    torchscript = "torchscript"
    onnx = "onnx"


def export(
    run: str = RunArg,
    fmt: Optional[Format] = typer.Option(None, "--format", "-f", metavar="FORMAT",
                                         help="safetensors, torchscript or onnx [default: the "
                                              "one --out's extension names, else "
                                              "safetensors]."),
    out: Optional[Path] = typer.Option(None, "--out", help="The model file, or a directory for "
                                       "it (a path without extension) [default: "
                                       "runs/<name>/export/G-step<STEP>.<ext>]; the spec and "
                                       "metadata go beside it."),
    checkpoint: Optional[int] = CheckpointOpt,
    force: bool = typer.Option(False, "--force", help="Replace the files of an earlier export "
                               "at the same place."),
    raw: bool = RawOpt,
    runs_dir: Optional[Path] = RunsDirOpt,
) -> None:
    """Export G alone in torch's layouts, with the resolved spec and the prior beside it. It
    computes what `sample --backend torch` computes (G's moving average where the run keeps
    one, unless --raw; spectral norm folded into the weights); onnx needs the export extra."""
    from .. import export as E
    from ..run.restore import restore_run
    from .restoring import warn_raw

    with user_errors():
        chosen = E.check_format(fmt.value if fmt else None, out)
        E.require_libraries(chosen)  # before the run is read: a missing library fails fast
        restored = restore_run(open_run(run, runs_dir), checkpoint,
                               backend="torch", device="cpu", warn=warn, raw=raw)
        warn_raw(restored)
        done = E.export(restored, chosen, out, force=force)
    print_wrote(done.model)
    if done.spec_shared:
        console.print(f"kept {done.spec} (the same spec, beside this checkpoint's other formats)")
    else:
        print_wrote(done.spec)
    print_wrote(done.metadata)
