"""A user's own examples: one array (N, ...) in an .npz file."""

from __future__ import annotations

import zipfile
from contextlib import contextmanager
from math import prod
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError
from .files import check_fits, regular_size


def _pick_key(path: Path, keys: list[str], key: str | None, exclude: str | None = None) -> str:
    if key is not None:
        if key not in keys:
            raise DataError(f"{path}: no array named {key!r}; the file has: {', '.join(keys)}")
        return key
    keys = [k for k in keys if k != exclude]  # the labels array is not the examples
    if len(keys) != 1:
        raise DataError(f"{path}: holds {len(keys)} arrays ({', '.join(keys)}); "
                        "name one with data.key")
    return keys[0]


def _member_header(path: Path, zf: zipfile.ZipFile, k: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an array's .npy header declares, checked against the size the zip
    directory gives the member: a header that promises more (or less) data than the member
    holds is refused before anything is decompressed."""
    info = zf.getinfo(k + ".npy")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{path}: array {k!r} uses .npy format version "
                            f"{version[0]}.{version[1]}; save it with numpy.savez (1.0 or 2.0)")
        offset = f.tell()
    shape = tuple(int(d) for d in shape)
    if dtype.hasobject:
        raise DataError(f"{path}: array {k!r} holds Python objects (dtype {dtype}); expected "
                        "numbers")
    stored = info.file_size - offset
    if prod(shape) * dtype.itemsize != stored:
        raise DataError(f"{path}: array {k!r}: its header declares shape {shape} {dtype} "
                        f"({prod(shape) * dtype.itemsize:,} bytes) but the file stores "
                        f"{stored:,} bytes (corrupt, or a decompression bomb)")
    return shape, dtype


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Any failure to read `path` as an .npz becomes a DataError naming it."""
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, ValueError, OSError, KeyError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file (truncated or corrupt?): {e}") from None


def _open(path: Path) -> zipfile.ZipFile:
    regular_size(path)  # never a device or a FIFO (which would read forever, or block)
    return zipfile.ZipFile(path)


def peek_shape(path: Path, key: str | None, exclude: str | None = None) -> tuple[int, ...]:
    """The array's full shape, read from the .npy header without loading the data."""
    return peek(path, key, exclude)[0]


def peek(path: Path, key: str | None, exclude: str | None = None
         ) -> tuple[tuple[int, ...], np.dtype, str]:
    """The array's full shape, dtype and name, read from the .npy header without loading the
    data."""
    with _reading(path), _open(path) as zf:
        k = _pick_key(path, _arrays(zf, key), key, exclude)
        return (*_member_header(path, zf, k), k)


NAMES = "class_names"  # an array of the classes' names, by label (`advgraph data prepare`)


def _arrays(zf: zipfile.ZipFile, key: str | None) -> list[str]:
    """The file's arrays; the class names are not the examples unless named."""
    keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    return keys if key is not None else [k for k in keys if k != NAMES]


def pixels_refused(path: Path, k: str, dtype: np.dtype) -> str:
    return (f"{path}: array {k!r} is {dtype}; data.pixels reads uint8 pixels (0–255) only "
            "(leave it out to read the values as they are)")


def class_names(path: Path) -> list[str] | None:
    """The file's `class_names` array (strings, one per label), or None without one."""
    with _reading(path), _open(path) as zf:
        if NAMES + ".npy" not in zf.namelist():
            return None
        shape, dtype = _member_header(path, zf, NAMES)
    if dtype.kind != "U" or len(shape) != 1 or shape[0] > 100_000:
        raise DataError(f"{path}: array {NAMES!r} is {dtype}{list(shape)}; expected strings, "
                        "one per class")
    with _reading(path), np.load(path, allow_pickle=False) as z:
        return [str(x) for x in z[NAMES]]


def check_members(path: Path, keys: list[str], extra_per_value: int = 0) -> None:
    """Refuse before decompressing: arrays whose declared size (plus `extra_per_value` bytes
    of working copies per value) does not fit in the memory available."""
    with _reading(path), _open(path) as zf:
        need, what = 0, []
        names = set(zf.namelist())
        for k in keys:
            if k + ".npy" not in names:
                continue  # the caller names what is missing
            shape, dtype = _member_header(path, zf, k)
            need += prod(shape) * (dtype.itemsize + extra_per_value)
            what.append(f"{k!r} {shape} {dtype}")
    check_fits(path, need, "loading array " + ", ".join(what))


def load(path: Path, key: str | None, exclude: str | None = None,
         pixels: bool = False) -> np.ndarray:
    """The array as float32; `pixels`: uint8 only, scaled to [0, 1]."""
    with _reading(path):
        with _open(path) as zf:
            k = _pick_key(path, _arrays(zf, key), key, exclude)
        check_members(path, [k], extra_per_value=5)  # + a float32 copy and a finiteness mask
        with np.load(path, allow_pickle=False) as z:
            arr = z[k]
    if arr.ndim < 2:
        raise DataError(f"{path}: array {k!r} has shape {arr.shape}; expected (N, features...)")
    if pixels:
        if arr.dtype != np.uint8:
            raise DataError(pixels_refused(path, k, arr.dtype))
        return np.divide(arr, np.float32(255.0), dtype=np.float32)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{path}: array {k!r} has dtype {arr.dtype}; expected real numbers")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{path}: array {k!r} contains NaN or infinite values")
    with np.errstate(over="ignore"):
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: array {k!r} holds values beyond float32's range (±3.4e38)")
    return arr


def load_labels(path: Path, key: str, n: int) -> np.ndarray:
    """The integer class of each of the n examples, from array `key` of the same file."""
    with _reading(path):
        check_members(path, [key])
        with np.load(path, allow_pickle=False) as z:
            y = z[_pick_key(path, list(z.keys()), key)]
    return as_labels(y, n, f"{path}: labels {key!r}")


def as_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    """Class indices as int64 (n,); integers only (a float array must hold whole numbers)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what}: shape {y.shape}, expected one label per example ({n},)")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{what}: labels must be whole numbers")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{what}: dtype {y.dtype}; expected integer class indices")
    return y.astype(np.int64)
