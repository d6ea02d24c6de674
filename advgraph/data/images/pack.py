"""Every usable image of a listing decoded into one uint8 array, cached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .decode import Preparation
from .scan import Listing, Skipped

# progress(done, total): files decoded so far (called from the main process only)
Progress = Callable[[int, int], None]


@dataclass
class Packed:
    """The prepared data: `images` (N, C, H, W) uint8 (memory-mapped read-only from the cache
    where it was cached), one label per row (int64, -1 unlabelled; None without labels), the
    file of each row, and every file left out (from scan and decode)."""

    images: np.ndarray
    labels: np.ndarray | None
    names: list[str]
    class_names: list[str] | None
    skipped: list[Skipped]
    fingerprint: str
    sha256: str  # of the images array's bytes
    path: Path | None  # the cache file, None where it could not be cached
    cached: bool  # True: read from the cache, nothing decoded


def prepare(listing: Listing, prep: Preparation, workers: int | None = None,
            progress: Progress | None = None,
            warn: Callable[[str], None] | None = None) -> Packed:
    """The packed data of `listing`: from the cache when an entry for its fingerprint and
    `prep` is there and its SHA-256 matches, else decoded (in `workers` processes; None: as
    many as the CPUs, for large listings) and cached. DataError when no file is usable, when
    the data would not fit in memory or on disk, or when the folder changed while it was being
    prepared."""
    raise NotImplementedError
