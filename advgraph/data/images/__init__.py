"""A user's own images: a folder (or .zip) of image files, prepared once into a packed uint8
array in the cache, then split and scaled like any other data set.

    scan.py      the files: hidden files, __MACOSX/, unsafe zip names and symlink loops are
                 left out; classes from subfolders or a labels file (labels.py)
    decode.py    one file to a (C, H, W) uint8 array: EXIF orientation, modes, the size rule
    pack.py      every file, decoded in parallel into the cache (keyed by the file list, sizes
                 and mtimes; its SHA-256 checked on load), or the prepared .npz of `data prepare`
    store.py     the cache entry's .npy: written in place through a shared memory map,
                 compacted, renamed into place whole; mapped read-only once its hash matches
    parallel.py  contiguous chunks of files in forked worker processes (or this one)
    survey.py    `advgraph data inspect`: what is there and what preparing will do
    split.py     deterministic train/valid/test from a seed and the sorted file list

No torch: worker processes import only this package, numpy and Pillow.
"""

from .decode import Preparation, Unusable
from .pack import Packed, prepare
from .scan import Entry, Listing, Skipped, scan
from .split import split_indices

__all__ = ["Entry", "Listing", "Packed", "Preparation", "Skipped", "Unusable", "prepare",
           "scan", "split_indices"]
