"""MNIST and Fashion-MNIST from the official IDX files (gzip-compressed or raw).

Where the files are looked for, in order: --data-root, the spec's `data.root`, $ADVGRAPH_DATA
(itself and its `<dataset>/` subfolder), the per-user cache ~/.cache/advgraph/<dataset>, and for
Fashion-MNIST Debian's /usr/share/datasets/fashion-mnist. When nothing is found and the spec
allows it, the files are downloaded into the cache and checked against their published MD5s.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError
from .files import check_fits, regular_size

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Source:
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # of the .gz files as published
    system_dirs: tuple[str, ...] = ()


SOURCES = {
    "mnist": Source(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
    ),
    "fashion-mnist": Source(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (magic, dims, payload), raising DataError with the file's name.

    Only regular files are read, and never more than the header declares (plus one byte, to
    detect trailing data): a gzip stream is decompressed up to that bound, not to its end, and
    a payload that would not fit in the memory available is refused before it is read."""
    size = regular_size(path)
    try:
        with open(path, "rb") as raw_file:
            compressed = raw_file.read(2) == b"\x1f\x8b"
            raw_file.seek(0)
            with (gzip.GzipFile(fileobj=raw_file) if compressed else raw_file) as f:
                magic = f.read(4)
                if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
                    raise DataError(f"{path}: not an IDX file (bad magic number "
                                    f"{magic.hex() or 'empty'})")
                ndim = magic[3]
                header = 4 + 4 * ndim
                dims_raw = f.read(4 * ndim)
                if ndim == 0 or len(dims_raw) < 4 * ndim:
                    raise DataError(f"{path}: truncated IDX header")
                dims = struct.unpack(f">{ndim}I", dims_raw)
                dtype = np.dtype(_DTYPES[magic[2]])
                expected = prod(dims) * dtype.itemsize  # exact: Python integers
                if not compressed and size - header != expected:
                    _wrong_size(path, dims, expected, size - header)
                # the array, its float32 copy and a finiteness mask
                check_fits(path, expected + prod(dims) * 5, f"an IDX array of dims {dims}")
                payload = f.read(expected + 1)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read (corrupt or truncated gzip file?): {e}") from None
    if len(payload) != expected:
        _wrong_size(path, dims, expected, len(payload), at_least=len(payload) > expected)
    arr = np.frombuffer(payload, dtype=dtype).reshape(dims)
    if dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: holds NaN or infinite values")
        if np.abs(arr).max(initial=0) > np.finfo(np.float32).max:
            raise DataError(f"{path}: holds values beyond float32's range (±3.4e38)")
    return arr


def _wrong_size(path: Path, dims: tuple[int, ...], expected: int, got: int,
                at_least: bool = False) -> None:
    kind = "truncated" if got < expected else "has trailing bytes"
    found = f"more than {expected:,}" if at_least else f"{got:,}"
    raise DataError(f"{path}: {kind}: dims {dims} need {expected:,} bytes of data, "
                    f"found {found}")


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        p = directory / name
        if p.exists():  # a FIFO or device of that name is refused by read_idx, by name
            return p
    return None


def cache_dir(dataset: str) -> Path:
    """Where `dataset` is downloaded to (advgraph.cache)."""
    from ..cache import cache_dir as under_root

    return under_root(dataset)


def candidate_dirs(dataset: str, cli_root: str | None, spec_root: Path | None) -> list[Path]:
    out: list[Path] = []
    if cli_root:
        out.append(Path(cli_root).expanduser())
    if spec_root is not None:
        out.append(spec_root)
    env = os.environ.get("ADVGRAPH_DATA")
    if env:
        out += [Path(env).expanduser() / dataset, Path(env).expanduser()]
    out.append(cache_dir(dataset))
    if dataset in SOURCES:
        out += [Path(d) for d in SOURCES[dataset].system_dirs]
    return out


def locate(dataset: str, cli_root: str | None, spec_root: Path | None,
           download: bool) -> dict[str, Path]:
    """The four files of `dataset`, from the first directory holding all of them."""
    dirs = candidate_dirs(dataset, cli_root, spec_root)
    # An explicitly named directory is the only place looked at: a typo must not silently
    # fall back to another copy.
    explicit = dirs[0] if (cli_root or spec_root is not None) else None
    for d in ([explicit] if explicit is not None else dirs):
        found = {k: _find(d, stem) for k, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    if explicit is None and download and not os.environ.get("ADVGRAPH_OFFLINE"):
        target = cache_dir(dataset)
        problem = download_dataset(dataset, target)
        if problem is None:
            return {k: target / (stem + ".gz") for k, stem in FILES.items()}
    else:
        problem = None
    looked = explicit if explicit is not None else None
    where = (f"in {looked}" if looked is not None
             else "in any of: " + ", ".join(str(d) for d in dirs))
    missing = ", ".join(f"{s}.gz" for s in FILES.values())
    msg = (f"{dataset}: the IDX files were not found {where}.\n"
           f"Put these four files (gzip-compressed or raw) in one directory: {missing}\n"
           f"and pass it with `data_root` DIR, the spec's data.root, or $ADVGRAPH_DATA.")
    if problem:
        msg += f"\nDownload into {cache_dir(dataset)} failed: {problem}"
    raise DataError(msg)


def download_dataset(dataset: str, target: Path, timeout: float = 20.0) -> str | None:
    """Fetch the four .gz files, verifying MD5s; returns None on success or what went wrong."""
    source = SOURCES[dataset]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {target}: {e.strerror}"
    for stem, md5 in source.md5.items():
        dest = target / (stem + ".gz")
        if dest.is_file() and _md5(dest) == md5:
            continue
        last = "no mirror answered"
        for mirror in source.mirrors:
            try:
                with urllib.request.urlopen(mirror + stem + ".gz", timeout=timeout) as r:
                    payload = r.read()
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = f"{mirror}{stem}.gz: {getattr(e, 'reason', e)}"
                continue
            got = hashlib.md5(payload).hexdigest()
            if got != md5:
                last = f"{mirror}{stem}.gz: checksum mismatch (md5 {got}, expected {md5})"
                continue
            atomic_write(dest, payload)
            break
        else:
            return last
    return None


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def load_images(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_images, train_labels, test_images, test_labels), images as uint8 (N, 28, 28)."""
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.ndim != 3:
            raise DataError(f"{files[f'{split}_images']}: expected images (N, H, W), "
                            f"got dims {imgs.shape}")
        if labels.ndim != 1 or labels.shape[0] != imgs.shape[0]:
            raise DataError(f"{files[f'{split}_labels']}: {labels.shape[0]} labels for "
                            f"{imgs.shape[0]} images in {files[f'{split}_images']}")
    return (arrays["train_images"], arrays["train_labels"], arrays["test_images"],
            arrays["test_labels"])
