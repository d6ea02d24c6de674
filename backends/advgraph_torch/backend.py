"""TorchBackend: builds a Trainer that runs Algorithm 1's steps with PyTorch autograd."""

from __future__ import annotations

from typing import Any

import numpy as np

from advgraph.backend_protocol import METRIC_SUMS, OptimConfig
from advgraph.errors import BackendError
from advgraph.ir import Op, Program
from advgraph.ir.objective import LOSSES, PENALTIES
from advgraph.ops import BATCH_COUPLED

REGULARIZERS = PENALTIES + ("spectral_norm", "ema")


class TorchBackend:
    name = "torch"
    distributed = True
    about = "PyTorch autograd: --device cpu or cuda[:N]; data-parallel with --nproc"

    def available(self) -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
        except Exception as e:  # pragma: no cover - depends on the install
            return False, f"torch cannot be imported: {e}"
        return True, ""

    def cuda_available(self) -> bool:
        import torch

        return torch.cuda.is_available()

    def unsupported(self, op: Op) -> str | None:
        from .lower import LOWERINGS, UNSUPPORTED

        return None if op in LOWERINGS else UNSUPPORTED.get(op, "no lowering")

    def unsupported_feature(self, feature: str) -> str | None:
        """Every loss and regulariser trains here, data-parallel too: the power iteration is
        deterministic in weights every rank holds alike, a penalty is a mean over examples
        (so the ranks' mean is the global batch's), the EMA follows identical weights."""
        kind, _, loss = feature.partition(":")
        if (kind == "loss" and loss in LOSSES) or feature in REGULARIZERS:
            return None
        return f"no torch implementation of {feature!r}"

    def build(self, program: Program, device: str, seed: int, batch_size: int,
              optim: dict[str, OptimConfig], dist=None) -> "TorchTrainer":
        return TorchTrainer(program, device, seed, batch_size, optim, dist)

    def build_members(self, programs: list[Program], device: str, seeds: list[int],
                      batch_size: int, optim: list[dict[str, OptimConfig]]):
        """One batched program for all members (members.py), or None when they cannot share
        one (the sweep then trains one TorchTrainer per member)."""
        from .members import build_members

        return build_members(programs, _device(device), seeds, batch_size, optim)


def _device(name: str):
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise BackendError(f"torch: bad device {name!r}: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(f"torch: device {name!r} requested but no CUDA device is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(f"torch: device {name!r} does not exist "
                               f"({torch.cuda.device_count()} CUDA device(s))")
    elif dev.type != "cpu":
        raise BackendError(f"torch: device {name!r} is not supported (use cpu or cuda[:N])")
    return dev


class TorchTrainer:
    def __init__(self, program: Program, device: str, seed: int, batch_size: int,
                 optim: dict[str, OptimConfig], dist=None):
        """`batch_size` is the global m; with `dist` (advgraph.distributed.Dist) this rank
        trains on its slice of every minibatch and gradients are averaged over ranks."""
        import torch

        from .lower import Ctx, Net
        from .objective import Ema, Spectral
        from .optim import Optimizer

        self.torch = torch
        self.program = program
        self.dist = dist
        self.device = _device(dist.device if dist is not None else device)
        world, rank = (dist.world, dist.rank) if dist is not None else (1, 0)
        if batch_size % world:
            raise BackendError(f"batch size {batch_size} does not split evenly over {world} ranks")
        self.m = batch_size // world  # this rank's share
        self.offset = rank * self.m
        self.gen = torch.Generator(self.device)
        self.gen.manual_seed(seed)
        self.tensors: dict[str, torch.Tensor] = {}
        for t in program.tensors():
            self.tensors[t.name] = torch.zeros(t.shape, dtype=torch.float32, device=self.device,
                                               requires_grad=t.trainable)
        self.objective = program.objective
        self.spectral = Spectral(program.objective, self.tensors)
        self.ema = Ema(program, self.tensors)
        self.G = Net(program.G, self.tensors)
        self.D = Net(program.D, self.tensors)
        self._names = {g: [t.name for t in getattr(program, g).params()] for g in ("G", "D")}
        self._params = {g: [self.tensors[n] for n in names] for g, names in self._names.items()}
        self.opt = {g: Optimizer(optim[g], self._names[g], self._params[g]) for g in ("G", "D")}
        self._train_ctx = Ctx(train=True, update_stats=True, gen=self.gen)
        self._frozen_ctx = Ctx(train=True, update_stats=False, gen=self.gen)  # D inside a G step
        self._eval_ctx = Ctx(train=False, update_stats=False, gen=None)
        # Real and fake halves may share one D pass unless an op couples examples of a batch.
        self._joint_d = not program.D.has_op(*BATCH_COUPLED)
        self._z = torch.empty((self.m, program.prior.dim), device=self.device)
        self.classes = program.classes
        self._eye = (torch.eye(program.classes, device=self.device) if program.conditional
                     else None)
        self.labels: Any = None
        self._metrics = METRIC_SUMS + program.objective.metric_names()
        self._sums = torch.zeros(len(self._metrics), device=self.device)
        self._counts = [0] * (len(self._metrics) - 2)  # D-updates, G-updates, each penalty's
        self.data: Any = None
        self.order: Any = None

    # ---- data and noise ---------------------------------------------------------------------

    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        self.data = self.torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32),
                                         device=self.device)
        if self.classes is not None:
            if y is None or len(y) != len(x):
                raise BackendError("a conditional GAN needs one label per training example")
            self.labels = self._label_tensor(y)

    def _label_tensor(self, y) -> Any:
        from .lower import label_tensor

        return label_tensor(y, self.classes, self.device)

    def _one_hot(self, y) -> Any:
        """One-hot rows for label indices (a tensor), or None for an unconditional GAN."""
        return None if self._eye is None else self._eye.index_select(0, y)

    def _labels_for(self, y: np.ndarray | None, n: int) -> Any:
        """The given labels, or n drawn from the training labels (y ~ p_data(y))."""
        if self.classes is None:
            return None
        if y is not None:
            if len(y) != n:
                raise BackendError(f"{len(y)} labels for {n} examples")
            return self._one_hot(self._label_tensor(y))
        idx = self.torch.randint(0, len(self.labels), (n,), generator=self.gen,
                                 device=self.device)
        return self._one_hot(self.labels.index_select(0, idx))

    def _need_labels(self, y: np.ndarray | None, n: int) -> Any:
        if self.classes is not None and y is None:
            raise BackendError(f"this GAN is conditional on {self.classes} classes: give the "
                               "labels")
        return self._labels_for(y, n)

    def set_order(self, order: np.ndarray) -> None:
        self.order = self.torch.as_tensor(order, dtype=self.torch.int64, device=self.device)

    def _noise(self, z: np.ndarray | None, n: int):
        if z is not None:
            return self.torch.as_tensor(z, dtype=self.torch.float32, device=self.device)
        buf = self._z if n == self.m else self.torch.empty((n, self.program.prior.dim),
                                                            device=self.device)
        p = self.program.prior
        if p.kind == "uniform":
            return buf.uniform_(p.low, p.high, generator=self.gen)
        return buf.normal_(p.mean, p.std, generator=self.gen)

    def sample_noise(self, n: int) -> np.ndarray:
        return self._noise(None, n).cpu().numpy().copy()

    # ---- Algorithm 1 steps ------------------------------------------------------------------

    def d_step(self, pos: int, lr: float, momentum: float, z: np.ndarray | None = None,
               penalties: tuple[str, ...] | None = None) -> None:
        torch = self.torch
        from .objective import d_loss, d_output, due_penalties, with_penalties

        start = pos + self.offset
        idx = self.order[start:start + self.m]
        x = self.data.index_select(0, idx)
        # The fake half is conditioned on the real half's labels: y ~ p_data(y) for both.
        y = self._one_hot(self.labels.index_select(0, idx)) if self.classes is not None else None
        z = self._noise(z, self.m)
        due = due_penalties(self.objective, penalties)
        if any(p.kind == "r1" for _, p in due):
            # r1 differentiates the logits of the loss's own pass over the real half in x
            # (as Mescheder et al.'s code does): no second forward.
            x.requires_grad_(True)
        self.spectral.iterate("D")
        params = self.spectral.params(grad="D")  # W / σ once for the whole update
        with torch.no_grad():
            fake = self.G(z, self._train_ctx, y=y, params=params)
        l_real, l_fake = self._d_logits(x, fake, y, params)
        loss = d_loss(self.objective.loss, l_real, l_fake)
        terms = self._penalties(due, x, fake, y, l_real, params)
        total = with_penalties(loss, due, terms)
        grads = list(torch.autograd.grad(total, self._params["D"]))
        if self.dist is not None:
            self.dist.average_(grads)
        self.opt["D"].step(grads, lr, momentum)
        with torch.no_grad():
            out = self.objective
            self._sums[:3] += torch.stack(
                [loss, d_output(out, l_real).mean(), d_output(out, l_fake).mean()])
            for (i, _), t in zip(due, terms):
                self._sums[len(METRIC_SUMS) + i] += t
        self._counts[0] += 1
        for i, _ in due:
            self._counts[2 + i] += 1

    def _d_logits(self, x, fake, y, params) -> tuple[Any, Any]:
        """D's logits (or scores) of the real and the fake half."""
        torch = self.torch
        if self._joint_d:
            yy = torch.cat([y, y]) if y is not None else None
            logits = self.D(torch.cat([x, fake]), self._train_ctx, logits=True, y=yy,
                            params=params)
            return logits[: len(x)], logits[len(x):]
        return (self.D(x, self._train_ctx, logits=True, y=y, params=params),
                self.D(fake, self._train_ctx, logits=True, y=y, params=params))

    def _penalties(self, due, x, fake, y, l_real, params) -> list[Any]:
        """Each due penalty's term (weight included, the lazy factor not)."""
        from .objective import gradient_penalty, r1

        def logits(xx):
            return self.D(xx, self._train_ctx, logits=True, y=y, params=params)

        return [r1(p, l_real, x) if p.kind == "r1" else
                gradient_penalty(p, logits, x, fake, self.gen) for _, p in due]

    def g_step(self, lr: float, momentum: float, z: np.ndarray | None = None,
               y: np.ndarray | None = None) -> None:
        torch = self.torch
        from .objective import g_loss

        z = self._noise(z, self.m)
        yo = self._labels_for(y, self.m)
        self.spectral.iterate("G")
        params = self.spectral.params(grad="G")
        fake = self.G(z, self._train_ctx, y=yo, params=params)
        l_fake = self.D(fake, self._frozen_ctx, logits=True, y=yo, params=params)
        loss = g_loss(self.objective.loss, l_fake)
        grads = list(torch.autograd.grad(loss, self._params["G"]))
        if self.dist is not None:
            self.dist.average_(grads)
        self.opt["G"].step(grads, lr, momentum)
        with torch.no_grad():
            self._sums[3] += loss
        self._counts[1] += 1

    def ema_step(self, decay: float) -> None:
        self.ema.step(decay)

    def read_metrics(self, reset: bool = True) -> dict[str, float]:
        torch = self.torch
        with torch.no_grad():
            finite = torch.stack([torch.isfinite(p).all() for ps in self._params.values()
                                  for p in ps]).all()
            if self.dist is not None:  # every rank's shard counts equally
                self.dist.average_([self._sums])
            s = self._sums.tolist()
        # d_loss, d_real, d_fake per D-update, g_loss per G-update, a penalty per application
        counts = [self._counts[0]] * 3 + self._counts[1:]
        out = {k: v / max(n, 1) for k, v, n in zip(self._metrics, s, counts)}
        out["finite"] = float(bool(finite))
        if reset:  # (after an average over ranks the sums are every rank's mean: still linear)
            self._sums.zero_()
            self._counts = [0] * len(self._counts)
        return out

    # ---- inference --------------------------------------------------------------------------

    def generate(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        yo = self._need_labels(y, len(z))
        with self.torch.no_grad():
            return self.G(self._noise(z, len(z)), self._eval_ctx, y=yo,
                          params=self.spectral.params()).cpu().numpy()

    def discriminate(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        yo = self._need_labels(y, len(x))
        with self.torch.no_grad():
            x = self.torch.as_tensor(np.asarray(x, np.float32), device=self.device)
            return self.D(x, self._eval_ctx, y=yo,
                          params=self.spectral.params()).reshape(-1).cpu().numpy()

    # ---- state ------------------------------------------------------------------------------

    def _rng_key(self) -> str:
        rank = self.dist.rank if self.dist is not None else 0
        return f"rng/torch/{self.device.type}" + (f"/rank{rank}" if rank else "")

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {n: t.detach().cpu().numpy().copy() for n, t in self.tensors.items()}
        for g in ("G", "D"):
            out.update({k: v.cpu().numpy().copy() for k, v in self.opt[g].state(f"optim/{g}").items()})
        out.update({k: v.cpu().numpy().copy()
                    for k, v in {**self.spectral.state(), **self.ema.state()}.items()})
        out[self._rng_key()] = self.gen.get_state().numpy().copy()
        if self.dist is not None:  # collective (save() calls it on every rank): ranks' mean
            self.dist.average_([self._sums])
        out["metrics/sums"] = self._sums.cpu().numpy().copy()
        out["metrics/counts"] = np.array(self._counts, np.int64)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch = self.torch
        missing = [n for n in self.tensors if n not in state]
        if missing:
            raise BackendError(f"state lacks {len(missing)} tensor(s), e.g. {missing[0]!r}")
        with torch.no_grad():
            for n, t in self.tensors.items():
                src = np.asarray(state[n])
                if tuple(src.shape) != tuple(t.shape):
                    raise BackendError(f"{n}: shape {tuple(src.shape)} in the state, "
                                       f"{tuple(t.shape)} in the graph")
                t.copy_(torch.as_tensor(src))
        self.spectral.load(state)
        self.ema.load(state)  # (after θ: without a stored average it starts at θ)
        for g in ("G", "D"):
            self.opt[g].load(f"optim/{g}", state)
        key = self._rng_key()
        if key in state:
            self.gen.set_state(torch.as_tensor(np.asarray(state[key], dtype=np.uint8)).cpu())
        if "metrics/sums" in state and "metrics/counts" in state:
            self._load_metrics(state["metrics/sums"], state["metrics/counts"])

    def _load_metrics(self, sums, counts) -> None:
        """The running sums; a checkpoint from before the penalties holds only the first
        (METRIC_SUMS, and the D- and G-update counts): the penalties' start at zero."""
        sums = np.asarray(sums, np.float32).reshape(-1)[: len(self._sums)]
        counts = [int(v) for v in np.asarray(counts).reshape(-1)[: len(self._counts)]]
        self._sums.zero_()
        self._sums[: len(sums)] = self.torch.as_tensor(sums, device=self.device)
        self._counts = counts + [0] * (len(self._counts) - len(counts))
