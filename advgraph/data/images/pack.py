"""Every usable image of a listing decoded into one uint8 array, cached.

The cache entry (advgraph.cache: <root>/images/<key>.npy and .json) is keyed by the listing's
fingerprint (the file list, sizes, mtimes, labels), the preparation, Pillow's version and
FORMAT. The record (.json, written last) holds the SHA-256 of the array's bytes, checked on
every load: a damaged, truncated, linked or foreign entry is prepared again with a warning. A
cache that cannot be written (read-only, full, not a folder) is a warning: the data is prepared
in memory and used. Two processes preparing the same data at once each write their own
temporary file and rename it into place whole; the two results are the same bytes.

Memory: a cached array is memory-mapped (the page cache holds it); the float32 splits made
from it need 4 bytes per value, checked before anything is decoded. Disk: the array's size is
reserved in the cache before decoding; where it cannot be, it is prepared in memory instead
(which then needs 5 bytes per value), with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Callable

import numpy as np

from ...atomic import LINK_REFUSED, not_regular
from ...errors import DataError, WriteError
from ..files import check_fits
from . import decode as decoding
from . import parallel, store
from .decode import Preparation, Unusable
from .parallel import Terminated, sigterm_as_interrupt  # noqa: F401 (what prepare raises)
from .scan import Changed, Listing, Skipped, none_usable, scan, shown

# progress(done, total): files decoded so far (called from the main process only)
Progress = Callable[[int, int], None]
Warn = Callable[[str], None]

FORMAT = 1  # bump when the packing changes: entries of older formats are then prepared again
RECORD_LIMIT = 2**20  # bytes of a cache record, beyond...
RECORD_PER_FILE = 2**12  # ...these per file named in it (its name, label, skip reason)
SHOWN_SKIPS = 10  # skipped files named one per line; the rest are counted
# a folder modified this close before the scan may change again within the same tick of its
# file system's clock (coarse: milliseconds; seconds on some network file systems)
RACY_NS = 3 * 10**9
CHANGED = "\0changed: "  # marks a file found changed as it was read (never a real reason)


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


def entry_key(listing: Listing, fingerprint: str, prep: Preparation) -> str:
    """32 hex digits: 16 of the folder and the preparation (the slot: the entries of a folder
    as it was before are found by it, and removed), then 16 of the listing's fingerprint."""
    import PIL

    def digest(**fields) -> str:
        fields.update(format=FORMAT, prep=prep.as_dict(), pillow=PIL.__version__)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    # the labels' kind in the slot too: a folder prepared with and without its classes (a
    # DCGAN and a cDCGAN on one folder) keeps an entry for each
    labels = listing.labels if listing.labels in ("none", "subdirs", "dataset.json") else "file"
    return (digest(root=str(Path(listing.root).resolve()), labels=labels)
            + digest(fingerprint=fingerprint))


def prepare(listing: Listing, prep: Preparation, workers: int | None = None,
            progress: Progress | None = None, warn: Warn | None = None) -> Packed:
    """The packed data of `listing`: from the cache when an entry for its fingerprint and
    `prep` is there and its SHA-256 matches, else decoded (in `workers` processes; None: as
    many as the CPUs, for large listings; capped by parallel.most_workers()) and cached. SIGTERM
    while decoding raises Terminated (a KeyboardInterrupt), as Ctrl-C does, once the temporary
    file is removed. DataError when no file is usable, when
    the data would not fit in memory or on disk, or when the folder changed while it was being
    prepared."""
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"`workers` must be a positive integer or None, not {workers!r}")
    warn = warn or (lambda message: None)
    if listing.unmatched:
        warn(unmatched_warning(listing.unmatched))
    fingerprint = listing.fingerprint()
    key = entry_key(listing, fingerprint, prep)
    from ...cache import cache_dir

    entry = cache_dir("images") / f"{key}.npy"
    packed = _cached(entry, key, listing, fingerprint, prep, warn)
    if packed is not None:
        _check_memory(listing.root, len(packed.images), prep, in_memory=False)
        _warn_skipped(packed.skipped, len(packed.images), warn, per_file=False)
        return packed
    if workers is None:
        workers = parallel.default_workers(len(listing.entries))
    packed = _prepare(listing, prep, fingerprint, key, entry, workers, progress, warn)
    _warn_skipped(packed.skipped, len(packed.images), warn, per_file=True)
    return packed


def _check_memory(root: Path, n: int, prep: Preparation, in_memory: bool) -> None:
    c, h, w = prep.shape()
    per_value = 5 if in_memory else 4
    what = (f"{n:,} images of {c}×{h}×{w} as float32"
            + (" beside their uint8 copy (not cached)" if in_memory else ""))
    check_fits(root, per_value * n * prod(prep.shape()), what)


# ---- the cache entry ----------------------------------------------------------------------


def _record_path(entry: Path) -> Path:
    return entry.with_suffix(".json")


def _cached(entry: Path, key: str, listing: Listing, fingerprint: str, prep: Preparation,
            warn: Warn) -> Packed | None:
    """The entry when it is there and sound; None (after a warning, when it is damaged)."""
    from ...cache import read_entry

    record = _record_path(entry)
    if not os.path.lexists(record):
        return None  # never prepared, or a preparation still writing (the record comes last)
    try:
        files = len(listing.entries) + len(listing.skipped)
        meta = json.loads(read_entry(record, RECORD_LIMIT + RECORD_PER_FILE * files))
        return _checked(entry, meta, key, listing, fingerprint, prep)
    except (OSError, ValueError, KeyError, TypeError) as e:
        warn(f"the cached prepared images {entry} are unusable ({e}); preparing them again")
        return None


def _checked(entry: Path, meta: dict, key: str, listing: Listing, fingerprint: str,
             prep: Preparation) -> Packed:
    """The entry its record describes, checked against the listing: the rows are the listed
    files less those the record says could not be used (names and labels as the listing has
    them), and the array's bytes hash to the record's SHA-256."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key \
            or meta.get("fingerprint") != fingerprint:
        raise ValueError("its record is not this folder's entry")
    failed = {str(name) for name, _ in meta["decode_skipped"]}
    rows = [e for e in listing.entries if e.name not in failed]
    shape = (len(rows), *prep.shape())
    if not rows or meta["names"] != [e.name for e in rows]:
        raise ValueError("its record does not match the files listed")
    images = store.map_checked(entry, shape, str(meta["sha256"]))
    labels = None
    if listing.labels != "none":
        labels = np.asarray([e.label for e in rows], np.int64)
    skipped = list(listing.skipped) + [Skipped(str(name), str(reason))
                                       for name, reason in meta["decode_skipped"]]
    return Packed(images, labels, [e.name for e in rows], listing.class_names, skipped,
                  fingerprint, str(meta["sha256"]), entry, cached=True)


def _record(packed: Packed, key: str, prep: Preparation, listing: Listing) -> dict:
    scanned = len(listing.skipped)  # the files the listing left out come first
    return {"format": FORMAT, "key": key, "root": str(Path(listing.root).resolve()),
            "shape": list(packed.images.shape), "sha256": packed.sha256,
            "fingerprint": packed.fingerprint, "prep": prep.as_dict(), "names": packed.names,
            "labels": None if packed.labels is None else packed.labels.tolist(),
            "class_names": packed.class_names,
            "listing_skipped": [[s.name, s.reason] for s in packed.skipped[:scanned]],
            "decode_skipped": [[s.name, s.reason] for s in packed.skipped[scanned:]],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _store(packed: Packed, target: store.Target, key: str, prep: Preparation,
           listing: Listing, entry: Path, warn: Warn) -> None:
    """The entry renamed into place, its record after it, and the entries of the folder as it
    was before removed; a failure is a warning (the data is used from memory and prepared
    again next time)."""
    from ...atomic import atomic_write
    from ...jsontext import dump_bytes

    record = _record_path(entry)
    try:
        target.commit(entry)
        atomic_write(record, dump_bytes(_record(packed, key, prep, listing), str(record)))
        packed.path = entry
        store.remove_older(entry.parent, key[:16], keep=key)
    except (OSError, WriteError) as e:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        warn(f"the prepared images are not cached ({entry}: {detail}); they are prepared again "
             "next time")


# ---- preparing ----------------------------------------------------------------------------


def _prepare(listing: Listing, prep: Preparation, fingerprint: str, key: str, entry: Path,
             workers: int, progress: Progress | None, warn: Warn) -> Packed:
    with sigterm_as_interrupt():
        return _prepare_now(listing, prep, fingerprint, key, entry, workers, progress, warn)


def _prepare_now(listing: Listing, prep: Preparation, fingerprint: str, key: str, entry: Path,
                 workers: int, progress: Progress | None, warn: Warn) -> Packed:
    n = len(listing.entries)
    if n == 0:
        raise DataError(none_usable(listing, []))
    _check_memory(listing.root, n, prep, in_memory=False)
    target = _target(listing, prep, entry, warn)
    try:
        reasons = _decode_all(listing, prep, target.array, workers, progress)
        _check_unchanged(listing, fingerprint, reasons)
        failed = [Skipped(e.name, r) for e, r in zip(listing.entries, reasons) if r is not None]
        good = [i for i, r in enumerate(reasons) if r is None]
        if not good:
            raise DataError(none_usable(listing, failed))
        images = target.compact(good)
        labels = None
        if listing.labels != "none":
            labels = np.asarray([listing.entries[i].label for i in good], np.int64)
        packed = Packed(images, labels, [listing.entries[i].name for i in good],
                        listing.class_names, list(listing.skipped) + failed, fingerprint,
                        store.sha256(images), None, cached=False)
        if target.tmp is not None:
            packed.images = target.reopen()
            _store(packed, target, key, prep, listing, entry, warn)
        return packed
    finally:
        target.discard()


def _target(listing: Listing, prep: Preparation, entry: Path, warn: Warn) -> store.Target:
    """A temporary file in the cache with room for every row; anonymous memory (after a
    warning, and a memory check) where none can be made."""
    shape = (len(listing.entries), *prep.shape())
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        return store.Target(shape, entry)
    except OSError as e:
        where = e.filename if getattr(e, "filename", None) else entry.parent
        warn(f"the prepared images cannot be cached ({where}: {e.strerror or e}); preparing "
             "them in memory")
    _check_memory(listing.root, shape[0], prep, in_memory=True)
    return store.Target(shape, None)


def _decode_all(listing: Listing, prep: Preparation, out: np.ndarray, workers: int,
                progress: Progress | None) -> list[str | None]:
    """Each file decoded into its row of `out`: the reason it cannot be used, or None."""
    out = out.view(np.ndarray)  # a row written through np.memmap's subclass costs 10% more

    def task(start: int, stop: int) -> list[str | None]:
        reasons: list[str | None] = []
        with decoding.bombs_as_errors():
            for i in range(start, stop):
                try:
                    with listing.open(listing.entries[i]) as f:
                        out[i] = decoding.decode(f, prep)
                    reasons.append(None)
                except Unusable as e:
                    reasons.append(str(e) or "not a usable image")
                except Changed as e:
                    reasons.append(CHANGED + str(e))
                except OSError as e:
                    reasons.append(f"cannot be read: {e.strerror or e}")
        return reasons

    try:
        return parallel.run_chunks(len(listing.entries), task, workers, progress)
    except parallel.WorkerDied as e:
        raise DataError(f"{listing.root}: a process decoding the images died ({e}); run again, "
                        "or with fewer worker processes") from None


def _check_unchanged(listing: Listing, fingerprint: str, reasons: list[str | None]) -> None:
    """DataError when the folder (or zip, or labels file) is not as it was listed. Each file
    was checked against its listed size and mtime as it was read (Changed); a file added or
    removed moves its folder's mtime. Only where that cannot tell (a folder modified within
    RACY_NS of the scan, whose mtime a later change in the same clock tick would not move) is
    the whole folder listed again, as git does for its index's racily clean entries."""
    changed = [(e, r) for e, r in zip(listing.entries, reasons) if r and r.startswith(CHANGED)]
    if changed:
        e, r = changed[0]
        more = f" and {len(changed) - 1:,} more" if len(changed) > 1 else ""
        raise DataError(f"{listing.root} changed while it was being prepared ({shown(e.name)} "
                        f"{r[len(CHANGED):]}{more}); run again once it is stable")
    if _stats_unchanged(listing):
        return
    try:
        again = scan(listing.root, listing.labels)
    except DataError as e:
        raise DataError(f"{listing.root} changed while it was being prepared ({e}); run again "
                        "once it is stable") from None
    if again.fingerprint() != fingerprint:
        raise DataError(f"{listing.root} changed while it was being prepared "
                        f"({_difference(listing, again)}); run again once it is stable")


def _stats_unchanged(listing: Listing) -> bool:
    """True when the zip, the labels file and every folder walked have the stats they were
    listed with, and no folder was modified so close to the scan that its mtime could hide a
    later change."""
    def stat_of(path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    if listing.is_zip and stat_of(listing.root) != listing.zip_stat:
        return False
    labels_file = listing.labels_file()
    if labels_file is not None and stat_of(labels_file) != listing.labels_stat:
        return False
    if not listing.is_zip and not listing.dirs:
        return False  # a listing built by hand: nothing to compare
    for path, mtime_ns in listing.dirs:
        now = stat_of(path)
        if now is None or now[1] != mtime_ns or mtime_ns >= listing.scanned_ns - RACY_NS:
            return False
    return True


def _difference(before: Listing, after: Listing) -> str:
    old = {e.name: e for e in before.entries}
    new = {e.name: e for e in after.entries}
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    modified = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    parts = [f"{len(v):,} {word}" for v, word in ((added, "added"), (removed, "removed"),
                                                  (modified, "modified")) if v]
    if not parts:
        return "its labels or the zip file itself changed"
    count = len(added) + len(removed) + len(modified)
    first = (added + removed + modified)[0]
    return f"files {', '.join(parts)}: {shown(first)}" + (", …" if count > 1 else "")


def _warn_skipped(skipped: list[Skipped], usable: int, warn: Warn, per_file: bool) -> None:
    """Per file for the first few (when just prepared), then a count: one line each (the count
    names the first three only where they were not named on their own lines)."""
    if not skipped:
        return
    if per_file:
        for s in skipped[:SHOWN_SKIPS]:
            warn(f"skipped {shown(s.name)}: {s.reason}")
    files = sum(not s.name.endswith("/") for s in skipped)  # a name with '/': a folder
    folders = len(skipped) - files
    count = f"skipped {files:,} of {usable + files:,} files that cannot be used" + (
        f" and {folders:,} folder{'s' * (folders != 1)}" if folders else "")
    if per_file and len(skipped) <= SHOWN_SKIPS:
        if files:
            warn(count)
        return
    first = ", ".join(f"{shown(s.name)} ({s.reason})" for s in skipped[:3])
    which = "; the first: " if len(skipped) > 3 else ": "
    more = ", …" if len(skipped) > 3 else ""
    warn(f"{count}{which}{first}{more}")


def unmatched_warning(names: list[str], most: int = 5) -> str:
    """The names a labels file gives that match no image file, in one line."""
    listed = ", ".join(shown(n) for n in names[:most]) + (", …" if len(names) > most else "")
    one = len(names) == 1
    return (f"{len(names):,} name{'' if one else 's'} in the labels file match{'es' if one else ''}"
            f" no image file: {listed} (names are paths inside the folder, '/'-separated, "
            "case-sensitive)")


# ---- the .npz of `advgraph data prepare` --------------------------------------------------


def write_npz(packed: Packed, out: Path, seed: int = 0) -> None:
    """The packed data as an .npz for `dataset: npz`: `x` uint8 (N, C, H, W), `y` int64 where
    labelled, `class_names` (fixed-width unicode) where named, and `files`, each row's file.
    The rows are in a random order by `seed` (not the file order, which groups a folder's
    classes): `dataset: npz` takes `valid` and `test` from the end, which must not be the last
    class. Written to a temporary file beside `out` and renamed over it; a link, a directory or
    any other non-regular file at `out` is refused (WriteError), as is every failure to write
    (nothing is left behind)."""
    out = Path(out)
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise WriteError(f"cannot write {out}: {e.strerror or e}") from None
    if mode is not None:
        import stat

        if stat.S_ISLNK(mode):
            raise WriteError(f"cannot write {out}: {LINK_REFUSED}")
        kind = not_regular(mode)
        if kind is not None:
            raise WriteError(f"cannot write {out}: it is {kind} (refusing to replace it)")
    order = np.random.default_rng(seed).permutation(len(packed.images))
    arrays = {"x": np.asarray(packed.images)[order],
              "files": np.asarray([shown(packed.names[i]) for i in order], dtype=str)}
    if packed.labels is not None:
        arrays["y"] = np.asarray(packed.labels, np.int64)[order]
    if packed.class_names:
        arrays["class_names"] = np.asarray(packed.class_names, dtype=str)
    _write_atomically(out, arrays)


def _write_atomically(out: Path, arrays: dict) -> None:
    import secrets

    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise WriteError(f"cannot write {out}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WriteError(f"cannot write {out}: {e.strerror or e}") from None
        raise
