"""Bounded reads of data files: only regular files are opened (never a device such as
/dev/zero, a FIFO or a socket, which would read forever or block), and nothing is read or
decompressed whose declared size does not fit in the memory still available."""

from __future__ import annotations

import os
from pathlib import Path

from .. import memory
from ..atomic import not_regular
from ..errors import DataError


def regular_size(path: Path) -> int:
    """The size of `path` in bytes; DataError unless it is a regular file (links followed)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    kind = not_regular(st.st_mode)
    if kind is not None:
        raise DataError(f"{path}: is {kind}, not a regular file; data is read from files only")
    return st.st_size


def check_fits(path: Path, nbytes: int, what: str) -> None:
    """Refuse, before reading, data that needs more memory than is available."""
    have = memory.available_bytes()
    if have is not None and nbytes > have:
        raise DataError(f"{path}: {what} would need {memory.describe(nbytes)} of memory; only "
                        f"{memory.describe(have)} is available")
