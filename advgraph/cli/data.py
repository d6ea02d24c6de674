"""`advgraph data`: a folder (or .zip) of images looked at (`inspect`) and packed into an .npz
(`prepare`), by the same rules `dataset: images` trains on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Tuple

import typer

from ..errors import UsageError
from ..jsontext import dumps
from .common import console, print_wrote, user_errors
from .completion import choices, complete_images
from .progress import LoadDisplay

MAX_WORKERS = 64  # processes decoding images (the images package also caps them at 4 a CPU)
app = typer.Typer(help="Look at a folder of images, or pack it for training.",
                  no_args_is_help=True, rich_markup_mode=None)

PathArg = typer.Argument(..., metavar="PATH", autocompletion=complete_images,
                         help="A folder or .zip of images, or a spec (.yaml) whose data is "
                              "`images` (its options are used; the flags given override them).")
SizeOpt = typer.Option(None, "--size", metavar="H W",
                       help="The images' size after preparing [default: 32 32, or the spec's].")
ChannelsOpt = typer.Option(None, "--channels", metavar="1|3",
                           help="1 (grey) or 3 (RGB) [default: 3, or the spec's].")
FitOpt = typer.Option(None, "--fit", metavar="crop|pad", autocompletion=choices("crop", "pad"),
                      help="crop: scale to cover H×W and cut out the centre; pad: scale to fit "
                           "inside H×W and pad with --background [default: crop].")
BackgroundOpt = typer.Option(None, "--background", metavar="R G B",
                             help="Drawn under transparent pixels and in the padding, 0–255 "
                                  "each [default: 0 0 0].")
LabelsOpt = typer.Option(None, "--labels", metavar="none|subdirs|dataset.json|FILE",
                         help="Classes: none, subdirs (a folder per class), dataset.json (the "
                              "one at the root of the folder or zip), or a labels file (CSV "
                              "file,label or a dataset.json elsewhere) [default: none, or the "
                              "spec's].")


def inspect(
    path: Path = PathArg, size: Optional[Tuple[int, int]] = SizeOpt,
    channels: Optional[int] = ChannelsOpt, fit: Optional[str] = FitOpt,
    background: Optional[Tuple[int, int, int]] = BackgroundOpt,
    labels: Optional[str] = LabelsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the survey as JSON."),
) -> None:
    """What a folder of images holds (files, formats, modes, sizes, classes, problems) and
    what preparing it will do."""
    from ..data.images.survey import NoneUsable, survey

    with user_errors():
        data, folder, labels_arg = _data(path, size, channels, fit, background, labels)
        listing = _scan(folder, labels_arg)
        shown = LoadDisplay()
        try:
            found = survey(listing, _prep(data), progress=lambda done, total: shown.progress(
                "reading images", done, total))
        except NoneUsable as e:  # what was found, then the one error line (as prepare's)
            _print_survey(survey_dict(folder, e.survey), as_json)
            raise
    _print_survey(survey_dict(folder, found), as_json)


def _print_survey(report: dict, as_json: bool) -> None:
    if as_json:
        console.print(dumps(report, "survey"), markup=False)
        return
    for line in survey_lines(report):
        console.print(line, markup=False)


def prepare(
    path: Path = PathArg,
    out: Path = typer.Option(..., "--out", help="The packed file to write (.npz)."),
    size: Optional[Tuple[int, int]] = SizeOpt, channels: Optional[int] = ChannelsOpt,
    fit: Optional[str] = FitOpt, background: Optional[Tuple[int, int, int]] = BackgroundOpt,
    labels: Optional[str] = LabelsOpt,
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=MAX_WORKERS,
                                          metavar="N",
                                          help="Processes decoding images, at most 4 per "
                                               "CPU [default: one per CPU]."),
) -> None:
    """Pack a folder of images into an .npz (uint8 pixels, labels, class names) that a spec
    reads with `dataset: npz`; prints the spec's data line."""
    from ..data.images import prepare as pack
    from ..data.images.pack import write_npz

    with user_errors():
        if out.suffix.lower() != ".npz":
            raise UsageError(f"--out: the packed file is an .npz; give a path ending in .npz, "
                             f"not {out.name!r}")
        data, folder, labels_arg = _data(path, size, channels, fit, background, labels)
        _out_of(folder, out)
        listing = _scan(folder, labels_arg)
        shown = LoadDisplay()
        packed = pack(listing, _prep(data), workers=workers,
                      progress=lambda done, total: shown.progress("preparing images", done,
                                                                  total),
                      warn=shown.warn)
        write_npz(packed, out)
    print_wrote(out)
    n, shape = len(packed.images), "×".join(map(str, packed.images.shape[1:]))
    classes = f", {len(packed.class_names)} classes" if packed.class_names else ""
    console.print(f"{n:,} images of {shape} (uint8){classes}; "
                  f"{sum(not s.name.endswith('/') for s in packed.skipped)} file(s) left out; "
                  "rows in a random order (seed 0). Train on it with:", markup=False)
    console.print("  " + npz_snippet(out, packed.labels is not None), markup=False)


def _out_of(folder: Path, out: Path) -> None:
    """Refuse an --out inside the folder being prepared: the file would be found there by
    every later scan ("not in a class folder", or an image that does not decode)."""
    inside = folder.resolve()
    if inside.is_dir() and out.resolve().is_relative_to(inside):
        raise UsageError(f"--out: {out} is inside {folder}, the folder being prepared; write "
                         "it elsewhere (later uses would find it among the images)")


def npz_snippet(out: Path, labelled: bool) -> str:
    """The spec's data line that reads a prepared file: the path quoted where YAML would
    read it otherwise (a colon, a '#', a leading '*', …); a path that is not UTF-8 cannot be
    written in a spec at all."""
    labels = ", labels: y" if labelled else ""  # the arrays pack.write_npz writes
    text = str(out)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system kept as surrogates
        return (f"(the path {ascii(text)} is not UTF-8 and cannot be written in a spec: rename "
                "it, then) " + npz_snippet(Path("RENAMED.npz"), labelled))
    line = f"data: {{dataset: npz, path: {text}, key: x{labels}, pixels: true, flatten: false}}"
    if _yaml_path(line) != text:
        line = line.replace(f"path: {text},", f"path: {json.dumps(text, ensure_ascii=False)},",
                            1)
    return line


def _yaml_path(line: str) -> object:
    """The path a spec reads from `line` (None where it does not parse)."""
    import yaml

    try:
        return (yaml.safe_load(line) or {}).get("data", {}).get("path")
    except (yaml.YAMLError, AttributeError):
        return None


def _data(path: Path, size, channels, fit, background, labels) -> tuple[Any, Path, str]:
    """The images data model (from a spec, or defaults) with the flags given over it; the
    folder and the labels argument of scan, resolved."""
    from pydantic import ValidationError

    from ..data.datasets import resolve_path
    from ..spec.gan import LABEL_WORDS, ImagesData

    base, fields = Path.cwd(), {"dataset": "images", "path": str(path), "size": (32, 32)}
    if path.suffix.lower() in (".yaml", ".yml"):
        from ..spec import load_file

        loaded = load_file(path)
        if loaded.spec.data.dataset != "images":
            raise UsageError(f"{path}: its data is {loaded.spec.data.dataset!r}; `data` reads "
                             "specs whose data is `images` (or give the folder)")
        base, fields = loaded.base_dir, loaded.spec.data.model_dump()
    given = {"size": size, "channels": channels, "fit": fit, "background": background,
             "labels": labels}
    fields.update({k: v for k, v in given.items() if v is not None})
    try:
        data = ImagesData.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        flag = f"--{name}" if name in given else (f"data.{name}" if name else str(path))
        raise UsageError(f"{flag}: {err['msg'].removeprefix('Value error, ')}") from None
    folder = resolve_path(data.path, base)
    # a labels file named on the command line is the user's path from here; the spec's own is
    # taken from the spec's folder, as training takes it
    lab = data.labels if data.labels in LABEL_WORDS else \
        str(resolve_path(data.labels, Path.cwd() if labels is not None else base))
    return data, folder, lab


def _scan(folder: Path, labels: str):
    from ..data.images import scan

    return scan(folder, labels)


def _prep(data):
    from ..data.imageset import preparation

    return preparation(data)


def survey_dict(folder: Path, s) -> dict[str, Any]:
    from ..data.images.scan import shown

    return {
        "path": str(folder), "files": s.files, "usable": s.usable,
        "formats": dict(s.formats.most_common()), "modes": dict(s.modes.most_common()),
        "sizes": [{"width": w, "height": h, "files": c} for (w, h), c in s.sizes.most_common()],
        "classes": s.classes,
        "problems": [{"file": shown(p.name), "problem": p.reason} for p in s.problems],
        "plan": list(s.plan)}


def _counts(d: dict[str, int], most: int = 8) -> str:
    items = list(d.items())
    text = ", ".join(f"{k} {v:,}" for k, v in items[:most])
    return text + (f", … ({len(items)} in all)" if len(items) > most else "")


def survey_lines(r: dict[str, Any], most_problems: int = 10) -> list[str]:
    """The survey as `data inspect` prints it."""
    lines = [f"{r['path']}: {r['files']:,} file(s), {r['usable']:,} usable"]
    if r["formats"]:
        lines.append("formats: " + _counts(r["formats"]))
    if r["modes"]:
        lines.append("modes: " + _counts(r["modes"]))
    if r["sizes"]:
        sizes = {f"{s['width']}×{s['height']}": s["files"] for s in r["sizes"]}
        lines.append("sizes (W×H): " + _counts(sizes, 5))
    if r["classes"] is not None:
        lines.append(f"classes ({len(r['classes'])}): " + _counts(r["classes"], 20))
    problems = r["problems"]
    if problems:
        lines.append(f"problems ({len(problems)}):")
        lines += [f"  {p['file']}: {p['problem']}" for p in problems[:most_problems]]
        if len(problems) > most_problems:
            lines.append(f"  … and {len(problems) - most_problems} more (--json lists all)")
    if r["plan"]:
        lines.append("preparing will:")
        lines += [f"  {p}" for p in r["plan"]]
    return lines
