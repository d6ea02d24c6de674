"""Where one training iteration of a spec spends its time on the cupy backend's host executor
(the .cu kernels compiled as C++ for the CPU): per kernel, its launches, seconds, share of the
iteration and, for the GEMMs, GFLOP/s. A test-speed figure (the host executor is for testing
the kernels without a GPU, not for training), and which kernels to make faster for it.

    python bench/host_kernel_profile.py [--spec specs/cifar10-conv.yaml] [--batch 8]
        [--iters 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backends"))


def gemm_flops(kernel: str, args: tuple) -> float:
    """2·M·N·K (× batch) of a gemm/gemm_batched launch's scalars (M, N, K at 4, 5, 6)."""
    m, n, k = (int(v) for v in args[4:7])
    batch = int(args[10]) if kernel == "gemm_batched" else 1
    return 2.0 * m * n * k * batch


def main() -> None:
    from advgraph.compile import compile_spec
    from advgraph.data import data_info
    from advgraph.params import init_params
    from advgraph.spec import load_file
    from advgraph.run.schedule import Schedule
    from advgraph_cupy.backend import CupyTrainer
    from advgraph_cupy.runtime import HostExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "specs" / "cifar10-conv.yaml"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=1)
    args = ap.parse_args()

    seconds: dict[str, float] = defaultdict(float)
    launches: dict[str, int] = defaultdict(int)
    flops: dict[str, float] = defaultdict(float)

    class Timed(HostExecutor):
        def launch(self, kernel, grid, block, a) -> None:
            t0 = time.perf_counter()
            super().launch(kernel, grid, block, a)
            seconds[kernel] += time.perf_counter() - t0
            launches[kernel] += 1
            if kernel.startswith("gemm"):
                flops[kernel] += gemm_flops(kernel, a)

    loaded = load_file(args.spec, [f"training.batch_size={args.batch}"])
    program = compile_spec(loaded, data_info(loaded))
    sched = {g: Schedule(loaded.spec.training.optimizer_for(g)) for g in ("G", "D")}
    m, k = args.batch, loaded.spec.training.k
    tr = CupyTrainer(program, Timed(), 1, m, {g: s.config() for g, s in sched.items()})
    n = (k + 1) * m
    x = np.random.default_rng(0).random((n, *program.data_shape)).astype(np.float32)
    tr.load_state_dict(init_params(program, np.random.default_rng(1), x))
    tr.load_data(x)
    tr.set_order(np.arange(n))

    def iteration(i: int) -> None:
        for u in range(k):
            tr.d_step(u * m, sched["D"].lr(i), 0.5)
        tr.g_step(sched["G"].lr(i), 0.5)
        tr.read_metrics()

    iteration(0)  # warm-up: builds and binds the plan
    for d in (seconds, launches, flops):
        d.clear()
    t0 = time.perf_counter()
    for i in range(args.iters):
        iteration(i + 1)
    wall = (time.perf_counter() - t0) / args.iters
    total = sum(seconds.values()) / args.iters
    print(f"{Path(args.spec).name}, batch {m}, host executor: {wall:.2f} s per iteration "
          f"({total:.2f} s in kernels)")
    print(f"{'kernel':<22}{'launches':>9}{'s/iter':>9}{'share':>7}{'GFLOP/s':>9}")
    for name in sorted(seconds, key=seconds.get, reverse=True):
        s = seconds[name] / args.iters
        rate = f"{flops[name] / seconds[name] / 1e9:9.2f}" if name in flops else f"{'':>9}"
        print(f"{name:<22}{launches[name] // args.iters:>9}{s:>9.3f}{s / total:>7.1%}{rate}")


if __name__ == "__main__":
    main()
