"""CIFAR-10 from the standard python batches (cifar-10-batches-py/: data_batch_1…5, test_batch).

The batches are pickles, so they are read with a restricted unpickler that accepts only what
they contain (dicts, lists, bytes, and NumPy arrays rebuilt through numpy's own
reconstructors); anything else in a file is refused, never executed.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import DataError
from .files import check_fits, regular_size

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
SUBDIR = "cifar-10-batches-py"
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
}


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one batch file."""
    # Only a regular file, and one whose unpickled arrays fit: the pickle holds its arrays'
    # bytes, so the file, the arrays and their float32 copies take at most ~6× its size.
    check_fits(path, 6 * regular_size(path), "unpickling this batch")
    try:
        raw = path.read_bytes()
        obj = _Restricted(io.BytesIO(raw), encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, OSError) as e:
        raise DataError(f"{path}: not a CIFAR-10 batch (or damaged): {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict)")
    data, labels = obj.get(b"data", obj.get("data")), obj.get(b"labels", obj.get("labels"))
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 \
            or data.dtype != np.uint8:
        raise DataError(f"{path}: 'data' should be uint8 (N, 3072), got "
                        f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if labels is None or len(labels) != len(data):
        raise DataError(f"{path}: {len(labels) if labels is not None else 0} labels for "
                        f"{len(data)} images")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def locate(cli_root: str | None, spec_root: Path | None, download: bool) -> Path:
    """The directory holding the six batch files."""
    dirs: list[Path] = []
    if cli_root:
        dirs.append(Path(cli_root).expanduser())
    elif spec_root is not None:
        dirs.append(spec_root)
    else:
        env = os.environ.get("ADVGRAPH_DATA")
        if env:
            dirs += [Path(env).expanduser() / "cifar10", Path(env).expanduser()]
        from .idx import cache_dir

        dirs.append(cache_dir("cifar10"))
    for d in dirs:
        for cand in (d, d / SUBDIR):
            if all((cand / f).is_file() for f in FILES):
                return cand
    explicit = bool(cli_root) or spec_root is not None
    problem = None
    if not explicit and download and not os.environ.get("ADVGRAPH_OFFLINE"):
        from .idx import cache_dir

        problem = _download(cache_dir("cifar10"))
        if problem is None:
            return cache_dir("cifar10") / SUBDIR
    msg = (f"cifar10: the python batches were not found in {', '.join(map(str, dirs))}.\n"
           f"Put {', '.join(FILES)} (from cifar-10-python.tar.gz) in one directory, or its "
           f"{SUBDIR}/ folder, and pass it with `data_root` DIR, data.root, or $ADVGRAPH_DATA.")
    if problem:
        msg += f"\nDownload failed: {problem}"
    raise DataError(msg)


def _download(target: Path, timeout: float = 60.0) -> str | None:
    try:
        with urllib.request.urlopen(URL, timeout=timeout) as r:
            payload = r.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"{URL}: {getattr(e, 'reason', e)}"
    got = hashlib.md5(payload).hexdigest()
    if got != MD5:
        return f"{URL}: checksum mismatch (md5 {got}, expected {MD5})"
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tf:
                tf.extractall(tmp, filter="data")  # no links out, no absolute paths
            os.replace(Path(tmp) / SUBDIR, target / SUBDIR)
    except (OSError, tarfile.TarError) as e:
        return f"cannot unpack into {target}: {e}"
    return None


def global_contrast_normalize(x: np.ndarray, scale: float) -> np.ndarray:
    """Pylearn2's GCN (subtract_mean, use_std=False, sqrt_bias=0): each example centred and
    scaled to L2 norm `scale` (the paper's CIFAR-10 nets used 55)."""
    flat = x.reshape(len(x), int(np.prod(x.shape[1:]))).astype(np.float64)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.sqrt((flat ** 2).sum(axis=1)) / scale
    norms[norms < 1e-8] = 1.0
    return (flat / norms[:, None]).reshape(x.shape).astype(np.float32)
