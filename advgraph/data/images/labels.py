"""Classes from a labels file, in either form users have:

- JSON as StyleGAN2-ADA's dataset.json: {"labels": [["a/b.png", 3], ...]} (integer labels);
- CSV with a header `file,label` (more columns ignored): integer labels or class names.

Class names: a CSV's names sorted; integer labels have none unless the spec gives
`class_names`. A file the labels file does not name is unlabelled (-1)."""

from __future__ import annotations

from pathlib import Path


def read_labels_file(path: Path, names: list[str]) -> tuple[list[int], list[str] | None]:
    """The label of each of `names` (files inside the folder or zip, '/'-separated), and the
    class names where the file gives names. DataError naming the file and line for anything
    malformed (not JSON/CSV, a negative label, a row naming no file, ...)."""
    raise NotImplementedError
