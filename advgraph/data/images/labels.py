"""Classes from a labels file, in either form users have:

- JSON as StyleGAN2-ADA's dataset.json: {"labels": [["a/b.png", 3], ...]} (integer labels;
  `"labels": null` or a null label: unlabelled);
- CSV with a header naming `file` and `label` columns (more columns ignored): integer labels,
  or class names (sorted: the first name is label 0). An empty label is unlabelled.

Class names: a CSV's names sorted; integer labels have none unless the spec gives
`class_names`. A file the labels file does not name is unlabelled (-1). A name the labels file
gives that is not in the folder is reported back in `unmatched` (the caller warns); only a
labels file none of whose names is in the folder is an error (it is for another folder)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError
from ..files import regular_size

MAX_LABELS_BYTES = 64 << 20
# labels are below this: a conditional model has at most this many classes (LabelCondition's
# `classes` in advgraph/spec/gan.py; not imported: worker processes import no pydantic)
MAX_LABEL = 100_000
_INT = re.compile(r"[+-]?\d+")


@dataclass
class LabelsFile:
    """Each name's label (-1: not named, or unlabelled), the class names where the file gives
    names, and the names it gives that are not among the files."""

    labels: list[int]
    class_names: list[str] | None
    unmatched: list[str] = field(default_factory=list)


def read_labels_file(path: Path, names: list[str]) -> tuple[list[int], list[str] | None]:
    """The label of each of `names` (files inside the folder or zip, '/'-separated), and the
    class names where the file gives names. DataError naming the file and line for anything
    malformed (not JSON/CSV, a negative label, a row naming no file, ...)."""
    got = read_labels(path, names)
    return got.labels, got.class_names


def read_labels(path: Path, names: list[str]) -> LabelsFile:
    """read_labels_file, with the names the file gives that are not among `names`."""
    path = Path(path)
    size = regular_size(path)
    if size > MAX_LABELS_BYTES:
        raise DataError(f"{path}: the labels file is {size:,} bytes; the limit is "
                        f"{MAX_LABELS_BYTES:,}")
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_LABELS_BYTES + 1).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: the labels file is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    return parse_labels(path, text, names)


def parse_labels(path: Path | str, text: str, names: list[str]) -> LabelsFile:
    """read_labels of a labels file's text (`path` names it in errors: a file, or the
    dataset.json inside a zip); JSON where `path` ends in .json or the text starts with '{'."""
    if str(path).lower().endswith(".json") or text.lstrip().startswith("{"):
        pairs, class_names = _json_pairs(path, text)
    else:
        pairs, class_names = _csv_pairs(path, text)
    return _match(path, pairs, class_names, names)


def _label_range(where: str, label: int) -> None:
    if label < 0:
        raise DataError(f"{where}: the label must be ≥ 0; got {label}")
    if label >= MAX_LABEL:
        got = f"{label:,}" if label < 10**20 else f"a number of {len(str(label)):,} digits"
        raise DataError(f"{where}: the label must be below {MAX_LABEL:,} (the most classes a "
                        f"model has); got {got}")


def _json_pairs(path: Path | str, text: str) -> tuple[list[tuple[str, int, str]], None]:
    """(name, label, location) of each entry of a dataset.json."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    except (ValueError, RecursionError) as e:  # a number of over 4,300 digits, deep nesting
        raise DataError(f"{path}: not usable JSON: {e}") from None
    if not isinstance(doc, dict) or "labels" not in doc:
        raise DataError(f'{path}: a JSON labels file is {{"labels": [["file", label], ...]}}')
    rows = doc["labels"]
    if rows is None:
        return [], None
    if not isinstance(rows, list):
        raise DataError(f'{path}: "labels" must be a list of ["file", label] pairs')
    pairs = []
    for i, row in enumerate(rows):
        where = f"{path}: labels[{i}]"
        if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)):
            raise DataError(f'{where}: each entry is ["file", label]; got {_short(row)}')
        label = row[1]
        if label is None:
            label = -1
        elif isinstance(label, bool) or not isinstance(label, int):
            raise DataError(f"{where}: the label must be a whole number ≥ 0; got {_short(label)}")
        else:
            _label_range(where, label)
        pairs.append((row[0], label, where))
    return pairs, None


def _csv_pairs(path: Path | str, text: str
               ) -> tuple[list[tuple[str, int, str]], list[str] | None]:
    """(name, label, where) of each row ("where": PATH:LINE), and the class names of a CSV
    whose labels are names."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the labels file is empty")
        cols = [h.strip().lower() for h in header]
        if "file" not in cols or "label" not in cols:
            # plain quotes: the CLI rewrites backquoted words into flags (`label`: --label)
            raise DataError(f"{path}:1: a CSV labels file needs a header with 'file' and "
                            f"'label' columns; found {', '.join(header) or 'none'}")
        fi, li = cols.index("file"), cols.index("label")
        rows = []
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) <= max(fi, li):
                raise DataError(f"{where}: {len(row)} column(s); the header has {len(header)}")
            if not row[fi].strip():
                raise DataError(f"{where}: names no file")
            rows.append((row[fi].strip(), row[li].strip(), where))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV: {e}") from None
    if not rows:
        raise DataError(f"{path}: the labels file has a header but no rows")
    given = [lab for _, lab, _ in rows if lab]
    if all(_INT.fullmatch(lab) for lab in given):
        pairs = []
        for name, lab, where in rows:
            label = _csv_int(where, lab) if lab else -1
            pairs.append((name, label, where))
        return pairs, None
    class_names = sorted(set(given))
    index = {c: i for i, c in enumerate(class_names)}
    return [(n, index[lab] if lab else -1, w) for n, lab, w in rows], class_names


def _csv_int(where: str, text: str) -> int:
    if len(text.lstrip("+-0")) > 20:  # int() refuses over 4,300 digits; none is a label
        raise DataError(f"{where}: the label must be below {MAX_LABEL:,} (the most classes a "
                        f"model has); got a number of {len(text.lstrip('+-0')):,} digits")
    label = int(text)
    _label_range(where, label)
    return label


def _short_where(where: str) -> str:
    """'line 3' of 'PATH:3', 'labels[0]' of 'PATH: labels[0]'."""
    tail = where.rpartition(": ")[2] if where.endswith("]") else where.rpartition(":")[2]
    return tail if tail.startswith("labels[") else f"line {tail}"


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _match(path: Path | str, pairs: list[tuple[str, int, str]],
           class_names: list[str] | None, names: list[str]) -> LabelsFile:
    """Each pair's "where" is its location: PATH:LINE, or PATH: labels[i]."""
    index = {n: i for i, n in enumerate(names)}
    labels = [-1] * len(names)
    first: dict[str, tuple[int, str]] = {}
    unmatched = []
    for name, label, where in pairs:
        name = name[2:] if name.startswith("./") else name
        if name in first:
            if first[name][0] != label:
                raise DataError(f"{where}: {name!r} is labelled again, differently "
                                f"(first at {_short_where(first[name][1])})")
            continue
        first[name] = (label, where)
        if name in index:
            labels[index[name]] = label
        else:
            unmatched.append(name)
    if pairs and len(unmatched) == len(first):
        raise DataError(f"{path}: none of the {len(first)} files it names is in the folder "
                        f"(the first: {unmatched[0]!r})")
    return LabelsFile(labels, class_names, unmatched)
