"""The candidate files of a folder (walked with os.scandir, one stat per entry) or a .zip (its
central directory only: nothing is extracted). Hidden files (any path component starting with
'.') and __MACOSX/ are counted and left out silently; everything else that cannot be used is a
Skipped with its reason."""

from __future__ import annotations

import errno
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ...atomic import not_regular
from ...errors import DataError

MAX_FILE_BYTES = 256 << 20  # no image file (or zip member) larger than this is read
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Skipped:
    """A file that cannot be used, and why (shown to the user in a warning). A name ending in
    '/' is a folder left out (a link loop, an unreadable or empty class folder), not a file."""

    name: str
    reason: str


@dataclass
class Found:
    """What a walk found: (name, size, mtime_ns) of each candidate (unsorted), the top-level
    folders (class folders under labels: subdirs), the files left out and the hidden count;
    for a zip, each member's ZipInfo by name."""

    files: list[tuple[str, int, int]] = field(default_factory=list)
    top_dirs: set[str] = field(default_factory=set)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0
    members: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    dirs: list[tuple[str, int]] = field(default_factory=list)  # (path, mtime_ns) walked


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _too_large(size: int) -> str:
    return f"too large: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,}"


def _stat_problem(entry: os.DirEntry, e: OSError) -> str:
    """Why following a directory entry failed, in a few words."""
    if e.errno == errno.ELOOP:
        return "symbolic link loop, not followed"
    if isinstance(e, FileNotFoundError):
        return "broken symbolic link" if entry.is_symlink() else "vanished while listing"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"cannot read: {e.strerror or e}"


def _name(entry: os.DirEntry) -> str:
    return entry.name


def _readable(path: str, st: os.stat_result) -> bool:
    # world-readable files need no access() call (most of them: keeps 60,000 files fast)
    return bool(st.st_mode & stat.S_IROTH) or os.access(path, os.R_OK)


def _holders(root: Path) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of `root` and of every folder that holds it: its parents as given
    and as resolved (a path through a link has both)."""
    keys = set()
    for path in {Path(os.path.abspath(root)), Path(os.path.realpath(root))}:
        for folder in (path, *path.parents):
            try:
                st = os.stat(folder)
            except OSError:
                continue
            keys.add((st.st_dev, st.st_ino))
    return keys


def walk_folder(root: Path, exclude: tuple[int, int] | None) -> Found:
    """Every candidate under `root`, links followed, except a link to `root` itself or to a
    folder that holds it (`ln -s / everything` would walk the whole file system); `exclude` is
    the (st_dev, st_ino) of a file that is not a candidate (the labels file)."""
    found = Found()
    top = os.stat(root)
    visited = {(top.st_dev, top.st_ino)}
    outer = _holders(root)
    stack = [("", str(root), ((top.st_dev, top.st_ino),))]
    while stack:
        rel, full, ancestors = stack.pop()
        try:
            # the folder's mtime before its entries are read: a file added or removed after
            # that moves it (pack.py's check that the folder did not change while prepared)
            found.dirs.append((full, os.stat(full).st_mtime_ns))
            with os.scandir(full) as it:
                # by name: which of two ways into one folder is taken does not depend on
                # the file system's order
                items = sorted(it, key=_name)
        except OSError as e:
            if not rel:
                raise DataError(f"{root}: cannot read the folder: {e.strerror or e}") from None
            reason = "permission denied" if isinstance(e, PermissionError) else \
                f"cannot read the folder: {e.strerror or e}"
            found.skipped.append(Skipped(rel + "/", reason))
            continue
        for entry in items:
            _visit(entry, rel, (ancestors, visited, outer), exclude, found, stack)
    return found


def _visit(entry: os.DirEntry, rel: str, seen: tuple[tuple, set, set],
           exclude: tuple[int, int] | None, found: Found, stack: list) -> None:
    """`seen`: the folders above this one in the walk, every folder walked, and the root and
    the folders that hold it."""
    ancestors, visited, outer = seen
    name = f"{rel}/{entry.name}" if rel else entry.name
    if _hidden(entry.name):
        found.ignored += 1
        return
    if not rel and entry.name == "dataset.json":
        return
    try:
        st = entry.stat()  # follows links
    except OSError as e:
        found.skipped.append(Skipped(name, _stat_problem(entry, e)))
        return
    if stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        # named with a '/': a folder, not a file (survey counts files)
        if key in outer:
            found.skipped.append(Skipped(name + "/", "link to a folder that holds this one, "
                                                     "not followed"))
        elif key in ancestors:
            found.skipped.append(Skipped(name + "/", "symbolic link loop, not followed"))
        elif entry.is_symlink() and key in visited:
            # a second way into a folder already walked: following every such link could
            # take exponentially long on a crafted tree
            found.skipped.append(Skipped(name + "/", "link to a folder already listed, not "
                                                     "followed"))
        else:
            visited.add(key)
            stack.append((name, entry.path, ancestors + (key,)))
            if not rel:
                found.top_dirs.add(name)
    elif not stat.S_ISREG(st.st_mode):
        found.skipped.append(Skipped(name, f"{not_regular(st.st_mode)}, not a regular file"))
    elif exclude is not None and (st.st_dev, st.st_ino) == exclude:
        return
    elif st.st_size > MAX_FILE_BYTES:
        found.skipped.append(Skipped(name, _too_large(st.st_size)))
    elif not _readable(entry.path, st):
        found.skipped.append(Skipped(name, "permission denied"))
    else:
        found.files.append((name, st.st_size, st.st_mtime_ns))


def unsafe_member(name: str) -> bool:
    """A zip name that could point outside the archive if extracted (absolute, '..', a drive,
    a backslash): never trusted, not even as a class name."""
    return (name.startswith("/") or "\\" in name or bool(_DRIVE.match(name))
            or ".." in name.split("/"))


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: not a folder or a readable .zip file ({e})") from None


def walk_zip(path: Path) -> Found:
    """Every candidate member of the zip at `path`, from its central directory."""
    found = Found()
    with open_zip(path) as zf:
        infos = zf.infolist()
    for info in infos:
        name = info.filename
        if unsafe_member(name):
            found.skipped.append(Skipped(name, "unsafe name in the zip"))
            continue
        parts = name.rstrip("/").split("/")
        if any(_hidden(p) for p in parts):
            found.ignored += 1
            continue
        if info.is_dir():
            found.top_dirs.add(parts[0])
            continue
        if len(parts) > 1:
            found.top_dirs.add(parts[0])
        if name == "dataset.json":
            continue
        if name in found.members:
            found.skipped.append(Skipped(name, "listed twice in the zip; the first one is used"))
        elif info.flag_bits & 0x1:
            found.skipped.append(Skipped(name, "encrypted"))
        elif stat.S_ISLNK(info.external_attr >> 16):  # its bytes are a path, not an image
            found.skipped.append(Skipped(name, "a symbolic link inside the zip, not followed"))
        elif info.file_size > MAX_FILE_BYTES:
            found.skipped.append(Skipped(name, _too_large(info.file_size)))
        else:
            found.members[name] = info
            found.files.append((name, info.file_size, 0))
    return found
