"""The spec's loss and regularisers resolved against the compiled graphs (`resolve`), and the
NumPy side of the regularisers' state: its initial values, spectral norm's σ and the weights a
run's G is used with (EMA, W / σ) outside training.

What each regulariser computes is documented on advgraph.ir.objective; the backends implement
it, and tests check both against the NumPy here and torch autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import Problem
from .ir import Ema, Graph, Objective, Penalty, Program, SpectralWeight
from .ir.objective import PROBABILITY_LOSSES, SCORE_LOSSES
from .ops import BATCH_COUPLED, OPS

EPS = 1e-12  # torch.nn.functional.normalize's: v / max(‖v‖, eps)
WARM_START = 15  # power iterations on the initial weights, as torch's spectral_norm starts
REGS = ("training", "regularizers")


def resolve(spec: Any, G: Graph, D: Graph, loaded: Any, problems: list[Problem]) -> Objective:
    """The Objective of a validated spec's `training` (loss, regularizers) for graphs G and D,
    appending a located problem for each combination that cannot work."""
    t = spec.training
    r = t.regularizers
    penalties = []
    if r.gradient_penalty is not None:
        gp = r.gradient_penalty
        penalties.append(Penalty("gradient_penalty", gp.weight, gp.every, gp.target))
    if r.r1 is not None:
        penalties.append(Penalty("r1", r.r1.weight, r.r1.every))
    for p in penalties:
        coupled = D.has_op(*BATCH_COUPLED)
        if coupled:
            node = next(n for n in D.nodes if n.op in BATCH_COUPLED)
            problems.append(loaded.problem(
                REGS + (p.kind,),
                f"{p.kind} penalises each example's gradient ‖∇x D(x)‖, and D's {node.name} "
                f"({node.op.value}) makes D(x) depend on the whole minibatch; use layernorm "
                "or no normalisation in D (Gulrajani et al. 2017, section 4)"))
    spectral: list[SpectralWeight] = []
    if r.spectral_norm is not None:
        spectral = _spectral_weights(r.spectral_norm, {"G": G, "D": D}, loaded, problems)
    if t.loss == "wasserstein" and r.gradient_penalty is None:
        bare = [n.tensors["weight"].name for n in D.nodes
                if OPS[n.op].spectral_axis is not None]
        bare = [w for w in bare if w not in {s.tensor for s in spectral}]
        if bare:
            problems.append(loaded.problem(
                ("training", "loss"),
                "wasserstein needs D to be kept Lipschitz, or its scores grow without bound: add "
                "training.regularizers.gradient_penalty (WGAN-GP) or spectral_norm on every "
                f"weighted layer of D (without: {', '.join(bare)})"))
    ema = Ema(r.ema.decay, r.ema.start) if r.ema is not None else None
    return Objective(t.loss, tuple(penalties), tuple(spectral),
                     r.spectral_norm.iterations if r.spectral_norm is not None else 1, ema)


def d_ending_problem(loss: str, ends_in_probability: bool) -> str | None:
    """What is wrong with D's last layer for `loss`, or None."""
    if loss in PROBABILITY_LOSSES and not ends_in_probability:
        return (f"the {loss} loss reads D's output as a probability: end D in a sigmoid "
                "(or use a loss on raw scores: least_squares, hinge, wasserstein)")
    if loss in SCORE_LOSSES and ends_in_probability:
        return (f"the {loss} loss needs D's raw score, and a sigmoid squashes it into (0, 1): "
                "end D in {type: linear} (or use training.loss: non_saturating)")
    return None


def _spectral_weights(sn: Any, graphs: dict[str, Graph], loaded: Any,
                      problems: list[Problem]) -> list[SpectralWeight]:
    weighted = {g: [n for n in graphs[g].nodes if OPS[n.op].spectral_axis is not None]
                for g in sn.nets}
    if sn.layers is None:
        chosen = [n for g in sn.nets for n in weighted[g]]
        if not chosen:
            problems.append(loaded.problem(
                REGS + ("spectral_norm", "nets"),
                f"{' and '.join(sn.nets)} has no weighted layer (dense, maxout, conv, deconv) "
                "to normalise"))
    else:
        chosen = []
        for i, name in enumerate(sn.layers):
            net = name.split(".", 1)[0]
            where = REGS + ("spectral_norm", "layers", i)
            if net not in sn.nets:
                problems.append(loaded.problem(
                    where, f"{name!r}: give a layer of {' or '.join(sn.nets)} by its full "
                           f"name, e.g. {sn.nets[0]}.h0 (spectral_norm.nets is {sn.nets})"))
                continue
            graph = graphs[net]
            node = next((n for n in graph.nodes if n.name == name), None)
            if node is None:
                names = [n.name for n in weighted[net]]
                problems.append(loaded.problem(
                    where, f"{net} has no layer {name!r}; its weighted layers: "
                           + (", ".join(names) or "none")))
            elif OPS[node.op].spectral_axis is None:
                problems.append(loaded.problem(
                    where, f"{name} is a {node.op.value} layer: it has no weight to normalise "
                           "(dense, maxout, conv and deconv layers have)"))
            elif node in chosen:
                problems.append(loaded.problem(where, f"{name} is listed twice"))
            else:
                chosen.append(node)
    return [SpectralWeight(n.tensors["weight"].name, n.tensors["weight"].shape,
                           OPS[n.op].spectral_axis) for n in chosen]  # type: ignore[arg-type]


# ---- NumPy: initial state, σ, the weights used outside training ------------------------------


def spectral_matrix(w: np.ndarray, axis: int) -> np.ndarray:
    """W as the (rows, cols) matrix spectral norm sees: `axis` first, the rest flattened."""
    return np.moveaxis(np.asarray(w), axis, 0).reshape(w.shape[axis], -1)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), EPS)


def power_iteration(w: np.ndarray, axis: int, u: np.ndarray, iterations: int = 1
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """`iterations` steps of v ← normalize(Mᵀu), u ← normalize(Mv) from u (float64); returns
    u, v and σ = uᵀMv: what a training step does before using W / σ."""
    m = spectral_matrix(np.asarray(w, np.float64), axis)
    u = np.asarray(u, np.float64)
    for _ in range(iterations):
        v = _normalize(m.T @ u)
        u = _normalize(m @ v)
    return u, v, float(u @ m @ v)


def spectral_sigma(w: np.ndarray, axis: int, u: np.ndarray, v: np.ndarray) -> float:
    """σ = uᵀMv from the stored vectors (no iteration): the σ of inference and of a network
    inside the other's step."""
    m = spectral_matrix(np.asarray(w, np.float64), axis)
    return float(np.asarray(u, np.float64) @ m @ np.asarray(v, np.float64))


def initial_vectors(w: np.ndarray, axis: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """u, v to start spectral norm of `w` from: a normalised Gaussian u, then WARM_START power
    iterations, so σ = uᵀMv is near W's largest singular value from the first pass on. (From
    random vectors σ is a random projection, often near 0 or negative: G's first use, in D's
    first update before G's own power iteration, would be scaled by its inverse.)"""
    u0 = _normalize(rng.standard_normal(np.asarray(w).shape[axis]))
    u, v, _ = power_iteration(w, axis, u0, WARM_START)
    return u.astype(np.float32), v.astype(np.float32)


def spectral_vectors(state: dict[str, Any], s: SpectralWeight) -> tuple[Any, Any]:
    """The stored u, v of `s` in a trainer's state; a state with the weight alone (parameters
    only) starts them by `initial_vectors` with a fixed seed, on every backend alike."""
    u, v = state.get(f"spectral/{s.tensor}/u"), state.get(f"spectral/{s.tensor}/v")
    if u is None or v is None:
        return initial_vectors(np.asarray(state[s.tensor], np.float32), s.axis,
                               np.random.default_rng(0))
    return u, v


def init_state(program: Program, rng: np.random.Generator,
               params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The regularisers' initial state, drawn after the parameters (so they are the same
    with or without regularisers): spectral norm's u, v (`initial_vectors`) and the EMA's
    copy of G's trainable tensors."""
    out: dict[str, np.ndarray] = {}
    for s in program.objective.spectral:
        u, v = initial_vectors(params[s.tensor], s.axis, rng)
        out[f"spectral/{s.tensor}/u"], out[f"spectral/{s.tensor}/v"] = u, v
    if program.objective.ema is not None:
        for t in program.G.params():
            out[f"ema/{t.name}"] = np.array(params[t.name], np.float32, copy=True)
    return out


def inference_tensors(program: Program, tensors: dict[str, np.ndarray],
                      raw: bool = False) -> dict[str, np.ndarray]:
    """A checkpoint's tensors as G and D are used outside training: G's trainable tensors
    replaced by their EMA (unless `raw`, or the run has none). Spectral norm stays the
    trainer's to apply (its u, v are kept); `folded` gives plain weights for export."""
    out = dict(tensors)
    if program.objective.ema is not None and not raw:
        for t in program.G.params():
            key = f"ema/{t.name}"
            if key in tensors:
                out[t.name] = tensors[key]
    return out


def weights_used(program: Program, raw: bool = False) -> str:
    """"ema" or "raw": which of G's weights `inference_tensors` gives, for provenance."""
    return "ema" if program.objective.ema is not None and not raw else "raw"


def folded(program: Program, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors with each spectrally normalised weight replaced by W / σ (σ from its stored
    u, v): a network that computes the same without spectral norm (export)."""
    out = dict(tensors)
    for s in program.objective.spectral:
        w = np.asarray(tensors[s.tensor])
        sigma = spectral_sigma(w, s.axis, tensors[f"spectral/{s.tensor}/u"],
                               tensors[f"spectral/{s.tensor}/v"])
        out[s.tensor] = (w.astype(np.float64) / sigma).astype(np.float32)
    return out
