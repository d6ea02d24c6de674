"""Which backend is nearer the exact gradient? One plain SGD step (lr 1, momentum 0) of the D-
or G-update on torch (cpu), cupy (host executor) and cupy's NumPy twins (float64 accumulation),
from `parity`'s weights, inputs and noise, against the same gradient in float64 (torch's
lowering with float64 tensors). Prints each tensor's largest error per backend.

    python bench/parity_float64.py specs/cifar10-conv.yaml --batch 64 D.c2.weight D.c1.bias
    python bench/parity_float64.py specs/cifar10-conv.yaml G.y.bias
(the tensors of one net per run: D.* or G.*; no dropout, as in `parity`)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backends"))


def main() -> None:
    import torch
    import torch.nn.functional as F

    from advgraph.backend_protocol import OptimConfig, get_backend
    from advgraph.compile import compile_spec
    from advgraph.data import data_info
    from advgraph.params import init_params
    from advgraph.parity import without_dropout
    from advgraph.spec import load_file
    from advgraph.run.rng import seeds
    from advgraph_cupy.backend import CupyTrainer
    from advgraph_cupy.runtime import TwinExecutor
    from advgraph_torch.lower import Ctx, Net

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("tensors", nargs="+")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    net = args.tensors[0].split(".")[0]
    loaded = load_file(args.spec)
    program = without_dropout(compile_spec(loaded, data_info(loaded)))
    if program.conditional:
        sys.exit("conditional nets: not covered")
    m = args.batch
    rng = np.random.default_rng(0)  # as parity.compare draws them
    data = rng.random((m, *program.data_shape)).astype(np.float32)
    params = init_params(program, seeds(0).init, data)
    z_d = rng.standard_normal((m, program.prior.dim)).astype(np.float32)
    z_g = rng.standard_normal((m, program.prior.dim)).astype(np.float32)
    plain = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}
    got = {}
    for name in ("torch", "cupy", "twins"):
        tr = (CupyTrainer(program, TwinExecutor(), seeds(0).backend, m, plain) if name == "twins"
              else get_backend(name).build(program, "cpu", seeds(0).backend, m, plain))
        tr.load_state_dict(params)
        tr.load_data(data)
        tr.set_order(np.arange(m))
        tr.d_step(0, 1.0, 0.0, z=z_d) if net == "D" else tr.g_step(1.0, 0.0, z=z_g)
        state = tr.state_dict()
        got[name] = {t: params[t] - state[t] for t in args.tensors}
    t64 = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    G, D = Net(program.G, t64), Net(program.D, t64)
    ctx = Ctx(True, False, None)
    if net == "D":
        with torch.no_grad():
            fake = G(torch.tensor(z_d, dtype=torch.float64), ctx)
        real = D(torch.tensor(data, dtype=torch.float64), ctx, logits=True)
        loss = F.softplus(-real).mean() + F.softplus(D(fake, ctx, logits=True)).mean()
    else:
        loss = F.softplus(-D(G(torch.tensor(z_g, dtype=torch.float64), ctx), ctx,
                             logits=True)).mean()
    exact = torch.autograd.grad(loss, [t64[t] for t in args.tensors])
    print(f"{'tensor':<16}{'max |g|':>10}" + "".join(f"{'|' + b + ' − f64|':>16}" for b in got))
    for t, g in zip(args.tensors, exact):
        g = g.numpy()
        errs = "".join(f"{float(np.abs(got[b][t] - g).max()):16.3g}" for b in got)
        print(f"{t:<16}{float(np.abs(g).max()):10.3g}{errs}")


if __name__ == "__main__":
    main()
