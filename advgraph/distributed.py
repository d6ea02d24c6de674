"""Data-parallel training on torch.distributed: the launcher behind `--nproc N`, and the small
process-group helper the training loop and the torch backend share.

A distributed run is an ordinary run whose global batch of m examples is split evenly over the
ranks: every rank walks the same shuffled order and takes its own slice of each minibatch, draws
its own noise, and gradients are averaged (all-reduce) before the identical update on every
rank. Rank 0 alone writes the run directory. Launch with `--nproc N` (one machine, gloo on CPU,
NCCL on CUDA) or with torchrun (`torchrun --nproc-per-node N -m advgraph train …`), which sets the
same environment variables.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from .errors import UsageError


def world_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun and our launcher set them."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"bad distributed environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


@dataclass
class Dist:
    """A process group of `world` ranks; collectives on torch tensors."""

    rank: int
    world: int
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_(self, tensors: list) -> None:
        """In place: each tensor becomes the mean over ranks (one flat all-reduce)."""
        import torch.distributed as td
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        flat = _flatten_dense_tensors(tensors)
        td.all_reduce(flat)
        flat.div_(self.world)
        for t, f in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
            t.copy_(f)

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any rank."""
        import torch
        import torch.distributed as td

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's object, on every rank."""
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's object, in rank order, on rank 0 (None elsewhere)."""
        import torch.distributed as td

        out: list[Any] = [None] * self.world if self.is_main else None  # type: ignore[assignment]
        td.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


def check_cuda(device: str, ranks: int) -> None:
    """`--device cuda` for `ranks` ranks on this machine: one CUDA device each (rank r takes
    cuda:r), or a BackendError (rather than torch's traceback from set_device)."""
    if not device.startswith("cuda"):
        return
    import torch

    from .errors import BackendError

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < ranks:
        what = "no CUDA device is available" if not have else f"only {have} CUDA device(s) here"
        raise BackendError(f"`device` {device}: {what}; {ranks} ranks need one each "
                           "(`device` cpu runs the ranks on the CPU)")


def init(device: str) -> Dist | None:
    """Join the process group when launched distributed (WORLD_SIZE > 1), else None."""
    rank, world, local = world_from_env()
    if world == 1:
        return None
    unset = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if unset:  # torch's env:// rendezvous would fail with a ValueError traceback
        raise UsageError(f"WORLD_SIZE={world} makes this rank {rank} of a distributed run, but "
                         f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set "
                         "(start ranks with `nproc` N or torchrun)")
    import torch
    import torch.distributed as td

    dev = device
    if device.startswith("cuda"):
        check_cuda(device, local + 1)
        dev = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not td.is_initialized():
        from datetime import timedelta

        # A rank that died leaves the others waiting in a collective: give up after a while
        # rather than hang (the launcher also stops the rest as soon as one rank fails).
        td.init_process_group("nccl" if dev.startswith("cuda") else "gloo", init_method="env://",
                              rank=rank, world_size=world, timeout=timedelta(minutes=5))
    return Dist(rank, world, dev)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv: list[str], nproc: int) -> int:
    """Run `python -m advgraph ARGV` as `nproc` ranks on this machine; forward SIGINT/SIGTERM
    to all of them (so they stop together at a step boundary); return the worst exit code."""
    port = _free_port()
    procs = []
    for rank in range(nproc):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
               # each rank gets its share of the cores instead of all of them
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS",
                                                 str(max(1, (os.cpu_count() or 1) // nproc)))}
        procs.append(subprocess.Popen([sys.executable, "-m", "advgraph", *argv], env=env))

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        failed_at = None
        while any(p.poll() is None for p in procs):
            if failed_at is None and any(p.returncode not in (None, 0, 130, -signal.SIGINT)
                                         for p in procs):
                failed_at = time.monotonic()  # one rank failed: the rest cannot go on
            if failed_at is not None and time.monotonic() - failed_at > 5:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.05)
        codes = [p.returncode for p in procs]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    bad = [c for c in codes if c != 0]
    if not bad:
        return 0
    return 130 if all(c in (130, -signal.SIGINT) for c in bad) else max(abs(c) for c in bad)
