"""Parzen-window evaluation at the paper's scale on CPU: wall time, peak memory, and the speed-up
over the original formulation.

    python bench/parzen.py [--n-test 10000] [--n-samples 10000] [--dims 784] [--orig-points 100]

Fast path: advgraph's log_densities for 10,000 test points × 10,000 samples × 784 dims over the
paper's 10-σ grid (distances by GEMM, computed once, reused for every σ). Each measurement runs in
its own child process so its peak RSS (ru_maxrss) is its own; an "import only" child gives the
interpreter + torch baseline. The original formulation (per σ, a 10 × samples × dims difference
tensor) is timed on the first --orig-points test points for one σ and scaled linearly to the full
job (it is linear in test points and in σ count): the ratio printed is (scaled original) / fast.
Targets: fast ≤ 3 s wall, peak ≤ 1 GB, within 1e-3 nats of a float64 computation of the
definition (checked on every 200th point). `--fashion`: real Fashion-MNIST images instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def data(n_test: int, n_samples: int, dims: int, fashion: bool = False):
    import numpy as np

    if fashion:  # real images: test images as points, training images as the samples
        from advgraph.data.idx import read_idx

        def images(name: str, n: int):
            return read_idx(FASHION / name).reshape(-1, 784)[:n].astype(np.float32) / 255

        return images("t10k-images-idx3-ubyte.gz", n_test), images("train-images-idx3-ubyte.gz",
                                                                     n_samples)

    rng = np.random.default_rng(0)
    # MNIST-like: sparse, values in [0, 1]
    mu = (rng.random((n_samples, dims), dtype=np.float32) *
          (rng.random((n_samples, dims)) < 0.2)).astype(np.float32)
    x = (rng.random((n_test, dims), dtype=np.float32) *
         (rng.random((n_test, dims)) < 0.2)).astype(np.float32)
    return x, mu


def child(mode: str, a) -> None:
    sys.path.insert(0, str(ROOT))
    import torch  # noqa: F401  (part of the baseline)

    from advgraph.parzen import PAPER_SIGMAS, log_densities, log_densities_original

    out: dict = {}
    if mode != "import":
        x, mu = data(a.n_test, a.n_samples, a.dims, a.fashion)
        t0 = time.perf_counter()
        if mode == "fast":
            ll = log_densities(x, mu, PAPER_SIGMAS)
            out["checksum"] = float(ll.mean())
        else:
            log_densities_original(x[: a.orig_points], mu, PAPER_SIGMAS[0])
        out["seconds"] = time.perf_counter() - t0
        if mode == "fast":  # against the definition in float64, on every 200th point
            from advgraph.parzen import log_densities_direct

            idx = range(0, len(x), 200)
            out["max_error"] = max(float(abs(ll[j, i] - log_densities_direct(x[i:i + 1], mu, s)[0]))
                                   for j, s in enumerate(PAPER_SIGMAS) for i in idx)
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run_child(mode: str, a) -> dict:
    args = [sys.executable, __file__, "--child", mode, "--n-test", str(a.n_test),
            "--n-samples", str(a.n_samples), "--dims", str(a.dims),
            "--orig-points", str(a.orig_points)] + (["--fashion"] if a.fashion else [])
    r = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--n-samples", type=int, default=10_000)
    ap.add_argument("--dims", type=int, default=784)
    ap.add_argument("--orig-points", type=int, default=100)
    ap.add_argument("--fashion", action="store_true", help="real Fashion-MNIST images (from "
                    f"{FASHION}) instead of synthetic sparse ones")
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a)
    import torch

    base = run_child("import", a)
    fast = run_child("fast", a)
    orig = run_child("orig", a)
    scaled = orig["seconds"] * (a.n_test / a.orig_points) * 10
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"job: {a.n_test} test points × {a.n_samples} samples × {a.dims} dims, 10 σ values")
    print(f"fast: {fast['seconds']:.2f} s wall, peak RSS {fast['maxrss_mb']:.0f} MB "
          f"(interpreter + torch alone: {base['maxrss_mb']:.0f} MB; "
          f"the computation adds {fast['maxrss_mb'] - base['maxrss_mb']:.0f} MB)")
    print(f"original formulation: {orig['seconds']:.2f} s for {a.orig_points} points × 1 σ "
          f"→ {scaled:.0f} s scaled to the full job (peak RSS {orig['maxrss_mb']:.0f} MB)")
    print(f"max |fast − float64 definition| over 10 σ: {fast['max_error']:.2e} nats")
    print(f"ratio original/fast = {scaled / fast['seconds']:.1f}×  (targets: ≤ 3 s, ≤ 1 GB, "
          "≤ 1e-3 nats)")


if __name__ == "__main__":
    main()
