"""A sweep of N members as one program against N solo runs one after another, in one process.

  python bench/sweep.py [--specs toy1d,ring2d,fashion,mnist-nets] [--members 1,4,16,64]
                        [--steps 40]
                        [--backend torch] [--device cpu] [--engine auto]

For each spec and N, two child processes (so each peak resident memory is its own): `sweep`
builds the N members (seeds 0..N-1) with advgraph.sweep.session.build_sweep and times
`--steps` iterations of sweep.loop.sweep_step; `solo` builds the same N members as solo
sessions (the data loaded once, as a fair host for N runs in one process would) and times
`--steps` iterations of train.loop.train_step for each, one after another. Setup (compiling,
initialising, loading data) is left out of both; one warm-up iteration is not timed. Printed:
members × steps per second of each, their ratio (sweep / solo: above 1, the sweep is faster),
and each child's peak RSS.

fashion uses the paper's MNIST nets (specs/fashion-mnist.yaml: maxout + dropout D, SGD with
momentum) on Fashion-MNIST from /usr/share/datasets/fashion-mnist (`apt-get install
dataset-fashion-mnist`); it is skipped when that directory is missing. mnist-nets trains the
same nets on random 28×28 images (written to a temporary directory of its own): their speed
without the data set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
# the random images: written by main into a directory of its own (never a fixed path in a shared
# /tmp, where a planted link would be written through), named to the children by this variable
RANDOM = Path(os.environ.get("ADVGRAPH_BENCH_IMAGES", "/nonexistent/images.npz"))
SPECS = {  # name → (spec, overrides)
    "toy1d": ("toy1d.yaml", []),
    "ring2d": ("ring2d.yaml", []),
    "fashion": ("fashion-mnist.yaml", [f"data.root={FASHION}", "data.download=false"]),
    # the same nets on 12,000 random 28×28 images: the speed without the data set (a GPU
    # machine without Fashion-MNIST)
    "mnist-nets": ("fashion-mnist.yaml", [f"data={{dataset: npz, path: {RANDOM}, valid: 1000, "
                                          "test: 1000}"]),
}


def _random_images(where: Path) -> Path:
    import numpy as np

    path = where / "images.npz"
    x = np.random.default_rng(0).integers(0, 256, (12000, 28, 28)).astype(np.float32) / 255
    np.savez(path, x=x)
    return path


def _members(spec: str, overrides: list[str], n: int):
    from advgraph.sweep.plan import load_members, members

    planned = members("bench", list(range(n)), [])
    return planned, load_members(ROOT / "specs" / spec, overrides, planned)


def child(name: str, n: int, mode: str, steps: int, backend: str, device: str,
          engine: str) -> dict:
    from advgraph.run.context import Context

    spec, overrides = SPECS[name]
    planned, loaded = _members(spec, overrides, n)
    ctx = Context(backend, device)
    if mode == "sweep":
        from advgraph.sweep.loop import sweep_step
        from advgraph.sweep.session import build_sweep

        sw, why = build_sweep(planned, loaded, ctx, None, engine)
        sweep_step(sw)  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            sweep_step(sw)
        sw.engine.read_metrics()  # the device's queue drained
        took = time.perf_counter() - t0
        kind = sw.engine.engine
    else:
        from advgraph.params import init_params
        from advgraph.run.rng import seeds
        from advgraph.run.session import Session, load_splits, make_trainer
        from advgraph.run.stream import DataStream
        from advgraph.train.loop import train_step

        splits = load_splits(loaded[0], ctx, None)
        took, kind = 0.0, "solo"
        for m, ls in zip(planned, loaded):
            program, trainer, sched = make_trainer(ls, ctx)
            rng = seeds(m.seed)
            trainer.load_state_dict(init_params(program, rng.init, splits.train))
            trainer.load_data(splits.train, splits.train_y if program.conditional else None)
            stream = DataStream(len(splits.train), ls.spec.training.batch_size, rng.data)
            trainer.set_order(stream.order)
            s = Session(ls.spec, program, splits, trainer, stream, sched, ctx)
            train_step(s)  # warm-up
            t0 = time.perf_counter()
            for _ in range(steps):
                train_step(s)
            trainer.read_metrics()
            took += time.perf_counter() - t0
            del s, trainer
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rate": n * steps / took, "peak_mb": peak / 2**20, "engine": kind}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", default="toy1d,ring2d,fashion")
    ap.add_argument("--members", default="1,4,16,64")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--child", nargs=2, metavar=("SPEC_N", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        name, n = a.child[0].split(":")
        print(json.dumps(child(name, int(n), a.child[1], a.steps, a.backend, a.device,
                               a.engine)))
        return
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'backends'}"}
    scratch = tempfile.TemporaryDirectory(prefix="advgraph-bench-")  # removed at exit
    if "mnist-nets" in a.specs.split(","):
        env["ADVGRAPH_BENCH_IMAGES"] = str(_random_images(Path(scratch.name)))
    print(f"# {a.backend} on {a.device}, {a.steps} timed iterations, {os.cpu_count()} cores; "
          "rate = members × steps / s")
    print(f"{'spec':8} {'N':>3} {'engine':>8} {'sweep rate':>11} {'solo rate':>10} "
          f"{'ratio':>6} {'sweep MB':>9} {'solo MB':>8}")
    for name in a.specs.split(","):
        if name == "fashion" and not FASHION.is_dir():
            print(f"{name:8} skipped: {FASHION} missing (apt-get install dataset-fashion-mnist)")
            continue
        for n in map(int, a.members.split(",")):
            out = {}
            for mode in ("sweep", "solo"):
                cmd = [sys.executable, __file__, "--child", f"{name}:{n}", mode, "--steps",
                       str(a.steps), "--backend", a.backend, "--device", a.device,
                       "--engine", a.engine]
                r = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if r.returncode:
                    sys.exit(f"{name} N={n} {mode} failed:\n{r.stderr}")
                out[mode] = json.loads(r.stdout.splitlines()[-1])
            sw, so = out["sweep"], out["solo"]
            print(f"{name:8} {n:>3} {sw['engine']:>8} {sw['rate']:>11.1f} {so['rate']:>10.1f} "
                  f"{sw['rate'] / so['rate']:>5.2f}x {sw['peak_mb']:>9.0f} {so['peak_mb']:>8.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
