"""The files of an image folder or .zip, sorted by name, and their classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Entry:
    """One candidate file. `name` is its path inside the folder or zip, '/'-separated, as the
    file system gives it (a non-UTF-8 name keeps its surrogate escapes: `shown(name)` prints it).
    `mtime_ns` is 0 inside a zip (the zip's own size and mtime are in the fingerprint);
    `label` is -1 without labels."""

    name: str
    size: int
    mtime_ns: int
    label: int = -1


@dataclass(frozen=True)
class Skipped:
    """A file that cannot be used, and why (shown to the user in a warning)."""

    name: str
    reason: str


@dataclass
class Listing:
    """What `scan` found: the candidate files (sorted by name), the class names (by label)
    where labels were asked for, the files found unusable while listing (unreadable, a symlink
    loop, an unsafe zip name, outside any class folder, ...), and how many hidden files and
    __MACOSX/ entries were left out silently."""

    root: Path
    is_zip: bool
    labels: str  # "subdirs", "none" or the labels file's absolute path
    entries: list[Entry]
    class_names: list[str] | None
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0
    zip_stat: tuple[int, int] | None = None  # (size, mtime_ns) of the zip itself

    def fingerprint(self) -> str:
        """SHA-256 (hex) of everything that decides the prepared data: the root, the entries
        (name, size, mtime, label), the class names, the zip's stat, the labels file's stat."""
        raise NotImplementedError

    def open(self, entry: Entry) -> BinaryIO:
        """The file's bytes (a regular file only; never a FIFO or a device). OSError when it
        has gone or cannot be read."""
        raise NotImplementedError


def shown(name: str) -> str:
    """A file name as it can be printed: undecodable bytes as \\xNN."""
    raise NotImplementedError


def scan(path: Path, labels: str = "none") -> Listing:
    """The files of `path` (a folder, or a .zip file). `labels`: "none", "subdirs" (the first
    folder of each file's path names its class; classes are sorted by name, and a class folder
    with no file is warned about by the caller through `skipped`), or a labels file's path
    (labels.py). DataError (one line) when `path` is missing, not a folder or zip, or holds no
    candidate file."""
    raise NotImplementedError
