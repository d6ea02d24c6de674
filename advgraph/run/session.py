"""A run's working set, built from a spec: program, data, trainer, data order, schedules."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..backend_protocol import Trainer, check_supported, get_backend
from ..compile import compile_spec
from ..data import Splits, data_info, dataset_for
from ..data.report import LoadReport
from ..errors import AdvGraphError, DataError, UsageError
from ..ir import Program
from ..params import init_params
from ..spec import LoadedSpec
from ..spec.gan import Adam, GanSpec
from .context import Context
from .rng import rank_seed, seeds
from .schedule import Schedule
from .stream import DataStream


@dataclass
class Session:
    """Everything a training run needs, and its counters."""

    spec: GanSpec
    program: Program
    splits: Splits
    trainer: Trainer
    stream: DataStream
    sched: dict[str, Schedule]
    ctx: Context
    updates: dict[str, int] = field(default_factory=lambda: {"D": 0, "G": 0})
    step: int = 0
    elapsed: float = 0.0

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main


def make_trainer(loaded: LoadedSpec, ctx: Context
                 ) -> tuple[Program, Trainer, dict[str, Schedule]]:
    """Compile the spec and build an (uninitialised) trainer on the backend."""
    spec = loaded.spec
    program = compile_spec(loaded, data_info(loaded))
    _check_memory(program, spec, ctx.device)
    backend = get_backend(ctx.backend)
    check_supported(backend, program)
    sched = {g: Schedule(spec.training.optimizer_for(g)) for g in ("G", "D")}
    optim = {g: s.config() for g, s in sched.items()}
    m, dist = spec.training.batch_size, ctx.dist
    if dist is None:
        return program, backend.build(program, ctx.device, seeds(spec.training.seed).backend, m,
                                      optim), sched
    if not getattr(backend, "distributed", False):
        raise UsageError(f"backend {backend.name!r} trains on one device only; "
                         "`nproc` needs the torch backend")
    if m % dist.world:
        raise UsageError(f"training.batch_size = {m} does not split evenly over {dist.world} "
                         "processes")
    return program, backend.build(program, ctx.device, rank_seed(spec.training.seed, dist.rank),
                                  m, optim, dist=dist), sched


def build_session(loaded: LoadedSpec, ctx: Context, data_root: str | None,
                  report: LoadReport | None = None) -> Session:
    """A fresh run: initialised parameters, the data on the trainer, the first epoch's order.
    `report` hears of the data's loading (progress, files left out)."""
    spec = loaded.spec
    program, trainer, sched = make_trainer(loaded, ctx)
    splits = load_splits(loaded, ctx, data_root, report)
    m = spec.training.batch_size
    if m > len(splits.train):
        raise UsageError(f"training.batch_size = {m} is larger than the training set "
                         f"({len(splits.train)} examples)")
    if program.conditional:
        splits.check_labels(program.classes)  # type: ignore[arg-type]
    rng = seeds(spec.training.seed)
    trainer.load_state_dict(init_params(program, rng.init, splits.train))
    trainer.load_data(splits.train, splits.train_y if program.conditional else None)
    stream = DataStream(len(splits.train), m, rng.data)
    trainer.set_order(stream.order)
    return Session(spec, program, splits, trainer, stream, sched, ctx)


def load_splits(loaded: LoadedSpec, ctx: Context, data_root: str | None,
                report: LoadReport | None = None) -> Splits:
    """The spec's data. Distributed, rank 0 loads first (a folder of images is prepared into
    the cache once) while the others wait, then they read what it left in the cache; a failure
    on rank 0 stops every rank with its message."""
    dataset = dataset_for(loaded.spec.data, loaded.base_dir)
    dataset.check_paths(loaded)
    dist = ctx.dist
    if dist is None:
        return dataset.load(data_root, report)
    failed, splits = None, None
    if dist.is_main:
        try:
            splits = dataset.load(data_root, report)
        except AdvGraphError as e:
            failed = e
    why = dist.broadcast(None if failed is None else str(failed))
    if failed is not None:
        raise failed
    if why is not None:
        raise DataError(f"rank 0 could not load the data: {why}")
    return splits if splits is not None else dataset.load(data_root, None)


def _check_memory(program: Program, spec: GanSpec, device: str) -> None:
    """Refuse, before allocating anything, nets that cannot fit in the memory still available
    (MemAvailable, or what the process's cgroup still allows, whichever is smaller)."""
    from .. import memory

    if not device.startswith("cpu"):
        return  # device memory is the backend's to judge (it raises a clear error)
    rss = memory.current_rss() or 0
    # What this process already holds (the interpreter, maybe the backend) is part of the
    # estimated peak but needs no more memory.
    memory.check_fits("training.batch_size or the layers' sizes",
                      f"G ({program.G.num_params():,} parameters) and D "
                      f"({program.D.num_params():,}) need",
                      training_peak(program, spec, rss),
                      f" to train with batch size {spec.training.batch_size} (parameters, "
                      "gradients, optimiser state, activations, the data and the runtime)",
                      held=rss)


def training_peak(program, spec, rss: int | None = None) -> int:
    """The estimated peak resident memory of a process training `program` as `spec` says
    (see ops.costs.training_peak_bytes), the data set included; `rss`: what the process
    already holds, when that is more than the runtime's usual size (tests, notebooks)."""
    from ..ops.costs import RUNTIME_BYTES, training_peak_bytes

    slots = max(2 if isinstance(o, Adam) else 1
                for o in (spec.training.optimizer_for("G"), spec.training.optimizer_for("D")))
    return training_peak_bytes(program.G, program.D, spec.training.batch_size, slots,
                               dataset_for(spec.data).memory_bytes(program.data_shape),
                               max(RUNTIME_BYTES, rss or 0))
