"""The optimisers and the EMA of optim.py and objective.py over stacked members (N, *shape),
each member with its own lr, momentum and decay (tensors shaped (N, 1, ...) that broadcast);
Adam's t is shared, since all members step together. Each per-member update rounds as the
solo one does (checked bit for bit by the tests)."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from advgraph.backend_protocol import OptimConfig

from .objective import Spectral, load_vectors, matrix


def per_member(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """(N,) float32 of one value per member on `like`'s device: one host copy an update,
    shaped for each tensor by `against`."""
    return torch.tensor(list(values), dtype=torch.float32, device=like.device)


def against(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The (N,) values `t` as (N, 1, ..., 1), broadcasting against `like`."""
    return t.view(-1, *([1] * (like.dim() - 1)))


class StackedOptimizer:
    def __init__(self, cfg: OptimConfig, names: list[str], params: list[torch.Tensor]):
        self.cfg, self.names, self.params = cfg, names, params
        self.t = 0
        self.slots: dict[str, list[torch.Tensor]] = {
            slot: [torch.zeros_like(p) for p in params] for slot in cfg.slots}

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: Sequence[float],
             momentum: Sequence[float]) -> None:
        self.t += 1
        if not self.params:
            return
        first = self.params[0]
        if self.cfg.kind == "sgd":
            mom, neg_lr = per_member(momentum, first), per_member([-a for a in lr], first)
            for p, v, g in zip(self.params, self.slots["velocity"], grads):
                # v ← μ·v − lr·g (μ = 0: v·0 + (−lr·g) = −lr·g exactly, for a finite v)
                # addcmul rounds as optim.py's add_(alpha=−lr) (one fused rounding); g·t + v
                # would round twice
                v.mul_(against(mom, v)).addcmul_(g, against(neg_lr, g))
                p.add_(v)
            return
        b1, b2, eps = self.cfg.beta1, self.cfg.beta2, self.cfg.eps
        corr = math.sqrt(1 - b2 ** self.t)
        # in double, as optim.py's value=
        steps = per_member([-a / (1 - b1 ** self.t) for a in lr], first)
        for p, m, v, g in zip(self.params, self.slots["m"], self.slots["v"], grads):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = v.sqrt().div_(corr).add_(eps)
            p.add_(against(steps, m) * m / denom)  # addcdiv's (value·m)/denom

    def state(self, prefix: str, i: int) -> dict[str, torch.Tensor]:
        out = {f"{prefix}/{slot}/{n}": t[i] for slot, ts in self.slots.items()
               for n, t in zip(self.names, ts)}
        out[f"{prefix}/t"] = torch.tensor([self.t], dtype=torch.int64)
        return out

    @torch.no_grad()
    def load(self, prefix: str, state: dict, i: int) -> None:
        """Member i's slots; `t` is shared: the last member loaded sets it."""
        for slot, ts in self.slots.items():
            for n, t in zip(self.names, ts):
                key = f"{prefix}/{slot}/{n}"
                if key in state:
                    t[i].copy_(torch.as_tensor(state[key]))
                else:
                    t[i].zero_()
        if f"{prefix}/t" in state:
            self.t = int(state[f"{prefix}/t"].reshape(-1)[0])


class StackedEma:
    """ema/<tensor> of G's trainable tensors, per member: ema ← d·ema + (1 − d)·θ."""

    def __init__(self, names: list[str], params: list[torch.Tensor]):
        self.names, self.params = names, params
        self.avg = [torch.zeros_like(t, requires_grad=False) for t in params]

    @torch.no_grad()
    def step(self, decay: Sequence[float]) -> None:
        if not self.avg:
            return
        d, rest = per_member(decay, self.avg[0]), per_member([1 - d for d in decay], self.avg[0])
        for avg, theta in zip(self.avg, self.params):
            # decay 0: ema·0 + θ·1 = θ, the solo copy (for a finite ema)
            avg.mul_(against(d, avg)).addcmul_(theta, against(rest, avg))

    def state(self, i: int) -> dict[str, torch.Tensor]:
        return {f"ema/{n}": t[i] for n, t in zip(self.names, self.avg)}

    @torch.no_grad()
    def load(self, state: dict, i: int) -> None:
        from advgraph.errors import BackendError

        for n, avg, theta in zip(self.names, self.avg, self.params):
            src = state.get(f"ema/{n}")
            if src is None:
                avg[i].copy_(theta[i])
                continue
            if tuple(src.shape) != tuple(avg.shape[1:]):
                raise BackendError(f"ema/{n}: shape {tuple(src.shape)} in the state, "
                                   f"{tuple(avg.shape[1:])} in the graph")
            avg[i].copy_(torch.as_tensor(src))


class StackedSpectral(Spectral):
    """objective.Spectral over stacked members: each normalised weight's u (N, rows) and
    v (N, cols), and W / σ per member. Each member's power iteration and σ are the solo's
    matrix-vector products, one member after another: a batched product rounds otherwise (an
    ulp in σ), and training compounds that (4e-3 after 40 steps), where these are bit for bit
    the solo run's. They are a few small products per normalised weight."""

    def __init__(self, objective, tensors: dict[str, torch.Tensor], n: int):
        super().__init__(objective, tensors)
        self.u = {k: u.expand(n, -1).clone() for k, u in self.u.items()}
        self.v = {k: v.expand(n, -1).clone() for k, v in self.v.items()}

    @torch.no_grad()
    def iterate(self, net: str) -> None:
        for s in self.weights:
            if s.net == net:
                for w, u, v in zip(self.tensors[s.tensor], self.u[s.tensor], self.v[s.tensor]):
                    self.power(matrix(w, s.axis), u, v)

    def sigma(self, s, w: torch.Tensor) -> torch.Tensor:
        """(N, 1, …): each member's uᵀMv, broadcasting against the stacked weight."""
        sigma = torch.stack([u @ (matrix(wi, s.axis) @ v) for wi, u, v in
                             zip(w, self.u[s.tensor], self.v[s.tensor])])
        return sigma.view(-1, *([1] * (w.dim() - 1)))

    def state(self, i: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {f"spectral/{s.tensor}/{part}": getattr(self, part)[s.tensor][i]
                for s in self.weights for part in "uv"}

    def load(self, state: dict, i: int) -> None:  # type: ignore[override]
        """Member i's u, v (started from member i's weight, loaded before, when absent)."""
        for s in self.weights:
            load_vectors(state, s, self.tensors[s.tensor][i], self.u[s.tensor][i],
                         self.v[s.tensor][i])
