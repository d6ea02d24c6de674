"""Spec layer: YAML → validated pydantic models. Imports neither torch nor cupy.

The names below load on first use (PEP 562): the op families import `spec.fields` while the
spec's layer union is being built from them, which an eager import here would make circular.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gan import GanSpec
    from .load import LoadedSpec, dump_resolved, load_file, load_text

_WHERE = {"GanSpec": ".gan", "LoadedSpec": ".load", "dump_resolved": ".load",
          "load_file": ".load", "load_text": ".load"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)


__all__ = ["GanSpec", "LoadedSpec", "dump_resolved", "load_file", "load_text"]
