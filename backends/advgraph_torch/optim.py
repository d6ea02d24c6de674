"""Optimisers over a list of parameter tensors, with the per-step lr/momentum given by the
training loop. SGD is the original Pylearn2 rule: v ← μ·v − lr·g; θ ← θ + v."""

from __future__ import annotations

import math

import torch

from advgraph.backend_protocol import OptimConfig


class Optimizer:
    def __init__(self, cfg: OptimConfig, names: list[str], params: list[torch.Tensor]):
        self.cfg, self.names, self.params = cfg, names, params
        self.t = 0  # updates so far (Adam's bias correction)
        self.slots: dict[str, list[torch.Tensor]] = {
            slot: [torch.zeros_like(p) for p in params] for slot in cfg.slots}

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: float, momentum: float) -> None:
        self.t += 1
        if self.cfg.kind == "sgd":
            vel = self.slots["velocity"]
            if momentum:
                torch._foreach_mul_(vel, momentum)
                torch._foreach_add_(vel, grads, alpha=-lr)
            else:
                torch._foreach_copy_(vel, grads)
                torch._foreach_mul_(vel, -lr)
            torch._foreach_add_(self.params, vel)
            return
        b1, b2, eps = self.cfg.beta1, self.cfg.beta2, self.cfg.eps
        m, v = self.slots["m"], self.slots["v"]
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(1 - b2 ** self.t))
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(self.params, m, denom, value=-lr / (1 - b1 ** self.t))

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        out = {f"{prefix}/{slot}/{n}": t for slot, ts in self.slots.items()
               for n, t in zip(self.names, ts)}
        out[f"{prefix}/t"] = torch.tensor([self.t], dtype=torch.int64)
        return out

    @torch.no_grad()
    def load(self, prefix: str, state: dict) -> None:
        for slot, ts in self.slots.items():
            for n, t in zip(self.names, ts):
                key = f"{prefix}/{slot}/{n}"
                if key in state:
                    t.copy_(torch.as_tensor(state[key]))
                else:
                    t.zero_()
        if f"{prefix}/t" in state:
            self.t = int(state[f"{prefix}/t"].reshape(-1)[0])
