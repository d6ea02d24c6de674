"""The objective on torch: the five losses on D's logits or scores, spectral norm's power
iteration and W / σ, the gradient penalties, the EMA of G's weights.

What each computes is defined by advgraph.reference.loss_values and advgraph.ir.objective (and
checked against advgraph.objective's NumPy); this module only says it in torch.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from advgraph.errors import BackendError
from advgraph.ir import Objective, Penalty, Program, SpectralWeight
from advgraph.objective import EPS, spectral_vectors

# ---- losses ----------------------------------------------------------------------------------


def _mean(t: torch.Tensor, members: bool) -> torch.Tensor:
    """The mean over a batch; with `members`, one per member of a stacked (N, B, ...) batch."""
    return t.flatten(1).mean(1) if members else t.mean()


def d_loss(loss: str, l_real: torch.Tensor, l_fake: torch.Tensor,
           members: bool = False) -> torch.Tensor:
    """D's loss, as reference.loss_values (BCE through the logit for the probability losses:
    softplus never overflows where log(sigmoid) would); `members`: one per stacked member."""
    def mean(t):
        return _mean(t, members)

    if loss in ("minimax", "non_saturating"):
        return mean(F.softplus(-l_real)) + mean(F.softplus(l_fake))
    if loss == "least_squares":
        return 0.5 * mean((l_real - 1).square()) + 0.5 * mean(l_fake.square())
    if loss == "hinge":
        return mean(torch.relu(1 - l_real)) + mean(torch.relu(1 + l_fake))
    if loss == "wasserstein":
        return mean(l_fake) - mean(l_real)
    raise ValueError(f"not a loss: {loss!r}")


def g_loss(loss: str, l_fake: torch.Tensor, members: bool = False) -> torch.Tensor:
    """G's loss on D's logits/scores of its samples, as reference.loss_values."""
    def mean(t):
        return _mean(t, members)

    if loss == "non_saturating":
        return mean(F.softplus(-l_fake))  # −log D(G(z))
    if loss == "minimax":
        return -mean(F.softplus(l_fake))  # log(1 − D(G(z)))
    if loss == "least_squares":
        return 0.5 * mean((l_fake - 1).square())
    if loss in ("hinge", "wasserstein"):
        return -mean(l_fake)
    raise ValueError(f"not a loss: {loss!r}")


def d_output(objective: Objective, logits: torch.Tensor) -> torch.Tensor:
    """D's output from its logits: the probability, or the raw score itself."""
    return logits if objective.raw_score else torch.sigmoid(logits)


# ---- spectral norm ---------------------------------------------------------------------------


def matrix(w: torch.Tensor, axis: int) -> torch.Tensor:
    """W as spectral norm sees it (objective.spectral_matrix): `axis` first, rest flattened."""
    return w.movedim(axis, 0).reshape(w.shape[axis], -1)


class Spectral:
    """The u, v of each spectrally normalised weight, and the weights as the nets use them."""

    def __init__(self, objective: Objective, tensors: dict[str, torch.Tensor]):
        self.weights: tuple[SpectralWeight, ...] = objective.spectral
        self.iterations = objective.spectral_iterations
        self.tensors = tensors
        dev = next(iter(tensors.values())).device if tensors else None
        self.u = {s.tensor: torch.zeros(s.rows, device=dev) for s in self.weights}
        self.v = {s.tensor: torch.zeros(s.cols, device=dev) for s in self.weights}

    @torch.no_grad()
    def iterate(self, net: str) -> None:
        """The power iteration that starts an update of `net` (u, v kept for the next)."""
        for s in self.weights:
            if s.net == net:
                self.power(matrix(self.tensors[s.tensor], s.axis), self.u[s.tensor],
                           self.v[s.tensor])

    def power(self, m: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> None:
        """`iterations` steps of the power iteration on M, u and v updated in place."""
        for _ in range(self.iterations):
            v.copy_(F.normalize(m.t() @ u, dim=0, eps=EPS))
            u.copy_(F.normalize(m @ v, dim=0, eps=EPS))

    def sigma(self, s: SpectralWeight, w: torch.Tensor) -> torch.Tensor:
        """σ = uᵀMv, u and v constants: autograd gives ∂σ/∂W = u vᵀ (reshaped as W)."""
        return self.u[s.tensor] @ (matrix(w, s.axis) @ self.v[s.tensor])

    def params(self, grad: str | None = None) -> dict[str, torch.Tensor]:
        """The tensor table with each normalised weight as W / σ: differentiable for the net
        `grad` (the one being updated), constants for the other."""
        if not self.weights:
            return self.tensors
        out = dict(self.tensors)
        for s in self.weights:
            w = self.tensors[s.tensor]
            with torch.set_grad_enabled(s.net == grad and torch.is_grad_enabled()):
                out[s.tensor] = w / self.sigma(s, w)
        return out

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for s in self.weights:
            out[f"spectral/{s.tensor}/u"] = self.u[s.tensor]
            out[f"spectral/{s.tensor}/v"] = self.v[s.tensor]
        return out

    @torch.no_grad()
    def load(self, state: dict[str, Any]) -> None:
        """Stored vectors; a state without them (parameters alone) starts them as
        objective.spectral_vectors says (after the weights are loaded)."""
        for s in self.weights:
            load_vectors(state, s, self.tensors[s.tensor], self.u[s.tensor], self.v[s.tensor])


@torch.no_grad()
def load_vectors(state: dict[str, Any], s: SpectralWeight, weight: torch.Tensor,
                 u: torch.Tensor, v: torch.Tensor) -> None:
    """u and v of the normalised weight `s` from `state` (from `weight`, the trainer's own,
    where the state has neither the vectors nor the weight)."""
    if s.tensor not in state:
        state = {**state, s.tensor: weight.detach().cpu().numpy()}
    for part, src, t in zip("uv", spectral_vectors(state, s), (u, v)):
        src = np.asarray(src, np.float32).reshape(-1)
        if src.shape != tuple(t.shape):
            raise BackendError(f"spectral/{s.tensor}/{part}: shape {src.shape} in the state, "
                               f"{tuple(t.shape)} in the graph")
        t.copy_(torch.as_tensor(src))


# ---- penalties -------------------------------------------------------------------------------

# logits(x) → D's logits/scores of a batch x (differentiable in x and D's weights).
Logits = Callable[[torch.Tensor], torch.Tensor]


def input_grad(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∇x of each example's logit, flattened per example, kept differentiable (create_graph):
    D's update descends the penalty through it. Examples do not interact in D (the compiler
    refuses batch-coupled ops with a penalty), so ∇x Σ_i l_i holds each ∇x_i l_i."""
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return g.reshape(len(g), -1)


def due_penalties(objective: Objective, kinds) -> list[tuple[int, Penalty]]:
    """The penalties a D-update applies, with their index: those of a kind in `kinds` (None:
    all, e.g. every `every` steps the lazy schedule says)."""
    return [(i, p) for i, p in enumerate(objective.penalties) if kinds is None or p.kind in kinds]


def with_penalties(loss, due: list[tuple[int, Penalty]], terms: list) -> Any:
    """The loss plus each due penalty's term times its lazy factor (`every`)."""
    return loss + sum(p.every * t for (_, p), t in zip(due, terms)) if terms else loss


def gradient_penalty(p: Penalty, D: Logits, x: torch.Tensor, fake: torch.Tensor,
                     gen: torch.Generator) -> torch.Tensor:
    """weight·mean_i (‖∇x̂ D(x̂_i)‖ − target)², x̂ = εx + (1 − ε)x_fake, ε ~ U(0, 1) per example."""
    eps = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=gen, device=x.device)
    xh = (eps * x + (1 - eps) * fake).requires_grad_(True)
    norm = torch.linalg.vector_norm(input_grad(D(xh), xh), dim=1)
    return p.weight * (norm - p.target).square().mean()


def r1(p: Penalty, l_real: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """weight/2·mean_i ‖∇x D(x_i)‖², on the logits of D's pass over the real batch `x`."""
    return 0.5 * p.weight * input_grad(l_real, x).square().sum(dim=1).mean()


# ---- EMA -------------------------------------------------------------------------------------


class Ema:
    """ema/<tensor> for each of G's trainable tensors."""

    def __init__(self, program: Program, tensors: dict[str, torch.Tensor]):
        self.names = [t.name for t in program.G.params()] if program.objective.ema else []
        self.params = [tensors[n] for n in self.names]
        self.avg = [torch.zeros_like(t, requires_grad=False) for t in self.params]

    @torch.no_grad()
    def step(self, decay: float) -> None:
        """ema ← decay·ema + (1 − decay)·θ (decay 0: a copy of θ)."""
        if not self.avg:
            return
        if decay == 0.0:
            torch._foreach_copy_(self.avg, self.params)
        else:
            torch._foreach_mul_(self.avg, decay)
            torch._foreach_add_(self.avg, self.params, alpha=1.0 - decay)

    def state(self) -> dict[str, torch.Tensor]:
        return {f"ema/{n}": t for n, t in zip(self.names, self.avg)}

    @torch.no_grad()
    def load(self, state: dict[str, Any]) -> None:
        """Stored averages; without them (parameters alone) the average starts at θ."""
        for n, avg, theta in zip(self.names, self.avg, self.params):
            src = state.get(f"ema/{n}")
            if src is None:
                avg.copy_(theta)
                continue
            src = np.asarray(src, np.float32)
            if tuple(src.shape) != tuple(avg.shape):
                raise BackendError(f"ema/{n}: shape {tuple(src.shape)} in the state, "
                                   f"{tuple(avg.shape)} in the graph")
            avg.copy_(torch.as_tensor(src))
