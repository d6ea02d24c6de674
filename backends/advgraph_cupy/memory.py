"""Scratch memory reused by liveness: which scratch buffers of a plan may share memory, where
each one lies in a per-dtype arena, and a verifier of such a layout.

Liveness is per phase, over the phase's launch list: a scratch buffer is live in a phase from
the first launch that touches it to the last. Phases run one after another (an iteration is k
replays of d_step then g_step; the trainer also runs d_step or g_step alone, or a phase with its
first launches skipped when the host uploads their output), so two buffers conflict when their
intervals overlap in some phase. A buffer that a phase reads before writing it there (kept from
an earlier phase or iteration, or read through a kernel that also reads what it writes, e.g. an
accumulating GEMM) is *carried*: it has memory of its own. So is a buffer no phase touches.
`host_written` buffers (the host may upload them before a phase) are live from their phases'
first launch.

The arenas replace the buffers at run time only (`relocate`): the plans themselves, and what
`footprint.check_plan` verifies of them, are unchanged; it then runs on the relocated launches
too.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator

import numpy as np

from . import kernels
from .plan import N_EXAMPLES, Buf, BufferSpec, Launch, Plan

RUNTIME_SIZED = frozenset({"data", "order", "labels"})
ALIGN_BYTES = 256  # every slot starts where a cudaMalloc'd buffer would
# The non-const pointer parameters a kernel writes in full (over its footprint, or the rows of
# a strided block) without reading them, with the scalar that, when non-zero, makes it read too:
# declared with each kernel (`writes=` of @FAMILY.kernel). Every other non-const parameter
# counts as read and written.
PURE_WRITES = kernels.PURE_WRITES
MEMBERS = kernels.MEMBERS


@dataclass(frozen=True)
class Access:
    """One pointer argument of a launch that touches a buffer: the elements [lo, hi) it spans,
    whether it reads them, and the ranges it writes in full."""

    name: str
    lo: int
    hi: int
    reads: bool
    writes: tuple[tuple[int, int], ...]


def _rows(off: int, rows: int, cols: int, ld: int) -> list[tuple[int, int]]:
    if rows <= 0 or cols <= 0:
        return []
    if ld == cols or rows == 1:
        return [(off, off + rows * cols)]
    return [(off + r * ld, off + r * ld + cols) for r in range(rows)]


def _written(kernel: str, prm: str, s: dict[str, int], off: int, touched: int):
    """The element ranges a pure write covers (a strided block: its rows only)."""
    if kernel == "copy2d":
        return _rows(off, s["rows"], s["cols"], s["ld_dst"])
    if kernel == "gemm":
        return _rows(off, s["M"], s["N"], s["ldc"])
    if kernel in MEMBERS and s["batch"] > 1:  # each copy's, `stride_<prm>` apart
        stride = s[f"stride_{prm}"]
        one = touched - (s["batch"] - 1) * stride
        if stride == one:
            return [(off, off + touched)]
        return [(off + b * stride, off + b * stride + one) for b in range(s["batch"])]
    if kernel == "gemm_batched":
        one = _rows(0, s["M"], s["N"], s["ldc"])
        if s["strideC"] == s["M"] * s["N"] and len(one) == 1:
            return [(off, off + touched)]
        return [(off + b * s["strideC"] + a, off + b * s["strideC"] + e)
                for b in range(s["batch"]) for a, e in one]
    return [(off, off + touched)]


def accesses(launch: Launch) -> Iterator[Access]:
    """What a launch touches through its buffer arguments, by its kernel's footprint."""
    from .footprint import FOOTPRINTS
    from .kernel_sources import signatures

    params = signatures()[launch.kernel]
    s = {p.name: (0 if a is N_EXAMPLES else int(a))
         for p, a in zip(params, launch.args) if not p.is_pointer}
    fp = FOOTPRINTS[launch.kernel](s)
    pure = PURE_WRITES.get(launch.kernel, {})
    for p, a in zip(params, launch.args):
        if not p.is_pointer or not fp[p.name]:
            continue
        lo, hi = a.offset, a.offset + fp[p.name]
        if p.ctype.startswith("const"):
            yield Access(a.name, lo, hi, True, ())
        elif p.name in pure and (pure[p.name] is None or s[pure[p.name]] == 0):
            yield Access(a.name, lo, hi, False,
                         tuple(_written(launch.kernel, p.name, s, a.offset, hi - lo)))
        else:
            yield Access(a.name, lo, hi, True, ((lo, hi),))


class _Cover:
    """A union of element ranges, merged and sorted."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, lo: int, hi: int) -> None:
        i = bisect.bisect_left(self.ends, lo)  # the first range that ends at or after lo
        j = bisect.bisect_right(self.starts, hi)  # past the last range that starts by hi
        if i < j:
            lo, hi = min(lo, self.starts[i]), max(hi, self.ends[j - 1])
        self.starts[i:j], self.ends[i:j] = [lo], [hi]

    def covers(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_right(self.starts, lo) - 1
        return i >= 0 and self.ends[i] >= hi


def eligible(plan: Plan) -> list[str]:
    """The buffers whose memory may be shared: scratch, sized by the plan."""
    return [n for n, b in plan.buffers.items()
            if b.role == "scratch" and n not in RUNTIME_SIZED and b.size > 0]


@dataclass
class Liveness:
    intervals: dict[str, dict[str, tuple[int, int]]]  # buffer → phase → (first, last) launch
    carried: set[str]


def liveness(plan: Plan, host_written: Iterable[str] = ()) -> Liveness:
    """Each eligible buffer's live interval in every phase that touches it; the carried ones."""
    names, pinned = set(eligible(plan)), set(host_written)
    iv: dict[str, dict[str, tuple[int, int]]] = {n: {} for n in names}
    carried: set[str] = set()
    for phase, launches in plan.phases.items():
        cover: dict[str, _Cover] = {}
        for i, launch in enumerate(launches):
            for acc in accesses(launch):
                if acc.name not in names:
                    continue
                first = 0 if acc.name in pinned else iv[acc.name].get(phase, (i, i))[0]
                iv[acc.name][phase] = (first, i)
                c = cover.setdefault(acc.name, _Cover())
                if acc.reads and acc.name not in pinned and not c.covers(acc.lo, acc.hi):
                    carried.add(acc.name)  # read before this phase writes it
                for lo, hi in acc.writes:
                    c.add(lo, hi)
    carried |= {n for n in names if not iv[n]}
    return Liveness(iv, carried)


def _conflict(a: str, b: str, live: Liveness) -> bool:
    if a in live.carried or b in live.carried:
        return True
    ia, ib = live.intervals[a], live.intervals[b]
    return any(ia[p][0] <= ib[p][1] and ib[p][0] <= ia[p][1] for p in ia.keys() & ib.keys())


@dataclass
class Layout:
    """Where each reused scratch buffer lies: slots[name] = (arena, first element)."""

    slots: dict[str, tuple[str, int]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # the buffers' own sizes
    arenas: dict[str, BufferSpec] = field(default_factory=dict)

    def bytes(self) -> int:
        return sum(a.size * np.dtype(a.dtype).itemsize for a in self.arenas.values())


def assign(plan: Plan, live: Liveness, names: Iterable[str] | None = None,
           prefix: str = "arena") -> Layout:
    """Greedy placement, largest first: each buffer at the lowest aligned offset of
    its dtype's arena clear of every buffer already placed that it conflicts with."""
    out = Layout()
    order = {p: i for i, p in enumerate(plan.phases)}

    def key(n: str) -> tuple:  # largest first; of equal sizes, the first used first
        b = plan.buffers[n]
        used = sorted((order[p], iv[0]) for p, iv in live.intervals[n].items())
        return -b.size * np.dtype(b.dtype).itemsize, used[:1], n

    todo = sorted(eligible(plan) if names is None else names, key=key)
    placed: dict[str, list[tuple[int, int, str]]] = {}  # dtype → (start, end, name)
    for n in todo:
        spec = plan.buffers[n]
        align = max(1, ALIGN_BYTES // np.dtype(spec.dtype).itemsize)
        spans = sorted(s for s in placed.get(spec.dtype, []) if _conflict(n, s[2], live))
        base = 0
        for lo, hi, _ in spans:
            if hi <= base:
                continue
            if lo >= base + spec.size:
                break
            base = -(-hi // align) * align
        placed.setdefault(spec.dtype, []).append((base, base + spec.size, n))
        arena = f"{prefix}.{spec.dtype}"
        out.slots[n], out.sizes[n] = (arena, base), spec.size
        top = max(base + spec.size, out.arenas[arena].size if arena in out.arenas else 0)
        out.arenas[arena] = BufferSpec(arena, spec.dtype, top, "scratch")
    return out


def layout(plan: Plan, host_written: Iterable[str] = (), names: Iterable[str] | None = None,
           prefix: str = "arena") -> Layout:
    return assign(plan, liveness(plan, host_written), names, prefix)


def relocate(launches: list[Launch], lay: Layout) -> list[Launch]:
    """The launches with every view of a placed buffer moved to its slot in the arena."""
    def move(a: Any) -> Any:
        if isinstance(a, Buf) and a.name in lay.slots:
            arena, base = lay.slots[a.name]
            return Buf(arena, base + a.offset, a.extent or lay.sizes[a.name] - a.offset)
        return a

    return [replace(l, args=tuple(move(a) for a in l.args))
            if any(isinstance(a, Buf) and a.name in lay.slots for a in l.args) else l
            for l in launches]


def check_reuse(plan: Plan, lay: Layout, carried: Iterable[str] = (),
                host_written: Iterable[str] = ()) -> None:
    """Walk every phase's launches and assert that no two buffers live at one launch (touched
    at or before it and at or after it, in that phase; `host_written` ones from the phase's
    start) share memory, and that no `carried` buffer shares memory with any other. Raises
    AssertionError naming both."""
    def span(n: str) -> tuple[str, int, int]:
        arena, base = lay.slots[n]
        return arena, base, base + lay.sizes[n]

    def clash(a: str, b: str) -> bool:
        (ra, la, ha), (rb, lb, hb) = span(a), span(b)
        return ra == rb and la < hb and lb < ha

    for c in carried:
        for n in lay.slots:
            if n != c and c in lay.slots and clash(c, n):
                raise AssertionError(f"carried buffer {c} shares memory with {n}")
    pinned = set(host_written)
    for phase, launches in plan.phases.items():
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for i, launch in enumerate(launches):
            for acc in accesses(launch):
                if acc.name in lay.slots:
                    first.setdefault(acc.name, 0 if acc.name in pinned else i)
                    last[acc.name] = i
        for i, launch in enumerate(launches):
            live = sorted((span(n), n) for n in first if first[n] <= i <= last[n])
            for (sa, a), (sb, b) in zip(live, live[1:]):
                if sa[0] == sb[0] and sb[1] < sa[2]:
                    raise AssertionError(f"{phase}[{i}] {launch.kernel} ({launch.note}): "
                                         f"{a} and {b} are both live and share memory")


def memory_bytes(plan: Plan, host_written: Iterable[str] = ()) -> dict[str, int]:
    """The plan's device memory in bytes, the runtime-sized buffers (the data set) excluded:
    `state` (every buffer but scratch: parameters, optimiser slots, RNG, the host's inputs and
    outputs), `scratch` (one allocation per scratch buffer, gradients included) and `reused`
    (the arenas of the scratch buffers laid out by liveness)."""
    def nbytes(b: BufferSpec) -> int:
        return b.size * np.dtype(b.dtype).itemsize

    state = sum(nbytes(b) for b in plan.buffers.values()
                if b.role != "scratch" and b.name not in RUNTIME_SIZED)
    scratch = sum(nbytes(plan.buffers[n]) for n in eligible(plan))
    return {"state": state, "scratch": scratch, "reused": layout(plan, host_written).bytes()}


def peak_live(plan: Plan, live: Liveness) -> int:
    """The most bytes of scratch live at one launch (carried buffers always): what no layout
    can go below."""
    def nbytes(n: str) -> int:
        b = plan.buffers[n]
        return b.size * np.dtype(b.dtype).itemsize

    fixed = sum(nbytes(n) for n in live.carried)
    peak = fixed
    for phase, launches in plan.phases.items():
        delta = [0] * (len(launches) + 1)
        for n, phases in live.intervals.items():
            if n not in live.carried and phase in phases:
                first, last = phases[phase]
                delta[first] += nbytes(n)
                delta[last + 1] -= nbytes(n)
        now = 0
        for d in delta[:-1]:
            now += d
            peak = max(peak, fixed + now)
    return peak
