"""What the framework costs: advgraph's torch backend vs a plain hand-written PyTorch loop.

Both train the paper's MNIST nets (specs/mnist.yaml: G 100→1200→1200→784, D maxout 240×5 ×2 with
dropout 0.8/0.5/0.5) with batch 100, k = 1, SGD + momentum and the per-update lr decay, on the
same MNIST-shaped random data, on CPU. advgraph runs its real training loop (run_loop: data
stream, schedules, metrics, a checkpoint at the end of each block); the plain loop is what a
careful PyTorch user writes (nn.Sequential, torch.optim.SGD, D frozen during the G step).
Blocks of both alternate in one process; the ratio of median steps/s is printed.

    python bench/torch_overhead.py [--steps 200] [--blocks 3] [--threads N]
Target: ratio ≥ 0.95.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advgraph.compile import compile_spec  # noqa: E402
from advgraph.data import data_info  # noqa: E402
from advgraph.run.directory import RunDir  # noqa: E402
from advgraph.spec import load_file  # noqa: E402
from advgraph.run.context import Context  # noqa: E402
from advgraph.train.loop import run_loop  # noqa: E402
from advgraph.run.schedule import Schedule  # noqa: E402
from advgraph.run.rng import seeds  # noqa: E402
from advgraph.run.session import Session  # noqa: E402
from advgraph.run.stream import DataStream  # noqa: E402
from advgraph.backend_protocol import get_backend  # noqa: E402
from advgraph.params import init_params  # noqa: E402

N_TRAIN, M = 10_000, 100


class Maxout(nn.Module):
    def __init__(self, n_in: int, units: int, pieces: int):
        super().__init__()
        self.lin, self.units, self.pieces = nn.Linear(n_in, units * pieces), units, pieces

    def forward(self, x):
        return self.lin(x).view(x.shape[0], self.units, self.pieces).amax(2)


def plain_loop(data: torch.Tensor, steps: int, state: dict) -> float:
    """Returns steps/s. `state` carries nets and optimisers across blocks."""
    if not state:
        torch.manual_seed(0)
        state["G"] = nn.Sequential(nn.Linear(100, 1200), nn.ReLU(), nn.Linear(1200, 1200),
                                   nn.ReLU(), nn.Linear(1200, 784), nn.Sigmoid())
        state["D"] = nn.Sequential(nn.Dropout(0.2), Maxout(784, 240, 5), nn.Dropout(0.5),
                                   Maxout(240, 240, 5), nn.Dropout(0.5), nn.Linear(240, 1))
        state["oG"] = torch.optim.SGD(state["G"].parameters(), lr=0.1, momentum=0.5)
        state["oD"] = torch.optim.SGD(state["D"].parameters(), lr=0.1, momentum=0.5)
        state["t"], state["perm"], state["pos"] = 0, torch.randperm(len(data)), 0
    G, D, oG, oD = state["G"], state["D"], state["oG"], state["oD"]
    s3 = math.sqrt(3)
    t0 = time.perf_counter()
    for _ in range(steps):
        lr = max(0.1 / 1.000004 ** state["t"], 1e-6)
        for opt in (oG, oD):
            for g in opt.param_groups:
                g["lr"] = lr
        if state["pos"] + M > len(data):
            state["perm"], state["pos"] = torch.randperm(len(data)), 0
        x = data[state["perm"][state["pos"]:state["pos"] + M]]
        state["pos"] += M
        z = torch.empty(M, 100).uniform_(-s3, s3)
        with torch.no_grad():
            fake = G(z)
        logits = D(torch.cat([x, fake]))
        loss_d = F.softplus(-logits[:M]).mean() + F.softplus(logits[M:]).mean()
        oD.zero_grad(set_to_none=True)
        loss_d.backward()
        oD.step()
        D.requires_grad_(False)
        z = torch.empty(M, 100).uniform_(-s3, s3)
        loss_g = F.softplus(-D(G(z))).mean()
        oG.zero_grad(set_to_none=True)
        loss_g.backward()
        oG.step()
        D.requires_grad_(True)
        state["t"] += 1
    return steps / (time.perf_counter() - t0)


def advgraph_session(data_np: np.ndarray) -> Session:
    loaded = load_file(ROOT / "specs" / "mnist.yaml",
                       ["training.checkpoint={steps: 100000000}", "training.log_every=100",
                        "training.monitor={}"])
    program = compile_spec(loaded, data_info(loaded))
    init_rng, data_rng, bseed = seeds(0)
    sched = {g: Schedule(loaded.spec.training.optimizer_for(g)) for g in ("G", "D")}
    tr = get_backend("torch").build(program, "cpu", bseed, M, {g: s.config() for g, s in sched.items()})
    tr.load_state_dict(init_params(program, init_rng, data_np))
    tr.load_data(data_np)
    stream = DataStream(len(data_np), M, data_rng)
    tr.set_order(stream.order)
    return Session(loaded.spec, program, None, tr, stream, sched,  # type: ignore[arg-type]
                   Context("torch", "cpu"))


def advgraph_block(run: RunDir, s: Session, steps: int) -> float:
    stop = s.step + steps
    t = s.spec.training.model_copy(update={"stop": s.spec.training.stop.model_copy(
        update={"steps": stop, "epochs": None})})
    s.spec = s.spec.model_copy(update={"training": t})
    t0 = time.perf_counter()
    run_loop(run, s)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    data_np = np.random.default_rng(0).random((N_TRAIN, 784), dtype=np.float32)
    data = torch.from_numpy(data_np)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(Path(tmp), "bench")
        session = advgraph_session(data_np)
        plain_state: dict = {}
        # warm-up, then alternate blocks so both see the same machine conditions
        plain_loop(data, 10, plain_state)
        advgraph_block(run, session, 10)
        ours, plain = [], []
        for b in range(a.blocks):
            plain.append(plain_loop(data, a.steps, plain_state))
            ours.append(advgraph_block(run, session, a.steps))
            print(f"block {b + 1}: plain {plain[-1]:.2f} steps/s, advgraph {ours[-1]:.2f} steps/s",
                  flush=True)
    mo, mp = statistics.median(ours), statistics.median(plain)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {M}, "
          f"{a.blocks} blocks × {a.steps} steps")
    print(f"median steps/s: advgraph {mo:.2f}, plain PyTorch {mp:.2f}")
    print(f"ratio advgraph/plain = {mo / mp:.3f}  (target ≥ 0.95)")


if __name__ == "__main__":
    main()
