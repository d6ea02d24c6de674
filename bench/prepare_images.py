"""Preparing a folder of images (issue 22): advgraph.data.images.prepare against a plain loop.

    python bench/prepare_images.py [--folder /tmp/fmnist-png] [--n 60000]

Writes Fashion-MNIST's training images as 28×28 greyscale PNGs into --folder (kept and reused
when it already holds them), then times, each in a child process of its own (for its own peak
memory; every file already in the page cache, as the plain loop reads them):

  plain    for each file: x[i, 0] = np.asarray(Image.open(f))  (the loop a user would
           write, into one preallocated array as prepare's result)
  w1       prepare(workers=1) with a rich progress bar drawn (to a forced terminal on stderr)
  w1-quiet prepare(workers=1), no progress callback (what the bar costs)
  w2       prepare(workers=2), same bar
  hit      the second run: scan + prepare from the cache (the data-loading start-up)

prepare's times include listing the folder, re-listing it after decoding (the changed-folder
check), hashing and writing the cache entry. Files per second are the folder's files over the
wall time. Peak RSS: the measuring process's ru_maxrss and its largest child's (the workers);
the cached array itself is a memory map (page cache, not counted by the kernel as anonymous).
CPU: user + system seconds of the measuring process and its workers (on a machine that other
work shares, what the wall time cannot show: how much the two workers had to do).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def write_folder(folder: Path, n: int) -> None:
    from PIL import Image

    have = sum(1 for p in folder.glob("*.png")) if folder.is_dir() else 0
    if have == n:
        return
    raw = gzip.decompress(IMAGES.read_bytes())
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for i, img in enumerate(x):
        Image.fromarray(img, "L").save(folder / f"{i:05d}.png")
    print(f"wrote {n:,} PNGs to {folder} in {time.perf_counter() - t:.1f} s", file=sys.stderr)


def bar():
    """A rich progress bar and the (done, total) callback that moves it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(file=sys.stderr, force_terminal=True, width=100))
    task = progress.add_task("prepare", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


def measure(what: str, folder: Path) -> dict:
    """One measurement, in this (child) process."""
    from PIL import Image

    from advgraph.data.images import Preparation, prepare, scan

    prep = Preparation(size=(28, 28), channels=1)
    me = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = me.ru_utime + me.ru_stime  # the imports' (no child has run yet)
    t = time.perf_counter()
    if what == "plain":
        files = sorted(os.listdir(folder))
        x = np.empty((len(files), 1, 28, 28), np.uint8)  # the same result as prepare's
        for i, f in enumerate(files):
            x[i, 0] = np.asarray(Image.open(os.path.join(folder, f)))
        n, extra = len(x), {}
    else:
        listing = scan(folder)
        scanned = time.perf_counter() - t
        progress, update = bar()
        if what == "w1-quiet":
            update = None
        with progress:
            packed = prepare(listing, prep, workers=2 if what == "w2" else 1, progress=update,
                             warn=lambda m: print("warning:", m, file=sys.stderr))
        n = len(listing.entries)
        assert len(packed.images) == n and packed.cached == (what == "hit")
        extra = {"scan_s": scanned, "sha256": packed.sha256}
    wall = time.perf_counter() - t
    me, kids = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime - cpu0
    return {"what": what, "files": n, "wall_s": wall, "files_per_s": n / wall, "cpu_s": cpu,
            "peak_rss": me.ru_maxrss * 1024, "peak_rss_child": kids.ru_maxrss * 1024, **extra}


def child(what: str, folder: Path, cache: Path) -> dict:
    env = {**os.environ, "ADVGRAPH_CACHE": str(cache),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, __file__, "--measure", what, "--folder", str(folder)],
                         env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("/tmp/fmnist-png"))
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs of each")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.folder)))
        return
    write_folder(args.folder, args.n)
    child("plain", args.folder, Path(tempfile.gettempdir()))  # the files into the page cache
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for what in ("plain", "w1", "w1-quiet", "w2"):
            with tempfile.TemporaryDirectory() as cache:  # a cold advgraph cache each time
                r = child(what, args.folder, Path(cache))
                if what == "w2":
                    r_hit = child("hit", args.folder, Path(cache))
                    assert r_hit["sha256"] == r["sha256"]
                    best["hit"] = min(best.get("hit", r_hit), r_hit, key=lambda d: d["wall_s"])
            best[what] = min(best.get(what, r), r, key=lambda d: d["wall_s"])
    plain = best["plain"]["files_per_s"]
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; "
          f"{len(os.sched_getaffinity(0))} usable; best of {args.repeat}")
    for what in ("plain", "w1", "w1-quiet", "w2", "hit"):
        r = best[what]
        scan_s = f", of which scan {r['scan_s']:.2f} s" if "scan_s" in r else ""
        print(f"{what:8} {r['wall_s']:7.2f} s{scan_s}  CPU {r['cpu_s']:5.2f} s  "
              f"{r['files_per_s']:8,.0f} files/s  "
              f"{r['files_per_s'] / plain:5.2f}× plain  peak RSS {r['peak_rss'] / 2**20:.0f} MiB "
              f"(largest child {r['peak_rss_child'] / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
