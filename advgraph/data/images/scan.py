"""The files of an image folder or .zip, sorted by name, and their classes.

The walk itself (what is a candidate, what is left out and why) is walk.py; here the listing
is assembled, labelled, fingerprinted and its files opened."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ...atomic import not_regular
from ...errors import DataError
from .labels import MAX_LABELS_BYTES, LabelsFile, parse_labels, read_labels
from . import walk
from .walk import MAX_FILE_BYTES, Found, Skipped, walk_folder, walk_zip

__all__ = ["DATASET_JSON", "MAX_FILE_BYTES", "Entry", "Listing", "Skipped", "scan", "shown"]

# `labels` dataset.json: the labels file StyleGAN2-ADA's dataset_tool writes at the root of the
# folder or zip it makes (read from there, never from the current folder)
DATASET_JSON = "dataset.json"


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


@dataclass
class Listing:
    """What `scan` found: the candidate files (sorted by name), the class names (by label)
    where labels were asked for, the files found unusable while listing (unreadable, a symlink
    loop, an unsafe zip name, outside any class folder, ...), and how many hidden files and
    __MACOSX/ entries were left out silently (a hidden folder counts once).

    `labels_stat` is the labels file's (size, mtime_ns); `unmatched` the names a labels file
    gives that are not in the folder (the caller warns about them; scan refuses a labels file
    none of whose names is there)."""

    root: Path
    is_zip: bool
    labels: str  # "subdirs", "none", "dataset.json" or the labels file's absolute path
    entries: list[Entry]
    class_names: list[str] | None
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0
    zip_stat: tuple[int, int] | None = None  # (size, mtime_ns) of the zip itself
    labels_stat: tuple[int, int] | None = None
    unmatched: list[str] = field(default_factory=list)
    # each folder walked, with its mtime when it was listed; when the scan began (time_ns)
    dirs: list[tuple[str, int]] = field(default_factory=list)
    scanned_ns: int = 0
    _members: dict = field(default_factory=dict, repr=False, compare=False)
    _zip: zipfile.ZipFile | None = field(default=None, repr=False, compare=False)
    _zip_pid: int = field(default=0, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # an open zip is per process: a pickled listing opens its own
        return {**self.__dict__, "_zip": None, "_zip_pid": 0}

    def fingerprint(self) -> str:
        """SHA-256 (hex) of everything that decides the prepared data: the root, the entries
        (name, size, mtime, label), the class names, the zip's stat, the labels file's stat,
        and the files left out (one made readable changes the data)."""
        doc = {"root": str(Path(self.root).resolve()), "is_zip": self.is_zip,
               "zip_stat": self.zip_stat, "labels": self.labels,
               "labels_stat": self.labels_stat, "class_names": self.class_names,
               "entries": [[e.name, e.size, e.mtime_ns, e.label] for e in self.entries],
               "skipped": [[s.name, s.reason] for s in self.skipped]}
        # ensure_ascii writes a name's surrogate escapes as \udcNN: distinct, and encodable
        return hashlib.sha256(json.dumps(doc, ensure_ascii=True).encode("ascii")).hexdigest()

    def labels_file(self) -> Path | None:
        """The labels file on disk (None: no labels file, or the dataset.json inside a zip,
        whose changes the zip's own stat follows)."""
        if self.labels in ("none", "subdirs"):
            return None
        if self.labels == DATASET_JSON:
            return None if self.is_zip else Path(self.root) / DATASET_JSON
        return Path(self.labels)

    def open(self, entry: Entry) -> BinaryIO:
        """The file's bytes (a regular file only; never a FIFO or a device), read whole: one
        read instead of the decoder's many small ones. OSError when it has gone or cannot be
        read; Changed (an OSError) when it is not the size and mtime it was listed with."""
        if self.is_zip:
            return io.BytesIO(self._member_bytes(entry.name))
        try:
            fd = os.open(os.path.join(self.root, entry.name),
                         os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Changed("removed since it was listed") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{not_regular(st.st_mode)}, not a regular file")
            if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
                raise Changed("modified since it was listed")
            data = os.read(fd, st.st_size + 1)
            while len(data) < st.st_size + 1:  # a short read (a network file system)
                more = os.read(fd, st.st_size + 1 - len(data))
                if not more:
                    break
                data += more
            if len(data) != st.st_size:
                raise Changed("modified while it was read")
            return io.BytesIO(data)
        finally:
            os.close(fd)

    def _member_bytes(self, name: str) -> bytes:
        if self._zip is None or self._zip_pid != os.getpid():
            # after a fork the parent's handle shares its file offset: never reuse it
            try:
                self._zip = zipfile.ZipFile(self.root)
            except zipfile.BadZipFile as e:
                raise OSError(f"the zip cannot be read any more: {e}") from None
            self._zip_pid = os.getpid()
        info = self._members.get(name) or self._zip.getinfo(name)
        try:
            with self._zip.open(info) as f:
                data = f.read(walk.MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError,
                ValueError) as e:
            raise OSError(f"corrupt zip member: {e}") from None
        except Exception as e:  # zlib.error, lzma.LZMAError, ...: a damaged stream
            raise OSError(f"corrupt zip member: {e}") from None
        if len(data) > walk.MAX_FILE_BYTES:
            raise OSError(f"larger than the limit of {walk.MAX_FILE_BYTES:,} bytes")
        return data


class Changed(OSError):
    """A listed file that is no longer as it was listed (pack.py: the folder changed)."""


def shown(name: str) -> str:
    """A file name as it can be printed: undecodable bytes and control characters as \\xNN."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in text)


def none_usable(listing: Listing, failed: list[Skipped]) -> str:
    """The one-line error when none of the listed files is usable (`failed`: those found
    unusable when read), with the first problems: prepare's and `data inspect`'s."""
    problems = (list(listing.skipped) + failed)[:3]
    first = "; ".join(f"{shown(s.name)}: {s.reason}" for s in problems)
    n = len(listing.entries)
    return (f"{listing.root}: none of the {n:,} files is a usable image"
            + (f" (first problems: {first})" if first else ""))


def _describe_empty(path: Path, found: Found) -> str:
    notes = []
    if found.ignored:
        notes.append(f"{found.ignored} hidden file{'s' * (found.ignored != 1)} left out")
    if found.skipped:
        first = found.skipped[0]
        notes.append(f"{len(found.skipped)} unusable, e.g. {shown(first.name)}: {first.reason}")
    return f"{path}: no image files" + (f" ({'; '.join(notes)})" if notes else "")


def _labels_file(labels: str) -> tuple[Path, os.stat_result]:
    path = Path(labels).absolute()
    try:
        st = os.stat(path)
    except OSError as e:
        raise DataError(f"{path}: the labels file cannot be read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: the labels file is {not_regular(st.st_mode)}, not a file")
    return path, st


def scan(path: Path, labels: str = "none") -> Listing:
    """The files of `path` (a folder, or a .zip file). `labels`: "none", "subdirs" (the first
    folder of each file's path names its class; classes are sorted by name, and a class folder
    with no file is warned about by the caller through `skipped`), or a labels file's path
    (labels.py), or "dataset.json": exactly the dataset.json at the root of the folder or zip
    (as StyleGAN2-ADA's dataset_tool writes it; a DataError when there is none). DataError (one
    line) when `path` is missing, not a folder or zip, or holds no candidate file."""
    path = Path(path)
    began = time.time_ns()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such folder or .zip file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read: {e.strerror or e}") from None
    labels_path, labels_st = (None, None) if labels in ("none", "subdirs", DATASET_JSON) else \
        _labels_file(labels)
    if stat.S_ISDIR(st.st_mode):
        exclude = (labels_st.st_dev, labels_st.st_ino) if labels_st else None
        found, is_zip, zip_stat = walk_folder(path, exclude), False, None
    elif stat.S_ISREG(st.st_mode):
        found, is_zip, zip_stat = walk_zip(path), True, (st.st_size, st.st_mtime_ns)
    else:
        raise DataError(f"{path}: is {not_regular(st.st_mode)}; images are read from a folder "
                        "or a .zip file")
    if not found.files:
        raise DataError(_describe_empty(path, found))
    found.files.sort()
    listing = Listing(root=path, is_zip=is_zip, labels=labels, entries=[], class_names=None,
                      skipped=found.skipped, ignored=found.ignored, zip_stat=zip_stat,
                      dirs=found.dirs, scanned_ns=began, _members=found.members)
    if labels == "subdirs":
        _by_folder(listing, found)
    elif labels == DATASET_JSON:
        _by_dataset_json(listing, found)
    elif labels_path is not None:
        listing.labels = str(labels_path)
        listing.labels_stat = (labels_st.st_size, labels_st.st_mtime_ns)
        _by_file(listing, found, read_labels(labels_path, [n for n, _, _ in found.files]))
    else:
        listing.entries = [Entry(n, s, m) for n, s, m in found.files]
    listing.skipped.sort(key=lambda s: s.name)
    return listing


def _by_folder(listing: Listing, found: Found) -> None:
    """labels: subdirs: the first folder of each path is its class."""
    in_class = [f for f in found.files if "/" in f[0]]
    listing.skipped += [Skipped(n, "not in a class folder") for n, _, _ in found.files
                        if "/" not in n]
    used = {f[0].split("/", 1)[0] for f in in_class}
    listing.skipped += [Skipped(d + "/", "empty class folder, left out")
                        for d in sorted(found.top_dirs - used)]
    classes = sorted(used)
    if len(classes) < 2:
        has = f"one: {shown(classes[0])!r}" if classes else "none"
        empty = sorted(found.top_dirs - used)
        if empty:
            listed = ", ".join(shown(d) + "/" for d in empty[:5]) + (", …" if len(empty) > 5
                                                                     else "")
            has += f" with images, and {len(empty)} with none: {listed}"
        raise DataError(f"{listing.root}: `labels` subdirs needs at least two class folders; "
                        f"it has {has} (use `labels` none for images without classes)")
    index = {c: i for i, c in enumerate(classes)}
    listing.entries = [Entry(n, s, m, index[n.split("/", 1)[0]]) for n, s, m in in_class]
    listing.class_names = [shown(c) for c in classes]


def _by_dataset_json(listing: Listing, found: Found) -> None:
    """labels: dataset.json: the one at the root of the folder, or the zip's member."""
    names = [n for n, _, _ in found.files]
    where = f"{listing.root}/{DATASET_JSON}"
    missing = DataError(f"{listing.root}: has no {DATASET_JSON} at its root (`labels` "
                        f"{DATASET_JSON} reads that file, as StyleGAN2-ADA's dataset_tool "
                        "writes it; give any other labels file by its path)")
    if not listing.is_zip:
        if not os.path.lexists(Path(listing.root) / DATASET_JSON):
            raise missing
        path, st = _labels_file(str(Path(listing.root) / DATASET_JSON))
        listing.labels_stat = (st.st_size, st.st_mtime_ns)
        _by_file(listing, found, read_labels(path, names))
        return
    with walk.open_zip(listing.root) as zf:
        try:
            info = zf.getinfo(DATASET_JSON)
        except KeyError:
            raise missing from None
        if info.file_size > MAX_LABELS_BYTES:
            raise DataError(f"{where}: the labels file is {info.file_size:,} bytes; the limit "
                            f"is {MAX_LABELS_BYTES:,}")
        try:
            with zf.open(info) as f:
                data = f.read(MAX_LABELS_BYTES + 1)
        except Exception as e:  # encrypted, a damaged stream, ...: zipfile raises many kinds
            raise DataError(f"{where}: cannot be read from the zip: {e}") from None
    if len(data) > MAX_LABELS_BYTES:
        raise DataError(f"{where}: the labels file is over the limit of "
                        f"{MAX_LABELS_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: the labels file is not UTF-8 text (byte {e.start})") from None
    _by_file(listing, found, parse_labels(where, text, names))


def _by_file(listing: Listing, found: Found, got: LabelsFile) -> None:
    listing.class_names = got.class_names
    # a name of a file found but left out (a broken link, ...) is warned about as that
    listed = {s.name for s in listing.skipped}
    listing.unmatched = [n for n in got.unmatched if n not in listed]
    listing.entries = [Entry(n, s, m, lab) for (n, s, m), lab in zip(found.files, got.labels)]
