"""Training iterations/s of the cupy backend (each iteration one replayed graph) against torch
eager, torch.compile(mode="reduce-overhead") and a hand-captured torch.cuda.graph of the same
nets, with GFLOP/s and peak memory, at one batch size or over a sweep.

Every variant runs Algorithm 1 on the spec's nets (k D-updates on a minibatch and noise, one
G-update; SGD with momentum; dropout as in the spec) on random data of the data set's shape.
Each measurement runs in a child process of its own (so peak memory is its own), one after
another in one run; the ratios to torch eager are printed. Variants a device cannot run (CUDA
graphs on the CPU) are listed with the reason.

    python bench/cupy_vs_torch.py --device cuda [--spec specs/mnist.yaml,specs/cifar10-conv.yaml]
        [--batch 100] [--sweep 32,100,256,1024] [--iters 200] [--warmup 20]
    python bench/cupy_vs_torch.py --device cpu --iters 3 --warmup 1   # the host executor
By default the paper's MNIST nets and its CIFAR-10 conv nets, a table each. Targets on an H100
at batch 100: on the MNIST nets cupy ≥ 3× torch eager and ≥ 1.5× torch with CUDA graphs; on the
conv nets within 2× of torch with cuDNN.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backends"))

VARIANTS = ("torch-eager", "cupy", "torch-compile", "torch-cudagraph")  # eager first: the base


def _program(spec: str, batch: int):
    from advgraph.compile import compile_spec
    from advgraph.data import data_info
    from advgraph.ops.costs import iteration_flops
    from advgraph.spec import load_file

    loaded = load_file(spec, [f"training.batch_size={batch}"])
    program = compile_spec(loaded, data_info(loaded))
    t = loaded.spec.training
    return loaded, program, t.k, iteration_flops(program.G, program.D, batch, t.k)


def _data(program, n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((n, *program.data_shape)).astype(np.float32)
    y = rng.integers(0, program.classes, n) if program.conditional else None
    return x, y


def _trainer_loop(backend: str, spec: str, device: str, batch: int, iters: int, warmup: int):
    """The backend's own Trainer driven as train.run_loop drives it."""
    import numpy as np

    from advgraph.backend_protocol import get_backend
    from advgraph.params import init_params
    from advgraph.run.schedule import Schedule

    loaded, program, k, flops = _program(spec, batch)
    sched = {g: Schedule(loaded.spec.training.optimizer_for(g)) for g in ("G", "D")}
    tr = get_backend(backend).build(program, device, 1, batch,
                                    {g: s.config() for g, s in sched.items()})
    n = max(8 * batch, 1000)
    x, y = _data(program, n)
    tr.load_state_dict(init_params(program, np.random.default_rng(1), x))
    tr.load_data(x, y)
    tr.set_order(np.random.default_rng(2).permutation(n))
    per_epoch, b = n // batch, 0

    def run(count: int) -> None:
        nonlocal b
        for it in range(count):
            for _ in range(k):
                tr.d_step((b % per_epoch) * batch, sched["D"].lr(b), 0.5)
                b += 1
            tr.g_step(sched["G"].lr(it), 0.5)
        tr.read_metrics()  # the host sync

    run(warmup)
    t0 = time.perf_counter()
    run(iters)
    return time.perf_counter() - t0, flops, _device_peak(backend, device)


def _device_peak(backend: str, device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    if backend == "cupy":
        import cupy

        return int(cupy.get_default_memory_pool().total_bytes())
    import torch

    return int(torch.cuda.max_memory_allocated())


def _plain_torch(spec: str, device: str, batch: int, iters: int, warmup: int, mode: str):
    """The same iteration as a plain function of static tensors (the fixed minibatch is what
    makes it capturable), compiled or captured."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from advgraph.backend_protocol import OptimConfig
    from advgraph.params import init_params
    from advgraph_torch.lower import Ctx, Net
    from advgraph_torch.optim import Optimizer

    if mode == "torch-cudagraph" and not device.startswith("cuda"):
        raise RuntimeError("CUDA graphs need a CUDA device")
    loaded, program, k, flops = _program(spec, batch)
    if program.conditional:
        raise RuntimeError("the plain loop covers unconditional nets")
    dev = torch.device(device)
    x_np, _ = _data(program, batch)
    params = init_params(program, np.random.default_rng(1), x_np)
    tensors = {n: torch.tensor(v, device=dev, requires_grad=True) for n, v in params.items()}
    G, D = Net(program.G, tensors), Net(program.D, tensors)
    train, frozen = Ctx(True, True, None), Ctx(True, False, None)  # default generator: capturable
    names = {g: [t.name for t in getattr(program, g).params()] for g in ("G", "D")}
    ps = {g: [tensors[n] for n in names[g]] for g in ("G", "D")}
    opt = {g: Optimizer(OptimConfig("sgd"), names[g], ps[g]) for g in ("G", "D")}
    x = torch.tensor(x_np, device=dev)
    prior, dz = program.prior, program.prior.dim

    def noise():
        if prior.kind == "uniform":
            return torch.rand(batch, dz, device=dev) * (prior.high - prior.low) + prior.low
        return torch.randn(batch, dz, device=dev) * prior.std + prior.mean

    def iteration():
        for _ in range(k):
            with torch.no_grad():
                fake = G(noise(), train)
            logits = D(torch.cat([x, fake]), train, logits=True)
            loss = F.softplus(-logits[:batch]).mean() + F.softplus(logits[batch:]).mean()
            opt["D"].step(list(torch.autograd.grad(loss, ps["D"])), 0.1, 0.5)
        lf = D(G(noise(), train), frozen, logits=True)
        opt["G"].step(list(torch.autograd.grad(F.softplus(-lf).mean(), ps["G"])), 0.1, 0.5)

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if mode == "torch-compile":
        step = torch.compile(iteration, mode="reduce-overhead")
    elif mode == "torch-cudagraph":
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                iteration()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            iteration()
        step = graph.replay
    else:
        step = iteration
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    return time.perf_counter() - t0, flops, _device_peak("torch", device)


def child(args) -> None:
    """One measurement; prints one JSON line."""
    if args.variant == "torch-eager":
        wall, flops, peak = _trainer_loop("torch", args.spec, args.device, args.batch,
                                          args.iters, args.warmup)
    elif args.variant == "cupy":
        wall, flops, peak = _trainer_loop("cupy", args.spec, args.device, args.batch,
                                          args.iters, args.warmup)
    else:
        wall, flops, peak = _plain_torch(args.spec, args.device, args.batch, args.iters,
                                         args.warmup, args.variant)
    print(json.dumps({"it_s": args.iters / wall, "gflop_s": flops * args.iters / wall / 1e9,
                      "device_peak": peak,
                      "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=",".join(str(ROOT / "specs" / f"{n}.yaml")
                                               for n in ("mnist", "cifar10-conv")),
                    help="a spec, or several separated by commas (a table each)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--sweep", default="", help="comma-separated batch sizes")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        return child(args)
    batches = [int(b) for b in args.sweep.split(",")] if args.sweep else [args.batch]
    for spec in args.spec.split(","):
        _table(args, spec, batches)


def _table(args, spec: str, batches: list[int]) -> None:
    print(f"spec {Path(spec).name}, device {args.device}, {args.iters} iterations after "
          f"{args.warmup} warm-up, each variant in its own process\n")
    print("| batch | variant | it/s | × torch eager | GFLOP/s | device peak (MB) | RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for batch in batches:
        base = None
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, "--variant", variant, "--spec", spec,
                   "--device", args.device, "--batch", str(batch), "--iters", str(args.iters),
                   "--warmup", str(args.warmup)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                last = (res.stderr.strip().splitlines() or ["failed"])[-1]
                print(f"| {batch} | {variant} | – | – | – | – | {last[:90]} |")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            if variant == "torch-eager":
                base = r["it_s"]
            ratio = f"{r['it_s'] / base:.2f}" if base else "–"
            peak = f"{r['device_peak'] / 2**20:.0f}" if r["device_peak"] else "–"
            print(f"| {batch} | {variant} | {r['it_s']:.2f} | {ratio} | {r['gflop_s']:.1f} | "
                  f"{peak} | {r['rss'] / 2**20:.0f} |")
    print()


if __name__ == "__main__":
    main()
