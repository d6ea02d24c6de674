"""How many elements each kernel touches through each pointer parameter, from its scalar
arguments: what lets a launch plan be checked to stay inside its buffer views (a sanitizer cannot
see an overflow from one view into its neighbour inside one buffer), and `__restrict__`
arguments to be checked not to overlap.

A footprint is the highest element index touched, plus one. Each is declared with its kernel's
NumPy twin in the family's module (kernels/<family>.py), so a kernel cannot have one without the
other; a test fails when a kernel of kernels/*.cu has neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .kernel_sources import signatures
from .kernels import FOOTPRINTS, MEMBERS
from .plan import N_EXAMPLES, Buf, Launch, Plan

__all__ = ["FOOTPRINTS", "check_plan"]


_CTYPES = {"float*": "float32", "int*": "int32", "unsigned char*": "uint8",
           "unsigned int*": "uint32", "long long*": "int64"}
_SCALARS = {"int": np.int32, "unsigned int": np.uint32, "float": np.float32,
            "long long": np.int64}


def check_plan(plan: Plan, sizes: dict[str, int] | None = None,
               phases: dict[str, list[Launch]] | None = None) -> None:
    """Every launch against its kernel's C signature and footprint: argument count, scalar C
    types, the element type of every buffer pointer, every view inside its buffer, what the
    kernel touches inside its view, and no overlap between a written `__restrict__` pointer
    and another pointer argument. `sizes`: the real sizes of runtime-sized buffers. Raises
    AssertionError naming the launch."""
    sigs = signatures()
    sizes = sizes or {}
    for phase, launches in (phases or plan.phases).items():
        for i, launch in enumerate(launches):
            where = f"{phase}[{i}] {launch.kernel} ({launch.note})"
            params = sigs.get(launch.kernel)
            assert params is not None, f"{where}: no such kernel"
            assert len(params) == len(launch.args), \
                f"{where}: {len(launch.args)} arguments for {len(params)} parameters"
            scalars: dict[str, int] = {}
            views: list[tuple[Any, Buf, int, bool]] = []
            for prm, arg in zip(params, launch.args):
                if prm.is_pointer:
                    assert isinstance(arg, Buf), f"{where}: {prm.name} needs a buffer, got {arg!r}"
                    spec = plan.buffers.get(arg.name)
                    assert spec is not None, f"{where}: {prm.name}: unknown buffer {arg.name}"
                    want = _CTYPES[prm.ctype.replace("const ", "")]
                    assert spec.dtype == want, \
                        f"{where}: {prm.name} is {prm.ctype}, buffer {arg.name} is {spec.dtype}"
                    size = sizes.get(arg.name, spec.size)
                    extent = arg.extent or max(size - arg.offset, 0)
                    if size or arg.name not in ("data", "order", "labels"):
                        assert 0 <= arg.offset and arg.offset + extent <= size, \
                            f"{where}: {prm.name}: view [{arg.offset}, {arg.offset + extent}) " \
                            f"outside {arg.name} ({size})"
                    views.append((prm, arg, extent, not prm.ctype.startswith("const")))
                elif arg is N_EXAMPLES:
                    scalars[prm.name] = sizes.get("order", 0)
                else:
                    want_t = _SCALARS[prm.ctype]
                    assert type(arg) is want_t, \
                        f"{where}: {prm.name} is {prm.ctype}, got {type(arg).__name__}"
                    scalars[prm.name] = int(arg)
            fp = FOOTPRINTS[launch.kernel](scalars)
            copies = scalars.get("batch", 1) if launch.kernel in MEMBERS else 1
            one = FOOTPRINTS[launch.kernel]({**scalars, "batch": 1}) if copies > 1 else fp
            spans = []
            for prm, arg, extent, written in views:
                touched = fp[prm.name]
                if extent or touched:
                    if not (arg.name in ("data", "order", "labels") and not sizes):
                        assert touched <= extent, \
                            f"{where}: {prm.name} touches {touched} elements of a view of {extent}"
                stride = scalars.get(f"stride_{prm.name}", 0) if copies > 1 else 0
                spans.append((prm.name, arg.name, arg.offset, one[prm.name], stride, written))
            for a in range(len(spans)):
                for b in range(a + 1, len(spans)):
                    pa, ba, sa, fa, ta, wa = spans[a]
                    pb, bb, sb, fb, tb, wb = spans[b]
                    if ba == bb and (wa or wb) and _overlap(sa, fa, ta, sb, fb, tb, copies):
                        raise AssertionError(f"{where}: __restrict__ arguments {pa} and {pb} "
                                             f"overlap in {ba}")


def _overlap(a: int, fa: int, sa: int, b: int, fb: int, sb: int, copies: int) -> bool:
    """Whether `copies` spans of `fa` elements from a, `sa` apart, meet those of `fb` from b,
    `sb` apart (a sweep's members: interleaved copies of one buffer need not overlap)."""
    if copies == 1 or sa == 0 or sb == 0 or sa != sb or fa > sa or fb > sb:
        ea, eb = a + (copies - 1) * sa + fa, b + (copies - 1) * sb + fb  # the whole ranges
        return fa > 0 and fb > 0 and a < eb and b < ea
    # equal strides: copy i of one against copy i + k of the other, for every shift k
    return fa > 0 and fb > 0 and any(b + k * sb < a + fa and a < b + k * sb + fb
                                     for k in range(-(copies - 1), copies))
