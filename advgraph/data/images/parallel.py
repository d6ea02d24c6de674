"""Work over a listing's files in contiguous chunks: in forked worker processes, or in this one.

Why fork and a module global rather than arguments: the task is a closure over the listing and
the array the rows are written into (a shared memory map), which fork hands to the workers for
free; nothing but (start, stop) and the per-row results (a few bytes each) is ever pickled.
Forking is what Linux does cheaply and safely for a process that only decodes with Pillow and
NumPy; elsewhere (macOS, where fork is unsafe, and Windows) the work runs in this process.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable

CHUNK = 512  # files per chunk at most: the progress bar moves every few hundred files
MIN_CHUNK = 64
PARALLEL_FROM = 2000  # files: fewer are decoded in this process (forking costs more)
MAX_WORKERS = 8  # more rarely helps: the disk and the page cache become the limit

# (start, stop) -> one result per file: set just before the workers fork, which inherit it
Task = Callable[[int, int], list]
Progress = Callable[[int, int], None]
_TASK: Task | None = None


class WorkerDied(Exception):
    """A worker process ended without finishing its chunk (killed, out of memory, a crash in
    a decoder); str(e) says how."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which a container or taskset may
    narrow), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    return sys.platform.startswith("linux")


def default_workers(files: int) -> int:
    """As many processes as CPUs (at most MAX_WORKERS) for a large listing, else one."""
    return min(usable_cpus(), MAX_WORKERS) if files >= PARALLEL_FROM else 1


def chunks(n: int, workers: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering 0..n: about 16 per worker, MIN_CHUNK..CHUNK files each."""
    size = max(MIN_CHUNK, min(CHUNK, n // (16 * max(workers, 1)) or 1))
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def run_chunks(n: int, task: Task, workers: int, progress: Progress | None = None) -> list:
    """task over every chunk of 0..n, its results concatenated in order; `progress(done, n)`
    (in this process) as chunks finish. With workers > 1 (and fork available) the chunks run in
    that many forked processes; they ignore Ctrl-C, which this process handles: it stops
    handing out chunks and waits for the running ones (a fraction of a second) before
    re-raising. WorkerDied when a worker process dies."""
    results: list = [None] * n
    if progress:
        progress(0, n)
    if workers <= 1 or not can_fork() or n <= MIN_CHUNK:
        done = 0
        for start, stop in chunks(n, 1):
            results[start:stop] = task(start, stop)
            done = stop
            if progress:
                progress(done, n)
        return results
    _in_workers(n, task, workers, progress, results)
    return results


def _in_workers(n: int, task: Task, workers: int, progress: Progress | None,
                results: list) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    global _TASK
    _TASK = task
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_ignore_interrupts)
    try:
        pending = {pool.submit(_run, start, stop) for start, stop in chunks(n, workers)}
        done = 0
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                start, out = future.result()
                results[start:start + len(out)] = out
                done += len(out)
            if progress:
                progress(done, n)
    except BrokenProcessPool as e:
        raise WorkerDied(_how_died(e)) from None
    finally:
        _TASK = None
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(start: int, stop: int) -> tuple[int, list]:
    assert _TASK is not None, "the task is inherited through fork"
    return start, _TASK(start, stop)


def _how_died(e: BaseException) -> str:
    text = str(e) or "a worker process ended abruptly"
    return text.rstrip(".")

