"""A sweep's members as one launch plan: N copies of a solo plan in one memory (members.py).

Every buffer of the solo plan but the shared ones is stacked: member i's copy of buffer X is
the elements [i·s, (i+1)·s) of X, s being X's size in the solo plan (for the training order,
sized by the runtime: the examples, set by `examples`). Shared are the training set and its
labels (every member reads the same data) and the D-updates' positions (members step in
lockstep; each has its own order of the data).

A launch of the solo plan becomes one launch for every member where its kernel takes a batch
(a GEMM becomes gemm_batched: the member is the batch index, each operand its member stride)
or works on independent rows that the members' copies continue (an activation, maxout, a
copy: kernels.ROWS), and one launch per member otherwise (anything that reads a member's own
RNG state, hyperparameters or parameters through a pointer, or reduces over rows), its views moved to that member's copies. Launch j of
every member comes before launch j + 1 of any: a phase keeps its order, so its liveness keeps
its shape, and one captured phase (one CUDA graph) steps every member. Member i computes what
the solo plan computes: its own parameters, RNG state (seed and offset), hyperparameter slots,
metrics and scratch, and the same kernels (gemm_batched's product is gemm's, bit for bit).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .kernel_sources import signatures
from .kernels import FOOTPRINTS, MEMBERS, ROWS
from .plan import N_EXAMPLES, Buf, Launch, Plan, gemm

SHARED = frozenset({"data", "labels", "pos"})


class Stacking:
    def __init__(self, solo: Plan, n: int):
        self.solo, self.n = solo, n
        # training examples per member: the order's stride and the kernels' n_examples (0
        # until the data is loaded: a plan stacked before then serves its buffers' layout only)
        self.examples = 0

    def stacked(self, name: str) -> bool:
        """Whether each member has its own copy of the buffer (a buffer not in the solo
        plan, e.g. an inference plan's own, is not stacked: one member uses it at a time)."""
        return name in self.solo.buffers and name not in SHARED

    def stride(self, name: str) -> int:
        """Elements from one member's copy of the buffer to the next's (0: shared)."""
        if not self.stacked(name):
            return 0
        return self.examples if name == "order" else self.solo.buffers[name].size

    def plan(self, phases: bool = True) -> Plan:
        """The members' plan: every stacked buffer n times over (the order sized by the
        runtime), and, with `phases`, every phase of the solo plan stacked."""
        buffers = {name: replace(b, size=b.size * (self.n if self.stacked(name) else 1))
                   for name, b in self.solo.buffers.items()}
        return Plan(buffers=buffers, param_offsets=self.solo.param_offsets,
                    phases={k: self.launches(v) for k, v in self.solo.phases.items()}
                    if phases else {})

    # ---- launches -------------------------------------------------------------------------

    def launches(self, solo: list[Launch]) -> list[Launch]:
        """The members' launches for a list of the solo plan's."""
        out: list[Launch] = []
        for launch in solo:
            merged = self._batched(launch)
            if merged is not None:
                out.append(merged)
            else:
                out.extend(self.member(launch, i) for i in range(self.n))
        return out

    def shift(self, launches: list[Launch], i: int) -> list[Launch]:
        """Member i's copy of each launch (its inference, its noise draws)."""
        return [self.member(launch, i) for launch in launches]

    def view(self, buf: Buf, i: int) -> Buf:
        """Member i's copy of a view of the solo plan (a shared buffer's view unchanged)."""
        s = self.stride(buf.name)
        if not self.stacked(buf.name):
            return buf
        extent = buf.extent or s - buf.offset  # "to the end" of member i's copy, not the buffer's
        return Buf(buf.name, i * s + buf.offset, extent)

    def member(self, launch: Launch, i: int) -> Launch:
        return replace(launch, args=tuple(self._arg(a, i) for a in launch.args))

    def _arg(self, a: Any, i: int) -> Any:
        if isinstance(a, Buf):
            return self.view(a, i)
        if a is N_EXAMPLES:  # per member, not the stacked order's size
            return np.int32(self.examples)
        return a

    def _batched(self, launch: Launch) -> Launch | None:
        """One launch for every member, or None: a GEMM as one gemm_batched over the members,
        a kernel of independent rows (kernels.ROWS) over the members' rows where each of its
        buffers' copies lie back to back. A solo plan's gemm_batched (a convolution's) stays
        one launch per member."""
        if self.n == 1:
            return None
        if launch.kernel in ROWS:
            return self._rows(launch, ROWS[launch.kernel])
        if launch.kernel in MEMBERS:
            return self._copies(launch, MEMBERS[launch.kernel])
        if launch.kernel != "gemm":
            return None
        A, B, C, bias, M, N, K, lda, ldb, ldc, acc, tA, tB, ep, slope = launch.args
        if lda != (M if tA else K) or ldb != (K if tB else N) or ldc != N:
            return None  # plan.gemm's leading dimensions: the only ones it can rebuild
        from .codes import EPILOGUES

        with_bias = int(ep) != EPILOGUES["none"]

        def whole(b: Buf) -> Buf:  # every member's copy: one view from member 0's on
            s = self.stride(b.name)
            first = self.view(b, 0)
            return replace(first, extent=(self.n - 1) * s + first.extent) if s else b

        strides = (self.stride(A.name), self.stride(B.name), self.stride(C.name),
                   self.stride(bias.name) if with_bias else 0)
        if not strides[2]:  # a shared output: the members would race for it
            return None
        epilogue = {v: k for k, v in EPILOGUES.items()}[int(ep)]
        return gemm(whole(A), whole(B), whole(C), whole(bias) if with_bias else self.view(bias, 0),
                    int(M), int(N), int(K), bool(tA), bool(tB), epilogue, float(slope),
                    launch.note + " (every member)", accumulate=bool(acc), batch=self.n,
                    strides=strides)

    def _rows(self, launch: Launch, count: str) -> Launch | None:
        """The members' copies as one launch over n times the rows, where every buffer the
        kernel touches is a stacked one whose member copies it spans whole (its footprint
        is the buffer's member stride and grows linearly with the rows): member i's rows then
        follow member i - 1's in every buffer."""
        params = signatures()[launch.kernel]
        scalars = {p.name: int(self._arg(a, 0)) for p, a in zip(params, launch.args)
                   if not p.is_pointer}
        rows = scalars[count] * self.n
        gx, gy, gz = launch.grid
        if gy != 1 or gz != 1 or max(gx * launch.block[0], 1) * self.n >= 2**31 \
                or rows >= 2**31:
            return None  # the kernels index a 1-D grid with an int
        one = FOOTPRINTS[launch.kernel](scalars)
        many = FOOTPRINTS[launch.kernel]({**scalars, count: rows})
        args = []
        for p, a in zip(params, launch.args):
            if not p.is_pointer:
                args.append(np.int32(rows) if p.name == count else self._arg(a, 0))
                continue
            if one[p.name] and (self.stride(a.name) != one[p.name]
                                or many[p.name] != self.n * one[p.name]):
                return None
            first = self.view(a, 0)
            args.append(replace(first, extent=self.n * one[p.name]) if one[p.name] else first)
        return replace(launch, grid=(gx * self.n, 1, 1), args=tuple(args),
                       note=launch.note + " (every member)")

    def _copies(self, launch: Launch, pointers: tuple[str, ...]) -> Launch | None:
        """A `members` kernel (kernels.MEMBERS) for every member at once: `batch` the members,
        each pointer's `stride_<name>` its buffer's member stride, blockIdx.y the member."""
        params = signatures()[launch.kernel]
        args = {p.name: a for p, a in zip(params, launch.args)}
        if int(args["batch"]) != 1 or launch.grid[1] != 1 or launch.grid[2] != 1 \
                or self.n > 65535:
            return None  # already batched, or more members than a grid's y
        scalars = {p.name: int(self._arg(a, 0)) for p, a in zip(params, launch.args)
                   if not p.is_pointer}
        one = FOOTPRINTS[launch.kernel](scalars)  # one copy's (batch 1)
        out = []
        for p, a in zip(params, launch.args):
            if p.is_pointer:
                first, s = self.view(a, 0), self.stride(a.name)
                out.append(replace(first, extent=(self.n - 1) * s + one[p.name]) if s
                           and one[p.name] else first)
            elif p.name == "batch":
                out.append(np.int32(self.n))
            elif p.name.startswith("stride_") and p.name[7:] in pointers:
                out.append(np.int64(self.stride(args[p.name[7:]].name)))
            else:
                out.append(self._arg(a, 0))
        return replace(launch, grid=(launch.grid[0], self.n, 1), args=tuple(out),
                       note=launch.note + " (every member)")
