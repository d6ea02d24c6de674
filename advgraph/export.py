"""`advgraph export`: a run's G alone, for use without advgraph.

The exported module is the torch backend's G (`GraphModule` with torch's layouts: dense and maxout
weights (out, in) as nn.Linear's, conv weights as nn.Conv2d's / nn.ConvTranspose2d's), so it
computes exactly what `sample --backend torch` computes:

- safetensors: its state_dict (`h0.weight`, …, the names `Run.generator()` uses); the metadata
  below is also the header's `advgraph` entry.
- torchscript: `torch.jit.trace` of it, for `torch.jit.load` with torch alone; the metadata is
  the archive's extra file `advgraph.json`.
- onnx: `torch.onnx.export` (its dynamo exporter needs onnx and onnxscript: the `export` extra),
  batch axis dynamic; the metadata is the model's `advgraph` metadata_props entry.

Inputs: z float32 (N, prior dim); a conditional G also y int64 (N,), class indices. Output:
x float32 (N, *data shape). G's weights are the moving average of a run with
training.regularizers.ema (its trained ones when `raw` was asked of the restore), and a
spectrally normalised weight is exported divided by its σ (from the checkpoint's u, v), so the
module needs no spectral norm; the metadata's `weights` says which. Beside the model file
`<stem>.ext`: `<stem>.ext.json` (prior, shapes, classes, step, source run, the checkpoint's
SHA-256) and `<stem>.spec.yaml` (the resolved spec), which the formats of one checkpoint share:
all three can be exported into one directory. Only those files are written (atomically), never
into a run's own files.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .version import __version__
from .atomic import atomic_write
from .errors import ExportError, MissingExtra, UsageError, WriteError
from .jsontext import dumps
from .objective import folded
from .run.restore import RestoredRun
from .run.sample_files import raw_suffix

FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}
LIBRARIES = {"onnx": ("onnx", "onnxscript")}  # format → optional modules it needs
RUN_FILES = ("run.json", "spec.yaml", "metrics.jsonl", ".lock")  # never written by an export
RUN_DIRS = ("checkpoints", "eval")  # nor anything in these folders of a run
LAYOUT = ("torch: dense and maxout weights (out, in) as nn.Linear (y = x @ W.T + b; maxout "
          "unit u takes the max over rows u*pieces .. u*pieces+pieces-1), conv2d and "
          "maxout_conv weights (out, in, kh, kw) as nn.Conv2d, conv_t2d weights "
          "(in, out, kh, kw) as nn.ConvTranspose2d")


def check_format(fmt: str | None, out: Path | None) -> str:
    """The format asked for; without `fmt`, the one `out`'s extension names, else
    safetensors."""
    by_ext = {ext: f for f, ext in FORMATS.items()}
    suffix = out.suffix.lower() if out is not None and not out.is_dir() else ""
    if fmt is None:
        return by_ext.get(suffix, "safetensors")
    if fmt not in FORMATS:
        raise UsageError(f"`fmt` must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def require_libraries(fmt: str) -> None:
    """A clear error, naming the extra, when a format's optional library is missing."""
    missing = []
    for mod in LIBRARIES.get(fmt, ()):
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise MissingExtra(f"`fmt` {fmt}", missing, "export")


def output_paths(restored: RestoredRun, fmt: str, out: Path | None) -> tuple[Path, Path, Path]:
    """The model file and its two sidecars (spec, metadata); refuses the run's own files."""
    ext = FORMATS[fmt]
    name = f"G-step{restored.step}{raw_suffix(restored)}{ext}"
    if out is None:
        model = restored.run.path / "export" / name
    elif out.is_dir() or not out.suffix:  # a directory (created when missing)
        model = out / name
    elif out.suffix.lower() != ext:
        known = ", ".join(f"{f} ({e})" for f, e in FORMATS.items())
        if out.suffix.lower() not in FORMATS.values():
            raise UsageError(f"`out`: {out.suffix!r} is not the extension of an export format: "
                             f"{known}; a path without extension is a directory")
        raise UsageError(f"`out`: {out.suffix!r} is not the extension of {fmt} ({ext}); the "
                         f"formats are {known}")
    else:
        model = out
    stem = model.name[: -len(ext)]
    files = (model, model.with_name(stem + ".spec.yaml"), model.with_name(model.name + ".json"))
    for f in files:
        owner = _run_file_owner(f.resolve())
        if owner is not None:
            raise UsageError(f"`out`: {f} would write into the files of run {owner.name!r} "
                             f"({', '.join(RUN_FILES[:3])}, {'/, '.join(RUN_DIRS)}/); export "
                             f"elsewhere (by default into {restored.run.path / 'export'})")
    return files


def _run_file_owner(path: Path) -> Path | None:
    """The run directory (any run's, not only the exported one's: `<model>.json` beside a
    model in another run's checkpoints/ would replace a checkpoint's state) whose own files
    `path` would replace, or None."""
    for d in path.parents:
        if (d / "run.json").is_file():
            rel = path.relative_to(d)
            if (len(rel.parts) == 1 and rel.name in RUN_FILES) or (
                    len(rel.parts) > 1 and rel.parts[0] in RUN_DIRS):
                return d
    return None


def generator_module(restored: RestoredRun):
    """G in torch's layouts, in inference mode (dropout off, batchnorm's running statistics),
    its spectrally normalised weights folded (W / σ): a plain network."""
    from advgraph_torch.module import GraphModule

    tensors = folded(restored.program, restored.trainer.state_dict())
    G = restored.program.G
    return GraphModule(G, {t.name: tensors[t.name] for t in G.tensors()},
                       restored.program.classes, torch_layout=True).eval()


def metadata(restored: RestoredRun, fmt: str, files: tuple[Path, Path, Path],
             module) -> dict[str, Any]:
    """What a user of the file needs beside the weights: the prior to draw z from, the inputs
    and output, the graph with its tensors' names, and where the weights came from."""
    import torch

    p, prog = restored.program.prior, restored.program
    prior = {"kind": p.kind, "dim": p.dim,
             **({"low": p.low, "high": p.high} if p.kind == "uniform" else
                {"mean": p.mean, "std": p.std})}
    inputs = [{"name": "z", "dtype": "float32", "shape": ["N", p.dim],
               "drawn_from": "the prior"}]
    if prog.classes is not None:
        inputs.append({"name": "y", "dtype": "int64", "shape": ["N"],
                       "values": f"class indices 0..{prog.classes - 1} (the graph's input "
                                 "of source y reads their one-hot rows)"})
    names = module.tensor_names()
    graph = [{"name": n.name.split(".", 1)[1], "op": n.op.value,
              "inputs": [i.split(".", 1)[1] for i in n.inputs],
              "shape": ["N", *n.shape], "attrs": n.attrs,
              "tensors": {local: names[t.name] for local, t in n.tensors.items()}}
             for n in prog.G.nodes]
    ckpt = restored.checkpoint
    return {
        "format": fmt, "model": files[0].name, "spec": files[1].name,
        "run": restored.run.name, "run_path": str(restored.run.path.resolve()),
        "step": restored.step,
        "checkpoint": str(ckpt.tensors_path.relative_to(restored.run.path)) if ckpt else None,
        "checkpoint_sha256": restored.checkpoint_sha256,
        "weights": restored.weights,  # "ema" (G's moving average) or "raw"
        "spectral_norm_folded": [s.tensor.split(".", 1)[1]
                                 for s in prog.objective.spectral_of("G")],
        "prior": prior, "inputs": inputs,
        "output": {"name": "x", "dtype": "float32", "shape": ["N", *prog.data_shape]},
        "data_shape": list(prog.data_shape), "classes": prog.classes,
        "layout": LAYOUT, "graph": graph,
        "advgraph_version": __version__, "torch_version": torch.__version__,
    }


def _example(restored: RestoredRun) -> tuple:
    """Inputs to trace with: 2 rows (batch 1 would let exporters specialise the batch axis)."""
    import torch

    z = torch.zeros(2, restored.program.prior.dim)
    if restored.program.classes is None:
        return (z,)
    return z, torch.arange(2, dtype=torch.int64) % restored.program.classes


def _safetensors(module, restored: RestoredRun, meta: str) -> bytes:
    from safetensors.numpy import save

    state = {k: np.ascontiguousarray(v.detach().numpy()) for k, v in module.state_dict().items()}
    return save(state, metadata={"format": "pt", "advgraph": meta})


def _torchscript(module, restored: RestoredRun, meta: str) -> bytes:
    import torch

    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what was asked for
        traced = torch.jit.trace(module, _example(restored))
        torch.jit.save(traced, buf, _extra_files={"advgraph.json": meta})
    return buf.getvalue()


def _onnx(module, restored: RestoredRun, meta: str) -> bytes:
    import torch

    args = _example(restored)
    names = ["z", "y"][: len(args)]
    batch = torch.export.Dim("N")
    with _quiet():
        program = torch.onnx.export(module, args, input_names=names, output_names=["x"],
                                    dynamic_shapes={n: {0: batch} for n in names},
                                    dynamo=True, verbose=False)
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = "advgraph", meta
    return model.SerializeToString()


@contextlib.contextmanager
def _quiet():
    """The ONNX exporter's progress lines and log warnings (e.g. that torchvision's ops are
    skipped) are not the user's business."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


WRITERS = {"safetensors": _safetensors, "torchscript": _torchscript, "onnx": _onnx}


class Exported(NamedTuple):
    model: Path
    spec: Path
    metadata: Path
    spec_shared: bool  # the spec was already there, written by another format's export


def export(restored: RestoredRun, fmt: str, out: Path | None = None,
           force: bool = False) -> Exported:
    """Write G of `restored` as `fmt` with its spec and metadata beside it. All are written,
    or none is left. Existing files are replaced only with `force`; an identical spec (another
    format of the same checkpoint) is shared."""
    from .spec.load import dump_resolved

    fmt = check_format(fmt, out)
    require_libraries(fmt)
    files = output_paths(restored, fmt, out)
    spec = dump_resolved(restored.spec).encode()
    # the spec another format of this checkpoint wrote there is this one: shared, not replaced
    shared = _holds(files[1], spec)
    existing = [f for f in files
                if (f.exists() or f.is_symlink()) and not (f == files[1] and shared)]
    if existing and not force:
        where = "`out`: " if out is not None else ""  # (the default: the run's export/)
        raise UsageError(f"{where}{existing[0]} exists; give `force` to replace "
                         + ("it" if len(existing) == 1 else f"the {len(existing)} files there")
                         + ", or choose another `out`")
    module = generator_module(restored)
    meta = metadata(restored, fmt, files, module)
    text = dumps(meta, str(files[2]), indent=1, default=str)
    try:
        blob = WRITERS[fmt](module, restored, dumps(meta, str(files[0]), default=str))
    except (RuntimeError, ValueError, TypeError, ImportError) as e:  # the exporter's refusal
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"run {restored.run.name!r}: G could not be exported as {fmt}: "
                          f"{first}") from None
    # --out naming the model file is the user's path (a link there is followed); the rest is ours
    _write_all([(files[0], blob, files[0] == out), (files[2], (text + "\n").encode(), False)]
               + ([] if shared else [(files[1], spec, False)]))
    return Exported(*files, spec_shared=shared)


def _holds(path: Path, data: bytes) -> bool:
    """Whether `path` is a regular file holding exactly `data`."""
    try:
        return path.is_file() and not path.is_symlink() and path.read_bytes() == data
    except OSError:
        return False


def _write_all(items: list[tuple[Path, bytes, bool]]) -> None:
    """Each file atomically (following a link only where the item says so: the user's own
    path); when one fails, the ones written before it are removed, so a model never sits
    beside another export's spec or metadata."""
    done: list[Path] = []
    try:
        for path, data, follow in items:
            atomic_write(path, data, follow=follow)
            done.append(path)
    except WriteError as e:
        for p in done:
            p.unlink(missing_ok=True)
        raise WriteError(f"{e}; nothing exported") from None
