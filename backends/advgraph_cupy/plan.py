"""Lowering: a Program → typed launch plans on our kernels (training iteration and inference).

A plan is data: named buffers (each with a dtype, a size and a role) and, per phase, a list of
kernel launches whose pointer arguments are views (buffer, offset, extent) and whose scalars
carry their C type (np.int32, np.uint32, np.float32). The runtime allocates the buffers once,
binds the launches, and captures them (a CUDA graph on a GPU); nothing in a phase depends on the
step, so a captured phase never changes.

The contract between the host and a captured training iteration:
- Hyperparameters: every D-update of an iteration has its own slot in `D.hp` (lr, momentum or
  Adam's bias-corrected step), and `pos` has one slot per D-update; G's update reads `G.hp`. The
  host writes all of them (one upload) before it replays the iteration: lr decays per update and
  Adam's step count changes per update, so one shared slot could not match the torch backend.
- Epochs: the host owns the data order. It writes each D-update's minibatch position into that
  update's `pos` slot; gather_rows reads order[pos + r]. When an epoch ends, the host first
  executes the D-updates still pending under the old order, then uploads the new permutation
  (set_order), so an epoch that ends inside an iteration is exact. A position outside the
  order gives NaN rows (the divergence check catches it), never a read out of bounds.
- Random numbers: rng = (seed, 64-bit offset); every phase (one D-update, the G-update) draws
  with its own offset and advances it in-graph. Launches in a phase are told apart by a stream
  id, so replaying k one-update phases equals replaying one iteration of k updates.
- Metrics: the loss kernels accumulate sums into `metrics`; the `finite` phase counts
  non-finite parameters into metrics[FINITE]; the host reads them and runs `reset_metrics`.

Forward ops lower to GEMMs with fused epilogues (dense followed by an activation that is its
only reader is one kernel), maxout to a GEMM plus a max over pieces that keeps its argmax,
dropout to a counter-based-RNG kernel that keeps its mask, concat to strided copies. D's real
and fake halves share one pass of 2m rows, which is correct because no supported op couples the
examples of a batch (BATCH_COUPLED): G writes its output straight into the second half of D's
input buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from advgraph.backend import OptimConfig
from advgraph.errors import LoweringError
from advgraph.ir import Graph, Node, Op, Program
from advgraph.ir.ops import BATCH_COUPLED

from .codes import EPILOGUES, METRICS

SUPPORTED = {Op.INPUT, Op.DENSE, Op.MAXOUT, Op.RELU, Op.LEAKY_RELU, Op.TANH, Op.SIGMOID,
             Op.LINEAR, Op.DROPOUT, Op.RESHAPE, Op.FLATTEN, Op.CONCAT}
assert not SUPPORTED & BATCH_COUPLED, "D's joint real/fake pass needs batch-independent ops"
ACT = {Op.RELU: "relu", Op.SIGMOID: "sigmoid", Op.TANH: "tanh", Op.LEAKY_RELU: "leaky_relu"}
ALIAS = {Op.LINEAR, Op.RESHAPE, Op.FLATTEN}  # same values, same buffer: nothing to launch
BLOCK = 256
ROLES = ("state", "scratch", "host_in", "host_out")
# Buffers with one slot per D-update of an iteration: name → elements per slot.
SLOTTED = {"D.hp": 4, "pos": 1}


@dataclass(frozen=True)
class Buf:
    """A pointer argument: the view [offset, offset + extent) of the named buffer (extent 0:
    to the buffer's end, for buffers the runtime sizes)."""

    name: str
    offset: int = 0
    extent: int = 0

    def at(self, offset: int, extent: int) -> "Buf":
        """A sub-view, offset relative to this one."""
        return Buf(self.name, self.offset + offset, extent)


@dataclass(frozen=True)
class Launch:
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    args: tuple[Any, ...]
    note: str = ""


@dataclass(frozen=True)
class BufferSpec:
    name: str
    dtype: str  # numpy dtype name
    size: int  # elements (0: sized by the runtime, e.g. the training set)
    role: str  # state | scratch | host_in (written by the host) | host_out (read by the host)


@dataclass
class Plan:
    buffers: dict[str, BufferSpec] = field(default_factory=dict)
    phases: dict[str, list[Launch]] = field(default_factory=dict)
    param_offsets: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name → (buf, offset, size)
    io: dict[str, Buf] = field(default_factory=dict)  # inference: "z"/"x"/"y" in, "out" out

    @property
    def d_step(self) -> list[Launch]:
        return self.phases["d_step"]

    @property
    def g_step(self) -> list[Launch]:
        return self.phases["g_step"]

    def d_update(self, u: int) -> list[Launch]:
        """The launches of the u-th D-update of an iteration: its own hp and pos slots."""
        if u == 0:
            return list(self.d_step)

        def shift(a: Any) -> Any:
            if isinstance(a, Buf) and a.name in SLOTTED:
                return replace(a, offset=a.offset + u * SLOTTED[a.name])
            return a

        return [replace(l, args=tuple(shift(a) for a in l.args)) for l in self.d_step]

    def iteration(self, k: int) -> list[Launch]:
        """Every launch of one iteration of Algorithm 1: k D-updates, one G-update. Grows the
        slotted buffers to k slots."""
        self.grow_slots(k)
        return [launch for u in range(k) for launch in self.d_update(u)] + self.g_step

    def grow_slots(self, k: int) -> bool:
        """Make room for k D-updates in the slotted buffers; whether any grew."""
        grew = False
        for name, per in SLOTTED.items():
            spec = self.buffers[name]
            if spec.size < k * per:
                self.buffers[name] = replace(spec, size=k * per)
                grew = True
        return grew

    def buffer(self, name: str, dtype: str, size: int, role: str = "scratch") -> Buf:
        """Declare (or widen) a buffer; the whole of it as a view."""
        assert role in ROLES, role
        old = self.buffers.get(name)
        if old is not None and (old.dtype != dtype or old.role != role):
            raise AssertionError(f"buffer {name} declared as {old.dtype}/{old.role} and as "
                                 f"{dtype}/{role}")
        size = max(size, old.size if old else 0)
        self.buffers[name] = BufferSpec(name, dtype, size, role)
        return Buf(name, 0, size)

    def view(self, name: str) -> Buf:
        return Buf(name, 0, self.buffers[name].size)


def _i(v: int) -> np.int32:
    return np.int32(v)


def _f(v: float) -> np.float32:
    return np.float32(v)


def _ew(n: int, per_thread: int = 1) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    threads = -(-n // per_thread)
    return (max(1, -(-threads // BLOCK)), 1, 1), (BLOCK, 1, 1)


def _gemm(A: Buf, B: Buf, C: Buf, bias: Buf, M: int, N: int, K: int, transA: bool,
          transB: bool, epilogue: str, slope: float, note: str) -> Launch:
    lda = M if transA else K
    ldb = K if transB else N
    return Launch("gemm", (-(-N // 64), -(-M // 64), 1), (256, 1, 1),
                  (A, B, C, bias, _i(M), _i(N), _i(K), _i(lda), _i(ldb), _i(N),
                   _i(int(transA)), _i(int(transB)), _i(EPILOGUES[epilogue]), _f(slope)), note)


def _copy(src: Buf, dst: Buf, rows: int, cols: int, ld_src: int, ld_dst: int,
          accumulate: bool, note: str) -> Launch:
    g, b = _ew(rows * cols)
    return Launch("copy2d", g, b, (src, dst, _i(rows), _i(cols), _i(ld_src), _i(ld_dst),
                                   _i(int(accumulate))), note)


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
                    raise LoweringError(n.name, n.op.value, "cupy")
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
        end = graph.logits if (to_logits and graph.logits is not None) else graph.output
        need = self._ancestors(graph, end)
        nodes = [n for n in graph.nodes if n.name in need]
        readers: dict[str, list[str]] = {n.name: [] for n in nodes}
        for n in nodes:
            for i in n.inputs:
                readers[i].append(n.name)

        def is_alias(n: Node) -> bool:
            return n.op in ALIAS or (n.op is Op.DROPOUT and not (train and _active(n)))

        fused = {n.name for n in nodes if n.op is Op.DENSE and len(readers[n.name]) == 1
                 and graph.node(readers[n.name][0]).op in ACT}
        root = end  # the node that actually computes the end value (aliases resolved)
        while graph.node(root).op is not Op.INPUT and is_alias(graph.node(root)):
            root = graph.node(root).inputs[0]
        if graph.node(root).op is Op.INPUT:
            raise LoweringError(graph.nodes[-1].name, "identity", "cupy",
                                f"graph {graph.name} computes nothing to launch")

        value: dict[str, Buf] = {}
        entries: list[_Entry] = []
        for n in nodes:
            if n.op is Op.INPUT:
                value[n.name] = inputs[n.attrs["source"]]
                continue
            if n.name in fused:
                continue  # computed with its activation
            src = graph.node(n.inputs[0])
            op_node = src if src.name in fused else n  # the GEMM of a fused pair
            size = rows * _width(n)

            def dst(suffix: str = "out", n: Node = n, size: int = size) -> Buf:
                if final is not None and n.name == root:
                    return final
                return self.plan.buffer(f"{n.name}{tag}.{suffix}", "float32", size)

            if is_alias(n):
                value[n.name] = value[n.inputs[0]]
                entries.append(_Entry("alias", n, n.name, [value[n.inputs[0]]], value[n.name]))
                continue
            h = value[op_node.inputs[0]]
            if op_node.op in (Op.DENSE, Op.MAXOUT):
                k_in = _width(graph.node(op_node.inputs[0]))
                if op_node.op is Op.DENSE:
                    ep = ACT[n.op] if op_node is not n else "bias"
                    slope = n.attrs.get("slope", 0.0) if op_node is not n else 0.0
                    y = dst()
                    out.append(_gemm(h, self._param(f"{op_node.name}.weight"), y,
                                     self._param(f"{op_node.name}.bias"), rows, _width(n), k_in,
                                     False, False, ep, slope,
                                     op_node.name + (f" + {n.op.value}" if op_node is not n else "")))
                    entries.append(_Entry("dense", op_node, n.name, [h], y,
                                          {"act": ep, "slope": slope, "k": k_in}))
                else:
                    units, pieces = n.attrs["units"], n.attrs["pieces"]
                    pre = self.plan.buffer(f"{n.name}{tag}.pre", "float32", rows * units * pieces)
                    arg = self.plan.buffer(f"{n.name}{tag}.arg", "int32", rows * units)
                    y = dst()
                    out.append(_gemm(h, self._param(f"{n.name}.weight"), pre,
                                     self._param(f"{n.name}.bias"), rows, units * pieces, k_in,
                                     False, False, "bias", 0.0, f"{n.name} (maxout pieces)"))
                    g, b = _ew(rows * units)
                    out.append(Launch("maxout_fwd", g, b, (pre, y, arg, _i(rows), _i(units),
                                                           _i(pieces)), n.name))
                    entries.append(_Entry("maxout", n, n.name, [h], y,
                                          {"arg": arg, "k": k_in}))
            elif n.op is Op.DROPOUT:
                y = dst()
                mask = self.plan.buffer(f"{n.name}{tag}.mask", "uint8", size)
                g, b = _ew(size, 4)
                out.append(Launch("dropout_fwd", g, b, (h, y, mask, _i(size), _f(n.attrs["keep"]),
                                                        _f(n.attrs["scale"]), self.plan.view("rng"),
                                                        self._next_stream()), n.name))
                entries.append(_Entry("dropout", n, n.name, [h], y,
                                      {"mask": mask, "scale": n.attrs["scale"]}))
            elif n.op in ACT:
                y = dst()
                g, b = _ew(size)
                mode = EPILOGUES[ACT[n.op]]
                out.append(Launch("act_fwd", g, b, (h, y, _i(size), _i(mode),
                                                     _f(n.attrs.get("slope", 0.0))), n.name))
                entries.append(_Entry("act", n, n.name, [h], y,
                                      {"act": ACT[n.op], "slope": n.attrs.get("slope", 0.0)}))
            elif n.op is Op.CONCAT:
                y = dst()
                total, col, ins, offs = _width(n), 0, [], []
                for i in n.inputs:
                    w = _width(graph.node(i))
                    out.append(_copy(value[i], y.at(col, (rows - 1) * total + w), rows, w, w,
                                     total, False, f"{n.name} ← {i}"))
                    ins.append(value[i])
                    offs.append((col, w))
                    col += w
                entries.append(_Entry("concat", n, n.name, ins, y, {"cols": offs}))
            else:  # pragma: no cover - SUPPORTED is checked in __init__
                raise LoweringError(n.name, n.op.value, "cupy")
            value[n.name] = y
        if final is not None and value[end] != final:  # pragma: no cover - root writes final
            raise AssertionError(f"{graph.name}: end value not in its destination")
        return _Tape(graph, entries, end)

    @staticmethod
    def _ancestors(graph: Graph, end: str) -> set[str]:
        need, todo = set(), [end]
        while todo:
            n = todo.pop()
            if n not in need:
                need.add(n)
                todo.extend(graph.node(n).inputs)
        return need

    # ---- backward -------------------------------------------------------------------------------

    def backward(self, tape: _Tape, rows: int, dy: Buf, out: list[Launch], weights: bool,
                 input_grad: Buf | None, tag: str) -> None:
        """Launches for the gradients of a forward pass whose end value has gradient `dy`:
        parameter gradients when `weights`, the gradient of the `x` input into `input_grad`."""
        graph = tape.graph
        tracked: set[str] = set()
        for n in graph.nodes:  # which values need a gradient
            if (n.op is Op.INPUT and n.attrs["source"] == "x" and input_grad is not None) or \
               (weights and n.params) or any(i in tracked for i in n.inputs):
                tracked.add(n.name)
        grad: dict[str, Buf] = {tape.end: dy}
        x_node = graph.input_of("x")
        fixed = {x_node.name: input_grad} if x_node is not None and input_grad is not None else {}

        def contribute(target: str, size: int, who: str,
                       produce: Callable[[Buf], None] | None = None, src: Buf | None = None):
            """Add a reader's part of target's gradient: written straight into target's
            gradient buffer by the first reader, summed into it by the others."""
            if target not in tracked:
                return
            if target not in grad:
                if target in fixed:
                    grad[target] = fixed[target]
                elif src is not None:  # an alias: share the buffer
                    grad[target] = src
                    return
                else:
                    grad[target] = self.plan.buffer(f"{target}{tag}.grad", "float32", size)
                if produce is not None:
                    produce(grad[target])
                else:
                    out.append(_copy(src, grad[target], 1, size, size, size, False,
                                     f"d {target}"))
                return
            tmp = self.plan.buffer(f"{who}{tag}.dpart.{target}", "float32", size)
            if produce is not None:
                produce(tmp)
            else:
                tmp = src
            out.append(_copy(tmp, grad[target], 1, size, size, size, True, f"Σ d {target}"))

        for e in reversed(tape.entries):
            g = grad.get(e.out_node)
            if g is None:
                continue  # nothing downstream depends on it
            n = e.node
            if e.kind == "alias":
                contribute(n.inputs[0], rows * _width(n), n.name, src=g)
            elif e.kind in ("dense", "maxout"):
                if e.kind == "maxout":
                    units, pieces = n.attrs["units"], n.attrs["pieces"]
                    width = units * pieces
                    dpre = self.plan.buffer(f"{n.name}{tag}.dpre", "float32", rows * width)
                    gg, b = _ew(rows * width)
                    out.append(Launch("maxout_bwd", gg, b, (g, e.extra["arg"], dpre, _i(rows),
                                                            _i(units), _i(pieces)), n.name))
                else:
                    width = _width(n)
                    if e.extra["act"] != "bias":
                        dpre = self.plan.buffer(f"{n.name}{tag}.dpre", "float32", rows * width)
                        gg, b = _ew(rows * width)
                        out.append(Launch("act_bwd", gg, b, (e.out, g, dpre, _i(rows * width),
                                                             _i(EPILOGUES[e.extra["act"]]),
                                                             _f(e.extra["slope"])), n.name))
                    else:
                        dpre = g
                k_in = e.extra["k"]
                if weights:
                    out.append(_gemm(e.ins[0], dpre, self._param(f"{n.name}.weight", grads=True),
                                     Buf("metrics", 0, 0), k_in, width, rows, True, False, "none",
                                     0.0, f"d {n.name}.weight"))
                    gg, b = _ew(width)
                    out.append(Launch("bias_grad", gg, b, (dpre, self._param(f"{n.name}.bias", True),
                                                           _i(rows), _i(width)), f"d {n.name}.bias"))
                contribute(n.inputs[0], rows * k_in, n.name, lambda dx, dpre=dpre, n=n, k=k_in,
                           w=width: out.append(_gemm(dpre, self._param(f"{n.name}.weight"), dx,
                                                     Buf("metrics", 0, 0), rows, k, w, False,
                                                     True, "none", 0.0, f"d {n.name}.input")))
            elif e.kind == "dropout":
                size = rows * _width(n)
                gg, b = _ew(size)
                contribute(n.inputs[0], size, n.name, lambda dx, g=g, e=e, size=size, n=n: out.append(
                    Launch("dropout_bwd", gg, b, (g, e.extra["mask"], dx, _i(size),
                                                  _f(e.extra["scale"])), n.name)))
            elif e.kind == "act":
                size = rows * _width(n)
                gg, b = _ew(size)
                contribute(n.inputs[0], size, n.name, lambda dx, g=g, e=e, size=size, n=n: out.append(
                    Launch("act_bwd", gg, b, (e.out, g, dx, _i(size), _i(EPILOGUES[e.extra["act"]]),
                                              _f(e.extra["slope"])), n.name)))
            elif e.kind == "concat":
                total = _width(n)
                for i, (col, w) in zip(n.inputs, e.extra["cols"]):
                    contribute(i, rows * w, n.name, lambda dx, col=col, w=w, i=i: out.append(
                        _copy(g.at(col, (rows - 1) * total + w), dx, rows, w, total, w, False,
                              f"d {i} ← {n.name}")))
        if input_grad is not None and grad.get(x_node.name) is not input_grad:  # type: ignore[union-attr]
            raise AssertionError("input gradient not produced")  # pragma: no cover

    # ---- the iteration --------------------------------------------------------------------------

    def _noise(self, out: list[Launch], rows: int, name: str) -> Buf:
        pr = self.p.prior
        size = rows * pr.dim
        z = self.plan.buffer(name, "float32", size)
        g, b = _ew(size, 4)
        out.append(Launch("noise", g, b, (z, _i(size), _i(int(pr.kind == "gaussian")), _f(pr.a),
                                          _f(pr.b), self.plan.view("rng"), self._next_stream()),
                          "z ~ prior"))
        return z

    def _update(self, net: str, out: list[Launch]) -> None:
        n = self.plan.buffers[f"{net}.params"].size
        g, b = _ew(n)
        cfg = self.optim[net]
        hp = Buf(f"{net}.hp", 0, 4)
        v = self.plan.view
        if cfg.kind == "sgd":
            out.append(Launch("sgd_momentum", g, b, (v(f"{net}.params"), v(f"{net}.velocity"),
                                                     v(f"{net}.grads"), _i(n), hp),
                              f"{net} SGD-momentum update"))
        else:
            out.append(Launch("adam", g, b, (v(f"{net}.params"), v(f"{net}.m"), v(f"{net}.v"),
                                             v(f"{net}.grads"), _i(n), _f(cfg.beta1), _f(cfg.beta2),
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
            g, b = _ew(m * C)
            ds.append(Launch("gather_onehot", g, b, (labels, order, pos, y_d.at(0, m * C), _i(m),
                                                     _i(C), N_EXAMPLES), "real labels"))
            ds.append(_copy(y_d.at(0, m * C), y_d.at(m * C, m * C), 1, m * C, m * C, m * C, False,
                            "fake half: the real half's labels"))
        self.forward(P.G, m, {"z": z, "y": y_d.at(0, m * C) if C else None}, ds, train=True,
                     tag=".dstep", final=xd.at(m * d, m * d))
        g, b = _ew(m * d)
        ds.append(Launch("gather_rows", g, b, (data, order, pos, xd.at(0, m * d), _i(m), _i(d),
                                               N_EXAMPLES), "real minibatch"))
        tape_d = self.forward(P.D, 2 * m, {"x": xd, "y": y_d}, ds, train=True, tag=".dstep",
                              final=logits)
        g, b = _ew(m)
        ds.append(Launch("bce_d", g, b, (logits.at(0, m), logits.at(m, m), dlogits.at(0, m),
                                         dlogits.at(m, m), _i(m), plan.view("metrics")), "D loss"))
        self.backward(tape_d, 2 * m, dlogits, ds, weights=True, input_grad=None, tag=".dstep")
        self._update("D", ds)
        self._advance(ds)  # each update draws fresh random numbers: k D-updates differ too

        # G-step: G's output in D.x[0:m], D (with dropout) on m rows, gradients through D.
        gs = plan.phases["g_step"] = []
        z = self._noise(gs, m, "z")
        if C:
            y_g = plan.buffer("y.g", "float32", m * C)
            g, b = _ew(m)
            gs.append(Launch("draw_onehot", g, b, (plan.view("labels"), N_EXAMPLES, y_g, _i(m),
                                                   _i(C), plan.view("rng"), self._next_stream()),
                             "y ~ p_data(y)"))
        tape_g = self.forward(P.G, m, {"z": z, "y": y_g}, gs, train=True, tag=".gstep",
                              final=xd.at(0, m * d))
        tape_dg = self.forward(P.D, m, {"x": xd.at(0, m * d), "y": y_g}, gs, train=True,
                               tag=".gstep", final=logits.at(0, m))
        g, b = _ew(m)
        gs.append(Launch("bce_g", g, b, (logits.at(0, m), dlogits.at(0, m), _i(m),
                                         _i(int(P.g_loss == "non_saturating")),
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
            g, b = _ew(size)
            fin.append(Launch("count_nonfinite", g, b, (plan.view(f"{net}.params"), _i(size),
                                                        Buf("metrics", METRICS.index("finite"), 1)),
                              f"non-finite {net} parameters"))
        plan.phases["reset_metrics"] = [Launch("fill", (1, 1, 1), (BLOCK, 1, 1),
                                               (plan.view("metrics"), _i(len(METRICS)), _f(0.0)),
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


class _Bound:
    """A scalar argument the runtime supplies when it binds a plan (the training set's size)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


N_EXAMPLES = _Bound("n_examples")


def lower(program: Program, batch: int, optim: dict[str, OptimConfig]) -> Plan:
    """The launch plan of one training iteration (raises LoweringError for unsupported ops)."""
    return Lowering(program, batch, optim).lower()


def lower_inference(program: Program, net: str, rows: int) -> Plan:
    """The forward plan of G or D on `rows` rows (parameters in G.params / D.params)."""
    return Lowering(program, rows, None).inference(net, rows)  # type: ignore[arg-type]


def bind_scalars(launches: list[Launch], n_examples: int) -> list[Launch]:
    """The launches with the runtime's scalars filled in."""
    def fill(a: Any) -> Any:
        return np.int32(n_examples) if a is N_EXAMPLES else a

    return [replace(l, args=tuple(fill(a) for a in l.args)) if any(a is N_EXAMPLES for a in l.args)
            else l for l in launches]


_CTYPES = {"float*": "float32", "int*": "int32", "unsigned char*": "uint8",
           "unsigned int*": "uint32", "long long*": "int64"}
_SCALARS = {"int": np.int32, "unsigned int": np.uint32, "float": np.float32}


def check(plan: Plan, sizes: dict[str, int] | None = None,
          phases: dict[str, list[Launch]] | None = None) -> None:
    """Every launch against its kernel's C signature and footprint: argument count, scalar C
    types, the element type of every buffer pointer, every view inside its buffer, what the
    kernel touches inside its view, and no overlap between a written `__restrict__` pointer
    and another pointer argument. `sizes`: the real sizes of runtime-sized buffers. Raises
    AssertionError naming the launch."""
    from .footprint import FOOTPRINTS
    from .render import signatures

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
            spans = []
            for prm, arg, extent, written in views:
                touched = fp[prm.name]
                if extent or touched:
                    if not (arg.name in ("data", "order", "labels") and not sizes):
                        assert touched <= extent, \
                            f"{where}: {prm.name} touches {touched} elements of a view of {extent}"
                spans.append((prm.name, arg.name, arg.offset, arg.offset + touched, written))
            for a in range(len(spans)):
                for b in range(a + 1, len(spans)):
                    pa, ba, sa, ea, wa = spans[a]
                    pb, bb, sb, eb, wb = spans[b]
                    if ba == bb and (wa or wb) and sa < eb and sb < ea:
                        raise AssertionError(f"{where}: __restrict__ arguments {pa} and {pb} "
                                             f"overlap in {ba}")


def hparams(cfg: OptimConfig, lr: float, momentum: float, t: int) -> np.ndarray:
    """The hp slot of one update (t = 1 for the first): what optim.cu reads."""
    if cfg.kind == "sgd":
        return np.array([lr, momentum, 0.0, 0.0], np.float32)
    c2 = np.sqrt(1.0 - cfg.beta2 ** t)
    return np.array([lr, lr * c2 / (1.0 - cfg.beta1 ** t), cfg.eps * c2, 0.0], np.float32)


def _active(n: Node) -> bool:
    return n.attrs["keep"] < 1.0 or n.attrs["scale"] != 1.0
