"""The Toronto Face Database (48×48) from the file a user supplies.

TFD is not publicly downloadable, so nothing is fetched: the loader looks for `TFD_48x48.mat`
(the MATLAB v5 file as distributed, read with scipy) or `TFD_48x48.npz` (the same arrays, for
machines without scipy) and says exactly what it expected when it finds neither.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .files import check_fits, regular_size
from .npz import as_labels, check_members

NAMES = ("TFD_48x48.mat", "TFD_48x48.npz")
SIDE = 48
FOLD_CODES = {"unlabeled": (0,), "train": (1,), "train+unlabeled": (0, 1)}
VALID, TEST = 2, 3

EXPECTED = (
    "TFD is not publicly downloadable: obtain TFD_48x48.mat (the Toronto Face Database, 48×48) "
    "from its maintainers. advgraph reads the MATLAB v5 file as distributed (needs scipy: "
    "pip install 'advgraph[tfd]') or an .npz with the same arrays: images (N, 48, 48) uint8, "
    "folds (N, 5) holding 0 = unlabeled, 1 = train, 2 = valid, 3 = test for each of the 5 "
    "official folds, labs_ex (N,) the expression 1–7 (−1 where unlabeled)."
)


def locate(path: Path | None, cli_root: str | None) -> Path:
    """The file: data.path when given, else TFD_48x48.{mat,npz} in the usual places."""
    if path is not None:
        if not path.exists():
            raise DataError(f"{path}: no such file.\n{EXPECTED}")
        regular_size(path)  # a device or FIFO would read forever or block
        return path
    from .idx import candidate_dirs

    dirs = candidate_dirs("tfd", cli_root, None)
    if cli_root:  # a named directory is the only place looked at, as for the IDX files
        dirs = dirs[:1]
    for d in dirs:
        for name in NAMES:
            if (d / name).is_file():
                return d / name
    raise DataError(f"tfd: none of {', '.join(NAMES)} found in {', '.join(map(str, dirs))}.\n"
                    f"{EXPECTED}\nPass the file with data.path, or its directory with "
                    "`data_root` DIR or $ADVGRAPH_DATA.")


def read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 (N, 48, 48), folds int (N, 5), expression labels int64 (N,), 1–7 or −1)."""
    size = regular_size(path)
    arrays = _read_mat(path, size) if path.suffix.lower() == ".mat" else _read_npz(path)
    missing = [k for k in ("images", "folds", "labs_ex") if k not in arrays]
    if missing:
        raise DataError(f"{path}: lacks {', '.join(missing)}.\n{EXPECTED}")
    images, folds = np.asarray(arrays["images"]), np.asarray(arrays["folds"])
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise DataError(f"{path}: images have shape {images.shape}, expected (N, 48, 48)")
    if images.dtype.kind not in "uifb":
        raise DataError(f"{path}: images have dtype {images.dtype}; expected numbers (uint8)")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise DataError(f"{path}: images contain NaN or infinite values")
    n = len(images)
    if folds.shape != (n, 5):
        raise DataError(f"{path}: folds have shape {folds.shape}, expected ({n}, 5)")
    if not np.isin(folds, (0, 1, 2, 3)).all():
        raise DataError(f"{path}: folds must hold only 0 (unlabeled), 1 (train), 2 (valid), "
                        "3 (test)")
    labels = as_labels(arrays["labs_ex"], n, f"{path}: labs_ex")
    return images, folds.astype(np.int64), labels


def _read_mat(path: Path, size: int) -> dict[str, np.ndarray]:
    # A v5 file may compress its arrays; the distributed file (≈ 100k uint8 48×48 images,
    # stored as doubles) expands to about 16× its size at most in memory.
    check_fits(path, 16 * size, "reading this MATLAB file")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(f"{path}: reading .mat files needs scipy (pip install 'advgraph[tfd]'), "
                        "or convert it once to TFD_48x48.npz with the arrays images, folds and "
                        "labs_ex") from None
    try:
        return loadmat(path)
    except NotImplementedError:  # scipy's answer to v7.3 files (HDF5)
        raise DataError(f"{path}: a MATLAB v7.3 (HDF5) file; save it as v5 (MATLAB: "
                        "save(..., '-v7')) or convert it to .npz with the arrays images, folds "
                        "and labs_ex") from None
    except Exception as e:  # scipy raises a variety of errors for damaged files
        raise DataError(f"{path}: not a readable MATLAB file: {type(e).__name__}: {e}") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as zf:
            keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        check_members(path, keys, extra_per_value=4)  # and a float32 copy of the images
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.keys()}
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise DataError(f"{path}: not a readable .npz file (truncated or corrupt?): {e}") from None


def split(images: np.ndarray, folds: np.ndarray, labels: np.ndarray, fold: int,
          train_on: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(images, labels 0–6 or −1) of train/valid/test in one official fold, as Pylearn2's TFD."""
    col = folds[:, fold]
    out = {
        "train": np.isin(col, FOLD_CODES[train_on]),
        "valid": col == VALID,
        "test": col == TEST,
    }
    y = np.where(labels > 0, labels - 1, -1)
    return {k: (images[m], y[m]) for k, m in out.items()}
