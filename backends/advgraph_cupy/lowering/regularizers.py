"""The regularisers' launches (advgraph.ir.objective): spectral norm's buffers and power
iteration, and G's EMA.

Spectral norm: each normalised weight W has, in its net's state, W / σ (`<net>.sn`, what every
pass reads instead of W: `Lowering.param`), its power iteration's u and v (`<net>.uv`, u then v
per weight) and σ (`<net>.sigma`); `<net>.snraw` holds a product before it is normalised and
`<net>.snparts` the block sums of ⟨G, W⟩. Every phase that runs a net computes W / σ first: a
training step iterates the weights of the net it updates (`iterations` times: v ← normalize(Mᵀu),
u ← normalize(Mv)) and uses the stored u, v for the other net's; inference uses the stored ones.
So each replay of a captured phase sees the weights as the updates before it left them. Before
the update, the gradient with respect to W / σ becomes W's: G/σ − (⟨G, W⟩/σ²)·u vᵀ.

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
NPARTS = 64  # the blocks of sn_dot_parts: fixed, so ⟨G, W⟩ is always summed in one order


@dataclass(frozen=True)
class SpectralSlot:
    weight: SpectralWeight
    wn: Buf  # W / σ
    u: Buf
    v: Buf
    sigma: Buf
    raw: Buf  # the net's scratch for a product before it is normalised
    parts: Buf  # the net's scratch for ⟨G, W⟩'s block sums

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
        raw = plan.buffer(f"{net}.snraw", "float32", max(max(s.rows, s.cols) for s in weights),
                          "state")
        parts = plan.buffer(f"{net}.snparts", "float32", 2 * NPARTS, "state")
        for i, s in enumerate(weights):
            size = s.rows * s.cols
            out[s.tensor] = SpectralSlot(s, Buf(f"{net}.sn", off_w, size),
                                         Buf(f"{net}.uv", off_uv, s.rows),
                                         Buf(f"{net}.uv", off_uv + s.rows, s.cols),
                                         Buf(f"{net}.sigma", i, 1), raw, parts)
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
        w = Buf(*lw.plan.param_offsets[name])
        dims = tuple(i32(d) for d in slot.dims)
        rows, cols = slot.weight.rows, slot.weight.cols
        mv_t, mv = slot.raw.at(0, cols), slot.raw.at(0, rows)
        k = iters if slot.weight.net == owner else 0
        for it in range(k):
            step = f"{name}: power iteration {it + 1}"
            out += [Launch("sn_mv", (cols, 1, 1), (NT, 1, 1), (w, slot.u, mv_t, *dims, i32(1)),
                           f"{step}, Mᵀu"),
                    Launch("sn_normalize", (1, 1, 1), (NT, 1, 1), (mv_t, slot.v, i32(cols)),
                           f"{step}, v"),
                    Launch("sn_mv", (rows, 1, 1), (NT, 1, 1), (w, slot.v, mv, *dims, i32(0)),
                           f"{step}, Mv"),
                    Launch("sn_normalize", (1, 1, 1), (NT, 1, 1), (mv, slot.u, i32(rows)),
                           f"{step}, u")]
        if not k:  # (after an iteration, mv holds Mv of the v that σ uses)
            out.append(Launch("sn_mv", (rows, 1, 1), (NT, 1, 1), (w, slot.v, mv, *dims, i32(0)),
                              f"{name}: Mv"))
        g, b = ew_grid(w.extent)
        out += [Launch("sn_sigma", (1, 1, 1), (NT, 1, 1), (slot.u, mv, slot.sigma, i32(rows)),
                       f"σ({name}) = uᵀMv"),
                Launch("sn_scale", g, b, (w, slot.sigma, slot.wn, i32(w.extent)), f"{name} / σ")]


def correct_spectral_grads(lw, net: str, out: list[Launch]) -> None:
    """The gradients of net's normalised weights, with respect to W / σ, made W's (in place)."""
    for name, slot in lw.spectral.items():
        if slot.weight.net != net:
            continue
        w, grad = Buf(*lw.plan.param_offsets[name]), lw.param(name, grads=True)
        g, b = ew_grid(w.extent)
        out += [Launch("sn_dot_parts", (NPARTS, 1, 1), (NT, 1, 1),
                       (grad, w, slot.parts, i32(w.extent), i32(NPARTS)), f"⟨d {name}, W⟩"),
                Launch("sn_grad", g, b, (grad, slot.u, slot.v, slot.sigma, slot.parts,
                                         i32(NPARTS), *(i32(d) for d in slot.dims)),
                       f"d {name} through W / σ")]


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
