"""What the compiler needs to know about the data, so that it never reads the data itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataInfo:
    """One example's shape, and how many classes the examples' labels have: None when the data
    has no labels, 0 when only the data file can tell (an npz's labels array)."""

    shape: tuple[int, ...]
    classes: int | None
