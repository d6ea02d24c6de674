"""The regularisers' launches (advgraph.ir.objective): spectral norm's buffers and power
iteration, and G's EMA.

Spectral norm: each normalised weight W has, in its net's state, W / σ (`<net>.sn`, what every
pass reads instead of W: `Lowering.param`), its power iteration's u and v (`<net>.uv`, u then v
per weight) and σ (`<net>.sigma`). Every phase that runs a net computes W / σ first: a training
step iterates the weights of the net it updates (`iterations` times) and uses the stored u, v
for the other net's; inference uses the stored ones. So each replay of a captured phase sees
the weights as the updates before it left them. Before the update, the gradient with respect to
W / σ becomes W's: G/σ − (⟨G, W⟩/σ²)·u vᵀ.

EMA: a phase of its own (`ema`), one launch over G's flat parameters into `G.ema`, the decay
read from `ema.decay` (host-written, so the captured phase never changes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advgraph.ir import Program
from advgraph.ir.objective import SpectralWeight

from ..plan import Buf, Launch, Plan, ew_grid, i32

NT = 256  # spectral.cu's block


@dataclass(frozen=True)
class SpectralSlot:
    weight: SpectralWeight
    wn: Buf  # W / σ
    u: Buf
    v: Buf
    sigma: Buf

    @property
    def dims(self) -> tuple[int, int, int]:
        """(outer, rows, inner): W around its spectral axis."""
        shape, axis = self.weight.shape, self.weight.axis
        return (int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:])))


def spectral_layout(plan: Plan, program: Program) -> dict[str, SpectralSlot]:
    """Each normalised weight's buffers, by tensor name (declared in `plan`)."""
    out: dict[str, SpectralSlot] = {}
    for net in ("G", "D"):
        weights = program.objective.spectral_of(net)
        if not weights:
            continue
        off_w = off_uv = 0
        for i, s in enumerate(weights):
            size = s.rows * s.cols
            out[s.tensor] = SpectralSlot(s, Buf(f"{net}.sn", off_w, size),
                                         Buf(f"{net}.uv", off_uv, s.rows),
                                         Buf(f"{net}.uv", off_uv + s.rows, s.cols),
                                         Buf(f"{net}.sigma", i, 1))
            plan.spectral[s.tensor] = (out[s.tensor].u, out[s.tensor].v)
            off_w, off_uv = off_w + size, off_uv + s.rows + s.cols
        plan.buffer(f"{net}.sn", "float32", off_w, "state")
        plan.buffer(f"{net}.uv", "float32", off_uv, "state")
        plan.buffer(f"{net}.sigma", "float32", len(weights), "state")
    return out


def normalise(lw, nets: tuple[str, ...], owner: str | None, out: list[Launch]) -> None:
    """W / σ of the normalised weights of `nets`: the power iteration first for the `owner`'s
    (the net this step updates), σ from the stored u, v for the others'."""
    iters = lw.p.objective.spectral_iterations
    for name, slot in lw.spectral.items():
        if slot.weight.net not in nets:
            continue
        w = lw.plan.param_offsets[name]
        raw = Buf(w[0], w[1], w[2])
        k = iters if slot.weight.net == owner else 0
        out.append(Launch("sn_power", (1, 1, 1), (NT, 1, 1),
                          (raw, slot.u, slot.v, slot.sigma, *(i32(d) for d in slot.dims), i32(k)),
                          f"σ({name})" + (f", {k} power iteration(s)" if k else "")))
        g, b = ew_grid(w[2])
        out.append(Launch("sn_scale", g, b, (raw, slot.sigma, slot.wn, i32(w[2])),
                          f"{name} / σ"))


def correct_spectral_grads(lw, net: str, out: list[Launch]) -> None:
    """The gradients of net's normalised weights, with respect to W / σ, made W's (in place)."""
    for name, slot in lw.spectral.items():
        if slot.weight.net != net:
            continue
        w = lw.plan.param_offsets[name]
        out.append(Launch("sn_grad", (1, 1, 1), (NT, 1, 1),
                          (lw.param(name, grads=True), Buf(w[0], w[1], w[2]), slot.u, slot.v,
                           slot.sigma, *(i32(d) for d in slot.dims)),
                          f"d {name} through W / σ"))


def ema_phase(lw) -> list[Launch]:
    """ema ← d·ema + (1 − d)·θ over G's trainable tensors (empty without an EMA)."""
    if lw.p.objective.ema is None:
        return []
    n = lw.plan.buffers["G.params"].size
    ema = lw.plan.buffer("G.ema", "float32", n, "state")
    decay = lw.plan.buffer("ema.decay", "float32", 1, "host_in")
    g, b = ew_grid(n)
    return [Launch("ema_update", g, b, (ema, lw.plan.view("G.params"), i32(n), decay),
                   "G's EMA")]
