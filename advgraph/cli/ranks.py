"""`--nproc N`: relaunch this very command as N ranks, or join the group when one of them."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import typer


@contextmanager
def ranks(nproc: int, device: str,
          before_launch: Optional[Callable[[], None]] = None) -> Iterator[Any]:
    """Relaunch as `nproc` ranks (after `before_launch`, for checks better made once than once
    per rank), or join the group when launched as one. Yields the Dist (None when
    single-process). `nproc` ≥ 1: the commands' --nproc bounds it."""
    from .. import distributed

    _, world, _ = distributed.world_from_env()
    if nproc > 1 and world == 1:
        if before_launch is not None:
            before_launch()
        distributed.check_cuda(device, nproc)  # once, not once per rank
        raise typer.Exit(_relaunch(nproc))
    if world > 1 and device == "auto":
        from ..backend_protocol import resolve_device

        device = resolve_device(device, "torch")  # ranks are torch.distributed's
    dist = distributed.init(device) if world > 1 else None
    try:
        yield dist
    finally:
        if dist is not None:
            dist.close()


def _relaunch(nproc: int) -> int:
    """This very command line, minus --nproc, as `nproc` ranks."""
    from ..distributed import launch

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    return launch(argv, nproc)
