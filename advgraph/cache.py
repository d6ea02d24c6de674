"""Where advgraph caches what it can make again: one root for every cache.

    $ADVGRAPH_CACHE, else $XDG_CACHE_HOME/advgraph, else ~/.cache/advgraph
      mnist/, fashion-mnist/, cifar10/   downloaded data sets
      classifiers/                       the domain classifiers of the feature metrics
      kmeans/                            the k-means centres of `--baseline kmeans`
      images/                            image folders of `dataset: images`, decoded and
                                         packed (uint8 .npy, memory-mapped, and a record)
      host-kernels/                      the cupy backend's kernels compiled for the CPU

Deleting any of it is safe: it is downloaded, trained or built again when next needed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def cache_root() -> Path:
    """The root of every advgraph cache."""
    if os.environ.get("ADVGRAPH_CACHE"):
        return Path(os.environ["ADVGRAPH_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "advgraph"
    return Path.home() / ".cache" / "advgraph"


def cache_dir(name: str) -> Path:
    """One cache under the root (a data set's name, "classifiers", "kmeans", …)."""
    return cache_root() / name


def open_entry(path: Path) -> tuple[int, os.stat_result]:
    """A cache file opened for reading (its descriptor, and its stat), only when the path itself
    is a regular file: advgraph writes nothing else there, and a FIFO would block for ever, a
    link to /dev/zero read until memory ran out. ValueError (a link, not a regular file) or
    OSError, which the caches take as damage: they compute the entry again."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link (advgraph writes none there)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_entry(path: Path, limit: int) -> bytes:
    """The bytes of a cache file (open_entry), read only when it holds at most `limit` bytes.
    ValueError (a link, not a regular file, too large) or OSError: damage."""
    fd, st = open_entry(path)
    try:
        if st.st_size > limit:
            raise ValueError(f"{path} holds {st.st_size:,} bytes, more than {limit:,}")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path} holds more than {limit:,} bytes")
        return data
    finally:
        os.close(fd)
