"""How many elements each kernel touches through each pointer parameter, from its scalar
arguments: what lets a launch plan be checked to stay inside its buffer views (a sanitizer cannot
see an overflow from one view into its neighbour inside one buffer), and `__restrict__`
arguments to be checked not to overlap.

A footprint is the highest element index touched, plus one. Each is declared with its kernel's
NumPy twin in the family's module (kernels/<family>.py), so a kernel cannot have one without the
other; a test fails when a kernel of kernels/*.cu has neither.
"""

from __future__ import annotations

from .kernels import FOOTPRINTS

__all__ = ["FOOTPRINTS"]
