"""Where advgraph caches what it can make again: one root for every cache.

    $ADVGRAPH_CACHE, else $XDG_CACHE_HOME/advgraph, else ~/.cache/advgraph
      mnist/, fashion-mnist/, cifar10/   downloaded data sets
      classifiers/                       the domain classifiers of the feature metrics
      kmeans/                            the k-means centres of `--baseline kmeans`
      host-kernels/                      the cupy backend's kernels compiled for the CPU

Deleting any of it is safe: it is downloaded, trained or built again when next needed.
"""

from __future__ import annotations

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
