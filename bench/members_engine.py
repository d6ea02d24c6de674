"""A sweep's members trained side by side on the torch backend, on CPU: the batched engine (one
program over N stacked members, advgraph_torch/members.py) against the loop engine (N solo
TorchTrainers stepped in turn, advgraph.sweep.engine.LoopMembers), and, where the nets have no
dropout, torch.func.vmap over one solo step's gradients. Prints members × steps / s of each
and the ratio batched / loop. Same initial state, data, orders and per-member lr for all.

    nice python bench/members_engine.py [--spec specs/ring2d.yaml] [--members 1 4 16 64]
        [--iters 50] [--repeats 3] [--threads N] [--batch M] [--no-vmap]

An iteration is the spec's k D-steps and one G-step. Each engine first runs 3 iterations of
warm-up; then the engines alternate blocks of --iters iterations, --repeats times, and the
best block of each counts (the machine may be shared: its busy spells hit all alike).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backends"))
from advgraph.backend_protocol import get_backend  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.run.schedule import Schedule  # noqa: E402
from advgraph.spec import load_file  # noqa: E402
from advgraph.sweep.engine import LoopMembers  # noqa: E402
from tests.programs import compile_loaded  # noqa: E402

WARM = 3
EXAMPLES = 4096


BATCH: list[int | None] = [None]  # --batch: instead of the spec's batch size


def setup(spec: Path, n: int, engine: str, examples: int = EXAMPLES):
    loaded = load_file(spec)
    t = loaded.spec.training
    prog = compile_loaded(loaded)
    optim = {g: Schedule(t.optimizer_for(g)).config() for g in ("G", "D")}
    backend, m, seeds = get_backend("torch"), BATCH[0] or t.batch_size, list(range(n))
    x = np.random.default_rng(0).random((examples, *prog.data_shape)).astype(np.float32)
    if engine == "batched":
        members = backend.build_members([prog] * n, "cpu", seeds, m, [optim] * n)
        assert members is not None
    else:
        members = LoopMembers([backend.build(prog, "cpu", s, m, optim) for s in seeds])
    members.load_data(x)
    for i in range(n):
        members.member(i).load_state_dict(init_params(prog, np.random.default_rng(i), x))
        members.set_order(i, np.random.default_rng(100 + i).permutation(examples))
    return members, m, t.k, prog


def engine_block(spec: Path, n: int, engine: str):
    """A function that trains `iters` iterations and gives members × iterations / s."""
    members, m, k, _ = setup(spec, n, engine)
    lr = [1e-3 * (1 + i / max(n, 1)) for i in range(n)]
    mom = [0.5] * n
    pos = 0

    def block(iters: int) -> float:
        nonlocal pos
        start = time.perf_counter()
        for _ in range(iters):
            for _ in range(k):
                members.d_step(pos, lr, mom, [()] * n)
                pos = (pos + m) % (EXAMPLES - m)
            members.g_step(lr, mom)
        members.read_metrics()  # the host sync
        return n * iters / (time.perf_counter() - start)

    block(WARM)
    return block


def vmap_block(spec: Path, n: int):
    """torch.func.vmap of one solo D- and G-step's gradients over stacked parameters (the
    batched engine's optimiser applies them); None where the nets draw dropout masks or take
    labels (not written here)."""
    from torch.func import grad, vmap

    from advgraph.ir import Op
    from advgraph_torch.lower import Ctx, Net
    from advgraph_torch.objective import d_loss, g_loss

    members, m, k, prog = setup(spec, n, "batched")
    if prog.G.has_op(Op.DROPOUT) or prog.D.has_op(Op.DROPOUT) or prog.conditional:
        return None
    ctx = Ctx(train=True, update_stats=True, gen=None)
    loss, G, D = prog.objective.loss, Net(prog.G, {}), Net(prog.D, {})
    d_names, g_names = members._names["D"], members._names["G"]

    def d_obj(dp, gp, x, z):
        fake = G(z, ctx, params=gp).detach()
        return d_loss(loss, D(x, ctx, logits=True, params=dp),
                      D(fake, ctx, logits=True, params=dp))

    def g_obj(gp, dp, z):
        return g_loss(loss, D(G(z, ctx, params=gp), ctx, logits=True, params=dp))

    d_grad, g_grad = vmap(grad(d_obj)), vmap(grad(g_obj))
    lr, mom = [1e-3] * n, [0.5] * n

    def block(iters: int) -> float:
        start = time.perf_counter()
        for _ in range(iters):
            dp = {name: members.tensors[name].detach() for name in d_names}
            gp = {name: members.tensors[name].detach() for name in g_names}
            for _ in range(k):
                x, _ = members._batch(0)
                gr = d_grad(dp, gp, x, members.noise(members.gens, m))
                members.opt["D"].step([gr[name] for name in d_names], lr, mom)
            gr = g_grad(gp, dp, members.noise(members.gens, m))
            members.opt["G"].step([gr[name] for name in g_names], lr, mom)
        return n * iters / (time.perf_counter() - start)

    block(WARM)
    return block


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "specs" / "ring2d.yaml")
    ap.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="instead of the spec's")
    ap.add_argument("--no-vmap", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    BATCH[0] = a.batch
    print(f"{a.spec.name}, batch {a.batch or 'as the spec'}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; the "
          f"best of {a.repeats} interleaved blocks of {a.iters} iterations; "
          "members × iterations / s")
    print(f"{'N':>4} {'loop':>10} {'batched':>10} {'ratio':>7} {'vmap':>10} {'ratio':>7}")
    for n in a.members:
        blocks = {"loop": engine_block(a.spec, n, "loop"),
                  "batched": engine_block(a.spec, n, "batched"),
                  "vmap": None if a.no_vmap else vmap_block(a.spec, n)}
        best = _interleaved(blocks, a)
        loop, batched, vm = best["loop"], best["batched"], best["vmap"]
        vms = ("n/a", "") if vm is None else (f"{vm:.1f}", f"{vm / loop:.2f}")
        print(f"{n:>4} {loop:10.1f} {batched:10.1f} {batched / loop:7.2f} {vms[0]:>10} "
              f"{vms[1]:>7}", flush=True)


def _interleaved(blocks: dict, a) -> dict:
    """Best rate of each engine over `repeats` rounds, the engines alternating in each (so a
    busy spell of the machine hits them alike)."""
    best = {name: (None if f is None else 0.0) for name, f in blocks.items()}
    for _ in range(a.repeats):
        for name, f in blocks.items():
            if f is not None:
                best[name] = max(best[name], f(a.iters))
    return best


if __name__ == "__main__":
    main()
