"""Ctrl-C and SIGTERM while training: finish the step, checkpoint, stop."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


class Interrupt:
    """First SIGINT/SIGTERM: finish the current step, checkpoint, stop. Second: stop now."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def graceful() -> Iterator[Interrupt]:
    """The handlers installed for the block, the previous ones restored after."""
    flag = Interrupt()
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
