"""Lowering: a Program → launch plans on our kernels (a training iteration, inference).

Forward ops lower to GEMMs with fused epilogues (dense followed by an activation that is its
only reader is one kernel), maxout to a GEMM plus a max over pieces that keeps its argmax,
dropout to a counter-based-RNG kernel that keeps its mask, concat to strided copies. D's real
and fake halves share one pass of 2m rows, which is correct because no supported op couples the
examples of a batch (BATCH_COUPLED): G writes its output straight into the second half of D's
input buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from advgraph.backend import OptimConfig
from advgraph.errors import LoweringError
from advgraph.ir import Graph, Node, Op, Program
from advgraph.ops import BATCH_COUPLED

from .codes import EPILOGUES, METRICS
from .plan import (BLOCK, N_EXAMPLES, SLOTTED, Buf, Launch, Plan, copy_rows, ew_grid, f32, gemm,
                   i32, noise_launch)

# The ops this backend lowers (Lowering.forward/backward emit them), and why not the others;
# a test checks that every op of the registry is in exactly one of the two.
SUPPORTED = {Op.INPUT, Op.DENSE, Op.MAXOUT, Op.RELU, Op.LEAKY_RELU, Op.TANH, Op.SIGMOID,
             Op.LINEAR, Op.DROPOUT, Op.RESHAPE, Op.FLATTEN, Op.CONCAT}
_NO_CONV = "no convolution kernels yet (use --backend torch)"
UNSUPPORTED = {
    Op.BATCHNORM: "it couples the examples of a batch, and D's real and fake halves share one "
                  "pass here (use --backend torch)",
    Op.LAYERNORM: "no layer-normalisation kernel yet (use --backend torch)",
    Op.CONV2D: _NO_CONV, Op.CONV_T2D: _NO_CONV, Op.MAXOUT_CONV: _NO_CONV, Op.MAX_POOL: _NO_CONV,
}
assert not SUPPORTED & BATCH_COUPLED, "D's joint real/fake pass needs batch-independent ops"
ACT = {Op.RELU: "relu", Op.SIGMOID: "sigmoid", Op.TANH: "tanh", Op.LEAKY_RELU: "leaky_relu"}
ALIAS = {Op.LINEAR, Op.RESHAPE, Op.FLATTEN}  # same values, same buffer: nothing to launch


def _width(node: Node) -> int:
    return int(np.prod(node.shape))


@dataclass
class _Entry:
    """What a forward launch group kept for the backward."""

    kind: str  # dense | maxout | dropout | act | concat | alias
    node: Node  # the op's node (the dense node of a fused dense + activation)
    out_node: str  # the node whose value it produced
    ins: list[Buf]
    out: Buf
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Tape:
    graph: Graph
    entries: list[_Entry]
    end: str  # the node whose value the pass computed


@dataclass(frozen=True)
class _Step:
    """One launch group of a forward pass."""

    kind: str  # input | alias | dense | maxout | dropout | act | concat
    node: Node  # the op's node (the dense node of a fused dense + activation)
    out: Node  # the node whose value it produces


@dataclass(frozen=True)
class _Groups:
    steps: list[_Step]  # in graph order
    end: str  # the node whose value the pass computes
    root: str  # the node that actually computes it (aliases resolved)


def group_forward(graph: Graph, train: bool, to_logits: bool) -> _Groups:
    """How the nodes the end value needs group into launches: which are aliases of their input
    (nothing to launch), which dense nodes fuse with the activation that is their only reader,
    and which node computes the end value. Raises LoweringError when none does."""
    end = graph.logits if (to_logits and graph.logits is not None) else graph.output
    need = _ancestors(graph, end)
    nodes = [n for n in graph.nodes if n.name in need]
    readers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            readers[i].append(n.name)

    def is_alias(n: Node) -> bool:  # inactive dropout too: inference, or keep 1 and scale 1
        return n.op in ALIAS or (n.op is Op.DROPOUT and not (train and _active(n)))

    fused = {n.name for n in nodes if n.op is Op.DENSE and len(readers[n.name]) == 1
             and graph.node(readers[n.name][0]).op in ACT}
    root = end
    while graph.node(root).op is not Op.INPUT and is_alias(graph.node(root)):
        root = graph.node(root).inputs[0]
    if graph.node(root).op is Op.INPUT:
        raise LoweringError(graph.nodes[-1].name, "identity", "cupy",
                            f"graph {graph.name} computes nothing to launch")

    steps: list[_Step] = []
    for n in nodes:
        if n.name in fused:
            continue  # computed with its activation
        if n.op is Op.INPUT:
            steps.append(_Step("input", n, n))
        elif is_alias(n):
            steps.append(_Step("alias", n, n))
        elif n.op in ACT and n.inputs[0] in fused:
            steps.append(_Step("dense", graph.node(n.inputs[0]), n))
        elif n.op in _KIND:
            steps.append(_Step(_KIND[n.op], n, n))
        else:  # pragma: no cover - SUPPORTED is checked in Lowering.__init__
            raise LoweringError(n.name, n.op.value, "cupy")
    return _Groups(steps, end, root)


_KIND = {Op.DENSE: "dense", Op.MAXOUT: "maxout", Op.DROPOUT: "dropout", Op.CONCAT: "concat",
         **{op: "act" for op in ACT}}


def _ancestors(graph: Graph, end: str) -> set[str]:
    need, todo = set(), [end]
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo.extend(graph.node(n).inputs)
    return need


@dataclass
class _ForwardPass:
    """The state of one forward pass while its launches are emitted."""

    graph: Graph
    rows: int
    tag: str  # suffix of the pass's buffer names
    final: Buf | None  # where the root's value must land
    root: str
    out: list[Launch]
    value: dict[str, Buf] = field(default_factory=dict)  # node → the buffer holding its value
    entries: list[_Entry] = field(default_factory=list)


@dataclass
class _BackwardPass:
    """The state of one backward pass while its launches are emitted."""

    rows: int
    tag: str  # suffix of the pass's buffer names
    out: list[Launch]
    weights: bool  # parameter gradients too
    tracked: set[str]  # the nodes whose value needs a gradient
    grad: dict[str, Buf]  # node → the buffer holding its gradient
    fixed: dict[str, Buf]  # node → where its gradient must land (the x input's)


def _needs_grad(graph: Graph, weights: bool, input_grad: Buf | None) -> set[str]:
    """The nodes whose value needs a gradient: the x input when its gradient is wanted, nodes
    with parameters when `weights`, and everything downstream of those."""
    tracked: set[str] = set()
    for n in graph.nodes:
        if (n.op is Op.INPUT and n.attrs["source"] == "x" and input_grad is not None) or \
           (weights and n.params) or any(i in tracked for i in n.inputs):
            tracked.add(n.name)
    return tracked


class Lowering:
    def __init__(self, program: Program, batch: int, optim: dict[str, OptimConfig]):
        self.p = program
        self.m = batch
        self.optim = optim
        self.plan = Plan()
        self._stream = 0
        for g in (program.G, program.D):
            for n in g.nodes:
                if n.op not in SUPPORTED:
                    raise LoweringError(n.name, n.op.value, "cupy", UNSUPPORTED.get(n.op, ""))
                if n.op is Op.CONCAT and len(n.shape) != 1:
                    raise LoweringError(n.name, n.op.value, "cupy",
                                        "the cupy backend concatenates flat vectors only")
        self._flat_params()

    # ---- buffers ------------------------------------------------------------------------------

    def _flat_params(self) -> None:
        for g in ("G", "D"):
            off = 0
            for t in getattr(self.p, g).params():
                self.plan.param_offsets[t.name] = (f"{g}.params", off, t.size)
                off += t.size
            self.plan.buffer(f"{g}.params", "float32", off, "state")
            if self.optim is not None:  # training
                self.plan.buffer(f"{g}.grads", "float32", off)
                slots = ("velocity",) if self.optim[g].kind == "sgd" else ("m", "v")
                for s in slots:
                    self.plan.buffer(f"{g}.{s}", "float32", off, "state")

    def _param(self, name: str, grads: bool = False) -> Buf:
        buf, off, size = self.plan.param_offsets[name]
        return Buf(buf.replace("params", "grads") if grads else buf, off, size)

    def _next_stream(self) -> np.uint32:
        self._stream += 1
        return np.uint32(self._stream)

    # ---- forward --------------------------------------------------------------------------------

    def forward(self, graph: Graph, rows: int, inputs: dict[str, Buf], out: list[Launch],
                train: bool, tag: str, final: Buf | None = None, to_logits: bool = True) -> _Tape:
        """Launches for graph(inputs) on `rows` rows; D stops at its logits when `to_logits`.
        `final` is where the end node's value must land (G's output into D's input buffer)."""
        groups = group_forward(graph, train, to_logits)
        fp = _ForwardPass(graph, rows, tag, final, groups.root, out)
        for step in groups.steps:
            if step.kind == "input":
                fp.value[step.out.name] = inputs[step.out.attrs["source"]]
            else:
                fp.value[step.out.name] = getattr(self, f"_emit_{step.kind}")(fp, step)
        # the root writes `final`, so this never fires
        if final is not None and fp.value[groups.end] != final:  # pragma: no cover
            raise AssertionError(f"{graph.name}: end value not in its destination")
        return _Tape(graph, fp.entries, groups.end)

    def _dst(self, fp: _ForwardPass, n: Node) -> Buf:
        """Where node n's value goes: `final` for the root, else its own buffer."""
        if fp.final is not None and n.name == fp.root:
            return fp.final
        return self.plan.buffer(f"{n.name}{fp.tag}.out", "float32", fp.rows * _width(n))

    def _emit_alias(self, fp: _ForwardPass, step: _Step) -> Buf:
        n = step.out
        y = fp.value[n.inputs[0]]
        fp.entries.append(_Entry("alias", n, n.name, [y], y))
        return y

    def _emit_dense(self, fp: _ForwardPass, step: _Step) -> Buf:
        """One GEMM, its epilogue the bias, or the bias and the activation `step.out` fused."""
        d, n = step.node, step.out
        fused = d is not n
        h = fp.value[d.inputs[0]]
        k_in = _width(fp.graph.node(d.inputs[0]))
        ep = ACT[n.op] if fused else "bias"
        slope = n.attrs.get("slope", 0.0) if fused else 0.0
        y = self._dst(fp, n)
        fp.out.append(gemm(h, self._param(f"{d.name}.weight"), y, self._param(f"{d.name}.bias"),
                            fp.rows, _width(n), k_in, False, False, ep, slope,
                            d.name + (f" + {n.op.value}" if fused else "")))
        fp.entries.append(_Entry("dense", d, n.name, [h], y,
                                 {"act": ep, "slope": slope, "k": k_in}))
        return y

    def _emit_maxout(self, fp: _ForwardPass, step: _Step) -> Buf:
        """A GEMM to every piece, then the max over each unit's pieces (keeping the argmax)."""
        n, rows = step.out, fp.rows
        h = fp.value[n.inputs[0]]
        k_in = _width(fp.graph.node(n.inputs[0]))
        units, pieces = n.attrs["units"], n.attrs["pieces"]
        pre = self.plan.buffer(f"{n.name}{fp.tag}.pre", "float32", rows * units * pieces)
        arg = self.plan.buffer(f"{n.name}{fp.tag}.arg", "int32", rows * units)
        y = self._dst(fp, n)
        fp.out.append(gemm(h, self._param(f"{n.name}.weight"), pre, self._param(f"{n.name}.bias"),
                            rows, units * pieces, k_in, False, False, "bias", 0.0,
                            f"{n.name} (maxout pieces)"))
        g, b = ew_grid(rows * units)
        fp.out.append(Launch("maxout_fwd", g, b, (pre, y, arg, i32(rows), i32(units), i32(pieces)),
                             n.name))
        fp.entries.append(_Entry("maxout", n, n.name, [h], y, {"arg": arg, "k": k_in}))
        return y

    def _emit_dropout(self, fp: _ForwardPass, step: _Step) -> Buf:
        n = step.out
        h = fp.value[n.inputs[0]]
        size = fp.rows * _width(n)
        y = self._dst(fp, n)
        mask = self.plan.buffer(f"{n.name}{fp.tag}.mask", "uint8", size)
        g, b = ew_grid(size, 4)
        fp.out.append(Launch("dropout_fwd", g, b, (h, y, mask, i32(size), f32(n.attrs["keep"]),
                                                   f32(n.attrs["scale"]), self.plan.view("rng"),
                                                   self._next_stream()), n.name))
        fp.entries.append(_Entry("dropout", n, n.name, [h], y,
                                 {"mask": mask, "scale": n.attrs["scale"]}))
        return y

    def _emit_act(self, fp: _ForwardPass, step: _Step) -> Buf:
        """An activation on its own (its input is not a dense node it could fuse with)."""
        n = step.out
        h = fp.value[n.inputs[0]]
        size = fp.rows * _width(n)
        y = self._dst(fp, n)
        g, b = ew_grid(size)
        slope = n.attrs.get("slope", 0.0)
        fp.out.append(Launch("act_fwd", g, b, (h, y, i32(size), i32(EPILOGUES[ACT[n.op]]), f32(slope)),
                             n.name))
        fp.entries.append(_Entry("act", n, n.name, [h], y, {"act": ACT[n.op], "slope": slope}))
        return y

    def _emit_concat(self, fp: _ForwardPass, step: _Step) -> Buf:
        """One strided copy per input into its columns of the output."""
        n, rows = step.out, fp.rows
        y = self._dst(fp, n)
        total, col, ins, offs = _width(n), 0, [], []
        for i in n.inputs:
            w = _width(fp.graph.node(i))
            fp.out.append(copy_rows(fp.value[i], y.at(col, (rows - 1) * total + w), rows, w, w, total,
                                False, f"{n.name} ← {i}"))
            ins.append(fp.value[i])
            offs.append((col, w))
            col += w
        fp.entries.append(_Entry("concat", n, n.name, ins, y, {"cols": offs}))
        return y

    # ---- backward -------------------------------------------------------------------------------

    def backward(self, tape: _Tape, rows: int, dy: Buf, out: list[Launch], weights: bool,
                 input_grad: Buf | None, tag: str) -> None:
        """Launches for the gradients of a forward pass whose end value has gradient `dy`:
        parameter gradients when `weights`, the gradient of the `x` input into `input_grad`."""
        graph = tape.graph
        x_node = graph.input_of("x")
        bp = _BackwardPass(rows, tag, out, weights, _needs_grad(graph, weights, input_grad),
                           {tape.end: dy},
                           {x_node.name: input_grad}
                           if x_node is not None and input_grad is not None else {})
        for e in reversed(tape.entries):
            g = bp.grad.get(e.out_node)
            if g is None:
                continue  # nothing downstream depends on it
            getattr(self, f"_grad_{e.kind}")(bp, e, g)
        produced = bp.grad.get(x_node.name) if x_node is not None else None
        if input_grad is not None and produced is not input_grad:
            raise AssertionError("input gradient not produced")  # pragma: no cover

    def _contribute(self, bp: _BackwardPass, target: str, size: int, who: str,
                    produce: Callable[[Buf], None] | None = None, src: Buf | None = None) -> None:
        """Add a reader's part of target's gradient: written straight into target's gradient
        buffer by the first reader, summed into it by the others. `produce(dst)` launches the
        part into dst; `src` is a part that already exists (an alias's: shared, not copied)."""
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
                produce(bp.grad[target])
            else:
                bp.out.append(copy_rows(src, bp.grad[target], 1, size, size, size, False,
                                    f"d {target}"))
            return
        tmp = self.plan.buffer(f"{who}{bp.tag}.dpart.{target}", "float32", size)
        if produce is not None:
            produce(tmp)
        else:
            tmp = src
        bp.out.append(copy_rows(tmp, bp.grad[target], 1, size, size, size, True, f"Σ d {target}"))

    def _grad_alias(self, bp: _BackwardPass, e: _Entry, g: Buf) -> None:
        n = e.node
        self._contribute(bp, n.inputs[0], bp.rows * _width(n), n.name, src=g)

    def _grad_dense(self, bp: _BackwardPass, e: _Entry, g: Buf) -> None:
        """Through the fused activation (if any) to the GEMM's output, then the GEMM."""
        n, rows = e.node, bp.rows
        width = _width(n)
        if e.extra["act"] != "bias":
            dpre = self.plan.buffer(f"{n.name}{bp.tag}.dpre", "float32", rows * width)
            gg, b = ew_grid(rows * width)
            bp.out.append(Launch("act_bwd", gg, b, (e.out, g, dpre, i32(rows * width),
                                                    i32(EPILOGUES[e.extra["act"]]),
                                                    f32(e.extra["slope"])), n.name))
        else:
            dpre = g
        self._grad_gemm(bp, e, dpre, width)

    def _grad_maxout(self, bp: _BackwardPass, e: _Entry, g: Buf) -> None:
        """To the winning piece of each unit (the kept argmax), then the GEMM."""
        n, rows = e.node, bp.rows
        units, pieces = n.attrs["units"], n.attrs["pieces"]
        width = units * pieces
        dpre = self.plan.buffer(f"{n.name}{bp.tag}.dpre", "float32", rows * width)
        gg, b = ew_grid(rows * width)
        bp.out.append(Launch("maxout_bwd", gg, b, (g, e.extra["arg"], dpre, i32(rows), i32(units),
                                                   i32(pieces)), n.name))
        self._grad_gemm(bp, e, dpre, width)

    def _grad_gemm(self, bp: _BackwardPass, e: _Entry, dpre: Buf, width: int) -> None:
        """A dense/maxout GEMM's weight and bias gradients (when `weights`) and input gradient,
        from dpre, the gradient of its `width` outputs."""
        n, rows, k_in = e.node, bp.rows, e.extra["k"]
        if bp.weights:
            bp.out.append(gemm(e.ins[0], dpre, self._param(f"{n.name}.weight", grads=True),
                                Buf("metrics", 0, 0), k_in, width, rows, True, False, "none",
                                0.0, f"d {n.name}.weight"))
            gg, b = ew_grid(width)
            bp.out.append(Launch("bias_grad", gg, b, (dpre, self._param(f"{n.name}.bias", True),
                                                      i32(rows), i32(width)), f"d {n.name}.bias"))
        self._contribute(bp, n.inputs[0], rows * k_in, n.name, lambda dx: bp.out.append(
            gemm(dpre, self._param(f"{n.name}.weight"), dx, Buf("metrics", 0, 0), rows, k_in,
                  width, False, True, "none", 0.0, f"d {n.name}.input")))

    def _grad_dropout(self, bp: _BackwardPass, e: _Entry, g: Buf) -> None:
        n = e.node
        size = bp.rows * _width(n)
        gg, b = ew_grid(size)
        self._contribute(bp, n.inputs[0], size, n.name, lambda dx: bp.out.append(
            Launch("dropout_bwd", gg, b, (g, e.extra["mask"], dx, i32(size),
                                          f32(e.extra["scale"])), n.name)))

    def _grad_act(self, bp: _BackwardPass, e: _Entry, g: Buf) -> None:
        n = e.node
        size = bp.rows * _width(n)
        gg, b = ew_grid(size)
        self._contribute(bp, n.inputs[0], size, n.name, lambda dx: bp.out.append(
            Launch("act_bwd", gg, b, (e.out, g, dx, i32(size), i32(EPILOGUES[e.extra["act"]]),
                                      f32(e.extra["slope"])), n.name)))

    def _grad_concat(self, bp: _BackwardPass, e: _Entry, g: Buf) -> None:
        """Each input's columns of the output gradient, copied out."""
        n, rows = e.node, bp.rows
        total = _width(n)
        for i, (col, w) in zip(n.inputs, e.extra["cols"]):
            self._contribute(bp, i, rows * w, n.name, lambda dx, col=col, w=w, i=i: bp.out.append(
                copy_rows(g.at(col, (rows - 1) * total + w), dx, rows, w, total, w, False,
                      f"d {i} ← {n.name}")))

    # ---- the iteration --------------------------------------------------------------------------

    def _noise(self, out: list[Launch], rows: int, name: str) -> Buf:
        z = self.plan.buffer(name, "float32", rows * self.p.prior.dim)
        out.append(noise_launch(z, rows, self.p.prior, self.plan.view("rng"), self._next_stream()))
        return z

    def _update(self, net: str, out: list[Launch]) -> None:
        n = self.plan.buffers[f"{net}.params"].size
        g, b = ew_grid(n)
        cfg = self.optim[net]
        hp = Buf(f"{net}.hp", 0, 4)
        v = self.plan.view
        if cfg.kind == "sgd":
            out.append(Launch("sgd_momentum", g, b, (v(f"{net}.params"), v(f"{net}.velocity"),
                                                     v(f"{net}.grads"), i32(n), hp),
                              f"{net} SGD-momentum update"))
        else:
            out.append(Launch("adam", g, b, (v(f"{net}.params"), v(f"{net}.m"), v(f"{net}.v"),
                                             v(f"{net}.grads"), i32(n), f32(cfg.beta1), f32(cfg.beta2),
                                             hp), f"{net} Adam update"))

    def _advance(self, out: list[Launch]) -> None:
        out.append(Launch("advance_rng", (1, 1, 1), (1, 1, 1), (self.plan.view("rng"),),
                          "fresh random numbers"))

    def lower(self) -> Plan:
        P, m, plan = self.p, self.m, self.plan
        d = int(np.prod(P.data_shape))
        C = P.classes or 0
        plan.buffer("rng", "uint32", 4, "state")
        plan.buffer("metrics", "float32", len(METRICS), "host_out")
        plan.buffer("D.hp", "float32", SLOTTED["D.hp"], "host_in")
        plan.buffer("G.hp", "float32", 4, "host_in")
        plan.buffer("pos", "int32", SLOTTED["pos"], "host_in")
        data = plan.buffer("data", "float32", 0, "host_in")  # the training set, sized by the runtime
        order = plan.buffer("order", "int64", 0, "host_in")
        xd = plan.buffer("D.x", "float32", 2 * m * d)
        logits = plan.buffer("D.logits", "float32", 2 * m)
        dlogits = plan.buffer("D.dlogits", "float32", 2 * m)
        pos = Buf("pos", 0, 1)

        # D-step: fake half from G (no gradients), real half gathered, one D pass on 2m rows.
        ds = plan.phases["d_step"] = []
        z = self._noise(ds, m, "z")
        y_d = y_g = None
        if C:
            labels = plan.buffer("labels", "int64", 0, "host_in")
            y_d = plan.buffer("y", "float32", 2 * m * C)
            g, b = ew_grid(m * C)
            ds.append(Launch("gather_onehot", g, b, (labels, order, pos, y_d.at(0, m * C), i32(m),
                                                     i32(C), N_EXAMPLES), "real labels"))
            ds.append(copy_rows(y_d.at(0, m * C), y_d.at(m * C, m * C), 1, m * C, m * C, m * C, False,
                            "fake half: the real half's labels"))
        self.forward(P.G, m, {"z": z, "y": y_d.at(0, m * C) if C else None}, ds, train=True,
                     tag=".dstep", final=xd.at(m * d, m * d))
        g, b = ew_grid(m * d)
        ds.append(Launch("gather_rows", g, b, (data, order, pos, xd.at(0, m * d), i32(m), i32(d),
                                               N_EXAMPLES), "real minibatch"))
        tape_d = self.forward(P.D, 2 * m, {"x": xd, "y": y_d}, ds, train=True, tag=".dstep",
                              final=logits)
        g, b = ew_grid(m)
        ds.append(Launch("bce_d", g, b, (logits.at(0, m), logits.at(m, m), dlogits.at(0, m),
                                         dlogits.at(m, m), i32(m), plan.view("metrics")), "D loss"))
        self.backward(tape_d, 2 * m, dlogits, ds, weights=True, input_grad=None, tag=".dstep")
        self._update("D", ds)
        self._advance(ds)  # each update draws fresh random numbers: k D-updates differ too

        # G-step: G's output in D.x[0:m], D (with dropout) on m rows, gradients through D.
        gs = plan.phases["g_step"] = []
        z = self._noise(gs, m, "z")
        if C:
            y_g = plan.buffer("y.g", "float32", m * C)
            g, b = ew_grid(m)
            gs.append(Launch("draw_onehot", g, b, (plan.view("labels"), N_EXAMPLES, y_g, i32(m),
                                                   i32(C), plan.view("rng"), self._next_stream()),
                             "y ~ p_data(y)"))
        tape_g = self.forward(P.G, m, {"z": z, "y": y_g}, gs, train=True, tag=".gstep",
                              final=xd.at(0, m * d))
        tape_dg = self.forward(P.D, m, {"x": xd.at(0, m * d), "y": y_g}, gs, train=True,
                               tag=".gstep", final=logits.at(0, m))
        g, b = ew_grid(m)
        gs.append(Launch("bce_g", g, b, (logits.at(0, m), dlogits.at(0, m), i32(m),
                                         i32(int(P.g_loss == "non_saturating")),
                                         plan.view("metrics")), "G loss"))
        dfake = plan.buffer("G.dout", "float32", m * d)
        self.backward(tape_dg, m, dlogits.at(0, m), gs, weights=False, input_grad=dfake,
                      tag=".gstep")
        self.backward(tape_g, m, dfake, gs, weights=True, input_grad=None, tag=".gstep")
        self._update("G", gs)
        self._advance(gs)

        # The `finite` metric and the reset after a read.
        fin = plan.phases["finite"] = []
        for net in ("G", "D"):
            size = plan.buffers[f"{net}.params"].size
            g, b = ew_grid(size)
            fin.append(Launch("count_nonfinite", g, b, (plan.view(f"{net}.params"), i32(size),
                                                        Buf("metrics", METRICS.index("finite"), 1)),
                              f"non-finite {net} parameters"))
        plan.phases["reset_metrics"] = [Launch("fill", (1, 1, 1), (BLOCK, 1, 1),
                                               (plan.view("metrics"), i32(len(METRICS)), f32(0.0)),
                                               "zero the metrics")]
        return plan

    def inference(self, net: str, rows: int) -> Plan:
        """Forward-only launches of G (from z) or D (probabilities of x) on `rows` rows: no
        dropout, inputs and output host-visible."""
        graph = getattr(self.p, net)
        plan, tag = self.plan, f".infer{rows}"
        C = self.p.classes or 0
        io: dict[str, Buf] = {}
        if net == "G":
            io["z"] = plan.buffer(f"G{tag}.z", "float32", rows * self.p.prior.dim, "host_in")
        else:
            io["x"] = plan.buffer(f"D{tag}.x", "float32", rows * int(np.prod(self.p.data_shape)),
                                  "host_in")
        if C:
            io["y"] = plan.buffer(f"{net}{tag}.y", "float32", rows * C, "host_in")
        io["out"] = plan.buffer(f"{net}{tag}.out", "float32", rows * _width(graph.node(graph.output)),
                                "host_out")
        launches: list[Launch] = []
        self.forward(graph, rows, io, launches, train=False, tag=tag, final=io["out"],
                     to_logits=False)
        plan.phases["forward"] = launches
        plan.io = io
        return plan


def lower(program: Program, batch: int, optim: dict[str, OptimConfig]) -> Plan:
    """The launch plan of one training iteration (raises LoweringError for unsupported ops)."""
    return Lowering(program, batch, optim).lower()


def lower_inference(program: Program, net: str, rows: int) -> Plan:
    """The forward plan of G or D on `rows` rows (parameters in G.params / D.params)."""
    return Lowering(program, rows, None).inference(net, rows)  # type: ignore[arg-type]


def _active(n: Node) -> bool:
    return n.attrs["keep"] < 1.0 or n.attrs["scale"] != 1.0
