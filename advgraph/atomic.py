"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import WriteError

_UMASK = os.umask(0)
os.umask(_UMASK)
# Why a link where advgraph keeps its own file is refused: it could point at any file the user
# can write (a planted link would get that file overwritten).
LINK_REFUSED = ("a symbolic link (advgraph never writes its own files through a link; remove "
                "it)")


def not_regular(mode: int) -> str | None:
    """What a file of this st_mode is when it is not a regular file ("a FIFO (named pipe)",
    …), None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return ("a directory" if stat.S_ISDIR(mode) else
            "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "not a plain file")


def atomic_write(path: Path, data: bytes, *, follow: bool = False) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`.
    Any OS failure (full disk, no permission, a directory in the way) is a WriteError naming
    the file; the old file, if any, is untouched and no temporary file is left behind.

    By default `path` is a file advgraph names itself (run files, caches): only a regular file
    or nothing is replaced, and a symbolic link there is refused, never followed (it could
    point anywhere; the directories above it may be links). `follow=True` is for a path the
    user gave (--out, --npz): a link is followed (the file it points to is replaced, the link
    stays), a character device (/dev/null, a terminal) is written through, and a FIFO, socket
    or block device is refused."""
    path, mode = _target(Path(path), follow)
    if follow and mode is not None and stat.S_ISCHR(mode):
        _write_through(path, data)
        return
    if mode is not None and stat.S_ISDIR(mode):
        raise WriteError(f"cannot write {path}: Is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        raise WriteError(f"cannot write {path}: not a regular file (refusing to replace it)")
    _replace(path, data)
    _sync_folder(path.parent)


def _target(path: Path, follow: bool) -> tuple[Path, int | None]:
    """The path to write (a link there followed when `follow`) and the st_mode of what is
    there now (None: nothing); a link that may not be followed is refused."""
    if follow and path.is_symlink():
        try:
            path = path.resolve(strict=False)
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise WriteError(f"cannot write {path}: {e}") from None
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
    except FileNotFoundError:
        return path, None
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    if stat.S_ISLNK(mode):
        raise WriteError(f"cannot write {path}: {LINK_REFUSED}")
    return path, mode


def _write_through(path: Path, data: bytes) -> None:
    """A character device (/dev/null, a terminal) is written, not replaced."""
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None


def _replace(path: Path, data: bytes) -> None:
    """`data` into a temporary file beside `path`, synced, then renamed over it; the
    temporary file never outlives a failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every file system allows it)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def append_line(path: Path, line: str) -> None:
    """Append one line to a log file advgraph names itself (created when missing). Only a
    regular file is appended to (a FIFO would block, a device would swallow it) and a symbolic
    link is refused, not followed (O_NOFOLLOW); failures are a WriteError naming it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
                     | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise WriteError(f"cannot write {path}: {LINK_REFUSED}") from None
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise WriteError(f"cannot write {path}: not a regular file")
        os.write(fd, (line + "\n").encode())
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def read_regular(path: Path) -> bytes:
    """The bytes of a file advgraph reads back (a run's run.json, metrics, checkpoints): only
    a regular file is read (a link to one is followed). A FIFO would block for ever and a
    device such as /dev/zero read until memory ran out: OSError whose strerror says what the
    file is (FileNotFoundError when there is none)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: opens at once
    try:
        kind = not_regular(os.fstat(fd).st_mode)
        if kind is not None:
            raise OSError(errno.EINVAL, f"is {kind}, not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)
