"""What a front end is told while data loads: warnings, and progress while a folder of images
is prepared (the CLI draws a bar; library callers pass nothing)."""

from __future__ import annotations

from typing import Protocol


class LoadReport(Protocol):
    def warn(self, msg: str) -> None:
        """A file left out, a cache that could not be written: the load goes on."""

    def progress(self, what: str, done: int, total: int) -> None:
        """`done` of `total` items of the step `what` ("preparing images"): called with 0 at
        the start, then now and then, and with `total` at the end."""
