"""What a run records about who trained it, with what."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

from ..version import __version__


def versions(backend: str) -> dict[str, str]:
    out = {"advgraph": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for lib in ("torch", "cupy"):
        if lib in sys.modules:
            out[lib] = sys.modules[lib].__version__
    out["backend"] = backend
    return out


def owner() -> dict[str, Any]:
    """Who is training the run, so `advgraph runs` can tell a killed run from a live one."""
    return {"pid": os.getpid(), "host": platform.node()}
