"""Deleting runs, each under its writer lock."""

from __future__ import annotations

from typing import Callable

from ..errors import RunError
from .directory import RunDir


def remove_runs(runs: list[RunDir], confirm: Callable[[], bool] = lambda: True,
                deleted: Callable[[RunDir], None] = lambda r: None) -> bool:
    """Delete run directories, each holding its writer lock so that a run being written is
    not pulled from under its process. Every run is checked and locked before any is deleted
    (and before `confirm` asks): one that is refused leaves them all. False if not confirmed."""
    import shutil

    runs = list({str(r.path): r for r in runs}.values())  # a name given twice is one run
    for r in runs:
        r.check_removable()
    locked: list[RunDir] = []
    try:
        for r in runs:
            r.lock()
            locked.append(r)
        if not confirm():
            return False
        for r in runs:
            try:
                shutil.rmtree(r.path)
            except OSError as e:
                raise RunError(f"cannot delete {r.path}: {e.strerror or e} (what remains is "
                               "listed by `advgraph runs`)") from None
            deleted(r)
        return True
    finally:
        for r in locked:
            r.unlock()
