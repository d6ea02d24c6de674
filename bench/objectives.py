"""The objectives after 2014 against the paper's, at equal steps, on the probes their papers use.

  python bench/objectives.py ring2d  [--seeds 8] [--steps 5000] [--runs-dir DIR]
  python bench/objectives.py fashion [--steps 3000] [--runs-dir DIR]

ring2d (the 8-Gaussians of Metz et al. 2017 and Srivastava et al. 2017): one run per loss and
seed, all with the nets and schedule of specs/ring2d.yaml except what the loss needs (D ends
in a linear layer for a loss on raw scores), WGAN-GP with its own spec's settings (Adam 1e-4,
β = (0.5, 0.9), five critic updates per step, Gulrajani et al. 2017); then `eval --modes` on
each, printed as mean ± standard error over the seeds.

fashion: the paper's MNIST nets and schedule (specs/fashion-mnist.yaml: maxout D with dropout,
SGD with momentum) trained twice at equal steps, once as the paper (non-saturating G loss, D
ending in a sigmoid) and once with hinge, spectral norm on D and an EMA of G (D ending in a
linear layer; nothing else changed); then Parzen, FID and precision/recall in the domain
classifier's features (`eval --parzen --fid --prdc`, 10,000 samples). The conv spec
(fashion-mnist-conv-hinge-sn.yaml) is sized for a GPU: on 2 CPU cores even a quarter of its
width trains at about one step per second.

Every command is an ordinary `advgraph` command (printed as it runs), so any row can be rerun
by hand. Runs stay in --runs-dir; a finished run is not trained again, an unfinished one
resumes, so an interrupted benchmark picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

RING = {  # setting → (spec, --set overrides)
    "non_saturating": ("ring2d.yaml", []),
    "least_squares": ("ring2d.yaml", ["training.loss=least_squares",
                                      "discriminator.layers[3].type=linear"]),
    "hinge": ("ring2d-hinge.yaml", []),  # ring2d.yaml but the loss and D's linear end
    "wgan_gp": ("ring2d-wgan-gp.yaml", []),
}
FASHION = {  # setting → (run name, --set overrides of specs/fashion-mnist.yaml)
    "paper objective": ("fashion-paper", []),
    "hinge + spectral norm + EMA": ("fashion-hinge-sn-ema", [
        "training.loss=hinge", "discriminator.layers[6].type=linear",
        "training.regularizers={spectral_norm: {nets: [D]}, ema: {decay: 0.999, start: 1000}}"]),
}


def advgraph(*args: str) -> None:
    cmd = [sys.executable, "-m", "advgraph", *args]
    print("$ advgraph " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def status(runs: Path, name: str) -> str | None:
    info = runs / name / "run.json"
    return json.loads(info.read_text()).get("status") if info.exists() else None


def train(runs: Path, name: str, spec: str, sets: list[str], backend: str) -> None:
    state = status(runs, name)
    if state == "finished":
        return
    if state is not None:
        advgraph("train", "--resume", name, "--runs-dir", str(runs))
        return
    flags = [a for s in sets for a in ("--set", s)]
    advgraph("train", str(SPECS / spec), "--name", name, "--runs-dir", str(runs),
             "--backend", backend, *flags)


def last_eval(runs: Path, name: str, metric: str) -> dict:
    rows = [json.loads(line) for line in
            (runs / name / "eval" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("metric") == metric][-1]


def mean_se(values: list[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "—"
    n = len(finite)
    m = sum(finite) / n
    se = math.sqrt(sum((v - m) ** 2 for v in finite) / (n - 1) / n) if n > 1 else float("nan")
    note = f" (n = {n})" if n != len(values) else ""
    return f"{m:.3f} ± {se:.3f}{note}"


def ring2d(args: argparse.Namespace) -> None:
    runs = Path(args.runs_dir)
    table = []
    for setting, (spec, sets) in RING.items():
        per_seed = []
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            name = f"ring2d-{setting}-s{seed}"
            train(runs, name, spec, sets + [f"training.seed={seed}",
                                            f"training.stop.steps={args.steps}",
                                            f"training.checkpoint.steps={args.steps}",
                                            "training.sample_grid=null"], args.backend)
            advgraph("eval", name, "--modes", "--runs-dir", str(runs))
            r = last_eval(runs, name, "modes")
            per_seed.append(r)
            print(f"  {name}: modes {r['modes_covered']}/{r['modes']}, high quality "
                  f"{r['high_quality_share']:.3f}, KL {r['kl_uniform']}", flush=True)
        table.append((setting, per_seed, time.perf_counter() - t0))
    print(f"\nring2d, {args.steps} steps, {args.seeds} seeds, backend {args.backend}: "
          "mean ± standard error over seeds")
    print("| loss | modes covered (of 8) | high-quality share | KL(modes ‖ uniform) | "
          "wall (train + eval, all seeds) |")
    print("|---|---|---|---|---|")
    for setting, rows, wall in table:
        print(f"| {setting} | {mean_se([r['modes_covered'] for r in rows])} | "
              f"{mean_se([r['high_quality_share'] for r in rows])} | "
              f"{mean_se([r['kl_uniform'] for r in rows])} | {wall:.0f} s |")


def fashion(args: argparse.Namespace) -> None:
    runs = Path(args.runs_dir)
    common = [f"training.stop.steps={args.steps}", f"training.checkpoint.steps={args.steps}",
              "training.stop.epochs=null", "training.sample_grid=null"]
    table = []
    for setting, (name, sets) in FASHION.items():
        train(runs, name, "fashion-mnist.yaml", sets + common, args.backend)
        advgraph("eval", name, "--parzen", "--fid", "--prdc", "--runs-dir", str(runs))
        table.append((setting, last_eval(runs, name, "parzen"), last_eval(runs, name, "quality")))
    print(f"\nFashion-MNIST, {args.steps} steps, backend {args.backend}")
    for setting, parzen, quality in table:
        print(f"- {setting}: parzen {json.dumps(parzen, default=str)}")
        print(f"  quality {json.dumps(quality, default=str)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("probe", choices=["ring2d", "fashion"])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--runs-dir", default="bench-runs/objectives")
    p.add_argument("--backend", default="torch")
    args = p.parse_args()
    if args.steps is None:
        args.steps = 5000 if args.probe == "ring2d" else 3000
    (ring2d if args.probe == "ring2d" else fashion)(args)


if __name__ == "__main__":
    main()
