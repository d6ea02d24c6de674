"""CupyTrainer: the Trainer protocol over the launch plans, on a GPU or on the host executor.

Training steps are deferred so that one iteration is one replay: d_step records its position
and hyperparameters in the next slot; g_step then runs the k recorded D-updates and the
G-update as one captured iteration. Anything that must see the D-updates' effect first (a new data
order, metrics, state, inference, a D-update with given noise) executes the pending ones one
phase at a time, which gives the same result (see plan.py's contract).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advgraph.backend_protocol import METRIC_SUMS, OptimConfig
from advgraph.errors import BackendError
from advgraph.ir import Program

from . import lowering as L
from . import plan as P
from . import regularizer_state
from .codes import METRICS

_BUCKETS = (64, 256, 1024)  # inference batch sizes: a request is split/padded into these
HOST_WRITTEN = ("z", "y.g")  # scratch the trainer uploads (given noise and labels)


class CupyTrainer:
    """`runtime` and `plan`: a runtime of one's own and the plan it runs (a sweep's member, a
    view of the members' shared runtime: members.py); by default, this trainer's."""

    def __init__(self, program: Program, executor, seed: int, batch_size: int,
                 optim: dict[str, OptimConfig], runtime=None, plan: P.Plan | None = None):
        from .footprint import check_plan
        from .runtime import Runtime

        self.program, self.m, self.optim = program, batch_size, optim
        if plan is None:
            plan = L.lower(program, batch_size, optim)
            check_plan(plan)
        self.plan = plan
        self.rt = runtime or Runtime(executor, host_written=HOST_WRITTEN)
        self.rt.ensure(self.plan)
        self.rt.upload("rng", np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, 0, 0],
                                       np.uint32))
        self.classes = program.classes
        self.n = 0  # training examples loaded
        self.t = {"G": 0, "D": 0}  # updates so far (Adam's bias correction)
        self._pending: list[tuple[int, np.ndarray]] = []  # D-updates recorded, not yet run
        self._counts = [0, 0]
        self._infer: dict[tuple[str, int], P.Plan] = {}

    # ---- data -------------------------------------------------------------------------------

    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        self.flush()
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
        sizes = {"data": x.size, "order": len(x)}
        if self.classes is not None:
            if y is None or len(y) != len(x):
                raise BackendError("a conditional GAN needs one label per training example")
            y = self._check_labels(y)
            sizes["labels"] = len(y)
        self.rt.ensure(self.plan, sizes)
        self.rt.upload("data", x)
        if self.classes is not None:
            self.rt.upload("labels", y)
        self.n = len(x)

    def _check_labels(self, y) -> np.ndarray:
        y = np.asarray(y)
        if y.size and y.dtype.kind not in "iu":
            raise BackendError(f"labels must be integers, got {y.dtype}")
        y = y.astype(np.int64).reshape(-1)
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.classes):  # type: ignore[operator]
            raise BackendError(f"labels must lie in 0..{self.classes - 1}")  # type: ignore[operator]
        return y

    def set_order(self, order: np.ndarray) -> None:
        self.flush()  # pending D-updates read the old order
        order = np.asarray(order, dtype=np.int64)
        if len(order) != self.n:
            raise BackendError(f"an order of {len(order)} indices for {self.n} examples")
        self.rt.upload("order", order)

    # ---- Algorithm 1 steps ------------------------------------------------------------------

    def _hp(self, net: str, lr: float, momentum: float) -> np.ndarray:
        self.t[net] += 1
        return P.hparams(self.optim[net], lr, momentum, self.t[net])

    def d_step(self, pos: int, lr: float, momentum: float, z: np.ndarray | None = None,
               penalties: tuple[str, ...] | None = None) -> None:
        if not 0 <= pos <= self.n - self.m:
            raise BackendError(f"minibatch position {pos} outside 0..{self.n - self.m}")
        z = None if z is None else self._noise(z)
        hp = self._hp("D", lr, momentum)
        self._counts[0] += 1
        if z is None:
            self._pending.append((pos, hp))
            return
        self.flush()
        self.rt.upload("z", z)
        self._run_d(pos, hp, given_z=True)

    def g_step(self, lr: float, momentum: float, z: np.ndarray | None = None,
               y: np.ndarray | None = None) -> None:
        z = None if z is None else self._noise(z)
        if y is not None:
            if self.classes is None:
                raise BackendError("labels given to an unconditional GAN")
            y = self._check_labels(y)
            if len(y) != self.m:
                raise BackendError(f"{len(y)} labels for a minibatch of {self.m}")
        hp = self._hp("G", lr, momentum)
        self._counts[1] += 1
        if z is not None or y is not None:
            self.flush()
            if z is not None:
                self.rt.upload("z", z)
            if y is not None:
                self.rt.upload("y.g", self._one_hot(y, self.m))
            self.rt.upload("G.hp", hp)
            skip = ({"noise"} if z is not None else set()) | ({"draw_onehot"} if y is not None
                                                              else set())
            self.rt.run(("g", tuple(sorted(skip))), self.plan,
                        lambda: [l for l in self.plan.g_step if l.kernel not in skip])
            return
        k = len(self._pending)
        self.rt.upload("G.hp", hp)
        if k:
            if self.plan.grow_slots(k):
                self.rt.ensure(self.plan)
            self.rt.upload("D.hp", np.concatenate([h for _, h in self._pending]))
            self.rt.upload("pos", np.array([p for p, _ in self._pending], np.int32))
            self._pending.clear()
        self.rt.run(("iteration", k), self.plan, lambda: self.plan.iteration(k))

    def _run_d(self, pos: int, hp: np.ndarray, given_z: bool = False) -> None:
        self.rt.upload("D.hp", hp)
        self.rt.upload("pos", np.array([pos], np.int32))
        self.rt.run(("d", given_z), self.plan,
                    lambda: [l for l in self.plan.d_step if not (given_z and l.kernel == "noise")])

    def ema_step(self, decay: float) -> None:
        if "ema" not in self.plan.phases:
            raise BackendError("ema_step: this program has no training.regularizers.ema")
        self.flush()
        self.rt.upload("ema.decay", np.array([decay], np.float32))
        self.rt.run("ema", self.plan, lambda: self.plan.phases["ema"])

    def flush(self) -> None:
        """Run the recorded D-updates now, one phase each."""
        pending, self._pending = self._pending, []
        for pos, hp in pending:
            self._run_d(pos, hp)

    def _noise(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32)
        if z.shape != (self.m, self.program.prior.dim):
            raise BackendError(f"noise of shape {z.shape}; the step needs "
                               f"({self.m}, {self.program.prior.dim})")
        return z

    def read_metrics(self, reset: bool = True) -> dict[str, float]:
        self.flush()
        fin = METRICS.index("finite")
        self.rt.upload("metrics", np.zeros(1, np.float32), fin)  # a fresh count
        self.rt.run("finite", self.plan, lambda: self.plan.phases["finite"])
        out = self.metrics_of(self.rt.download("metrics"))
        if reset:
            self.rt.run("reset_metrics", self.plan, lambda: self.plan.phases["reset_metrics"])
            self._counts = [0, 0]
        return out

    def metrics_of(self, sums: np.ndarray) -> dict[str, float]:
        """The metrics from the `metrics` buffer's sums and this trainer's update counts."""
        s = sums.astype(np.float64)
        nd, ng = max(self._counts[0], 1), max(self._counts[1], 1)
        i = METRICS.index
        out = {"d_loss": s[i("d_loss")] / nd, "d_real": s[i("d_real")] / nd,
               "d_fake": s[i("d_fake")] / nd, "g_loss": s[i("g_loss")] / ng,
               "finite": float(s[i("finite")] == 0)}
        return {k: float(v) for k, v in out.items()}

    # ---- inference --------------------------------------------------------------------------

    def _one_hot(self, y: np.ndarray, rows: int) -> np.ndarray:
        out = np.zeros((rows, self.classes), np.float32)  # type: ignore[arg-type]
        out[np.arange(len(y)), y] = 1.0
        return out

    def _forward(self, net: str, inp: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        want = self.program.prior.dim if net == "G" else int(np.prod(self.program.data_shape))
        if inp.ndim != 2 or inp.shape[1] != want:
            raise BackendError(f"{net} takes rows of {want} values; got an array of shape "
                               f"{inp.shape}")
        self.flush()
        if self.classes is not None:
            if y is None:
                raise BackendError(f"this GAN is conditional on {self.classes} classes: give "
                                   "the labels")
            y = self._check_labels(y)
            if len(y) != len(inp):
                raise BackendError(f"{len(y)} labels for {len(inp)} examples")
        outs, start = [], 0
        while start < len(inp):
            left = len(inp) - start
            rows = next((b for b in _BUCKETS if b >= left), _BUCKETS[-1])
            n = min(rows, left)
            plan = self._infer.get((net, rows))
            if plan is None:
                plan = self._infer[(net, rows)] = L.lower_inference(self.program, net, rows)
                self.rt.ensure(plan)
            chunk = np.zeros((rows, inp.shape[1]), np.float32)
            chunk[:n] = inp[start:start + n]
            src = plan.io["z" if net == "G" else "x"]
            self.rt.upload(src.name, chunk)
            if y is not None:
                self.rt.upload(plan.io["y"].name, self._one_hot(y[start:start + n], rows))
            self.rt.run(("forward", net, rows), plan, lambda: plan.phases["forward"])
            out = plan.io["out"]
            outs.append(self.rt.download(out.name, 0, out.extent).reshape(rows, -1)[:n])
            start += n
        width = outs[0].shape[1] if outs else 0
        return np.concatenate(outs) if outs else np.zeros((0, width), np.float32)

    def generate(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        z = np.asarray(z, np.float32)
        z = z.reshape(len(z), -1) if z.ndim >= 2 else z
        out = self._forward("G", z, y)
        return out.reshape(len(z), *self.program.G.out_shape)

    def discriminate(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32)
        x = x.reshape(len(x), -1) if x.ndim >= 2 else x
        return self._forward("D", x, y).reshape(-1)

    def sample_noise(self, n: int) -> np.ndarray:
        """n draws from the prior by the noise kernel, with the trainer's RNG stream."""
        pr = self.program.prior
        key = ("noise", n)
        plan = self._infer.get(key)
        if plan is None:
            plan = P.Plan(buffers=dict(self.plan.buffers))
            z = plan.buffer(f"noise{n}", "float32", n * pr.dim, "host_out")
            plan.phases["noise"] = [
                P.noise_launch(z, n, pr, plan.view("rng"), np.uint32(0xFFFF)),
                P.Launch("advance_rng", (1, 1, 1), (1, 1, 1), (plan.view("rng"), P.i32(1)),
                         "")]
            self._infer[key] = plan
            self.rt.ensure(plan)
        self.flush()
        self.rt.run(key, plan, lambda: plan.phases["noise"])
        return self.rt.download(f"noise{n}").reshape(n, pr.dim)

    # ---- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        self.flush()
        out: dict[str, np.ndarray] = {}
        for net in ("G", "D"):
            flat = {s: self.rt.download(f"{net}.{s}") for s in ("params", *self.optim[net].slots)}
            for t in getattr(self.program, net).params():
                _, off, size = self.plan.param_offsets[t.name]
                out[t.name] = flat["params"][off:off + size].reshape(t.shape).copy()
                for s in self.optim[net].slots:
                    out[f"optim/{net}/{s}/{t.name}"] = \
                        flat[s][off:off + size].reshape(t.shape).copy()
            if f"{net}.stats" in self.plan.buffers:  # batchnorm's running statistics
                stats = self.rt.download(f"{net}.stats")
                for t in getattr(self.program, net).tensors():
                    if not t.trainable:
                        _, off, size = self.plan.param_offsets[t.name]
                        out[t.name] = stats[off:off + size].reshape(t.shape).copy()
            out[f"optim/{net}/t"] = np.array([self.t[net]], np.int64)
        out.update(regularizer_state.download(self.program, self.plan, self.rt))
        out["rng/cupy"] = self.rt.download("rng")
        out["metrics/sums"] = self.rt.download("metrics", 0, len(METRIC_SUMS))
        out["metrics/counts"] = np.array(self._counts, np.int64)
        return out

    def _stats(self, net: str, state: dict[str, Any]) -> np.ndarray:
        """The net's running statistics from a state, as its flat `stats` buffer."""
        flat = np.zeros(self.plan.buffers[f"{net}.stats"].size, np.float32)
        for t in getattr(self.program, net).tensors():
            if not t.trainable:
                _, off, n = self.plan.param_offsets[t.name]
                src = np.asarray(state[t.name])
                if tuple(src.shape) != tuple(t.shape):
                    raise BackendError(f"{t.name}: shape {tuple(src.shape)} in the state, "
                                       f"{tuple(t.shape)} in the graph")
                flat[off:off + n] = src.reshape(-1)
        return flat

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.flush()
        names = [t.name for t in self.program.tensors()]
        missing = [n for n in names if n not in state]
        if missing:
            raise BackendError(f"state lacks {len(missing)} tensor(s), e.g. {missing[0]!r}")
        g_params = np.zeros(0, np.float32)  # G's, flat: an EMA missing from the state starts as θ
        for net in ("G", "D"):
            size = self.plan.buffers[f"{net}.params"].size
            flat = {s: np.zeros(size, np.float32) for s in ("params", *self.optim[net].slots)}
            for t in getattr(self.program, net).params():
                _, off, n = self.plan.param_offsets[t.name]
                src = np.asarray(state[t.name])
                if tuple(src.shape) != tuple(t.shape):
                    raise BackendError(f"{t.name}: shape {tuple(src.shape)} in the state, "
                                       f"{tuple(t.shape)} in the graph")
                flat["params"][off:off + n] = src.reshape(-1)
                for s in self.optim[net].slots:
                    key = f"optim/{net}/{s}/{t.name}"
                    if key in state:
                        slot = np.asarray(state[key])
                        if tuple(slot.shape) != tuple(t.shape):
                            raise BackendError(f"{key}: shape {tuple(slot.shape)} in the state, "
                                               f"{tuple(t.shape)} expected")
                        flat[s][off:off + n] = slot.astype(np.float32).reshape(-1)
            for s, arr in flat.items():
                self.rt.upload(f"{net}.{s}", arr)
            if net == "G":
                g_params = flat["params"]
            if f"{net}.stats" in self.plan.buffers:
                self.rt.upload(f"{net}.stats", self._stats(net, state))
            if f"optim/{net}/t" in state:
                self.t[net] = int(np.asarray(state[f"optim/{net}/t"]).reshape(-1)[0])
        regularizer_state.upload(self.program, self.plan, self.rt, state, g_params)
        if "rng/cupy" in state:
            rng = np.asarray(state["rng/cupy"])
            if rng.shape != (4,) or rng.dtype != np.uint32:
                raise BackendError(f"rng/cupy: {rng.dtype} {rng.shape} in the state; four "
                                   "uint32 (seed, offset) expected")
            self.rt.upload("rng", rng)
        if "metrics/sums" in state and "metrics/counts" in state:
            self.rt.upload("metrics",
                           np.asarray(state["metrics/sums"], np.float32)[:len(METRIC_SUMS)])
            self._counts = [int(v) for v in np.asarray(state["metrics/counts"]).reshape(-1)[:2]]
