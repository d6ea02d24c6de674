"""The kernel families: each kernels/<family>.cu has a module of the same stem beside it that
declares, for every kernel of the file, its NumPy twin and its footprint together (one
`@FAMILY.kernel(name, footprint=...)` on the twin), and the emitters of the ops lowered to
those kernels (`FAMILY.op(Op.X, forward, backward)`, with the ops' tape entries). The helpers
they share are in `common`.

This registry merges the families' tables: `TWINS` (twins.KERNELS), `FOOTPRINTS`
(footprint.FOOTPRINTS), `PURE_WRITES` (the outputs each kernel writes without reading, for the
scratch layout of memory.py), `ROWS` and `MEMBERS` (the kernels that run a sweep's members'
copies as one launch, for stacking.py) and `EMITTERS` (what the lowering dispatches on). A kernel or an op
declared in two families raises here, at import; tests/backend/test_cupy_lowering.py checks that
each family declares exactly the kernels of its .cu file.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from advgraph.ir import Op

from ..emitter import OpEmitter
from . import conv, elementwise, gemm, loss, norm, optim, pool, prior, spectral
from .common import Family, Footprint, Twin

FAMILIES: tuple[ModuleType, ...] = (conv, elementwise, gemm, loss, norm, optim, pool, prior,
                                   spectral)


def merge(families: tuple[Family, ...], table: str) -> dict[Any, Any]:
    """One family table (`twins`, `footprints`, `emitters`) over the families; a key declared
    by two of them raises."""
    merged: dict[Any, Any] = {}
    owner: dict[Any, str] = {}
    for family in families:
        for key, value in getattr(family, table).items():
            if key in merged:
                raise ValueError(f"{table[:-1]} {getattr(key, 'value', key)} declared by both "
                                 f"{owner[key]} and {family.name}")
            merged[key], owner[key] = value, family.name
    return merged


_DECLARED = tuple(module.FAMILY for module in FAMILIES)
TWINS: dict[str, Twin] = merge(_DECLARED, "twins")
FOOTPRINTS: dict[str, Footprint] = merge(_DECLARED, "footprints")
PURE_WRITES: dict[str, dict[str, str | None]] = merge(_DECLARED, "writes")
ROWS: dict[str, str] = merge(_DECLARED, "rows")
MEMBERS: dict[str, tuple[str, ...]] = merge(_DECLARED, "members")
EMITTERS: dict[Op, OpEmitter] = merge(_DECLARED, "emitters")

__all__ = ["EMITTERS", "FAMILIES", "FOOTPRINTS", "MEMBERS", "PURE_WRITES", "ROWS", "TWINS"]
