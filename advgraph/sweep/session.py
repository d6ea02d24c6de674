"""A sweep's working set: each member's Session (its spec, program, data order, schedules and
counters) over one `Members` engine, and the data loaded once for all."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..backend_protocol import check_supported, get_backend, why_not_one_program
from ..compile import compile_spec
from ..data import data_info
from ..data.report import LoadReport
from ..errors import UsageError
from ..ir import Program
from ..params import init_params
from ..run.context import Context
from ..run.rng import seeds
from ..run.schedule import Schedule
from ..run.session import Session, load_splits, training_peak
from ..run.stream import DataStream
from ..spec import LoadedSpec
from .engine import Members, auto_loop, build_members
from .plan import Member

# What every member must share to train in lockstep (the loop's schedule and the data).
LOCKSTEP = ("data", "training.batch_size", "training.k", "training.stop", "training.log_every",
            "training.checkpoint", "training.keep_checkpoints", "training.monitor",
            "training.sample_grid")


@dataclass
class SweepSession:
    members: list[Member]
    sessions: list[Session]
    engine: Members
    live: list[bool]
    dist: Any = None  # the ranks sharing the sweep (each trains its own members), or None
    last: list[Any] = field(default_factory=list)  # each member's latest finite metrics row

    def __post_init__(self) -> None:
        self.last = self.last or [None] * len(self.members)

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    @property
    def first(self) -> Session:
        """A live member's session (its counters are every member's)."""
        return self.sessions[next((i for i, ok in enumerate(self.live) if ok), 0)]

    def live_indices(self) -> list[int]:
        return [i for i, ok in enumerate(self.live) if ok]

    def freeze(self, i: int) -> None:
        """Member i trains no more (diverged): the engine stops it, the loop skips it."""
        self.engine.freeze(i)
        self.live[i] = False


def _at(dump: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        dump = dump.get(part) if isinstance(dump, dict) else None  # type: ignore[assignment]
    return dump


def check_lockstep(members: list[Member], loaded: list[LoadedSpec]) -> None:
    """Members share the data and the loop's schedule: a varied value that changes them is
    refused, naming the key and two members that differ."""
    dumps = [ls.spec.model_dump(mode="json") for ls in loaded]
    for key in LOCKSTEP:
        first = _at(dumps[0], key)
        for m, d in zip(members[1:], dumps[1:]):
            if _at(d, key) != first:
                raise UsageError(f"{key} differs between members {members[0].name} and "
                                 f"{m.name}: the members of a sweep share the data and the "
                                 "training loop's schedule; sweep each value on its own")


def shape_difference(members: list[Member], programs: list[Program]) -> str | None:
    """Why the members cannot be one program (the first difference), or None."""
    ref = programs[0].structure()
    for m, p in zip(members[1:], programs[1:]):
        sig = p.structure()
        if sig == ref:
            continue
        # in the order of Program.structure()
        names = ("G", "D", "the prior", "the data's shape", "the classes", "the objective")
        what = next(n for n, a, b in zip(names, ref, sig) if a != b)
        return f"{what} of {m.name} differs from {members[0].name}'s ({m.setting})"
    return None


def shard(n: int, dist) -> list[int]:
    """The members a rank trains: a contiguous slice, the first ranks one more when the
    members do not split evenly (all of them without `dist`)."""
    if dist is None:
        return list(range(n))
    per, extra = divmod(n, dist.world)
    lo = dist.rank * per + min(dist.rank, extra)
    return list(range(lo, lo + per + (dist.rank < extra)))


def build_sweep(members: list[Member], loaded: list[LoadedSpec], ctx: Context,
                data_root: str | None, engine: str = "auto",
                report: LoadReport | None = None, dist=None,
                mine: list[int] | None = None) -> tuple[SweepSession, str | None]:
    """Fresh members: compiled, checked, initialised as their solo runs would be. Every member
    is checked; those in `mine` (default: all) are built, each one trained on this process
    alone (`dist`, the ranks sharing a sweep, only loads the data rank 0 first). Returns the
    sweep and, where the members could not be one batched program, why (None when batched)."""
    check_lockstep(members, loaded)
    programs = [compile_spec(ls, data_info(ls)) for ls in loaded]
    backend = get_backend(ctx.backend)
    for p in programs:
        check_supported(backend, p)
    apart = shape_difference(members, programs)
    if apart is not None and engine != "loop":
        raise UsageError(f"{apart}: members of one batched program share every shape and op; "
                         "sweep these values separately, or pass --engine loop to train the "
                         "members one after another in this process")
    mine = list(range(len(members))) if mine is None else mine
    members, loaded, programs = ([xs[i] for i in mine] for xs in (members, loaded, programs))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world)) if dist is not None else 1
    _check_memory(programs, loaded, ctx.device, local)
    spec0 = loaded[0].spec
    splits = load_splits(loaded[0], Context(ctx.backend, ctx.device, dist), data_root, report)
    m = spec0.training.batch_size
    if m > len(splits.train):
        raise UsageError(f"training.batch_size = {m} is larger than the training set "
                         f"({len(splits.train)} examples)")
    if programs[0].conditional:
        splits.check_labels(programs[0].classes)  # type: ignore[arg-type]
    scheds = [{g: Schedule(ls.spec.training.optimizer_for(g)) for g in ("G", "D")}
              for ls in loaded]
    optim = [{g: s.config() for g, s in sc.items()} for sc in scheds]
    auto = auto_loop(programs, ctx.device, m, spec0.training.k) if engine == "auto" else None
    eng = build_members(backend, programs, ctx.device,
                        [seeds(mb.seed).backend for mb in members], m, optim,
                        "loop" if auto else engine)
    eng.load_data(splits.train, splits.train_y if programs[0].conditional else None)
    sessions = []
    for i, (mb, ls, p, sc) in enumerate(zip(members, loaded, programs, scheds)):
        rng = seeds(mb.seed)
        eng.member(i).load_state_dict(init_params(p, rng.init, splits.train))
        stream = DataStream(len(splits.train), m, rng.data)
        eng.set_order(i, stream.order)
        sessions.append(Session(ls.spec, p, splits, eng.member(i), stream, sc, ctx))
    why = None if eng.engine == "batched" else (auto or _why_loop(backend, engine, programs,
                                                                     optim))
    return SweepSession(members, sessions, eng, [True] * len(members), dist), why


def _why_loop(backend, engine: str, programs: list[Program], optim) -> str:
    if engine == "loop":
        return "--engine loop"
    if getattr(backend, "build_members", None) is None:
        return f"the {backend.name} backend has no batched engine"
    return why_not_one_program(programs, optim) or \
        f"the {backend.name} backend does not batch these members' features"


def _check_memory(programs: list[Program], loaded: list[LoadedSpec], device: str,
                  ranks: int = 1) -> None:
    """The whole sweep's estimate, refused before anything is allocated: every member's nets,
    the data and the runtime once (once per process: `ranks` of them share this machine, each
    with as many members as this one, give or take one)."""
    from .. import memory
    from ..data import dataset_for
    from ..ops.costs import RUNTIME_BYTES

    if not device.startswith("cpu"):
        return
    rss = memory.current_rss() or 0
    runtime = max(RUNTIME_BYTES, rss)
    spec0 = loaded[0].spec
    shared = runtime + dataset_for(spec0.data).memory_bytes(programs[0].data_shape)
    need = ranks * (shared + sum(training_peak(p, ls.spec, rss) - shared
                                 for p, ls in zip(programs, loaded)))
    where = f" on each of {ranks} processes" if ranks > 1 else ""
    memory.check_fits("the number of members (--seeds, --vary) or the nets' sizes"
                      + (" or --nproc" if ranks > 1 else ""),
                      f"{len(programs)} members{where} need", need,
                      f" to train with batch size {spec0.training.batch_size} (each member's "
                      "parameters, gradients, optimiser state and activations; the data and "
                      "the runtime once)", held=rss)
