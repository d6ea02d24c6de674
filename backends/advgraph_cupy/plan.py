"""Lowering: a Program → the typed launch plan of one training iteration on our kernels.

The plan is data: named device buffers and, per phase, a list of kernel launches whose pointer
arguments name buffers (with an element offset) and whose scalars carry their C type
(np.int32, np.uint32, np.float32). The runtime allocates the buffers once, binds the plan, and
captures the whole iteration (k D-steps, one G-step) as one CUDA graph; nothing in the plan
depends on the step, so the graph never changes: the step's lr/momentum go to device scalars
(hp buffers), the minibatch position and RNG offset advance in-graph.

Forward ops lower to GEMMs with fused epilogues (dense followed by relu/sigmoid/tanh/leaky_relu
is one kernel), maxout to a GEMM plus a max over pieces that keeps its argmax, dropout to a
counter-based-RNG kernel that keeps its mask. D's real and fake halves share one pass of 2m
rows: G writes its output straight into the second half of D's input buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advgraph.backend import OptimConfig
from advgraph.errors import LoweringError
from advgraph.ir import Graph, Node, Op, Program

from .render import EPILOGUES

SUPPORTED = {Op.INPUT, Op.DENSE, Op.MAXOUT, Op.RELU, Op.LEAKY_RELU, Op.TANH, Op.SIGMOID,
             Op.LINEAR, Op.DROPOUT, Op.RESHAPE}
ACT = {Op.RELU: "relu", Op.SIGMOID: "sigmoid", Op.TANH: "tanh", Op.LEAKY_RELU: "leaky_relu"}
BLOCK = 256


@dataclass(frozen=True)
class Buf:
    """A pointer argument: element `offset` into the named buffer."""

    name: str
    offset: int = 0


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
    size: int  # elements


@dataclass
class Plan:
    buffers: dict[str, BufferSpec] = field(default_factory=dict)
    d_step: list[Launch] = field(default_factory=list)
    g_step: list[Launch] = field(default_factory=list)
    param_offsets: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name → (buf, offset, size)

    def iteration(self, k: int) -> list[Launch]:
        """Every launch of one iteration of Algorithm 1: k D-steps, one G-step."""
        return self.d_step * k + self.g_step

    def buffer(self, name: str, dtype: str, size: int) -> Buf:
        old = self.buffers.get(name)
        if old is None or old.size < size:
            self.buffers[name] = BufferSpec(name, dtype, max(size, old.size if old else 0))
        return Buf(name)


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


@dataclass
class _Tape:
    """What a forward pass kept for its backward: (kind, node, input buf, output buf, extra)."""

    entries: list[tuple[str, Node, Buf, Buf, dict]] = field(default_factory=list)


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
        self._flat_params()

    # ---- buffers ------------------------------------------------------------------------------

    def _flat_params(self) -> None:
        for g in ("G", "D"):
            off = 0
            for t in getattr(self.p, g).params():
                self.plan.param_offsets[t.name] = (f"{g}.params", off, t.size)
                off += t.size
            for name in ("params", "grads"):
                self.plan.buffer(f"{g}.{name}", "float32", off)
            slots = ("velocity",) if self.optim[g].kind == "sgd" else ("m", "v")
            for s in slots:
                self.plan.buffer(f"{g}.{s}", "float32", off)
            self.plan.buffer(f"{g}.hp", "float32", 4)
        self.plan.buffer("rng", "uint32", 4)
        self.plan.buffer("metrics", "float32", 4)
        self.plan.buffer("pos", "int32", 1)

    def _param(self, name: str, grads: bool = False) -> Buf:
        buf, off, _ = self.plan.param_offsets[name]
        return Buf(buf.replace("params", "grads") if grads else buf, off)

    def _next_stream(self) -> np.uint32:
        self._stream += 1
        return np.uint32(self._stream)

    # ---- forward --------------------------------------------------------------------------------

    def forward(self, graph: Graph, rows: int, x: Buf, out: list[Launch], train: bool,
                final: Buf | None = None, tag: str = "") -> tuple[Buf, _Tape]:
        """Launches for graph(x) on `rows` rows; D stops at its logits. `final` names where the
        last node writes (G into D's input buffer)."""
        nodes = graph.nodes[1:]
        if graph.logits is not None:
            nodes = nodes[: [n.name for n in nodes].index(graph.logits) + 1]
        # Group nodes into launches: dense + a following activation is one fused GEMM;
        # linear, reshape and inactive dropout launch nothing.
        groups: list[tuple[str, list[Node]]] = []
        i = 0
        while i < len(nodes):
            n = nodes[i]
            nxt = nodes[i + 1] if i + 1 < len(nodes) else None
            if n.op is Op.DENSE and nxt is not None and nxt.op in ACT:
                groups.append(("dense", [n, nxt]))
                i += 2
                continue
            if n.op is Op.DENSE or n.op is Op.MAXOUT:
                groups.append((n.op.value, [n]))
            elif n.op is Op.DROPOUT and train and (n.attrs["keep"] < 1.0 or n.attrs["scale"] != 1.0):
                groups.append(("dropout", [n]))
            elif n.op in ACT:
                groups.append(("act", [n]))
            i += 1
        if not groups:
            raise LoweringError(graph.nodes[-1].name, "identity", "cupy",
                                f"graph {graph.name} computes nothing to launch")
        tape = _Tape()
        h = x
        for gi, (kind, ns) in enumerate(groups):
            n = ns[0]
            last = gi == len(groups) - 1
            width = int(np.prod(ns[-1].shape))

            def dst_for(suffix: str, size: int, owner: Node = ns[-1], last: bool = last) -> Buf:
                if last and final is not None:
                    return final
                return self.plan.buffer(f"{owner.name}{tag}.{suffix}", "float32", size)

            if kind == "dense":
                fused = ns[1] if len(ns) == 2 else None
                ep = ACT[fused.op] if fused else "bias"
                slope = fused.attrs.get("slope", 0.0) if fused else 0.0
                dst = dst_for("out", rows * width)
                k_in = int(np.prod(graph.node(n.inputs[0]).shape))
                out.append(_gemm(h, self._param(f"{n.name}.weight"), dst,
                                 self._param(f"{n.name}.bias"), rows, width, k_in, False, False,
                                 ep, slope, f"{n.name}{' + ' + fused.op.value if fused else ''}"))
                tape.entries.append(("dense", n, h, dst, {"act": ep, "slope": slope, "k": k_in}))
            elif kind == "maxout":
                units, pieces = n.attrs["units"], n.attrs["pieces"]
                k_in = int(np.prod(graph.node(n.inputs[0]).shape))
                pre = self.plan.buffer(f"{n.name}{tag}.pre", "float32", rows * units * pieces)
                dst = dst_for("out", rows * units)
                arg = self.plan.buffer(f"{n.name}{tag}.arg", "int32", rows * units)
                out.append(_gemm(h, self._param(f"{n.name}.weight"), pre,
                                 self._param(f"{n.name}.bias"), rows, units * pieces, k_in,
                                 False, False, "bias", 0.0, f"{n.name} (maxout pieces)"))
                g, b = _ew(rows * units)
                out.append(Launch("maxout_fwd", g, b, (pre, dst, arg, _i(rows), _i(units),
                                                       _i(pieces)), n.name))
                tape.entries.append(("maxout", n, h, dst, {"pre": pre, "arg": arg, "k": k_in}))
            elif kind == "dropout":
                size = rows * width
                dst = dst_for("out", size)
                mask = self.plan.buffer(f"{n.name}{tag}.mask", "uint8", size)
                g, b = _ew(size, 4)
                out.append(Launch("dropout_fwd", g, b, (h, dst, mask, _i(size), _f(n.attrs["keep"]),
                                                        _f(n.attrs["scale"]), Buf("rng"),
                                                        self._next_stream()), n.name))
                tape.entries.append(("dropout", n, h, dst, {"mask": mask, "scale": n.attrs["scale"]}))
            else:  # a standalone activation
                size = rows * width
                dst = dst_for("out", size)
                g, b = _ew(size)
                out.append(Launch("act_fwd", g, b, (h, dst, _i(size), _i(EPILOGUES[ACT[n.op]]),
                                                     _f(n.attrs.get("slope", 0.0))), n.name))
                tape.entries.append(("act", n, h, dst, {"act": ACT[n.op],
                                                        "slope": n.attrs.get("slope", 0.0)}))
            h = dst
        return h, tape

    # ---- backward -------------------------------------------------------------------------------

    def backward(self, tape: _Tape, rows: int, dy: Buf, out: list[Launch], weights: bool,
                 input_grad: Buf | None, tag: str) -> None:
        """Launches for the gradients of a forward pass: parameter gradients when `weights`,
        and the input's gradient into `input_grad` when given."""
        g = dy
        for pos in range(len(tape.entries) - 1, -1, -1):
            kind, n, x_in, y, ex = tape.entries[pos]
            first = pos == 0
            want_dx = not first or input_grad is not None
            if kind in ("dense", "maxout"):
                if kind == "maxout":
                    units, pieces = n.attrs["units"], n.attrs["pieces"]
                    width = units * pieces
                    dpre = self.plan.buffer(f"{n.name}{tag}.dpre", "float32", rows * width)
                    gg, b = _ew(rows * width)
                    out.append(Launch("maxout_bwd", gg, b, (g, ex["arg"], dpre, _i(rows),
                                                            _i(units), _i(pieces)), n.name))
                else:
                    width = int(np.prod(n.shape))
                    if ex["act"] != "bias":
                        dpre = self.plan.buffer(f"{n.name}{tag}.dpre", "float32", rows * width)
                        gg, b = _ew(rows * width)
                        out.append(Launch("act_bwd", gg, b, (y, g, dpre, _i(rows * width),
                                                             _i(EPILOGUES[ex["act"]]),
                                                             _f(ex["slope"])), n.name))
                    else:
                        dpre = g
                k_in = ex["k"]
                if weights:
                    out.append(_gemm(x_in, dpre, self._param(f"{n.name}.weight", grads=True),
                                     Buf("metrics"), k_in, width, rows, True, False, "none", 0.0,
                                     f"d {n.name}.weight"))
                    gg, b = _ew(width)
                    out.append(Launch("bias_grad", gg, b, (dpre, self._param(f"{n.name}.bias", True),
                                                           _i(rows), _i(width)), f"d {n.name}.bias"))
                if want_dx:
                    dx = input_grad if first else \
                        self.plan.buffer(f"{n.name}{tag}.dx", "float32", rows * k_in)
                    out.append(_gemm(dpre, self._param(f"{n.name}.weight"), dx, Buf("metrics"),
                                     rows, k_in, width, False, True, "none", 0.0, f"d {n.name}.input"))
                    g = dx
            elif want_dx:  # dropout or a standalone activation: one elementwise kernel
                size = rows * int(np.prod(n.shape))
                dx = input_grad if first else self.plan.buffer(f"{n.name}{tag}.dx", "float32", size)
                gg, b = _ew(size)
                if kind == "dropout":
                    out.append(Launch("dropout_bwd", gg, b, (g, ex["mask"], dx, _i(size),
                                                             _f(ex["scale"])), n.name))
                else:
                    out.append(Launch("act_bwd", gg, b, (y, g, dx, _i(size),
                                                         _i(EPILOGUES[ex["act"]]), _f(ex["slope"])),
                                      n.name))
                g = dx
            if first and input_grad is not None and g is not input_grad:
                raise AssertionError("input gradient not produced")  # pragma: no cover

    # ---- the iteration --------------------------------------------------------------------------

    def _noise(self, out: list[Launch]) -> Buf:
        pr = self.p.prior
        size = self.m * pr.dim
        z = self.plan.buffer("z", "float32", size)
        g, b = _ew(size, 4)
        out.append(Launch("noise", g, b, (z, _i(size), _i(int(pr.kind == "gaussian")), _f(pr.a),
                                          _f(pr.b), Buf("rng"), self._next_stream()), "z ~ prior"))
        return z

    def _update(self, net: str, out: list[Launch]) -> None:
        n = self.plan.buffers[f"{net}.params"].size
        g, b = _ew(n)
        cfg = self.optim[net]
        if cfg.kind == "sgd":
            out.append(Launch("sgd_momentum", g, b, (Buf(f"{net}.params"), Buf(f"{net}.velocity"),
                                                     Buf(f"{net}.grads"), _i(n), Buf(f"{net}.hp")),
                              f"{net} SGD-momentum update"))
        else:
            out.append(Launch("adam", g, b, (Buf(f"{net}.params"), Buf(f"{net}.m"), Buf(f"{net}.v"),
                                             Buf(f"{net}.grads"), _i(n), _f(cfg.beta1), _f(cfg.beta2),
                                             Buf(f"{net}.hp")), f"{net} Adam update"))

    def lower(self) -> Plan:
        P, m = self.p, self.m
        d = int(np.prod(P.data_shape))
        xd = self.plan.buffer("D.x", "float32", 2 * m * d)
        self.plan.buffer("data", "float32", 0)  # the training set, sized by the runtime
        self.plan.buffer("order", "int64", 0)
        logits = self.plan.buffer("D.logits", "float32", 2 * m)
        dlogits = self.plan.buffer("D.dlogits", "float32", 2 * m)

        # D-step: fake half from G (no gradients), real half gathered, one D pass on 2m rows.
        ds = self.plan.d_step
        z = self._noise(ds)
        self.forward(P.G, m, z, ds, train=True, final=Buf("D.x", m * d), tag=".dstep")
        g, b = _ew(m * d)
        ds.append(Launch("gather_rows", g, b, (Buf("data"), Buf("order"), Buf("pos"), Buf("D.x", 0),
                                               _i(m), _i(d)), "real minibatch"))
        ds.append(Launch("advance_pos", (1, 1, 1), (1, 1, 1), (Buf("pos"), _i(m)), "next minibatch"))
        lg, tape_d = self.forward(P.D, 2 * m, xd, ds, train=True, final=logits, tag=".dstep")
        g, b = _ew(m)
        ds.append(Launch("bce_d", g, b, (Buf("D.logits", 0), Buf("D.logits", m), Buf("D.dlogits", 0),
                                         Buf("D.dlogits", m), _i(m), Buf("metrics")), "D loss"))
        self.backward(tape_d, 2 * m, dlogits, ds, weights=True, input_grad=None, tag=".dstep")
        self._update("D", ds)
        # Each phase draws fresh random numbers: the k D-steps of an iteration differ too.
        ds.append(Launch("advance_rng", (1, 1, 1), (1, 1, 1), (Buf("rng"),), "fresh random numbers"))

        # G-step: G's output in D.x[0:m], D (with dropout) on m rows, gradients through D.
        gs = self.plan.g_step
        z = self._noise(gs)
        _, tape_g = self.forward(P.G, m, z, gs, train=True, final=Buf("D.x", 0), tag=".gstep")
        _, tape_dg = self.forward(P.D, m, xd, gs, train=True, final=logits, tag=".gstep")
        g, b = _ew(m)
        gs.append(Launch("bce_g", g, b, (Buf("D.logits", 0), Buf("D.dlogits", 0), _i(m),
                                         _i(int(P.g_loss == "non_saturating")), Buf("metrics")),
                         "G loss"))
        dfake = self.plan.buffer("G.dout", "float32", m * d)
        self.backward(tape_dg, m, dlogits, gs, weights=False, input_grad=dfake, tag=".gstep")
        self.backward(tape_g, m, dfake, gs, weights=True, input_grad=None, tag=".gstep")
        self._update("G", gs)
        gs.append(Launch("advance_rng", (1, 1, 1), (1, 1, 1), (Buf("rng"),), "fresh random numbers"))
        return self.plan


def lower(program: Program, batch: int, optim: dict[str, OptimConfig]) -> Plan:
    """The launch plan of one training iteration (raises LoweringError for unsupported ops)."""
    return Lowering(program, batch, optim).lower()


_CTYPES = {"float*": "float32", "int*": "int32", "unsigned char*": "uint8",
           "unsigned int*": "uint32", "long long*": "int64"}
_SCALARS = {"int": np.int32, "unsigned int": np.uint32, "float": np.float32}


def check(plan: Plan) -> None:
    """Every launch against its kernel's C signature: argument count, scalar C types, and the
    element type and bounds of every buffer pointer. Raises AssertionError naming the launch."""
    from .render import signatures

    sigs = signatures()
    for phase in ("d_step", "g_step"):
        for i, launch in enumerate(getattr(plan, phase)):
            where = f"{phase}[{i}] {launch.kernel} ({launch.note})"
            params = sigs.get(launch.kernel)
            assert params is not None, f"{where}: no such kernel"
            assert len(params) == len(launch.args), \
                f"{where}: {len(launch.args)} arguments for {len(params)} parameters"
            for prm, arg in zip(params, launch.args):
                if prm.is_pointer:
                    assert isinstance(arg, Buf), f"{where}: {prm.name} needs a buffer, got {arg!r}"
                    spec = plan.buffers.get(arg.name)
                    assert spec is not None, f"{where}: {prm.name}: unknown buffer {arg.name}"
                    want = _CTYPES[prm.ctype.replace("const ", "")]
                    assert spec.dtype == want, \
                        f"{where}: {prm.name} is {prm.ctype}, buffer {arg.name} is {spec.dtype}"
                    assert spec.size == 0 or 0 <= arg.offset < spec.size, \
                        f"{where}: {prm.name}: offset {arg.offset} outside {arg.name} ({spec.size})"
                else:
                    want_t = _SCALARS[prm.ctype]
                    assert type(arg) is want_t, \
                        f"{where}: {prm.name} is {prm.ctype}, got {type(arg).__name__}"


def hparams(cfg: OptimConfig, lr: float, momentum: float, t: int) -> np.ndarray:
    """The hp buffer of one update (t = 1 for the first): what optim.cu reads."""
    if cfg.kind == "sgd":
        return np.array([lr, momentum, 0.0, 0.0], np.float32)
    c2 = np.sqrt(1.0 - cfg.beta2 ** t)
    return np.array([lr, lr * c2 / (1.0 - cfg.beta1 ** t), cfg.eps * c2, 0.0], np.float32)
