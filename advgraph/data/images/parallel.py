"""Work over a listing's files in contiguous chunks: in forked worker processes, or in this one.

Why fork and a module global rather than arguments: the task is a closure over the listing and
the array the rows are written into (a shared memory map), which fork hands to the workers for
free; nothing but (start, stop) and the per-row results (a few bytes each) is ever pickled.
Forking is what Linux does cheaply and safely for a process that only decodes with Pillow and
NumPy; elsewhere (macOS, where fork is unsafe, and Windows) the work runs in this process.

Why explicit processes and a pipe each rather than a pool: an interruption must always be
prompt, and a Ctrl-C while a ProcessPoolExecutor was forking its workers hung its shutdown
forever (about 1 time in 16: this process waiting for a worker, one worker reading its pipe,
another waiting on a lock). Here the workers share no lock; each is handed its next chunk by this process only
when it has sent back the last one, and on any exception here every worker is killed and
reaped before the exception goes on. They are forked with SIGINT and SIGTERM blocked, so none
is ever born with this process's handlers (they ignore Ctrl-C, which this process handles),
and each dies with this process (PR_SET_PDEATHSIG): a killed parent leaves no worker behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

CHUNK = 512  # files per chunk at most: the progress bar moves every few hundred files
MIN_CHUNK = 64
PARALLEL_FROM = 2000  # files: fewer are decoded in this process (forking costs more)
MAX_WORKERS = 8  # by default: more rarely helps (the disk and the page cache become the limit)
MOST_WORKERS = 64  # ever, whatever is asked (and at most 4 per usable CPU)
REAP_S = 2.0  # seconds a worker is given to end once told to, before it is killed

# (start, stop) -> one result per file: set just before the workers fork, which inherit it
Task = Callable[[int, int], list]
Progress = Callable[[int, int], None]
_TASK: Task | None = None
_BLOCKED = {signal.SIGINT, signal.SIGTERM}


class WorkerDied(Exception):
    """A worker process ended without finishing its chunk (killed, out of memory, a crash in
    a decoder); str(e) says how."""


class Terminated(KeyboardInterrupt):
    """SIGTERM while preparing: handled as Ctrl-C is (the temporary file removed, the workers
    ended), then the process ends non-zero."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated in the block, where it would end the process at once (its
    default action) and leave the temporary file behind: only in the main thread, only where
    the handler is the default one (a caller's own, training's say, is kept), and the previous
    one restored after."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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


def most_workers() -> int:
    """The most worker processes ever started: 4 per usable CPU, at most MOST_WORKERS (a
    request for more is capped silently: more would only contend for the same CPUs)."""
    return min(MOST_WORKERS, 4 * usable_cpus())


def chunks(n: int, workers: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering 0..n: about 16 per worker, MIN_CHUNK..CHUNK files each."""
    size = max(MIN_CHUNK, min(CHUNK, n // (16 * max(workers, 1)) or 1))
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def run_chunks(n: int, task: Task, workers: int, progress: Progress | None = None) -> list:
    """task over every chunk of 0..n, its results concatenated in order; `progress(done, n)`
    (in this process) as chunks finish. With workers > 1 (and fork available) the chunks run in
    forked processes: `workers` of them, capped at most_workers() and at the number of chunks.
    They ignore Ctrl-C, which this process handles: any exception here (Ctrl-C, or one raised
    by `progress`) kills them and waits for them to end before it goes on. WorkerDied when a
    worker process dies."""
    results: list = [None] * n
    if progress:
        progress(0, n)
    workers = min(workers, most_workers())
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
    global _TASK
    todo = chunks(n, workers)
    todo.reverse()  # popped from the end: in order
    _TASK = task
    procs: list = []
    try:
        _start(min(workers, len(todo)), procs)
        _drive(procs, todo, n, progress, results)
    except BaseException:
        _reap(procs, kill=True)  # at once: a busy worker would finish its chunk first
        raise
    else:
        _reap(procs, kill=False)
    finally:
        _TASK = None


def _start(workers: int, procs: list) -> None:
    """`workers` processes forked into `procs` (each with its end of a pipe), with SIGINT and
    SIGTERM blocked meanwhile: a signal that arrives now is handled here once they all are
    started (and in the caller's try: they are then killed)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        for _ in range(workers):
            mine, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker, args=(theirs, os.getpid()), daemon=True)
            proc.start()
            theirs.close()
            procs.append((proc, mine))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _drive(procs: list, todo: list, n: int, progress: Progress | None, results: list) -> None:
    """Each worker handed a chunk, and another each time it sends back its results."""
    from multiprocessing.connection import wait

    busy = {}  # pipe -> (proc, its chunk)
    for proc, conn in procs:
        if todo:
            conn.send(todo.pop())
            busy[conn] = proc
    done = 0
    while busy:
        sentinels = {proc.sentinel: conn for conn, proc in busy.items()}
        for ready in wait(list(busy) + list(sentinels)):
            conn = sentinels.get(ready, ready)
            if conn not in busy:
                continue  # its result and its end arrived together: already handled
            proc = busy.pop(conn)
            try:
                start, out = conn.recv()
            except (EOFError, OSError):
                proc.join(REAP_S)
                raise WorkerDied(_how_died(proc.exitcode)) from None
            if start is None:  # the task raised: as it would have here
                raise out
            results[start:start + len(out)] = out
            done += len(out)
            if todo:
                conn.send(todo.pop())
                busy[conn] = proc
            if progress:
                progress(done, n)
            break  # the others' sentinels are looked at again, from the busy ones left


def _reap(procs: list, kill: bool) -> None:
    """Every worker told to stop (no more chunks), or killed (`kill`), and waited for; one
    that has not ended within REAP_S is killed."""
    import time

    for proc, conn in procs:
        if kill:
            proc.kill()
            continue
        try:
            conn.send(None)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + REAP_S
    for proc, conn in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.exitcode is None:
            proc.kill()
            proc.join(REAP_S)
        conn.close()


def _worker(conn, parent: int) -> None:
    """A worker's life: chunks from the pipe until None (or the pipe closes), then os._exit:
    nothing of the parent's state (its buffered output, its exit hooks) is touched."""
    code = 0
    try:
        _die_with(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
        while True:
            job = conn.recv()
            if job is None:
                break
            start, stop = job
            assert _TASK is not None, "the task is inherited through fork"
            try:
                conn.send((start, _TASK(start, stop)))
            except Exception as e:  # the parent raises it
                try:
                    conn.send((None, e))  # pickled whole before anything is written
                except Exception:  # one that cannot be pickled: its type and text
                    conn.send((None, RuntimeError(f"{type(e).__name__}: {e}")))
    except (EOFError, BrokenPipeError):
        pass  # the parent has gone or closed its end
    except BaseException:  # pragma: no cover - a bug in the task: the parent says it died
        import traceback

        traceback.print_exc()
        code = 1
    os._exit(code)


def _die_with(parent: int) -> None:
    """SIGKILL to this process when its parent ends (Linux), and an end now if the parent has
    already gone (it could have between the fork and this call)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux: the pipe's end stops it
        pass
    if os.getppid() != parent:
        os._exit(1)


def _how_died(exitcode: int | None) -> str:
    if exitcode is None:
        return "a worker process stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"a worker process was killed by {name}"
    return f"a worker process ended abruptly (exit status {exitcode})"
