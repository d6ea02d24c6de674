"""The plans: one training iteration of Algorithm 1, and inference of G or D.

D's real and fake halves share one pass of 2m rows (G writes its output straight into the
second half of D's input buffer) as two groups: an op that couples a batch's examples
(batchnorm) takes its statistics over each half apart, so the pass computes what two passes
(real, then fake) compute, as the torch backend runs them. Batchnorm's running statistics follow
the torch backend too: G's are updated by both steps' G passes, D's by the D-step (the real
half's statistics, then the fake half's), not by D inside the G-step.
"""

from __future__ import annotations

import numpy as np

from advgraph.backend_protocol import OptimConfig
from advgraph.ir import Program

from ..codes import METRICS, SCORE_LOSSES
from ..kernels.common import width
from ..plan import (BLOCK, N_EXAMPLES, SLOTTED, Buf, Launch, Plan, copy_rows, ew_grid, f32, i32,
                    noise_launch, one_copy)
from .lowerer import Lowering
from .regularizers import correct_spectral_grads, ema_phase, normalise


def _noise(lw: Lowering, out: list[Launch], rows: int, name: str) -> Buf:
    z = lw.plan.buffer(name, "float32", rows * lw.p.prior.dim)
    out.append(noise_launch(z, rows, lw.p.prior, lw.plan.view("rng"), lw.next_stream()))
    return z


def _update(lw: Lowering, net: str, out: list[Launch]) -> None:
    n = lw.plan.buffers[f"{net}.params"].size
    g, b = ew_grid(n)
    cfg = lw.optim[net]
    hp = Buf(f"{net}.hp", 0, 4)
    v = lw.plan.view
    if cfg.kind == "sgd":
        out.append(Launch("sgd_momentum", g, b, (v(f"{net}.params"), v(f"{net}.velocity"),
                                                 v(f"{net}.grads"), i32(n), hp, *one_copy(4)),
                          f"{net} SGD-momentum update"))
    else:
        out.append(Launch("adam", g, b, (v(f"{net}.params"), v(f"{net}.m"), v(f"{net}.v"),
                                         v(f"{net}.grads"), i32(n), f32(cfg.beta1), f32(cfg.beta2),
                                         hp, *one_copy(5)), f"{net} Adam update"))


def _advance(lw: Lowering, out: list[Launch]) -> None:
    out.append(Launch("advance_rng", (1, 1, 1), (1, 1, 1), (lw.plan.view("rng"), i32(1)),
                      "fresh random numbers"))


def training_plan(lw: Lowering) -> Plan:
    """The launch plan of one iteration of Algorithm 1 (k D-updates are k replays of d_step)."""
    P, m, plan = lw.p, lw.m, lw.plan
    d = int(np.prod(P.data_shape))
    plan.buffer("rng", "uint32", 4, "state")
    plan.buffer("metrics", "float32", len(METRICS), "host_out")
    plan.buffer("D.hp", "float32", SLOTTED["D.hp"], "host_in")
    plan.buffer("G.hp", "float32", 4, "host_in")
    plan.buffer("pos", "int32", SLOTTED["pos"], "host_in")
    plan.buffer("data", "float32", 0, "host_in")  # the training set, sized by the runtime
    plan.buffer("order", "int64", 0, "host_in")
    xd = plan.buffer("D.x", "float32", 2 * m * d)
    logits = plan.buffer("D.logits", "float32", 2 * m)
    dlogits = plan.buffer("D.dlogits", "float32", 2 * m)
    plan.phases["d_step"] = _d_step(lw, xd, logits, dlogits)
    plan.phases["g_step"] = _g_step(lw, xd, logits, dlogits)
    _metric_phases(plan)
    ema = ema_phase(lw)
    if ema:
        plan.phases["ema"] = ema
    return plan


def _d_step(lw: Lowering, xd: Buf, logits: Buf, dlogits: Buf) -> list[Launch]:
    """Fake half from G (no gradients), real half gathered, one D pass on 2m rows (the halves
    two groups), D's update."""
    P, m, plan = lw.p, lw.m, lw.plan
    d, C = int(np.prod(P.data_shape)), P.classes or 0
    order, pos = plan.view("order"), Buf("pos", 0, 1)
    ds: list[Launch] = []
    normalise(lw, ("G", "D"), "D", ds)
    z = _noise(lw, ds, m, "z")
    y_d = None
    if C:
        labels = plan.buffer("labels", "int64", 0, "host_in")
        y_d = plan.buffer("y", "float32", 2 * m * C)
        g, b = ew_grid(m * C)
        ds.append(Launch("gather_onehot", g, b, (labels, order, pos, y_d.at(0, m * C), i32(m),
                                                 i32(C), N_EXAMPLES), "real labels"))
        ds.append(copy_rows(y_d.at(0, m * C), y_d.at(m * C, m * C), 1, m * C, m * C, m * C, False,
                            "fake half: the real half's labels"))
    lw.forward(P.G, m, {"z": z, "y": y_d.at(0, m * C) if C else None}, ds, train=True,
               tag=".dstep", final=xd.at(m * d, m * d), update_stats=True)
    g, b = ew_grid(m * d)
    ds.append(Launch("gather_rows", g, b, (plan.view("data"), order, pos, xd.at(0, m * d), i32(m),
                                           i32(d), N_EXAMPLES), "real minibatch"))
    tape_d = lw.forward(P.D, 2 * m, {"x": xd, "y": y_d}, ds, train=True, tag=".dstep",
                        final=logits, groups=2, update_stats=True)
    ds.append(_loss_d(lw, logits, dlogits))
    lw.backward(tape_d, 2 * m, dlogits, ds, weights=True, input_grad=None, tag=".dstep")
    correct_spectral_grads(lw, "D", ds)
    _update(lw, "D", ds)
    _advance(lw, ds)  # each update draws fresh random numbers: k D-updates differ too
    return ds


def _g_step(lw: Lowering, xd: Buf, logits: Buf, dlogits: Buf) -> list[Launch]:
    """G's output in D.x[0:m], D (with dropout) on m rows, gradients through D, G's update."""
    P, m, plan = lw.p, lw.m, lw.plan
    d, C = int(np.prod(P.data_shape)), P.classes or 0
    gs: list[Launch] = []
    normalise(lw, ("G", "D"), "G", gs)
    z = _noise(lw, gs, m, "z")
    y_g = None
    if C:
        y_g = plan.buffer("y.g", "float32", m * C)
        g, b = ew_grid(m)
        gs.append(Launch("draw_onehot", g, b, (plan.view("labels"), N_EXAMPLES, y_g, i32(m),
                                               i32(C), plan.view("rng"), lw.next_stream()),
                         "y ~ p_data(y)"))
    tape_g = lw.forward(P.G, m, {"z": z, "y": y_g}, gs, train=True, tag=".gstep",
                        final=xd.at(0, m * d), update_stats=True)
    tape_dg = lw.forward(P.D, m, {"x": xd.at(0, m * d), "y": y_g}, gs, train=True,
                         tag=".gstep", final=logits.at(0, m))
    gs.append(_loss_g(lw, logits, dlogits))
    dfake = plan.buffer("G.dout", "float32", m * d)
    lw.backward(tape_dg, m, dlogits.at(0, m), gs, weights=False, input_grad=dfake,
                tag=".gstep")
    lw.backward(tape_g, m, dfake, gs, weights=True, input_grad=None, tag=".gstep")
    correct_spectral_grads(lw, "G", gs)
    _update(lw, "G", gs)
    _advance(lw, gs)
    return gs


def _loss_d(lw: Lowering, logits: Buf, dlogits: Buf) -> Launch:
    """D's loss on the real (first m) and fake logits or scores, its gradients and metrics."""
    m, loss, metrics = lw.m, lw.p.loss, lw.plan.view("metrics")
    g, b = ew_grid(m)
    halves = (logits.at(0, m), logits.at(m, m), dlogits.at(0, m), dlogits.at(m, m), i32(m))
    if loss in SCORE_LOSSES:
        return Launch("score_d", g, b, (*halves, i32(SCORE_LOSSES[loss]), metrics),
                      f"D loss ({loss})")
    return Launch("bce_d", g, b, (*halves, metrics, *one_copy(5)), f"D loss ({loss})")


def _loss_g(lw: Lowering, logits: Buf, dlogits: Buf) -> Launch:
    """G's loss on D's logits or scores of its m samples, the gradient and the metric."""
    m, loss, metrics = lw.m, lw.p.loss, lw.plan.view("metrics")
    g, b = ew_grid(m)
    if loss in SCORE_LOSSES:
        return Launch("score_g", g, b, (logits.at(0, m), dlogits.at(0, m), i32(m),
                                        i32(SCORE_LOSSES[loss]), metrics), f"G loss ({loss})")
    return Launch("bce_g", g, b, (logits.at(0, m), dlogits.at(0, m), i32(m),
                                  i32(int(loss == "non_saturating")), metrics, *one_copy(3)),
                  f"G loss ({loss})")


def _metric_phases(plan: Plan) -> None:
    """The `finite` metric (non-finite parameters counted) and the reset after a read."""
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


def inference_plan(lw: Lowering, net: str, rows: int) -> Plan:
    """Forward-only launches of G (from z) or D (probabilities of x) on `rows` rows: no
    dropout, inputs and output host-visible."""
    graph = getattr(lw.p, net)
    plan, tag = lw.plan, f".infer{rows}"
    C = lw.p.classes or 0
    io: dict[str, Buf] = {}
    if net == "G":
        io["z"] = plan.buffer(f"G{tag}.z", "float32", rows * lw.p.prior.dim, "host_in")
    else:
        io["x"] = plan.buffer(f"D{tag}.x", "float32", rows * int(np.prod(lw.p.data_shape)),
                              "host_in")
    if C:
        io["y"] = plan.buffer(f"{net}{tag}.y", "float32", rows * C, "host_in")
    io["out"] = plan.buffer(f"{net}{tag}.out", "float32", rows * width(graph.node(graph.output)),
                            "host_out")
    launches: list[Launch] = []
    normalise(lw, (net,), None, launches)  # W / σ from the stored u, v
    lw.forward(graph, rows, io, launches, train=False, tag=tag, final=io["out"],
               to_logits=False)
    plan.phases["forward"] = launches
    plan.io = io
    return plan


def lower(program: Program, batch: int, optim: dict[str, OptimConfig]) -> Plan:
    """The launch plan of one training iteration (raises LoweringError for unsupported ops)."""
    return training_plan(Lowering(program, batch, optim))


def lower_inference(program: Program, net: str, rows: int) -> Plan:
    """The forward plan of G or D on `rows` rows (parameters in G.params / D.params)."""
    return inference_plan(Lowering(program, rows, None), net, rows)
