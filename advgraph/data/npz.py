"""A user's own examples: one array (N, ...) in an .npz file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError


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


def peek_shape(path: Path, key: str | None, exclude: str | None = None) -> tuple[int, ...]:
    """The array's full shape, read from the .npy header without loading the data."""
    try:
        with zipfile.ZipFile(path) as zf:
            keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            k = _pick_key(path, keys, key, exclude)
            with zf.open(k + ".npy") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, _ = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, _ = np.lib.format.read_array_header_2_0(f)
                else:  # a format without a public header reader: load it (no pickle)
                    return tuple(load(path, key, exclude).shape)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        raise DataError(f"{path}: not a readable .npz file: {e}") from None
    return tuple(shape)


def load(path: Path, key: str | None, exclude: str | None = None) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            k = _pick_key(path, list(z.keys()), key, exclude)
            arr = z[k]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file (truncated or corrupt?): {e}") from None
    if arr.ndim < 2:
        raise DataError(f"{path}: array {k!r} has shape {arr.shape}; expected (N, features...)")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{path}: array {k!r} has dtype {arr.dtype}; expected real numbers")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: array {k!r} contains NaN or infinite values")
    return arr


def load_labels(path: Path, key: str, n: int) -> np.ndarray:
    """The integer class of each of the n examples, from array `key` of the same file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            y = z[_pick_key(path, list(z.keys()), key)]
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file (truncated or corrupt?): {e}") from None
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
