"""The kernels' semantics in NumPy: the CuPy backend's oracle.

Every kernel in kernels/*.cu has a NumPy twin with the same arguments (views for pointers),
declared with its footprint in its family's module beside the source (kernels/<family>.py; the
RNG and activation helpers they share in kernels/common.py). `KERNELS` holds them all by kernel
name, so a launch plan runs on the CPU through runtime.TwinExecutor. That checks the lowering
(buffer wiring, transposes, leading dimensions, offsets) against the torch backend on any
machine, and each kernel, on the host executor or a GPU, against its twin.
"""

from __future__ import annotations

from .kernels import TWINS as KERNELS
from .kernels.common import draw4, philox4x32_10, u01

__all__ = ["KERNELS", "draw4", "philox4x32_10", "u01"]
