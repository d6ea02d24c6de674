"""The packed array's file: an .npy of uint8 (N, C, H, W) that np.load(mmap_mode="r") opens.

It is written in place by the decoding workers through a shared memory map of a temporary
file (`<entry>.npy.tmp-<host>-<pid>` beside the entry), whose disk space is reserved before
anything is decoded: a write into a memory map of a file the disk has no room for kills the
process (SIGBUS) instead of raising. Files that could not be decoded leave holes, closed up in
place afterwards; the header is rewritten to the same length. Then the file is renamed into
place, whole. Where no file can be written the same happens in anonymous shared memory.
"""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import socket
import struct
from math import prod
from pathlib import Path

import numpy as np

HASH_BLOCK = 16 * 2**20  # bytes hashed at a time: the page cache, not this process, holds them


def npy_header(shape: tuple[int, ...], length: int | None = None) -> bytes:
    """A version 1.0 .npy header of a C-order uint8 array, padded with spaces to `length`
    bytes where given (the format ends the header with spaces and a newline)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    head = buf.getvalue()
    if length is not None and len(head) < length:
        head = (head[:8] + struct.pack("<H", length - 10) + head[10:-1]
                + b" " * (length - len(head)) + b"\n")
    return head


def sha256(images: np.ndarray) -> str:
    """SHA-256 (hex) of the array's bytes in C order, read a block at a time."""
    h = hashlib.sha256()
    rows = max(1, HASH_BLOCK // max(1, prod(images.shape[1:])))
    for start in range(0, len(images), rows):
        h.update(np.ascontiguousarray(images[start:start + rows]))
    return h.hexdigest()


def map_checked(path: Path, shape: tuple[int, ...], digest: str) -> np.ndarray:
    """The cached array at `path`, memory-mapped read-only, once it is found to be a regular
    file (never a link: O_NOFOLLOW), to hold a uint8 array of `shape` and nothing more, and
    its bytes to hash to `digest`. ValueError or OSError otherwise (damage)."""
    from ...cache import open_entry

    fd, st = open_entry(path)
    with os.fdopen(fd, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        found, fortran, dtype = read(f)
        if tuple(found) != tuple(shape) or fortran or dtype != np.uint8:
            raise ValueError(f"it holds a {found} {dtype} array, expected {tuple(shape)} uint8")
        offset = f.tell()
        if st.st_size != offset + prod(shape):
            raise ValueError(f"it holds {st.st_size:,} bytes, expected "
                             f"{offset + prod(shape):,}")
        images = np.memmap(f, dtype=np.uint8, mode="r", offset=offset, shape=tuple(shape))
    if sha256(images) != digest:
        raise ValueError("its SHA-256 does not match its record")
    return images


class Target:
    """Where the rows are decoded to: a temporary file beside the cache entry, memory-mapped
    shared (the forked workers write into it), or anonymous shared memory (`path` None)."""

    def __init__(self, shape: tuple[int, ...], entry: Path | None):
        self.shape = tuple(shape)
        self.tmp: Path | None = None
        self.offset = 0
        if entry is None:
            self._anonymous = mmap.mmap(-1, max(1, prod(self.shape)))
            self.array = np.frombuffer(self._anonymous, np.uint8,
                                       prod(self.shape)).reshape(self.shape)
        else:
            self._file(entry)

    def _file(self, entry: Path) -> None:
        """The temporary file, its whole size reserved on disk; OSError (no room, no
        permission, a read-only disk, ...) with nothing left behind."""
        tmp = entry.with_name(f"{entry.name}.tmp-{socket.gethostname()}-{os.getpid()}")
        head = npy_header(self.shape)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o666)
        self.tmp = tmp
        try:
            with os.fdopen(fd, "r+b") as f:
                f.write(head)
                f.flush()
                reserve(fd, len(head) + prod(self.shape), entry.parent)
                self.array = np.memmap(f, np.uint8, "r+", len(head), self.shape)
            self.offset = len(head)
        except BaseException:
            self.discard()
            raise

    def compact(self, good: list[int]) -> np.ndarray:
        """The rows `good` (increasing) moved to the front, in place (each row moves towards
        the start, so none is overwritten before it is moved); the file shortened to them."""
        n = len(good)
        if n < len(self.array):
            idx = np.asarray(good)
            rows = max(1, 2**24 // max(1, prod(self.shape[1:])))
            for start in range(0, n, rows):
                block = idx[start:start + rows]
                self.array[start:start + len(block)] = self.array[block]
        kept = self.array = self.array[:n]  # rows beyond n are cut off the file below
        if self.tmp is not None:
            self.array.flush()
            with open(self.tmp, "r+b") as f:
                f.write(npy_header((n, *self.shape[1:]), self.offset))
                f.truncate(self.offset + prod(kept.shape))
                f.flush()
                os.fsync(f.fileno())
        return kept

    def reopen(self) -> np.ndarray:
        """The (compacted) temporary file mapped read-only, as later runs see the entry."""
        assert self.tmp is not None
        with open(self.tmp, "rb") as f:
            np.lib.format.read_magic(f)
            shape, _, _ = np.lib.format.read_array_header_1_0(f)
            return np.memmap(f, np.uint8, "r", self.offset, tuple(shape))

    def commit(self, entry: Path) -> None:
        """The temporary file renamed into place (OSError: it is left to discard())."""
        assert self.tmp is not None
        os.replace(self.tmp, entry)
        self.tmp = None

    def discard(self) -> None:
        """The temporary file removed (the data stays readable where it is still mapped)."""
        if self.tmp is not None:
            try:
                self.tmp.unlink()
            except OSError:
                pass
            self.tmp = None


def reserve(fd: int, size: int, folder: Path) -> None:
    """Room for `size` bytes in the file, claimed now: OSError (ENOSPC) when the disk has
    none."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
    import shutil

    if shutil.disk_usage(folder).free < size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.ftruncate(fd, size)


def remove_older(folder: Path, slot: str, keep: str) -> None:
    """The files of the entries of `slot` other than `keep` removed (the folder as it was
    before: its data changed, so they are never read again), and temporary files that a
    process of this machine left when it was killed. Best effort: what cannot be removed
    stays."""
    host = socket.gethostname()
    try:
        found = [p for p in folder.iterdir() if p.name.startswith(slot)]
    except OSError:
        return
    for p in found:
        if p.name.startswith(keep):
            if ".tmp-" not in p.name:
                continue
        if ".tmp-" in p.name:
            owner, _, pid = p.name.rpartition(".tmp-")[2].rpartition("-")
            if owner != host or not pid.isdigit() or _alive(int(pid)):
                continue
        try:
            p.unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True
