"""The torch backend's batched sweep engine: N members of one program as ONE program, every
tensor stacked along a leading member dimension (members_lower.py lowers its ops), so a step
is one pass for all members. Member i computes what a solo TorchTrainer built with seeds[i]
computes: its own generator draws its noise, labels and dropout masks in the solo order, its
losses are means over its own batch, and the members' losses are summed for one backward (the
parameters are disjoint, so each member's gradient is its solo gradient). `member(i)` gives a
solo trainer's state_dict, so a member's checkpoint is a plain run's.

Spectral norm: each member's power iteration and σ as its solo run computes them
(members_optim.StackedSpectral). Not batched: a distributed run (not asked of a sweep). The gradient penalty and R1 are batched: examples do not interact in a D with a
penalty (the compiler refuses batch-coupled ops there), and neither do members, so ∇x of the
sum of all logits holds each member's each example's gradient.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from advgraph.backend_protocol import METRIC_SUMS, OptimConfig, why_not_one_program
from advgraph.errors import BackendError
from advgraph.ir import Program
from advgraph.ops import BATCH_COUPLED

from .lower import Ctx, Net, label_tensor
from .members_lower import MEMBER_LOWERINGS
from .members_optim import StackedEma, StackedOptimizer, StackedSpectral
from .objective import d_loss, d_output, due_penalties, g_loss, with_penalties


def build_members(programs, device: torch.device, seeds, batch_size,
                  optim) -> "BatchedMembers | None":
    """(TorchBackend.build_members checks the device.)"""
    if not programs or why_not_one_program(programs, optim) is not None:
        return None
    return BatchedMembers(programs[0], device, list(seeds), batch_size, optim[0])


class BatchedMembers:
    engine = "batched"

    def __init__(self, program: Program, device: torch.device, seeds: list[int],
                 batch_size: int, optim: dict[str, OptimConfig]):
        self.program, self.n, self.m = program, len(seeds), batch_size
        self.device = device
        self.gens = [torch.Generator(self.device) for _ in seeds]
        for gen, seed in zip(self.gens, seeds):
            gen.manual_seed(seed)
        self.tensors = {t.name: torch.zeros((self.n, *t.shape), device=self.device,
                                            requires_grad=t.trainable)
                        for t in program.tensors()}
        self.G = Net(program.G, self.tensors, MEMBER_LOWERINGS)
        self.D = Net(program.D, self.tensors, MEMBER_LOWERINGS)
        self._names = {g: [t.name for t in getattr(program, g).params()] for g in ("G", "D")}
        self._params = {g: [self.tensors[n] for n in ns] for g, ns in self._names.items()}
        self.opt = {g: StackedOptimizer(optim[g], self._names[g], self._params[g])
                    for g in ("G", "D")}
        ema = self._names["G"] if program.objective.ema else []
        self.ema = StackedEma(ema, [self.tensors[n] for n in ema])
        self.spectral = StackedSpectral(program.objective, self.tensors, self.n)
        self._train_ctx = Ctx(train=True, update_stats=True, gen=self.gens)  # type: ignore
        self._frozen_ctx = Ctx(train=True, update_stats=False, gen=self.gens)  # type: ignore
        self._eval_ctx = Ctx(train=False, update_stats=False, gen=None)
        self._joint_d = not program.D.has_op(*BATCH_COUPLED)
        self._z = torch.empty((self.n, self.m, program.prior.dim), device=self.device)
        self.classes = program.classes
        self._eye = torch.eye(self.classes, device=self.device) if self.classes else None
        self._metrics = METRIC_SUMS + program.objective.metric_names()
        self._sums = torch.zeros((self.n, len(self._metrics)), device=self.device)
        # per member: D-updates, G-updates, each penalty's applications
        self._counts = [[0] * (len(self._metrics) - 2) for _ in range(self.n)]
        self.active = [True] * self.n
        self.data: Any = None
        self.labels: Any = None
        self.orders: Any = None  # (N, examples): each member's data order, a row each
        self._live = torch.ones(self.n, dtype=torch.bool, device=self.device)

    # ---- data, noise, labels ----------------------------------------------------------------

    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        self.data = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32),
                                    device=self.device)
        if self.classes is not None:
            if y is None or len(y) != len(x):
                raise BackendError("a conditional GAN needs one label per training example")
            self.labels = label_tensor(y, self.classes, self.device)

    def set_order(self, i: int, order: np.ndarray) -> None:
        order = torch.as_tensor(order, dtype=torch.int64, device=self.device)
        if self.orders is None or self.orders.shape[1] != len(order):
            self.orders = torch.empty((self.n, len(order)), dtype=torch.int64, device=self.device)
        self.orders[i] = order

    def noise(self, gens: Sequence[torch.Generator], n: int, out=None) -> torch.Tensor:
        """(len(gens), n, dim): row i drawn by gens[i] as TorchTrainer._noise draws."""
        z = out if out is not None else torch.empty((len(gens), n, self.program.prior.dim),
                                                    device=self.device)
        p = self.program.prior
        for zi, gen in zip(z, gens):
            if p.kind == "uniform":
                zi.uniform_(p.low, p.high, generator=gen)
            else:
                zi.normal_(p.mean, p.std, generator=gen)
        return z

    def _drawn_labels(self, n: int) -> torch.Tensor | None:
        """(N, n, classes) one-hot labels drawn per member from the training labels."""
        if self.classes is None:
            return None
        idx = torch.stack([torch.randint(0, len(self.labels), (n,), generator=g,
                                         device=self.device) for g in self.gens])
        return self._eye[self.labels[idx]]

    def _batch(self, pos: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = self.orders[:, pos:pos + self.m]  # (N, m)
        x = self.data[idx]
        y = self._eye[self.labels[idx]] if self.classes is not None else None
        return x, y

    # ---- steps ------------------------------------------------------------------------------

    def d_step(self, pos: int, lr: Sequence[float], momentum: Sequence[float],
               penalties: Sequence[tuple[str, ...] | None] | None = None) -> None:
        """`penalties`: per member, the kinds due (None: all); members of one program step
        together, so the due ones are alike (member 0's are taken)."""
        x, y = self._batch(pos)
        z = self.noise(self.gens, self.m, self._z)
        due = due_penalties(self.program.objective, penalties[0] if penalties else None)
        if any(p.kind == "r1" for _, p in due):
            x.requires_grad_(True)
        self.spectral.iterate("D")
        params = self.spectral.params(grad="D")  # W / σ once for the whole update
        with torch.no_grad():
            fake = self.G(z, self._train_ctx, y=y, params=params)
        l_real, l_fake = self._d_logits(x, fake, y, params)
        loss = d_loss(self.program.objective.loss, l_real, l_fake, members=True)
        terms = [self._penalty(p, x, fake, y, l_real, params) for _, p in due]
        total = with_penalties(loss, due, terms)
        grads = torch.autograd.grad(self._live_sum(total), self._params["D"])
        self.opt["D"].step(list(grads), lr, momentum)
        with torch.no_grad():
            out = self.program.objective
            self._sums[:, :3] += torch.stack(
                [loss, d_output(out, l_real).flatten(1).mean(1),
                 d_output(out, l_fake).flatten(1).mean(1)], dim=1)
            for (j, _), t in zip(due, terms):
                self._sums[:, len(METRIC_SUMS) + j] += t
        for c in self._counts:
            c[0] += 1
            for j, _ in due:
                c[2 + j] += 1

    def _penalty(self, p, x, fake, y, l_real, params) -> torch.Tensor:
        """(N,): each member's penalty term, as objective.gradient_penalty / r1 compute it."""
        if p.kind == "r1":
            return 0.5 * p.weight * _input_grad(l_real, x).square().sum(2).mean(1)
        shape = (x.shape[1],) + (1,) * (x.dim() - 2)  # one ε per example, as the solo draws
        eps = torch.stack([torch.rand(shape, generator=g, device=x.device) for g in self.gens])
        xh = (eps * x + (1 - eps) * fake).requires_grad_(True)
        logits = self.D(xh, self._train_ctx, logits=True, y=y, params=params)
        norm = torch.linalg.vector_norm(_input_grad(logits, xh), dim=2)
        return p.weight * (norm - p.target).square().mean(1)

    def _d_logits(self, x, fake, y, params) -> tuple[torch.Tensor, torch.Tensor]:
        if self._joint_d:
            yy = torch.cat([y, y], dim=1) if y is not None else None
            logits = self.D(torch.cat([x, fake], dim=1), self._train_ctx, logits=True, y=yy,
                            params=params)
            return logits[:, : x.shape[1]], logits[:, x.shape[1]:]
        return (self.D(x, self._train_ctx, logits=True, y=y, params=params),
                self.D(fake, self._train_ctx, logits=True, y=y, params=params))

    def _live_sum(self, loss: torch.Tensor) -> torch.Tensor:
        """Σ of the live members' losses: a frozen member's NaN gets no gradient into anyone
        (each member's gradient is its own loss's either way: the parameters are disjoint)."""
        return torch.where(self._live, loss, torch.zeros_like(loss)).sum()

    def g_step(self, lr: Sequence[float], momentum: Sequence[float]) -> None:
        z = self.noise(self.gens, self.m, self._z)
        y = self._drawn_labels(self.m)
        self.spectral.iterate("G")
        params = self.spectral.params(grad="G")
        fake = self.G(z, self._train_ctx, y=y, params=params)
        l_fake = self.D(fake, self._frozen_ctx, logits=True, y=y, params=params)
        loss = g_loss(self.program.objective.loss, l_fake, members=True)
        grads = torch.autograd.grad(self._live_sum(loss), self._params["G"])
        self.opt["G"].step(list(grads), lr, momentum)
        with torch.no_grad():
            self._sums[:, 3] += loss
        for c in self._counts:
            c[1] += 1

    def ema_step(self, decay: Sequence[float]) -> None:
        self.ema.step(decay)

    def freeze(self, i: int) -> None:
        self.active[i] = False
        self._live[i] = False

    # ---- metrics ----------------------------------------------------------------------------

    def _finite(self) -> torch.Tensor:
        """(N,) bool: every parameter of the member finite."""
        ps = [p for ps in self._params.values() for p in ps]
        return torch.stack([torch.isfinite(p.detach()).flatten(1).all(1) for p in ps]).all(0)

    def read_metrics(self, reset: bool = True) -> list[dict[str, float]]:
        """Every member's metrics with one host sync."""
        with torch.no_grad():
            both = torch.cat([self._sums, self._finite().float()[:, None]], dim=1).tolist()
        out = [self._metrics_of(i, row[:-1], row[-1]) if self.active[i] else {"finite": 0.0}
               for i, row in enumerate(both)]
        if reset:
            for i in range(self.n):
                self.reset_metrics(i)
        return out

    def _metrics_of(self, i: int, sums: list[float], finite: float) -> dict[str, float]:
        d, *rest = self._counts[i]
        counts = [d, d, d] + rest
        out = {k: v / max(c, 1) for k, v, c in zip(self._metrics, sums, counts)}
        out["finite"] = float(bool(finite))
        return out

    def reset_metrics(self, i: int) -> None:
        self._sums[i].zero_()
        self._counts[i] = [0] * len(self._counts[i])

    def member(self, i: int) -> "Member":
        return Member(self, i)


def _input_grad(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, B, features): ∇x of each member's each example's logit, kept differentiable."""
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return g.flatten(2)


class Member:
    """Member i of a BatchedMembers as a Trainer (state, inference, metrics); its training
    steps are the engine's."""

    def __init__(self, engine: BatchedMembers, i: int):
        self.e, self.i = engine, i

    def _rng_key(self) -> str:
        return f"rng/torch/{self.e.device.type}"

    def state_dict(self) -> dict[str, np.ndarray]:
        e, i = self.e, self.i

        def host(t):
            return t.detach().cpu().numpy().copy()

        out = {n: host(t[i]) for n, t in e.tensors.items()}
        for g in ("G", "D"):
            out.update({k: host(v) for k, v in e.opt[g].state(f"optim/{g}", i).items()})
        out.update({k: host(v) for k, v in e.ema.state(i).items()})
        out.update({k: host(v) for k, v in e.spectral.state(i).items()})
        out[self._rng_key()] = e.gens[i].get_state().numpy().copy()
        out["metrics/sums"] = host(e._sums[i])
        out["metrics/counts"] = np.array(e._counts[i], np.int64)
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        e, i = self.e, self.i
        missing = [n for n in e.tensors if n not in state]
        if missing:
            raise BackendError(f"state lacks {len(missing)} tensor(s), e.g. {missing[0]!r}")
        for n, t in e.tensors.items():
            src = np.asarray(state[n])
            if tuple(src.shape) != tuple(t.shape[1:]):
                raise BackendError(f"{n}: shape {tuple(src.shape)} in the state, "
                                   f"{tuple(t.shape[1:])} in the graph")
            t[i].copy_(torch.as_tensor(src))
        e.ema.load(state, i)
        e.spectral.load(state, i)
        for g in ("G", "D"):
            e.opt[g].load(f"optim/{g}", state, i)
        if self._rng_key() in state:
            e.gens[i].set_state(torch.as_tensor(np.asarray(state[self._rng_key()], np.uint8)))
        if "metrics/sums" in state and "metrics/counts" in state:
            sums = np.asarray(state["metrics/sums"], np.float32).reshape(-1)[: len(e._metrics)]
            e._sums[i].zero_()
            e._sums[i, : len(sums)] = torch.as_tensor(sums)
            width = len(e._counts[i])
            counts = [int(v) for v in np.asarray(state["metrics/counts"]).reshape(-1)[:width]]
            e._counts[i] = counts + [0] * (width - len(counts))

    def read_metrics(self, reset: bool = True) -> dict[str, float]:
        e, i = self.e, self.i
        with torch.no_grad():
            row = torch.cat([e._sums[i], e._finite()[i:i + 1].float()]).tolist()
        out = e._metrics_of(i, row[:-1], row[-1])
        if reset:
            e.reset_metrics(i)
        return out

    def _labels(self, y, n: int) -> torch.Tensor | None:
        e = self.e
        if e.classes is None:
            return None
        if y is None:
            raise BackendError(f"this GAN is conditional on {e.classes} classes: give the labels")
        if len(y) != n:
            raise BackendError(f"{len(y)} labels for {n} examples")
        return e._eye[label_tensor(y, e.classes, e.device)][None]

    def _params(self) -> dict[str, torch.Tensor]:
        """Member i's tensor table (normalised weights as W / σ), as a stack of one."""
        return {n: t[self.i:self.i + 1] for n, t in self.e.spectral.params().items()}

    @torch.no_grad()
    def generate(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        yo = self._labels(y, len(z))
        zt = torch.as_tensor(np.asarray(z, np.float32), device=self.e.device)[None]
        return self.e.G(zt, self.e._eval_ctx, y=yo, params=self._params())[0].cpu().numpy()

    @torch.no_grad()
    def discriminate(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        yo = self._labels(y, len(x))
        xt = torch.as_tensor(np.asarray(x, np.float32), device=self.e.device)[None]
        out = self.e.D(xt, self.e._eval_ctx, y=yo, params=self._params())
        return out.reshape(-1).cpu().numpy()

    def sample_noise(self, n: int) -> np.ndarray:
        return self.e.noise([self.e.gens[self.i]], n)[0].cpu().numpy().copy()
