"""The cupy backend's batched sweep engine: N members of one program as one launch plan
(stacking.py) in one runtime, so that one replay (one CUDA graph on a GPU) runs an iteration
of Algorithm 1 for every member: each GEMM one gemm_batched launch over the members, each
kernel of independent rows one launch over their rows, the rest one launch per member.

Member i computes what a solo CupyTrainer built with seeds[i] computes: its own parameters,
optimiser state, RNG state (so its noise, dropout masks and labels), data order and metrics.
`member(i)` is a CupyTrainer on a view of the shared runtime (member i's copy of every stacked
buffer), so its state_dict, inference and noise draws are a solo trainer's and a member's
checkpoint is a plain run's. Training steps are deferred as CupyTrainer defers them: d_step
records each member's hyperparameters, g_step replays the k recorded D-updates and the
G-update of every member at once.

A frozen (diverged) member is still computed (its kernels are in the captured phase), but
nothing reads its numbers again, and no kernel reads another member's memory, so the others'
numbers do not change because of it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from advgraph.backend_protocol import OptimConfig
from advgraph.errors import BackendError
from advgraph.ir import Program

from . import lowering as L
from . import plan as P
from .codes import METRICS
from .stacking import Stacking
from .trainer import HOST_WRITTEN, CupyTrainer


class MemberRuntime:
    """What a CupyTrainer asks of its Runtime, on member i's copy of every stacked buffer."""

    def __init__(self, rt, stacking: Stacking, i: int):
        self.rt, self.st, self.i = rt, stacking, i

    def ensure(self, plan: P.Plan, sizes: dict[str, int] | None = None) -> None:
        self.rt.ensure(plan, sizes)

    def _base(self, name: str) -> int:
        return self.i * self.st.stride(name)

    def upload(self, name: str, host: np.ndarray, offset: int = 0) -> None:
        if self.st.stacked(name) and offset + np.size(host) > self.st.stride(name):
            raise AssertionError(f"{np.size(host)} elements at {offset} overflow member "
                                 f"{self.i}'s {name}")
        self.rt.upload(name, host, self._base(name) + offset)

    def download(self, name: str, offset: int = 0, size: int | None = None) -> np.ndarray:
        if size is None and self.st.stacked(name):
            size = self.st.stride(name) - offset
        return self.rt.download(name, self._base(name) + offset, size)

    def run(self, key: Any, plan: P.Plan, launches: Callable[[], list[P.Launch]]) -> None:
        self.rt.run(("member", self.i, key), plan, lambda: self.st.shift(launches(), self.i))


class _Member(CupyTrainer):
    """Member i: a solo trainer on its view of the members' runtime. Anything that reads its
    state first runs the D-updates the engine has recorded."""

    def __init__(self, engine: "CupyMembers", i: int, seed: int):
        self.engine = engine
        super().__init__(engine.program, None, seed, engine.m, engine.optim,
                         runtime=MemberRuntime(engine.rt, engine.st, i), plan=engine.solo)

    def flush(self) -> None:
        self.engine.flush()
        super().flush()

    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        raise BackendError("a sweep's members share its data: load it into the sweep")

    def d_step(self, *args, **kwargs) -> None:
        raise BackendError("a sweep's member trains with the others: step the sweep")

    g_step = ema_step = d_step

    def set_order(self, order: np.ndarray) -> None:
        self.engine.set_order(self.rt.i, order)


class CupyMembers:
    engine = "batched"

    def __init__(self, program: Program, executor, seeds: list[int], batch_size: int,
                 optim: dict[str, OptimConfig]):
        from .footprint import check_plan
        from .runtime import Runtime

        self.program, self.m, self.optim, self.n = program, batch_size, optim, len(seeds)
        self.solo = L.lower(program, batch_size, optim)
        check_plan(self.solo)
        self.st = Stacking(self.solo, self.n)
        self.rt = Runtime(executor, host_written=HOST_WRITTEN)
        self.plan = self.st.plan()  # the buffers and their layout; phases are stacked anew
        self.rt.ensure(self.plan)  # before the members: their solo plan finds every buffer
        self.members = [_Member(self, i, s) for i, s in enumerate(seeds)]
        self.active = [True] * self.n
        self.examples = 0
        self._pending: list[tuple[int, np.ndarray]] = []  # (pos, every member's hp slot)

    # ---- data -------------------------------------------------------------------------------

    def load_data(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        self.flush()
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
        sizes = {"data": x.size, "order": self.n * len(x)}
        if self.program.classes is not None:
            if y is None or len(y) != len(x):
                raise BackendError("a conditional GAN needs one label per training example")
            y = self.members[0]._check_labels(y)
            sizes["labels"] = len(y)
        self.st.examples = self.examples = len(x)
        self.rt.ensure(self.plan, sizes)  # a new size drops the captured phases (strides)
        self.rt.upload("data", x)
        if y is not None:
            self.rt.upload("labels", y)
        for mb in self.members:
            mb.n = len(x)

    def set_order(self, i: int, order: np.ndarray) -> None:
        self.flush()  # pending D-updates read the old order
        order = np.asarray(order, dtype=np.int64)
        if len(order) != self.examples:
            raise BackendError(f"an order of {len(order)} indices for {self.examples} examples")
        self.rt.upload("order", order, i * self.examples)

    # ---- Algorithm 1 steps ------------------------------------------------------------------

    def _hps(self, net: str, lr: Sequence[float], momentum: Sequence[float]) -> np.ndarray:
        """(n, 4): every member's hp slot of this update (each counts its own updates)."""
        return np.stack([mb._hp(net, lr[i], momentum[i]) for i, mb in enumerate(self.members)])

    def d_step(self, pos: int, lr: Sequence[float], momentum: Sequence[float],
               penalties: Sequence[tuple[str, ...]] | None = None) -> None:
        if not 0 <= pos <= self.examples - self.m:
            raise BackendError(f"minibatch position {pos} outside 0..{self.examples - self.m}")
        if penalties and any(penalties):
            raise BackendError("the cupy backend applies no gradient penalty")
        hp = self._hps("D", lr, momentum)
        for mb in self.members:
            mb._counts[0] += 1
        self._pending.append((pos, hp))

    def _upload_slots(self, name: str, per_member: np.ndarray) -> None:
        """(n, k, per) into a slotted buffer: member i's k slots at its copy's start."""
        n, k, per = per_member.shape
        full = np.zeros((n, self.st.stride(name) // per, per), per_member.dtype)
        full[:, :k] = per_member
        self.rt.upload(name, full)

    def g_step(self, lr: Sequence[float], momentum: Sequence[float]) -> None:
        hp = self._hps("G", lr, momentum)
        for mb in self.members:
            mb._counts[1] += 1
        pending, self._pending = self._pending, []
        k = len(pending)
        if k:
            if self.solo.grow_slots(k):
                self.rt.ensure(self.st.plan(phases=False))
            self._upload_slots("D.hp", np.stack([h for _, h in pending], axis=1))
            self.rt.upload("pos", np.array([p for p, _ in pending], np.int32))
        self.rt.upload("G.hp", hp)
        self.rt.run(("iteration", k), self.plan,
                    lambda: self.st.launches(self.solo.iteration(k)))

    def flush(self) -> None:
        """Run the recorded D-updates now, one phase each (for every member)."""
        pending, self._pending = self._pending, []
        for pos, hp in pending:
            self._upload_slots("D.hp", hp[:, None])
            self.rt.upload("pos", np.array([pos], np.int32))
            self.rt.run(("d",), self.plan, lambda: self.st.launches(self.solo.d_step))

    def ema_step(self, decay: Sequence[float | None]) -> None:
        if "ema" not in self.solo.phases:
            raise BackendError("ema_step: this program has no training.regularizers.ema")
        if any(d is None for d in decay):  # one program: every member has the EMA
            raise BackendError("ema_step: a decay for every member")
        self.flush()
        self.rt.upload("ema.decay", np.array(decay, np.float32))
        self.rt.run(("ema",), self.plan, lambda: self.st.launches(self.solo.phases["ema"]))

    # ---- metrics ----------------------------------------------------------------------------

    def read_metrics(self, reset: bool = True) -> list[dict[str, float]]:
        """Every member's metrics from one download (after one `finite` replay)."""
        self.flush()
        width, fin = len(METRICS), METRICS.index("finite")
        sums = self.rt.download("metrics").reshape(self.n, width)
        sums[:, fin] = 0  # a fresh count
        self.rt.upload("metrics", sums)
        self.rt.run(("finite",), self.plan, lambda: self.st.launches(self.solo.phases["finite"]))
        sums = self.rt.download("metrics").reshape(self.n, width)
        out = [mb.metrics_of(sums[i]) if self.active[i] else {"finite": 0.0}
               for i, mb in enumerate(self.members)]
        if reset:
            self.rt.run(("reset_metrics",), self.plan,
                        lambda: self.st.launches(self.solo.phases["reset_metrics"]))
            for mb in self.members:
                mb._counts = [0, 0]
        return out

    def freeze(self, i: int) -> None:
        self.active[i] = False

    def member(self, i: int) -> CupyTrainer:
        return self.members[i]
