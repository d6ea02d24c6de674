"""Spec layer: YAML → validated pydantic models. Imports neither torch nor cupy."""

from .gan import GanSpec
from .load import LoadedSpec, dump_resolved, load_file, load_text

__all__ = ["GanSpec", "LoadedSpec", "dump_resolved", "load_file", "load_text"]
