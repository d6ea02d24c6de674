"""`advgraph parity`: two backends, identical weights, inputs and noise; how far apart are the
forward outputs, the gradients and one optimiser step?

Dropout is switched off (keep 1, scale 1) for the comparison: each backend draws its masks from
its own generator, so masks cannot match; everything else is the spec's own. Gradients are read
through the Trainer protocol as the change of one plain SGD step with lr = 1 and momentum 0 (so
to the float32 resolution of the parameters, and to 256 ulps of the net's largest gradient: a
gradient that is zero in exact arithmetic, as a bias before batchnorm has, is rounding noise in
both). After a first Adam step, parameters are compared where |g| > 1e-3 × the tensor's largest
and above that noise (elsewhere the step is lr·sign of rounding noise), the moments everywhere.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .backend import OptimConfig, get_backend, check_supported
from .ir import Op, Program
from .params import init_params
from .train.schedule import Schedule
from .train.rng import seeds


@dataclass
class Row:
    stage: str  # forward | gradient | step
    tensor: str
    max_abs: float
    max_rel: float  # max |a − b| / max(|a|, |b|) elementwise: where they differ most, relatively
    ok: bool
    allowed: float = 0.0  # the pass bound on max |a − b|: tol × the tensor's largest magnitude


def without_dropout(program: Program) -> Program:
    p = copy.deepcopy(program)
    for g in (p.G, p.D):
        for n in g.nodes:
            if n.op is Op.DROPOUT:
                n.attrs = {**n.attrs, "keep": 1.0, "scale": 1.0}
    return p


def _diff(stage: str, name: str, a: np.ndarray, b: np.ndarray, tol: float,
          floor: float = 0.0) -> Row:
    """Max absolute and relative difference; pass when max |a − b| ≤ max(tol · max(|a|, |b|),
    floor)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = np.abs(a64 - b64)
    scale = np.maximum(np.abs(a64), np.abs(b64))
    rel = float((d / np.maximum(scale, 1e-12)).max()) if d.size else 0.0
    mx = float(d.max()) if d.size else 0.0
    # pass when every difference is within tol of the tensor's largest magnitude: float32
    # rounding stays inside it, a wrong kernel does not
    allowed = max(tol * max(float(scale.max()) if scale.size else 0.0, 1e-30), floor)
    return Row(stage, name, mx, rel, mx <= allowed, allowed)


def compare(program: Program, spec_training, backends: tuple[str, str],
            devices: tuple[str, str], batch: int, tol: float, seed: int = 0) -> list[Row]:
    program = without_dropout(program)
    rng = np.random.default_rng(seed)
    data = rng.random((batch, *program.data_shape)).astype(np.float32)
    params = init_params(program, seeds(seed).init, data)
    z_d = rng.standard_normal((batch, program.prior.dim)).astype(np.float32)
    z_g = rng.standard_normal((batch, program.prior.dim)).astype(np.float32)
    y = rng.integers(0, program.classes, batch) if program.conditional else None
    y_g = rng.integers(0, program.classes, batch) if program.conditional else None
    plain = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}
    sched = {g: Schedule(spec_training.optimizer_for(g)) for g in ("G", "D")}
    own = {g: s.config() for g, s in sched.items()}

    def build(i: int, optim):
        be = get_backend(backends[i])
        check_supported(be, program)
        tr = be.build(program, devices[i], seeds(seed).backend, batch, optim)
        tr.load_state_dict(params)
        tr.load_data(data, y)
        tr.set_order(np.arange(batch))
        return tr

    rows: list[Row] = []
    a, b = build(0, plain), build(1, plain)
    rows.append(_diff("forward", "G(z)", a.generate(z_d, y), b.generate(z_d, y), tol))
    rows.append(_diff("forward", "D(x)", a.discriminate(data, y), b.discriminate(data, y), tol))
    # Gradients: θ0 − θ1 after one SGD step with lr 1 and momentum 0, from fresh trainers.
    def g_step(tr, lr: float, mom: float) -> None:
        if y_g is None:  # a backend without conditioning need not know the argument
            tr.g_step(lr, mom, z=z_g)
        else:
            tr.g_step(lr, mom, z=z_g, y=y_g)

    steps = {"D": lambda tr: tr.d_step(0, 1.0, 0.0, z=z_d), "G": lambda tr: g_step(tr, 1.0, 0.0)}
    noise: dict[str, float] = {}  # net → the rounding floor of its gradients
    for net, step in steps.items():
        a, b = build(0, plain), build(1, plain)
        step(a)
        step(b)
        sa, sb = a.state_dict(), b.state_dict()
        tensors = getattr(program, net).params()
        grads = {t.name: (params[t.name] - sa[t.name], params[t.name] - sb[t.name])
                 for t in tensors}
        noise[net] = NOISE * max((float(np.abs(g).max()) for pair in grads.values()
                                  for g in pair if g.size), default=0.0)
        for t in tensors:
            # θ0 − θ1 is only known to the float32 resolution of θ: each backend rounds θ1 to
            # it, so gradients far below the parameters' magnitude differ by up to one ulp.
            # A gradient that is zero in exact arithmetic (a bias before batchnorm) is the
            # rounding of cancelling sums in both: it differs by up to the net's noise floor.
            resolution = 2 * float(np.finfo(np.float32).eps) * float(np.abs(params[t.name]).max())
            rows.append(_diff("gradient", t.name, *grads[t.name], tol,
                              max(resolution, noise[net])))
    # One iteration with the spec's own optimisers and their first-step hyperparameters.
    a, b = build(0, own), build(1, own)
    for tr in (a, b):
        tr.d_step(0, sched["D"].lr(0), sched["D"].momentum(0), z=z_d)
        g_step(tr, sched["G"].lr(0), sched["G"].momentum(0))
    sa, sb = a.state_dict(), b.state_dict()
    adam_params = {t.name: g for g in ("G", "D") if own[g].kind == "adam"
                   for t in getattr(program, g).params()}
    # the first moment is (1 − β1)·g: the gradients' noise floor, scaled alike
    m_noise = {g: (1 - own[g].beta1) * noise[g] for g in ("G", "D")}
    lrs = {g: sched[g].lr(0) for g in ("G", "D")}
    for key in sorted(k for k in sa if not k.startswith("rng/") and k in sb):
        if sa[key].dtype.kind != "f":
            continue
        x, y = sa[key], sb[key]
        if key in adam_params and f"optim/{adam_params[key]}/m/{key}" in sa:
            # Adam's first step is lr·g/(|g| + ε) ≈ lr·sign(g): where g is float32 rounding
            # noise (|g| ≪ the tensor's largest), its sign is too. Compare the parameters where
            # the gradient means something; the moments, linear in g, are compared everywhere.
            net = adam_params[key]
            m1 = np.abs(sa[f"optim/{net}/m/{key}"])
            keep = m1 > max(ADAM_FLOOR * max(float(m1.max()), 1e-30), 16 * m_noise[net])
            x, y = x[keep], y[keep]
        rows.append(_diff("step", key, x, y, tol, _step_floor(key, own, noise, lrs)))
    return rows


def _step_floor(key: str, own: dict[str, OptimConfig], noise: dict[str, float],
                lrs: dict[str, float]) -> float:
    """The rounding floor of a tensor after one step: its gradients' noise floor carried
    through the update (SGD: θ − lr·g and the velocity −lr·g; Adam's moments m = (1 − β1)·g
    and v = (1 − β2)·g²); 0 for what does not carry it (Adam's parameters are compared where
    the gradient is above the noise)."""
    parts = key.split("/")
    if parts[0] == "optim" and len(parts) >= 4:
        net, slot = parts[1], parts[2]
    else:
        net, slot = key.split(".")[0], "param"
    if net not in noise:
        return 0.0
    cfg, floor = own[net], noise[net]
    if cfg.kind == "sgd":
        return lrs[net] * floor if slot in ("param", "velocity") else 0.0
    return {"m": (1 - cfg.beta1) * floor, "v": 4 * (1 - cfg.beta2) * floor ** 2}.get(slot, 0.0)


ADAM_FLOOR = 1e-3  # relative gradient size below which an Adam step's sign is rounding noise
# A net's gradients are rounded float32 sums, a conv net's over batch × positions (10⁴–10⁵
# terms, whose rounding grows as √N): differences below 256 ulps of the net's largest gradient
# are rounding (a wrong kernel is off by far more), and an Adam step whose gradient is within
# 16 times that of zero has a noise sign.
NOISE = 256 * float(np.finfo(np.float32).eps)
