"""`advgraph data inspect`: what an image folder holds and what preparing it will do.

Every file's header is read (format, mode, size as stored, EXIF orientation, transparency) and
the file decoded as preparing would decode it, to find the truncated and corrupt ones: in
worker processes like the preparation (parallel.py), nothing written anywhere."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import BinaryIO, Callable, NamedTuple

from ...errors import DataError
from ...memory import describe
from . import decode as decoding
from . import parallel
from .decode import Preparation, Unusable
from .scan import Listing, Skipped, none_usable

_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_GREY = ("1", "L", "LA", "La", "I", "F") + tuple(f"I;16{e}" for e in ("", "B", "L", "N"))
_DEEP = ("I", "F") + tuple(f"I;16{e}" for e in ("", "B", "L", "N"))
_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass
class Survey:
    """`files`: the files found (the candidates read, and the files left out while listing;
    not the folders left out, whose names end in '/'); `formats`, `modes` (Pillow's, "1-bit"
    for "1") and `sizes` count the usable images only; `problems`: every file and folder left
    out, and each name in the labels file that matches no file."""

    files: int
    usable: int
    formats: Counter = field(default_factory=Counter)  # "PNG" -> count
    modes: Counter = field(default_factory=Counter)  # Pillow mode -> count
    sizes: Counter = field(default_factory=Counter)  # (W, H) -> count
    classes: dict[str, int] | None = None  # class name -> usable files
    problems: list[Skipped] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)  # what preparing does, one line each


class NoneUsable(DataError):
    """No file of the folder is usable: prepare's one-line error, raised by `survey` once it
    has surveyed; `survey` is the Survey (a caller may show it before the error)."""

    def __init__(self, message: str, survey: Survey):
        super().__init__(message)
        self.survey = survey


UNMATCHED = ("in the labels file, but no image file has this name (names are paths inside "
             "the folder, '/'-separated, case-sensitive)")


class Header(NamedTuple):
    format: str
    mode: str
    size: tuple[int, int]  # (W, H) as stored
    orientation: int  # EXIF, 1 when none
    transparent: bool


class Look(NamedTuple):
    header: Header | None  # None: not even the header could be read
    problem: str | None  # why the file cannot be used; None: usable


def header(fp: BinaryIO) -> Header | None:
    """The file's header as Pillow reads it, without decoding the pixels; None when Pillow
    cannot identify it (decode then says why)."""
    from PIL import Image

    try:
        with Image.open(fp, formats=decoding.FORMATS) as img:
            orientation = 1
            if "exif" in img.info or img.format == "TIFF":
                try:
                    orientation = int(img.getexif().get(0x0112, 1))
                except Exception:  # a damaged EXIF block: decode ignores it too
                    orientation = 1
            return Header(img.format or "?", img.mode, tuple(img.size), orientation,
                          img.mode in _ALPHA or "transparency" in img.info)
    except Exception:  # anything Pillow raises on a file it cannot read: decode says why
        return None


def _look(listing: Listing, i: int, prep: Preparation) -> Look:
    head = None
    try:
        with listing.open(listing.entries[i]) as f:
            head = header(f)
            f.seek(0)
            decoding.decode(f, prep)
        return Look(head, None)
    except Unusable as e:
        return Look(head, str(e) or "not a usable image")
    except OSError as e:
        return Look(head, f"cannot be read: {e.strerror or e}")


def survey(listing: Listing, prep: Preparation, progress: Callable[[int, int], None] | None = None,
           workers: int | None = None) -> Survey:
    """Every file's header read (and decoded, to find truncated and corrupt files).
    `progress(done, total)` as in pack.prepare; `workers` None: as many as the CPUs for a
    large listing. NoneUsable (a DataError, prepare's message) when no file is usable."""
    n = len(listing.entries)
    if workers is None:
        workers = parallel.default_workers(n)
    looks: list[Look] = parallel.run_chunks(
        n, lambda start, stop: [_look(listing, i, prep) for i in range(start, stop)], workers,
        progress)
    left_out = sum(not p.name.endswith("/") for p in listing.skipped)  # '/': a folder
    s = Survey(files=n + left_out, usable=sum(lk.problem is None for lk in looks))
    for lk in looks:
        if lk.header is not None and lk.problem is None:
            s.formats[lk.header.format] += 1
            s.modes["1-bit" if lk.header.mode == "1" else lk.header.mode] += 1
            s.sizes[lk.header.size] += 1
    failed = [Skipped(e.name, lk.problem) for e, lk in zip(listing.entries, looks)
              if lk.problem is not None]
    s.problems = sorted(list(listing.skipped) + failed, key=lambda p: p.name)
    s.classes = _classes(listing, looks)
    s.plan = plan(listing, prep, looks, s)
    s.problems += [Skipped(name, UNMATCHED) for name in listing.unmatched]
    if not s.usable:
        raise NoneUsable(none_usable(listing, failed), s)
    return s


def _classes(listing: Listing, looks: list[Look]) -> dict[str, int] | None:
    """Usable files per class (by name where the classes are named, else by label)."""
    if listing.labels == "none":
        return None
    counts = Counter(e.label for e, lk in zip(listing.entries, looks)
                     if lk.problem is None and e.label >= 0)
    names = listing.class_names
    if names:
        return {name: counts.get(i, 0) for i, name in enumerate(names)}
    return {str(label): counts[label] for label in sorted(counts)}


def plan(listing: Listing, prep: Preparation, looks: list[Look], s: Survey) -> list[str]:
    """What preparing will do, one line each."""
    c, h, w = prep.shape()
    good = [lk.header for lk in looks if lk.problem is None and lk.header is not None]
    lines = [f"{s.usable:,} images → ({c}, {h}, {w}) uint8, "
             f"{s.usable * prod(prep.shape()) / 1e6:.1f} MB in the cache; training holds "
             f"{describe(4 * s.usable * prod(prep.shape()))} of them as float32"]
    upright = [(hd.size[::-1] if hd.orientation in _TURNED else hd.size) for hd in good]
    resized = sum(size != (w, h) for size in upright)
    if resized:
        how = ("crop: scaled to cover, then the centre cut out" if prep.fit == "crop" else
               f"pad: scaled to fit inside, padded with {tuple(prep.background)}")
        lines.append(f"{resized:,} of {s.usable:,} resized to {w}×{h} ({how})")
    elif good:
        lines.append(f"none resized: every image is {w}×{h} already")
    counted = [
        (sum(hd.orientation not in (0, 1) for hd in good), "turned upright by their EXIF "
         "orientation"),
        (sum(hd.transparent for hd in good),
         f"with transparency composited over {tuple(prep.background)}"),
        (sum(hd.mode in _DEEP for hd in good), "with 16-bit or float samples scaled to 8 bits"),
        (sum((hd.mode not in _GREY) == (c == 1) for hd in good),
         "in colour converted to greyscale" if c == 1 else "in greyscale repeated in three "
         "channels"),
    ]
    lines += [f"{k:,} {what}" for k, what in counted if k]
    unlabelled = sum(e.label < 0 for e, lk in zip(listing.entries, looks) if lk.problem is None)
    if listing.labels != "none" and unlabelled:
        lines.append(f"{unlabelled:,} images have no label (-1)")
    files = sum(not p.name.endswith("/") for p in s.problems)
    folders = len(s.problems) - files
    if files:
        lines.append(f"skipped {_files(files)} that cannot be used")
    if folders:
        lines.append(f"{folders:,} folder{'s' * (folders != 1)} left out (see the problems)")
    if listing.ignored:
        lines.append(f"{_files(listing.ignored)} hidden or in __MACOSX/ left out")
    return lines


def _files(k: int) -> str:
    return f"{k:,} file" + ("s" if k != 1 else "")
