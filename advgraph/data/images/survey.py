"""`advgraph data inspect`: what an image folder holds and what preparing it will do."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .decode import Preparation
from .scan import Listing, Skipped


@dataclass
class Survey:
    files: int
    usable: int
    formats: Counter = field(default_factory=Counter)  # "PNG" -> count
    modes: Counter = field(default_factory=Counter)  # Pillow mode -> count
    sizes: Counter = field(default_factory=Counter)  # (W, H) -> count
    classes: dict[str, int] | None = None  # class name -> usable files
    problems: list[Skipped] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)  # what preparing does, one line each


def survey(listing: Listing, prep: Preparation, progress=None) -> Survey:
    """Every file's header read (and decoded, to find truncated and corrupt files)."""
    raise NotImplementedError
