"""`advgraph parity`: two backends, identical weights, inputs and noise; how far apart are the
forward outputs, the gradients and one optimiser step?

Dropout is switched off (keep 1, scale 1: every op's `switch_off`) for the comparison: each
backend draws its masks from its own generator, so masks cannot match; everything else is the
spec's own. Gradients are read
through the Trainer protocol as the change of one plain SGD step with lr = 1 and momentum 0 (so
to the float32 resolution of the parameters). Each backend's float32 sensitivity of each
gradient is measured, as the difference between its gradients at the parameters and at the
parameters nudged by 1e-6 of themselves, and a gradient passes within 4 times that too: a
gradient that is zero in exact arithmetic, as a bias before batchnorm has, or a sum of 10⁵
cancelling terms, is rounding noise in float32, and a maxout or max pooling near-tie that the
two backends' roundings resolve differently sends a gradient to another unit; and always within
64 float32 ulps of the net's largest gradient (a gradient near zero carries the rounding of
the loss's per-example terms, which are as large as that). After a first Adam step, parameters are compared where the
gradient is above 1e-3 × the tensor's largest and above its rounding (elsewhere the step is
lr·sign of rounding noise), the moments everywhere.

The regularisers' state is compared with the step too: spectral norm's u and v (each net's
power iteration at the start of its own step), and G's EMA after an `ema_step` with the rate of
the first G-update (where the program has one), on the parameters' terms: (1 − decay) of a
parameter's floor, where its parameter is compared.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .backend_protocol import OptimConfig, get_backend, check_supported
from .ir import Program
from .ops import OPS
from .params import init_params
from .run.schedule import Schedule
from .run.rng import seeds


@dataclass
class Row:
    stage: str  # forward | gradient | step
    tensor: str
    max_abs: float
    max_rel: float  # max |a − b| / max(|a|, |b|) elementwise: where they differ most, relatively
    ok: bool
    allowed: float = 0.0  # the pass bound on max |a − b|: tol × the tensor's largest magnitude,
    # or the float32 floor of a gradient (and what a step carries of it), whichever is larger


def without_dropout(program: Program) -> Program:
    """A copy with every op that can be switched off for a comparison switched off (its
    `switch_off` attributes: dropout's keep 1, scale 1)."""
    p = copy.deepcopy(program)
    for g in (p.G, p.D):
        for n in g.nodes:
            off = OPS[n.op].switch_off
            if off is not None:
                n.attrs = {**n.attrs, **off}
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


@dataclass
class _Setup:
    """One comparison's program, weights, inputs and noise, and how to build a trainer."""

    program: Program
    backends: tuple[str, str]
    devices: tuple[str, str]
    batch: int
    seed: int
    data: np.ndarray
    params: dict[str, np.ndarray]
    z_d: np.ndarray
    z_g: np.ndarray
    y: np.ndarray | None
    y_g: np.ndarray | None

    def build(self, i: int, optim: dict[str, OptimConfig],
              params: dict[str, np.ndarray] | None = None):
        be = get_backend(self.backends[i])
        check_supported(be, self.program)
        tr = be.build(self.program, self.devices[i], seeds(self.seed).backend, self.batch, optim)
        tr.load_state_dict(self.params if params is None else params)
        tr.load_data(self.data, self.y)
        tr.set_order(np.arange(self.batch))
        return tr

    def d_step(self, tr, lr: float, mom: float) -> None:
        tr.d_step(0, lr, mom, z=self.z_d)

    def g_step(self, tr, lr: float, mom: float) -> None:
        if self.y_g is None:  # a backend without conditioning need not know the argument
            tr.g_step(lr, mom, z=self.z_g)
        else:
            tr.g_step(lr, mom, z=self.z_g, y=self.y_g)

    def ema_decay(self) -> float | None:
        """The EMA's decay after the first G-update (None: no EMA)."""
        ema = self.program.objective.ema
        return None if ema is None else ema.rate(1)

    def nudged(self) -> dict[str, np.ndarray]:
        """The parameters each moved by 1e-6 of itself, up or down at random (about 8 float32
        ulps): mathematically the same gradients to 1e-6, but other roundings, and other
        winners wherever a max (maxout, max pooling) had a near-tie."""
        rng = np.random.default_rng(self.seed + 1)
        out = dict(self.params)
        for t in self.program.G.params() + self.program.D.params():
            v = self.params[t.name]
            out[t.name] = (v * (1 + NUDGE * rng.choice([-1.0, 1.0], v.shape))).astype(v.dtype)
        return out


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
    setup = _Setup(program, backends, devices, batch, seed, data, params, z_d, z_g, y, y_g)
    a, b = setup.build(0, PLAIN), setup.build(1, PLAIN)
    rows = [_diff("forward", "G(z)", a.generate(z_d, y), b.generate(z_d, y), tol),
            _diff("forward", "D(x)", a.discriminate(data, y), b.discriminate(data, y), tol)]
    noise: dict[str, float] = {}
    for net in ("D", "G"):
        rows += _gradient_rows(setup, net, tol, noise)
    return rows + _step_rows(setup, spec_training, tol, noise)


PLAIN = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}


def _gradients(setup: _Setup, net: str, i: int,
               params: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """θ0 − θ1 of net's parameters after one SGD step with lr 1 and momentum 0 on backend i,
    from a fresh trainer with the given (or the setup's) parameters."""
    params = setup.params if params is None else params
    tr = setup.build(i, PLAIN, params)
    (setup.d_step if net == "D" else setup.g_step)(tr, 1.0, 0.0)
    s = tr.state_dict()
    return {t.name: params[t.name] - s[t.name] for t in getattr(setup.program, net).params()}


def _gradient_rows(setup: _Setup, net: str, tol: float, noise: dict[str, float]) -> list[Row]:
    """Each backend's gradients of net, at the parameters and at the parameters nudged by 1e-6:
    the difference measures how far float32 moves each gradient where exact arithmetic does
    not (rounding: a gradient that is zero in exact arithmetic, as a bias before batchnorm has,
    or a sum of 10⁵ cancelling terms; and a max whose near-tie another rounding resolves the
    other way, sending a gradient to another unit). A row passes within tol of the tensor's
    largest value, or within noise[tensor]: 4 times the two backends' measured sensitivity (at
    most ROUNDING_CAP of the net's largest gradient, so a wrong kernel is not excused), and
    at least NET_ULPS of the net's largest gradient (a gradient near zero sums the loss's
    per-example terms, as large as the net's largest gradients, and carries their rounding,
    which each backend's own activations and losses round differently)."""
    nudged = setup.nudged()
    g = [_gradients(setup, net, i) for i in (0, 1)]
    again = [_gradients(setup, net, i, nudged) for i in (0, 1)]
    largest = max((float(np.abs(v).max()) for grads in g for v in grads.values() if v.size),
                  default=0.0)
    rows = []
    for t in getattr(setup.program, net).params():
        a, b = g[0][t.name], g[1][t.name]
        measured = sum(float(np.abs(x[t.name] - y[t.name]).max()) if a.size else 0.0
                       for x, y in zip(g, again))
        noise[t.name] = max(min(4 * measured, ROUNDING_CAP * largest), NET_ULPS * EPS * largest)
        # θ0 − θ1 is only known to the float32 resolution of θ: each backend rounds θ1 to it
        resolution = 2 * EPS * float(np.abs(setup.params[t.name]).max())
        rows.append(_diff("gradient", t.name, a, b, tol, max(resolution, noise[t.name])))
    return rows


def _step_rows(setup: _Setup, spec_training, tol: float, noise: dict[str, float]) -> list[Row]:
    """One iteration with the spec's own optimisers and their first-step hyperparameters:
    every float tensor of the two states."""
    sched = {g: Schedule(spec_training.optimizer_for(g)) for g in ("G", "D")}
    own = {g: s.config() for g, s in sched.items()}
    a, b = setup.build(0, own), setup.build(1, own)
    for tr in (a, b):
        setup.d_step(tr, sched["D"].lr(0), sched["D"].momentum(0))
    d_a, d_b = a.state_dict(), b.state_dict()
    # G's step through the same D: each backend's stepped D carries its own rounding (Adam
    # moves a weight whose gradient is rounding noise by ±lr, either way), which G's gradients
    # would carry far beyond the rounding measured at the starting parameters
    # (and spectral norm's vectors: G's step uses D's σ from them)
    same_d = {t.name: d_a[t.name] for t in setup.program.D.params()}
    same_d.update({k: v for k, v in d_a.items() if k.startswith("spectral/D.")})
    b.load_state_dict({**d_b, **same_d})
    decay = setup.ema_decay()
    for tr in (a, b):
        setup.g_step(tr, sched["G"].lr(0), sched["G"].momentum(0))
        if decay is not None:
            tr.ema_step(decay)
    sa, sb = a.state_dict(), b.state_dict()
    for key in d_a:  # D's tensors as its own step left them
        if key.startswith(D_OWN):
            sa[key], sb[key] = d_a[key], d_b[key]
    adam = {t.name: g for g in ("G", "D") if own[g].kind == "adam"
            for t in getattr(setup.program, g).params()}
    lrs = {g: sched[g].lr(0) for g in ("G", "D")}
    rows = []
    for key in sorted(k for k in sa if not k.startswith("rng/") and k in sb):
        if sa[key].dtype.kind != "f":
            continue
        x, y = sa[key], sb[key]
        param = key[4:] if key.startswith("ema/") else key  # an EMA carries its parameter's step
        if param in adam and f"optim/{adam[param]}/m/{param}" in sa:
            # Adam's first step is lr·g/(|g| + ε) ≈ lr·sign(g): where g is float32 rounding
            # noise, its sign is too. Compare the parameters where the gradient means
            # something (above 1e-3 of the tensor's largest and 16× its measured rounding);
            # the moments, linear in g, are compared everywhere.
            cfg = own[adam[param]]
            m1 = np.abs(sa[f"optim/{adam[param]}/m/{param}"])
            keep = m1 > max(ADAM_FLOOR * max(float(m1.max()), 1e-30),
                            16 * (1 - cfg.beta1) * noise.get(param, 0.0))
            x, y = x[keep], y[keep]
        floor = _step_floor(param, own, noise, lrs, sa)
        if param != key:
            floor *= 1 - (decay or 0.0)
        rows.append(_diff("step", key, x, y, tol, floor))
    return rows


# What D's own step leaves (G's step only reads it): its parameters, optimiser slots and
# spectral norm's vectors
D_OWN = ("D.", "optim/D/", "spectral/D.")


def _step_floor(key: str, own: dict[str, OptimConfig], noise: dict[str, float],
                lrs: dict[str, float], state: dict[str, np.ndarray]) -> float:
    """The rounding floor of a tensor after one step: its gradient's measured rounding δ
    carried through the update (SGD: θ − lr·g and the velocity −lr·g; Adam's moments
    m = (1 − β1)·g, so (1 − β1)·δ, and v = (1 − β2)·g², so (1 − β2)·δ·(2·max|g| + δ), with
    |g| = |m|/(1 − β1) from `state`); 0 for what does not carry it (Adam's parameters are
    compared where the gradient is above the noise)."""
    parts = key.split("/")
    if parts[0] == "optim" and len(parts) >= 4:
        net, slot, tensor = parts[1], parts[2], "/".join(parts[3:])
    else:
        net, slot, tensor = key.split(".")[0], "param", key
    if tensor not in noise or net not in own:
        return 0.0
    cfg, floor = own[net], noise[tensor]
    if cfg.kind == "sgd":
        return lrs[net] * floor if slot in ("param", "velocity") else 0.0
    if slot == "m":
        return (1 - cfg.beta1) * floor
    if slot == "v":
        m = state.get(f"optim/{net}/m/{tensor}")
        g = float(np.abs(m).max()) / (1 - cfg.beta1) if m is not None and m.size else 0.0
        return (1 - cfg.beta2) * floor * (2 * g + floor)
    return 0.0


ADAM_FLOOR = 1e-3  # relative gradient size below which an Adam step's sign is rounding noise
# The most of a net's largest gradient that measured rounding may excuse: a wrong kernel is off
# by the size of its gradients, not by this.
ROUNDING_CAP = 1e-2
NET_ULPS = 64  # float32 ulps of the net's largest gradient below which any difference is rounding
EPS = float(np.finfo(np.float32).eps)
NUDGE = 1e-6  # the relative move of the parameters that measures a gradient's float32 sensitivity
