"""The worker processes of advgraph.data.images.parallel: an interruption at any moment (while
they are forked, while they work, from the progress callback; Ctrl-C or SIGTERM) ends the
preparation promptly with every worker gone and no temporary file left; no more workers than
chunks or than 4 per CPU; workers die with their parent. The oracle: the processes themselves
(/proc, their pids), the cache folder's files, the clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advgraph.data.images import pack, parallel
from advgraph.data.images.decode import Preparation
import importlib

scan = importlib.import_module("advgraph.data.images.scan")
PREP = Preparation(size=(8, 8), channels=1)
ROOT = Path(__file__).resolve().parents[2]

# prepares argv[1] with argv[2] workers, each file taking 3 ms; argv[3] marks its processes
CHILD = """
import os, sys, time
from pathlib import Path
from advgraph.data.images import decode as decoding, pack
from advgraph.data.images.scan import scan
from advgraph.data.images.decode import Preparation

real = decoding.decode
def slow(fp, prep):
    time.sleep(0.003)
    return real(fp, prep)
decoding.decode = slow
listing = scan(Path(sys.argv[1]), "none")
print("ready", flush=True)
try:
    pack.prepare(listing, Preparation((8, 8), 1), workers=int(sys.argv[2]))
except KeyboardInterrupt:
    sys.exit(130)
print("done", flush=True)
"""


def write_folder(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(
            root / f"{i:04d}.png")


def marked(marker: str) -> list[int]:
    """The pids of live processes whose command line holds `marker`."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
                state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmd and state != "Z":
                pids.append(int(p.name))
    return pids


def gone(marker: str, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while marked(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def child(folder: Path, workers: int, cache: Path, marker: str) -> subprocess.Popen:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(workers), marker],
                            stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def temporary_files(cache: Path) -> list[str]:
    folder = cache / "advgraph" / "images"
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name) \
        if folder.is_dir() else []


@pytest.mark.skipif(not parallel.can_fork(), reason="workers are forked on Linux only")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_any_moment_ends_the_preparation_promptly(tmp_path, sig):
    """Sent just as the workers are being forked (the moment a pool's shutdown hung forever),
    and later while they work: the process ends within seconds, non-zero, its workers gone,
    no temporary file in the cache."""
    folder = tmp_path / "imgs"
    write_folder(folder, 400)
    # the old pool hung about 1 time in 16, for a signal 10-30 ms after this point
    delays = [0.0, 0.008, 0.015, 0.02, 0.025, 0.03, 0.15] if sig == signal.SIGINT else \
        [0.0, 0.015, 0.15]
    for i, delay in enumerate(delays):
        marker = f"advgraph-test-{os.getpid()}-{sig}-{i}"
        cache = tmp_path / f"cache{i}"
        proc = child(folder, 6, cache, marker)
        time.sleep(delay)
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"still running 5 s after {sig.name} at {delay} s")
        out = proc.stdout.read()
        proc.stdout.close()
        assert rc != 0 or out == "done\n", (delay, rc, out)
        assert gone(marker), f"workers left behind after {sig.name} at {delay} s"
        assert temporary_files(cache) == [], delay


@pytest.mark.skipif(not parallel.can_fork(), reason="workers are forked on Linux only")
def test_workers_die_with_their_parent(tmp_path):
    folder = tmp_path / "imgs"
    write_folder(folder, 400)
    marker = f"advgraph-test-{os.getpid()}-orphans"
    proc = child(folder, 4, tmp_path / "cache", marker)
    deadline = time.monotonic() + 5
    while len(marked(marker)) < 5 and time.monotonic() < deadline:  # the parent and 4 workers
        time.sleep(0.01)
    assert len(marked(marker)) == 5
    proc.kill()  # SIGKILL: nothing of the parent's runs
    proc.wait()
    proc.stdout.close()
    assert gone(marker)


def run_with_workers(monkeypatch, n: int, workers: int) -> list[int]:
    started = []
    real = parallel._start
    monkeypatch.setattr(parallel, "_start", lambda k, procs: started.append(k) or real(k, procs))
    out = parallel.run_chunks(n, lambda a, b: list(range(a, b)), workers)
    assert out == list(range(n))
    return started


@pytest.mark.skipif(not parallel.can_fork(), reason="workers are forked on Linux only")
def test_workers_are_capped_at_the_chunks_and_at_4_per_cpu(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert parallel.most_workers() == 8
    assert run_with_workers(monkeypatch, 200, 10_000) == [len(parallel.chunks(200, 8))] == [4]
    assert run_with_workers(monkeypatch, 5000, 10_000) == [8]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(256)), raising=False)
    assert parallel.most_workers() == parallel.MOST_WORKERS == 64


@pytest.mark.skipif(not parallel.can_fork(), reason="workers are forked on Linux only")
@pytest.mark.parametrize("when", ["first progress", "while forking"])
def test_an_exception_in_this_process_kills_the_workers_at_once(monkeypatch, when):
    import multiprocessing

    def task(start, stop):
        time.sleep(0 if start == 0 else 2)  # chunks a worker would finish before it stops
        return list(range(start, stop))

    raised = []

    def progress(done, total):
        if done > 0:
            raised.append(time.monotonic())
            raise KeyboardInterrupt

    if when == "while forking":
        real = parallel._start

        def interrupted(k, procs):
            real(k, procs)
            raised.append(time.monotonic())
            raise KeyboardInterrupt  # as the signal blocked while forking is taken here

        monkeypatch.setattr(parallel, "_start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        parallel.run_chunks(2000, task, 4, progress)
    assert time.monotonic() - raised[0] < 1  # no running chunk waited for
    assert multiprocessing.active_children() == []


@pytest.mark.skipif(not parallel.can_fork(), reason="workers are forked on Linux only")
def test_an_exception_in_a_worker_s_task_is_raised_here():
    def task(start, stop):
        if start > 0:
            raise ValueError(f"bad chunk {start}")
        return list(range(start, stop))

    with pytest.raises(ValueError, match="bad chunk"):
        parallel.run_chunks(1000, task, 2)


def test_sigterm_while_preparing_is_an_interrupt_that_leaves_nothing(tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("handlers are installed in the main thread only")
    write_folder(tmp_path / "imgs", 100)
    before = signal.getsignal(signal.SIGTERM)
    if before is not signal.SIG_DFL:
        pytest.skip("a handler of the test runner's is kept")

    def terminate(done, total):
        if done > 0:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises before this ends

    with pytest.raises(pack.Terminated):
        pack.prepare(scan.scan(tmp_path / "imgs"), PREP, workers=1, progress=terminate)
    assert signal.getsignal(signal.SIGTERM) is before
    from advgraph.cache import cache_dir

    assert list(cache_dir("images").iterdir()) == []
