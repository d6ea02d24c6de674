"""The lowering's core: the parameter layout, RNG streams, and the drivers of a forward pass
(one emitter per step) and a backward pass (the tape walked in reverse)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from advgraph.backend_protocol import OptimConfig, require_ops
from advgraph.ir import Graph, Node, Op, Program

from ..emitter import BackwardPass, ForwardPass, Tape, needs_grad
from ..kernels import EMITTERS
from ..kernels.common import width
from ..plan import Buf, Launch, Plan, copy_rows
from .grouping import group_forward
from .regularizers import SpectralSlot, spectral_layout

# The ops this backend lowers, and why not the others; a test checks that every op of the
# registry is in exactly one of the two.
SUPPORTED = frozenset({Op.INPUT, *EMITTERS})
UNSUPPORTED: dict[Op, str] = {}  # op → why this backend cannot lower it


def unsupported(op: Op) -> str | None:
    """None when this backend lowers `op`; otherwise why not."""
    return None if op in SUPPORTED else UNSUPPORTED.get(op, "no lowering")


class Lowering:
    """Emits the launches of one plan: `iteration.training_plan` and `iteration.inference_plan`
    drive it."""

    def __init__(self, program: Program, batch: int, optim: dict[str, OptimConfig] | None):
        self.p = program
        self.m = batch
        self.optim = optim
        self.plan = Plan()
        self._stream = 0
        require_ops(program, "cupy", unsupported)
        self._flat_params()
        # spectrally normalised weights: their W / σ, which every pass reads instead of W
        self.spectral: dict[str, SpectralSlot] = spectral_layout(self.plan, program)

    # ---- parameters and RNG streams -----------------------------------------------------------

    def _flat_params(self) -> None:
        """Each net's parameters (then gradients, optimiser slots) in one flat buffer, in the
        Program's parameter order: one update kernel per net. Its other tensors (batchnorm's
        running statistics), which no optimiser touches, in a second one, `<net>.stats`."""
        for g in ("G", "D"):
            off = stats = 0
            for t in getattr(self.p, g).tensors():
                if t.trainable:
                    self.plan.param_offsets[t.name] = (f"{g}.params", off, t.size)
                    off += t.size
                else:
                    self.plan.param_offsets[t.name] = (f"{g}.stats", stats, t.size)
                    stats += t.size
            self.plan.buffer(f"{g}.params", "float32", off, "state")
            if stats:
                self.plan.buffer(f"{g}.stats", "float32", stats, "state")
            if self.optim is not None:  # training
                self.plan.buffer(f"{g}.grads", "float32", off)
                for s in self.optim[g].slots:
                    self.plan.buffer(f"{g}.{s}", "float32", off, "state")

    def param(self, name: str, grads: bool = False) -> Buf:
        """A parameter's view (its gradient's with `grads`): for a spectrally normalised
        weight, W / σ (the gradient stays W's buffer: regularizers.correct_spectral_grads
        turns the gradient with respect to W / σ into W's before the update)."""
        if not grads and name in self.spectral:
            return self.spectral[name].wn
        buf, off, size = self.plan.param_offsets[name]
        return Buf(buf.replace("params", "grads") if grads else buf, off, size)

    def next_stream(self) -> np.uint32:
        self._stream += 1
        return np.uint32(self._stream)

    # ---- forward --------------------------------------------------------------------------------

    def forward(self, graph: Graph, rows: int, inputs: dict[str, Buf], out: list[Launch],
                train: bool, tag: str, final: Buf | None = None, to_logits: bool = True,
                groups: int = 1, update_stats: bool = False) -> Tape:
        """Launches for graph(inputs) on `rows` rows; D stops at its logits when `to_logits`.
        `final` is where the end node's value must land (G's output into D's input buffer).
        The rows are `groups` independent batches (a batch-coupled op keeps them apart);
        batchnorm updates its running statistics in training mode when `update_stats`."""
        if rows % groups:  # batch statistics over rows/groups rows each: the kernels' premise
            raise ValueError(f"{graph.name}: {rows} rows in {groups} groups")
        steps = group_forward(graph, train, to_logits)
        fp = ForwardPass(graph, rows, tag, final, steps.root, out, train=train, groups=groups,
                         update_stats=train and update_stats)
        for step in steps.steps:
            if step.emit is None:  # an input
                fp.value[step.out.name] = inputs[step.out.attrs["source"]]
            else:
                fp.value[step.out.name] = step.emit.forward(self, fp, step)
        # the root writes `final`, so this never fires
        if final is not None and fp.value[steps.end] != final:  # pragma: no cover
            raise AssertionError(f"{graph.name}: end value not in its destination")
        return Tape(graph, fp.entries, steps.end)

    def dst(self, fp: ForwardPass, n: Node) -> Buf:
        """Where node n's value goes: `final` for the root, else its own buffer."""
        if fp.final is not None and n.name == fp.root:
            return fp.final
        return self.plan.buffer(f"{n.name}{fp.tag}.out", "float32", fp.rows * width(n))

    # ---- backward -------------------------------------------------------------------------------

    def backward(self, tape: Tape, rows: int, dy: Buf, out: list[Launch], weights: bool,
                 input_grad: Buf | None, tag: str) -> None:
        """Launches for the gradients of a forward pass whose end value has gradient `dy`:
        parameter gradients when `weights`, the gradient of the `x` input into `input_grad`."""
        graph = tape.graph
        x_node = graph.input_of("x")
        bp = BackwardPass(rows, tag, out, weights, needs_grad(graph, weights, input_grad),
                          {tape.end: dy},
                          {x_node.name: input_grad}
                          if x_node is not None and input_grad is not None else {})
        for e in reversed(tape.entries):
            g = bp.grad.get(e.out_node)
            if g is None:
                continue  # nothing downstream depends on it
            e.emit.backward(self, bp, e, g)
        produced = bp.grad.get(x_node.name) if x_node is not None else None
        if input_grad is not None and produced is not input_grad:
            raise AssertionError("input gradient not produced")  # pragma: no cover

    def contribute(self, bp: BackwardPass, target: str, size: int, who: str,
                   produce: Callable[[Buf, bool], None] | None = None, src: Buf | None = None,
                   accumulates: bool = False) -> None:
        """Add a reader's part of target's gradient: written straight into target's gradient
        buffer by the first reader, summed into it by the others. `produce(dst, False)`
        launches the part into dst; a producer that `accumulates` (a GEMM) is asked to add it
        with `produce(dst, True)` instead of going through a scratch buffer. `src` is a part
        that already exists (an alias's: shared, not copied)."""
        if target not in bp.tracked:
            return
        if target not in bp.grad:
            if target in bp.fixed:
                bp.grad[target] = bp.fixed[target]
            elif src is not None:  # an alias: share the buffer
                bp.grad[target] = src
                return
            else:
                bp.grad[target] = self.plan.buffer(f"{target}{bp.tag}.grad", "float32", size)
            if produce is not None:
                produce(bp.grad[target], False)
            else:
                bp.out.append(copy_rows(src, bp.grad[target], 1, size, size, size, False,
                                        f"d {target}"))
            return
        if produce is not None and accumulates:
            produce(bp.grad[target], True)
            return
        tmp = self.plan.buffer(f"{who}{bp.tag}.dpart.{target}", "float32", size)
        if produce is not None:
            produce(tmp, False)
        else:
            tmp = src
        bp.out.append(copy_rows(tmp, bp.grad[target], 1, size, size, size, True, f"Σ d {target}"))
