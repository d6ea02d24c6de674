"""Spec layer: YAML → validated pydantic models. Imports neither torch nor cupy.

The value types (ranges, initialisers, the `Layer` base) are in advgraph/fields.py, below both
this package and the op families whose layer models make up the spec's layer union.
"""

from .gan import GanSpec
from .load import LoadedSpec, dump_resolved, load_file, load_text

__all__ = ["GanSpec", "LoadedSpec", "dump_resolved", "load_file", "load_text"]
