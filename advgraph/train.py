"""Algorithm 1 over the Backend protocol: schedules, data order, checkpoints, metrics.

One *step* is one iteration of Algorithm 1: k D-updates, each on a fresh minibatch of m
examples and m noise samples, then one G-update on fresh noise. An *epoch* is one pass over the
(shuffled) training set by the D-updates' minibatches.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from pydantic import ValidationError

from . import __version__
from .atomic import atomic_write
from .backend import OptimConfig, Trainer, check_supported, get_backend
from .compile import compile_spec
from .data import Splits, load_data
from .errors import AdvGraphError, CheckpointError, RunError, TrainingDiverged, UsageError
from .ir import Program
from .params import init_params
from .runs import RunDir
from .spec import LoadedSpec, dump_resolved, load_file
from .spec.gan import SGD, Adam, Cifar10Data, GanSpec, IdxData, MomentumRamp, NpzData, TfdData

# ---- schedules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """lr and momentum for the t-th update (t from 0) in a given completed-epoch count."""

    opt: SGD | Adam

    def lr(self, t: int) -> float:
        if isinstance(self.opt, SGD):
            # lr / decay^t in log space: decay^t overflows a float long before a run ends.
            return max(self.opt.lr * math.exp(-t * math.log(self.opt.lr_decay)), self.opt.min_lr)
        return self.opt.lr

    def momentum(self, epoch: int) -> float:
        if isinstance(self.opt, Adam):
            return 0.0
        mom = self.opt.momentum
        if not isinstance(mom, MomentumRamp):
            return float(mom)
        # Pylearn2's MomentumAdjustor: init until `start`, linear to `final` at `saturate`.
        alpha = min(max((epoch - mom.start) / (mom.saturate - mom.start), 0.0), 1.0)
        return (1 - alpha) * mom.init + alpha * mom.final

    def config(self) -> OptimConfig:
        if isinstance(self.opt, Adam):
            return OptimConfig("adam", self.opt.beta1, self.opt.beta2, self.opt.eps)
        return OptimConfig("sgd")


# ---- data order -----------------------------------------------------------------------------


class DataStream:
    """Epochs of shuffled minibatch positions; the partial batch at an epoch's end is dropped."""

    def __init__(self, n: int, m: int, rng: np.random.Generator):
        self.n, self.m, self.rng = n, m, rng
        self.per_epoch = n // m
        self.batches = 0  # minibatches drawn so far
        self.order = rng.permutation(n)

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.batches // self.per_epoch

    @property
    def epoch_float(self) -> float:
        return self.batches / self.per_epoch

    def next(self, trainer: Trainer) -> int:
        i = self.batches % self.per_epoch
        if i == 0 and self.batches > 0:
            self.order = self.rng.permutation(self.n)
            trainer.set_order(self.order)
        self.batches += 1
        return i * self.m

    def state(self) -> dict[str, Any]:
        return {"batches": self.batches, "rng": self.rng.bit_generator.state}

    def restore(self, state: dict[str, Any], order: np.ndarray) -> None:
        self.batches = int(state["batches"])
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(order, dtype=np.int64)


# ---- setup ----------------------------------------------------------------------------------


@dataclass
class Session:
    """Everything a training run needs, built from a spec."""

    spec: GanSpec
    program: Program
    splits: Splits
    trainer: Trainer
    stream: DataStream
    sched: dict[str, Schedule]
    updates: dict[str, int] = field(default_factory=lambda: {"D": 0, "G": 0})
    step: int = 0
    elapsed: float = 0.0
    dist: Any = None  # advgraph.distributed.Dist when data-parallel

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main


def seeds(seed: int) -> tuple[np.random.Generator, np.random.Generator, int]:
    """Independent streams for parameter init, data order, and the backend's noise/dropout."""
    init_ss, data_ss, backend_ss = np.random.SeedSequence(seed).spawn(3)
    return (np.random.default_rng(init_ss), np.random.default_rng(data_ss),
            int(backend_ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))


def absolute_paths(spec: GanSpec, base_dir: Path) -> GanSpec:
    """Make data paths absolute, so the run's copy of the spec works from anywhere."""
    from .data.registry import resolve_path

    data = spec.data
    if isinstance(data, NpzData) or (isinstance(data, TfdData) and data.path):
        data = data.model_copy(update={"path": str(resolve_path(data.path, base_dir).resolve())})
    elif isinstance(data, (IdxData, Cifar10Data)) and data.root:
        data = data.model_copy(update={"root": str(resolve_path(data.root, base_dir).resolve())})
    return spec.model_copy(update={"data": data})


def rank_seed(seed: int, rank: int) -> int:
    """The backend seed (noise, dropout) of a rank; rank 0 keeps the single-process one."""
    if rank == 0:
        return seeds(seed)[2]
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def make_trainer(loaded: LoadedSpec, backend_name: str, device: str, dist=None
                 ) -> tuple[Program, Trainer, dict[str, Schedule]]:
    """Compile the spec and build an (uninitialised) trainer on the backend."""
    spec = loaded.spec
    program = compile_spec(loaded)
    _check_memory(program, spec, device)
    backend = get_backend(backend_name)
    check_supported(backend, program)
    sched = {g: Schedule(spec.training.optimizer_for(g)) for g in ("G", "D")}
    optim = {g: s.config() for g, s in sched.items()}
    if dist is None:
        trainer = backend.build(program, device, seeds(spec.training.seed)[2],
                                spec.training.batch_size, optim)
    else:
        if not getattr(backend, "distributed", False):
            raise UsageError(f"backend {backend.name!r} trains on one device only; "
                             "--nproc needs the torch backend")
        if spec.training.batch_size % dist.world:
            raise UsageError(f"training.batch_size = {spec.training.batch_size} does not split "
                             f"evenly over {dist.world} processes")
        trainer = backend.build(program, device, rank_seed(spec.training.seed, dist.rank),
                                spec.training.batch_size, optim, dist=dist)
    return program, trainer, sched


def build_session(loaded: LoadedSpec, backend_name: str, device: str,
                  data_root: str | None, dist=None) -> Session:
    spec = loaded.spec
    program, trainer, sched = make_trainer(loaded, backend_name, device, dist)
    splits = load_data(spec.data, loaded.base_dir, data_root)
    m = spec.training.batch_size
    if m > len(splits.train):
        raise UsageError(f"training.batch_size = {m} is larger than the training set "
                         f"({len(splits.train)} examples)")
    if program.conditional:
        splits.check_labels(program.classes)  # type: ignore[arg-type]
    init_rng, data_rng, _ = seeds(spec.training.seed)
    trainer.load_state_dict(init_params(program, init_rng, splits.train))
    trainer.load_data(splits.train, splits.train_y if program.conditional else None)
    stream = DataStream(len(splits.train), m, data_rng)
    trainer.set_order(stream.order)
    return Session(spec, program, splits, trainer, stream, sched, dist=dist)


def _check_memory(program: Program, spec: GanSpec, device: str) -> None:
    """Refuse, before allocating anything, nets that cannot fit in the memory still available
    (MemAvailable, or what the process's cgroup still allows, whichever is smaller)."""
    from . import memory

    if not device.startswith("cpu"):
        return  # device memory is the backend's to judge (it raises a clear error)
    rss = memory.current_rss() or 0
    peak = memory.training_peak(program, spec, rss)
    # What this process already holds (the interpreter, maybe the backend) is part of the
    # estimated peak but needs no more memory.
    have = memory.available_bytes()
    if have is None:  # pragma: no cover - nothing can tell
        return
    still = peak - rss
    if still > have:
        raise UsageError(f"G ({program.G.num_params():,} parameters) and D "
                         f"({program.D.num_params():,}) need at least "
                         f"{memory.describe(peak)} to train with batch size "
                         f"{spec.training.batch_size} (parameters, gradients, optimiser state, "
                         f"activations, the data and the runtime); "
                         f"{memory.describe(still)} more than this process holds, but only "
                         f"{memory.describe(have)} of memory is available")


def versions(backend: str) -> dict[str, str]:
    out = {"advgraph": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for lib in ("torch", "cupy"):
        if lib in sys.modules:
            out[lib] = sys.modules[lib].__version__
    out["backend"] = backend
    return out


# ---- interruption ---------------------------------------------------------------------------


class _Interrupt:
    """First SIGINT/SIGTERM: finish the current step, checkpoint, stop. Second: stop now."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _graceful() -> Iterator[_Interrupt]:
    flag = _Interrupt()
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, flag)
        except ValueError:  # not the main thread
            pass
    try:
        yield flag
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# ---- the loop -------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # finished | interrupted
    step: int
    epoch: int
    last: dict[str, Any] | None


def save(run: RunDir, s: Session, backend: str, device: str) -> None:
    """Checkpoint. Collective when distributed: parameters are identical on every rank, so each
    checks them itself; every rank's RNG state is gathered; rank 0 alone writes."""
    tensors = s.trainer.state_dict()
    if s.dist is not None:
        rngs = s.dist.gather({k: v for k, v in tensors.items() if k.startswith("rng/")})
        if not s.is_main:
            tensors = {k: v for k, v in tensors.items() if not k.startswith("rng/")}
        else:
            for part in rngs or []:
                tensors.update(part)
    bad = [n for n, a in tensors.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    if bad:
        raise TrainingDiverged(
            f"step {s.step}: training diverged: non-finite values in {bad[0]}"
            + (f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else "")
            + ", not saved")
    tensors["data/order"] = s.stream.order.astype(np.int64)
    state = {"step": s.step, "epoch": s.stream.epoch, "stream": s.stream.state(),
             "updates": dict(s.updates), "seed": s.spec.training.seed, "backend": backend,
             "device": device, "elapsed_s": round(s.elapsed, 3), "versions": versions(backend),
             "world_size": s.dist.world if s.dist is not None else 1,
             # the resolved spec it was trained with (as nanoGPT embeds its config): a resume
             # refuses a spec.yaml edited outside the keys that may change
             "spec": s.spec.model_dump(mode="json")}
    if s.is_main:
        run.save_checkpoint(s.step, tensors, state, keep=s.spec.training.keep_checkpoints)


class _ReadOnlyRun:
    """A run directory as a non-main rank sees it: readable, never written."""

    def __init__(self, run: RunDir):
        self._run = run

    def __getattr__(self, name: str):
        return getattr(self._run, name)

    def append_metrics(self, row: dict[str, Any]) -> None:
        pass

    def write_info(self, **updates: Any) -> dict[str, Any]:
        return {}

    def truncate_metrics(self, *args: Any, **kwargs: Any) -> None:
        pass


def _due(every, step: int, epoch: int, new_epoch: bool) -> bool:
    if every.steps is not None:
        return step % every.steps == 0
    return new_epoch and epoch % every.epochs == 0


def monitor_parzen(s: Session, pz) -> dict[str, Any]:
    """Parzen log-likelihood of validation data under a few samples of G. The noise comes from
    its own generator keyed by (seed, step), so monitoring never changes the training run."""
    from .evaluate.parzen import log_densities
    from .sampling import sample_prior

    valid = s.splits.valid[: pz.valid] if pz.valid else s.splits.valid
    row: dict[str, Any] = {"step": s.step, "epoch": round(s.stream.epoch_float, 4),
                           "parzen_sigma": pz.sigma, "parzen_samples": pz.samples}
    if len(valid) == 0:
        row["parzen_valid"] = None
        return row
    rng = np.random.default_rng([s.spec.training.seed, s.step, 0x7A])
    z = sample_prior(s.program.prior, pz.samples, rng)
    y = None
    if s.program.conditional:  # the model's marginal: labels as often as in the training data
        y = s.splits.train_y[rng.integers(0, len(s.splits.train_y), pz.samples)]  # type: ignore[index]
    mu = s.trainer.generate(z, y)
    row["parzen_valid"] = float(log_densities(valid, mu, [pz.sigma])[0].mean())
    return row


def run_loop(run: RunDir, s: Session, backend: str, device: str,
             report: Callable[[dict[str, Any]], None] | None = None,
             tick: Callable[[int, float], None] | None = None) -> Outcome:
    """Train until the stop condition or an interrupt. `report` gets each metrics row, `tick`
    (step, epoch) after every step (keep it cheap)."""
    t = s.spec.training
    k, log_every = t.k, t.log_every
    stop_steps, stop_epochs = t.stop.steps, t.stop.epochs
    ck_steps, ck_epochs = t.checkpoint.steps, t.checkpoint.epochs
    pz = t.monitor.parzen
    trainer, stream, sd, sg = s.trainer, s.stream, s.sched["D"], s.sched["G"]
    if not s.is_main:  # other ranks train in lockstep but write nothing and report nothing
        run, report, tick, pz = _ReadOnlyRun(run), None, None, None  # type: ignore[assignment]

    def done() -> bool:
        return (stop_steps is not None and s.step >= stop_steps) or \
               (stop_epochs is not None and stream.epoch >= stop_epochs)

    last: dict[str, Any] | None = None
    t0, interval_t0, interval_step = time.perf_counter(), time.perf_counter(), s.step
    elapsed0 = s.elapsed
    status = "finished"
    try:
        with _graceful() as interrupt:
            while not done():
                epoch_before = stream.epoch
                mom_d, mom_g = sd.momentum(stream.epoch), sg.momentum(stream.epoch)
                for _ in range(k):
                    trainer.d_step(stream.next(trainer), sd.lr(s.updates["D"]), mom_d)
                    s.updates["D"] += 1
                trainer.g_step(sg.lr(s.updates["G"]), mom_g)
                s.updates["G"] += 1
                s.step += 1
                s.elapsed = elapsed0 + time.perf_counter() - t0
                if tick is not None:
                    tick(s.step, stream.epoch_float)
                # Ranks must stop at the same step: agree on whether anyone was interrupted.
                stop_now = (interrupt.requested if s.dist is None
                            else s.dist.any(interrupt.requested))

                on_schedule = s.step % log_every == 0
                if on_schedule or done() or stop_now:
                    now = time.perf_counter()
                    # Off the schedule (a stop, an interrupt) the sums run on: they are
                    # checkpointed, and a resumed run logs the whole interval on schedule.
                    m = trainer.read_metrics(reset=on_schedule)
                    last = {"step": s.step, "epoch": round(stream.epoch_float, 4),
                            **{key: m[key] for key in ("d_loss", "g_loss", "d_real", "d_fake")},
                            "lr_d": sd.lr(s.updates["D"]), "lr_g": sg.lr(s.updates["G"]),
                            "momentum": mom_d,
                            "steps_per_s": round((s.step - interval_step)
                                                 / max(now - interval_t0, 1e-9), 2),
                            "time_s": round(s.elapsed, 3)}
                    interval_t0, interval_step = now, s.step
                    run.append_metrics(last)
                    if not (m["finite"] and all(np.isfinite(last[key]) for key in
                                                ("d_loss", "g_loss", "d_real", "d_fake"))):
                        raise TrainingDiverged(
                            f"step {s.step}: training diverged (d_loss={last['d_loss']}, "
                            f"g_loss={last['g_loss']}, parameters finite: {bool(m['finite'])})")
                    if report:
                        report(last)

                new_epoch = stream.epoch > epoch_before
                if pz is not None and _due(pz.every, s.step, stream.epoch, new_epoch):
                    row = monitor_parzen(s, pz)
                    run.append_metrics(row)
                    if report:
                        report(row)
                if (ck_steps is not None and s.step % ck_steps == 0) or \
                   (ck_epochs is not None and new_epoch and stream.epoch % ck_epochs == 0) or \
                   done() or stop_now:
                    save(run, s, backend, device)  # refuses non-finite tensors
                    run.write_info(status="running", step=s.step, epoch=stream.epoch,
                                   last_metrics=last)
                if stop_now:
                    status = "interrupted"
                    break
    except TrainingDiverged as e:
        run.write_info(status="diverged", step=s.step, epoch=stream.epoch, last_metrics=last)
        good = run.checkpoints()
        raise TrainingDiverged(
            f"{e}; " + (f"the last good checkpoint (step {good[-1].step}) is kept"
                        if good else "no checkpoint had been written")
            + "; try a smaller learning rate") from None
    run.write_info(status=status, step=s.step, epoch=stream.epoch, last_metrics=last,
                   elapsed_s=round(s.elapsed, 3))
    return Outcome(status, s.step, stream.epoch, last)


# ---- entry points used by the CLI -----------------------------------------------------------


def start(loaded: LoadedSpec, runs_root: Path, name: str | None, backend: str, device: str,
          data_root: str | None, hooks: "Hooks | None" = None,
          dist=None) -> tuple[RunDir, Outcome]:
    spec = absolute_paths(loaded.spec, loaded.base_dir)
    loaded = LoadedSpec(spec, loaded.positions, loaded.path)
    session = build_session(loaded, backend, device, data_root, dist)  # before any directory
    hooks = hooks or Hooks()
    if not session.is_main:
        created = dist.broadcast(None)
        if created is None:
            raise RunError("rank 0 could not create the run directory")
        run = RunDir(runs_root / created)
        return run, run_loop(run, session, backend, device)
    try:
        run = RunDir.create(runs_root, name)
    except BaseException:
        if dist is not None:
            dist.broadcast(None)
        raise
    if dist is not None:
        dist.broadcast(run.name)
    run.lock()
    try:
        run.clean_stale_tmp()
        return run, _start(run, session, loaded, spec, backend, device, data_root, hooks, dist)
    finally:
        run.unlock()


def _start(run: RunDir, session: Session, loaded: LoadedSpec, spec: GanSpec, backend: str,
           device: str, data_root: str | None, hooks: "Hooks", dist) -> Outcome:
    atomic_write(run.spec_path, dump_resolved(spec).encode())
    if data_root is not None:  # the run must find its data again from any directory
        data_root = str(Path(data_root).expanduser().resolve())
    run.write_info(status="running", step=0, epoch=0, backend=backend, device=device,
                   data_root=data_root, **_owner(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   spec_source=str(loaded.path) if loaded.path else None,
                   versions=versions(backend), world_size=dist.world if dist else 1)
    hooks.start(run, session)
    return run_loop(run, session, backend, device, hooks.report, hooks.tick)


def _owner() -> dict[str, Any]:
    """Who is training the run, so `advgraph runs` can tell a killed run from a live one."""
    return {"pid": os.getpid(), "host": platform.node()}


# Keys that may change when a run is resumed: when it stops, how it logs and checkpoints.
RESUMABLE = ("stop", "checkpoint", "keep_checkpoints", "log_every", "monitor")


def resume(runs_root: Path, name: str, backend: str | None, device: str | None,
           data_root: str | None, overrides: list[str],
           hooks: "Hooks | None" = None, dist=None) -> tuple[RunDir, Outcome]:
    run = RunDir.open(runs_root, name)
    writer = dist is None or dist.is_main
    refused = None
    if writer:
        try:
            run.lock()  # before anything is read: a run being trained is refused
            run.clean_stale_tmp()  # left by a writer killed mid-write
        except RunError as e:
            refused = str(e)
    if dist is not None:  # every rank stops if rank 0 could not take the lock
        refused = dist.broadcast(refused)
    if refused is not None:
        raise RunError(refused)
    try:
        return run, _resume(run, name, backend, device, data_root, overrides, hooks, dist)
    finally:
        if writer:
            run.unlock()


def _resume(run: RunDir, name: str, backend: str | None, device: str | None,
            data_root: str | None, overrides: list[str], hooks: "Hooks | None",
            dist) -> Outcome:
    info = run.info()
    if not run.spec_path.is_file():
        raise RunError(f"{run.spec_path}: missing; cannot resume")
    loaded = load_file(run.spec_path, overrides)
    original = load_file(run.spec_path).spec
    changed = _changed_paths(original.model_dump(), loaded.spec.model_dump())
    illegal = _not_resumable(changed)
    if illegal:
        raise UsageError("on --resume only training." + "/".join(RESUMABLE)
                         + f" may change; --set changes {', '.join(illegal)}")
    backend = backend or info.get("backend") or "torch"
    device = device or info.get("device") or "cpu"
    data_root = data_root or info.get("data_root")
    session = build_session(loaded, backend, device, data_root, dist)
    hooks = hooks or Hooks()
    ckpt, tensors, state = run.latest_checkpoint(warn=hooks.warn if session.is_main else None)
    _check_spec_unchanged(run, ckpt, state, original)
    same_stream = (state.get("backend") == backend and state.get("device") == device
                   and state.get("world_size", 1) == (dist.world if dist else 1))
    validate_and_restore(ckpt, tensors, state, session, same_stream)
    _load_state(session.trainer, ckpt, tensors)
    session.trainer.set_order(session.stream.order)
    if state.get("backend") not in (None, backend) and session.is_main:
        hooks.warn(f"resuming a {state['backend']} checkpoint on {backend}: parameters, optimiser "
                   f"state and data order carry over; the noise and dropout streams start afresh "
                   f"(each backend has its own generator), so the run is valid but not what "
                   f"{state['backend']} would have computed")
    stop = loaded.spec.training.stop
    if (stop.steps is not None and session.step >= stop.steps) or \
       (stop.epochs is not None and session.stream.epoch >= stop.epochs):
        what = f"{stop.steps} steps" if stop.steps is not None else f"{stop.epochs} epochs"
        raise UsageError(f"run {name!r} already reached its stop ({what}) at step "
                         f"{session.step}; train further with e.g. --set "
                         f"training.stop.{'steps' if stop.steps is not None else 'epochs'}=N")
    if not session.is_main:
        return run_loop(run, session, backend, device)
    if changed:
        atomic_write(run.spec_path, dump_resolved(loaded.spec).encode())
    counts = tensors.get("metrics/counts")
    run.truncate_metrics(session.step, partial_at_step=counts is not None and bool(counts.any()))
    run.write_info(status="running", step=session.step, epoch=session.stream.epoch,
                   backend=backend, device=device, resumed_from=ckpt.step, **_owner(),
                   versions=versions(backend), world_size=dist.world if dist else 1)
    hooks.start(run, session)
    return run_loop(run, session, backend, device, hooks.report, hooks.tick)


def _check_spec_unchanged(run: RunDir, ckpt, state: dict[str, Any], on_disk: GanSpec) -> None:
    """The run's spec.yaml against the spec its checkpoint was trained with: a change outside
    the keys that may change on resume (an edited learning rate, say) is refused, as it is
    through --set."""
    trained = state.get("spec")
    if trained is None:  # checkpoints from before specs were embedded
        return
    try:  # through the model: fields added by a later advgraph get their defaults
        trained = GanSpec.model_validate(trained).model_dump(mode="json")
    except ValidationError as e:
        raise CheckpointError(f"{ckpt.state_path}: its embedded spec does not validate "
                              f"({e.error_count()} problem(s), e.g. {e.errors()[0]['msg']})"
                              ) from None
    illegal = _not_resumable(_changed_paths(trained, on_disk.model_dump(mode="json")))
    if illegal:
        raise UsageError(f"{run.spec_path}: edited since the checkpoint at step {ckpt.step} "
                         f"outside the keys that may change on resume (training."
                         + "/".join(RESUMABLE) + f"): {', '.join(illegal)}; restore it, or "
                         "train a new run with the new spec")


def _not_resumable(changed: list[str]) -> list[str]:
    """The changed spec paths that may not change on resume."""
    return [p for p in changed if not any(p == f"training.{k}" or p.startswith(f"training.{k}.")
                                          for k in RESUMABLE)]


def _load_state(trainer: Trainer, ckpt, tensors: dict[str, np.ndarray]) -> None:
    """The checkpoint's tensors into the trainer; a backend's refusal names the file."""
    try:
        trainer.load_state_dict(tensors)
    except (AdvGraphError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{ckpt.tensors_path}: {e}") from None


def validate_and_restore(ckpt, tensors: dict[str, np.ndarray], state: dict[str, Any],
                         session: Session, same_stream: bool) -> None:
    """Everything a resume reads, against what this program and data expect: every tensor the
    trainer keeps (names, shapes, dtypes; the noise generator's state where the backend,
    device and world size are the same), the data order (a permutation of the training set),
    and the counters (consistent with each other); then restores the data stream and the
    counters into the session. Errors name the file; a missing piece is an error (parameters
    alone serve sample/eval). Collective when distributed (it asks the trainer for its
    state_dict, as every rank does here)."""
    want = session.trainer.state_dict()
    missing, wrong = [], []
    for key, ref in want.items():
        if key not in tensors:
            if key.startswith("metrics/") or (key.startswith("rng/") and not same_stream):
                continue  # older checkpoints; another backend's or device's generator
            missing.append(key)
            continue
        got = tensors[key]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            wrong.append(f"{key} is {got.dtype}{list(got.shape)}, expected {ref.dtype}"
                         f"{list(ref.shape)}")
    if missing:
        raise CheckpointError(f"{ckpt.tensors_path}: lacks {len(missing)} piece(s) of state a "
                              f"resume needs, e.g. {missing[0]} (parameters alone serve sample "
                              "and eval, not --resume)")
    if wrong:
        raise CheckpointError(f"{ckpt.tensors_path}: {wrong[0]}"
                              + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))
    n = len(session.splits.train)
    order = tensors.get("data/order")
    if order is None or order.dtype != np.int64 or order.shape != (n,) or \
            not np.array_equal(np.sort(order), np.arange(n)):
        raise CheckpointError(f"{ckpt.tensors_path}: data/order is not a permutation of the "
                              f"{n} training examples")
    k = session.spec.training.k
    try:
        step = state["step"]
        updates = {g: state["updates"][g] for g in ("D", "G")}
        batches = state["stream"]["batches"]
        ints = [step, batches, *updates.values()]
        if not all(type(v) is int and v >= 0 for v in ints):
            raise ValueError("counters must be non-negative integers")
        if step != ckpt.step or updates["G"] != step or updates["D"] != k * step or \
                batches != updates["D"]:
            raise ValueError(f"inconsistent counters (step {step}, updates {updates}, "
                             f"minibatches {batches}, k = {k})")
        session.stream.restore(state["stream"], order)
        session.step, session.updates = step, updates
        session.elapsed = float(state.get("elapsed_s", 0.0))
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise CheckpointError(f"{ckpt.state_path}: unusable checkpoint state ({e})") from None


class Loaded:
    """A trained model restored from a run, for sampling and evaluation. The data splits are
    read only when first asked for."""

    def __init__(self, run: RunDir, loaded: LoadedSpec, program: Program, trainer: Trainer,
                 step: int, device: str, data_root: str | None, backend: str = "torch"):
        self.run, self.spec, self.program, self.trainer = run, loaded.spec, program, trainer
        self.step, self.device, self.backend = step, device, backend
        self._base_dir, self._data_root = loaded.base_dir, data_root
        self._splits: Splits | None = None

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            self._splits = load_data(self.spec.data, self._base_dir, self._data_root)
        return self._splits


def load_trainer(run: RunDir, step: int | None = None, backend: str | None = None,
                 device: str | None = None, data_root: str | None = None,
                 warn=None) -> Loaded:
    """A run's checkpoint (the latest good one, or `step`) in a trainer."""
    info = run.info()
    if not run.spec_path.is_file():
        raise RunError(f"{run.spec_path}: missing")
    loaded = load_file(run.spec_path)
    device = device or "cpu"
    backend = backend or info.get("backend") or "torch"
    program, trainer, _ = make_trainer(loaded, backend, device)
    ckpt, tensors, _ = run.latest_checkpoint(step, warn=warn)
    _load_state(trainer, ckpt, tensors)  # parameters alone are enough here
    return Loaded(run, loaded, program, trainer, ckpt.step, device,
                  data_root or info.get("data_root"), backend)


class Hooks:
    """What a front end (the CLI's progress display) is told while training runs."""

    def start(self, run: RunDir, session: Session) -> None: ...

    def warn(self, msg: str) -> None: ...

    report: Callable[[dict[str, Any]], None] | None = None
    tick: Callable[[int, float], None] | None = None


def _changed_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _changed_paths(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if a == b else [prefix]
