"""The torch backend's losses and regularisers against independent oracles: finite differences
of the float64 NumPy reference loss (advgraph.reference.loss_values), closed forms of the
penalties on a linear D, numpy.linalg.svd and advgraph.objective.power_iteration for spectral
norm, the EMA recurrence written out here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from advgraph import reference as R  # noqa: E402
from advgraph.backend_protocol import OptimConfig, check_supported, get_backend  # noqa: E402
from advgraph.ir import Objective, Op, SpectralWeight  # noqa: E402
from advgraph.ir.objective import LOSSES, SCORE_LOSSES  # noqa: E402
from advgraph.objective import folded, power_iteration, spectral_matrix  # noqa: E402
from advgraph.ops import OPS  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.spec import load_text  # noqa: E402
from tests.backend.test_torch_backend import _num_grad, build  # noqa: E402
from tests.programs import compile_loaded, one_op_program  # noqa: E402
from tests.unit.test_spec import BASE  # noqa: E402

M, LR = 8, 0.05
MAXOUT = "    - {type: maxout, name: h0, units: 8, pieces: 2}\n"


def program(loss="non_saturating", regs="", linear_d=False, cond=False):
    """BASE with `loss` (D ends in a raw score for the score losses) and `regs`, the YAML lines
    under training.regularizers; `linear_d`: D(x) = w·x + b; `cond`: on the ring's 8 labels."""
    text = ("condition: {type: label, classes: 8}\n" if cond else "") + BASE
    if loss in SCORE_LOSSES:
        text = text.replace("    - {type: sigmoid}", "    - {type: linear}")
    if linear_d:
        text = text.replace(MAXOUT, "")
    head = f"training:\n  loss: {loss}\n"
    if regs:
        head += "  regularizers:\n" + "".join(f"    {line}\n" for line in regs.splitlines())
    return compile_loaded(load_text(text.replace("training:\n", head), "x.yaml"))


def data(seed=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(M, 2)).astype(np.float32), rng.normal(size=(M, 8)).astype(np.float32)


def ready(prog, x, y=None, **kw):
    tr, params = build(prog, batch=M, **kw)
    tr.load_data(x, y)
    tr.set_order(np.arange(M))
    return tr, params


def f64(d):
    return {k: np.asarray(v, np.float64) for k, v in d.items()}


# ---- the five losses -------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_one_sgd_step_follows_finite_differences(loss):
    """d_step and g_step move θ by −lr·∇loss, the gradient by finite differences of
    reference.loss_values on the float64 reference forward; the metrics are the reference's
    losses and D's mean output (a probability, or the raw score)."""
    # wasserstein needs a Lipschitz D declared; the penalty is not applied (penalties=()).
    prog = program(loss, "gradient_penalty: {weight: 10}" if loss == "wasserstein" else "")
    x, z = data()
    tr, params = ready(prog, x)
    p64 = f64(params)
    fake = R.forward(prog.G, p64, z)
    d_names = [t.name for t in prog.D.params()]
    grad_d = _num_grad(lambda p: R.d_loss(prog.D, p, x, fake, loss=loss), p64, d_names)
    d_want = R.d_loss(prog.D, p64, x, fake, loss=loss)
    real_out, fake_out = (R.forward(prog.D, p64, v)[:, 0].mean() for v in (x, fake))
    tr.d_step(0, LR, 0.0, z=z, penalties=())
    after = tr.state_dict()
    for n in d_names:
        np.testing.assert_allclose(after[n], p64[n] - LR * grad_d[n], rtol=1e-4, atol=1e-6)
        p64[n] = after[n].astype(np.float64)
    g_names = [t.name for t in prog.G.params()]
    grad_g = _num_grad(lambda p: R.g_loss(prog.G, prog.D, p, z, loss), p64, g_names)
    g_want = R.g_loss(prog.G, prog.D, p64, z, loss)
    tr.g_step(LR, 0.0, z=z)
    after = tr.state_dict()
    for n in g_names:
        np.testing.assert_allclose(after[n], p64[n] - LR * grad_g[n], rtol=1e-4, atol=1e-6)
    got = tr.read_metrics()
    assert got["d_loss"] == pytest.approx(d_want, rel=1e-5, abs=1e-6)
    assert got["g_loss"] == pytest.approx(g_want, rel=1e-5, abs=1e-6)
    assert got["d_real"] == pytest.approx(real_out, rel=1e-5, abs=1e-6)
    assert got["d_fake"] == pytest.approx(fake_out, rel=1e-5, abs=1e-6)


def test_torch_declares_every_loss_and_regulariser():
    prog = program("wasserstein", "gradient_penalty: {}\nr1: {}\nspectral_norm: {nets: [G, D]}\n"
                                  "ema: {}")
    backend = get_backend("torch")
    check_supported(backend, prog)  # raises for anything the backend refuses
    assert all(backend.unsupported_feature(f) is None for f, _ in prog.objective.features())
    assert "no torch implementation" in backend.unsupported_feature("loss:relativistic")


# ---- penalties on a linear D: ∇x D = w --------------------------------------------------------

PENALTIES = ("gradient_penalty: {weight: 10, target: 0.5, every: 3}\n"
             "r1: {weight: 2, every: 4}")


def _linear_d_update(params, x, z, due, prog):
    """Closed form of one SGD D-update for D(x) = w·x + b, wasserstein loss: ∇w of
    mean D(fake) − mean D(x) is mean(fake) − mean(x); the gradient penalty
    10·(‖w‖ − 0.5)² has ∇w = 20·(‖w‖ − 0.5)·w/‖w‖ (×3, lazy), r1 = 2/2·‖w‖² has ∇w = 2w (×4)."""
    p = f64(params)
    w, b = p["D.y.weight"][:, 0], p["D.y.bias"]
    fake = R.forward(prog.G, p, z)
    grad = fake.mean(0) - x.mean(0)
    nw = np.linalg.norm(w)
    terms = {"gradient_penalty": 10 * (nw - 0.5) ** 2, "r1": 0.5 * 2 * nw ** 2}
    if "gradient_penalty" in due:
        grad = grad + 3 * 20 * (nw - 0.5) * w / nw
    if "r1" in due:
        grad = grad + 4 * 2 * w
    return w - LR * grad, b, terms


@pytest.mark.parametrize("due", [(), ("gradient_penalty",), ("r1",), None])
def test_penalties_of_a_linear_d_in_closed_form(due):
    prog = program("wasserstein", PENALTIES, linear_d=True)
    x, z = data()
    tr, params = ready(prog, x)
    w, b, terms = _linear_d_update(params, x, z, ("gradient_penalty", "r1") if due is None
                                   else due, prog)
    tr.d_step(0, LR, 0.0, z=z, penalties=due)
    after = tr.state_dict()
    np.testing.assert_allclose(after["D.y.weight"][:, 0], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after["D.y.bias"], b, rtol=1e-6, atol=1e-7)
    got = tr.read_metrics()
    for kind in ("gradient_penalty", "r1"):
        applied = due is None or kind in due
        assert got[kind] == pytest.approx(terms[kind] if applied else 0.0, rel=1e-5)


def test_penalties_of_a_conditional_linear_d_differentiate_x_only():
    """D(x | y) = w·x + c·onehot(y) + b: the interpolates keep the real half's labels, so the
    closed form above holds for w, and c stays (the fake half has the real half's labels)."""
    prog = program("wasserstein", PENALTIES, linear_d=True, cond=True)
    x, z = data()
    y = np.arange(M) % 3  # three of the ring's eight classes
    tr, params = ready(prog, x, y)
    assert params["D.y.weight"].shape == (10, 1)  # x's two rows, then the label's eight
    p = f64(params)
    fake = R.forward(prog.G, p, z, y=y)
    w = p["D.y.weight"][:2, 0]
    nw = np.linalg.norm(w)
    grad = fake.mean(0) - x.mean(0) + 3 * 20 * (nw - 0.5) * w / nw + 4 * 2 * w
    tr.d_step(0, LR, 0.0, z=z)
    after = tr.state_dict()["D.y.weight"][:, 0]
    np.testing.assert_allclose(after[:2], w - LR * grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after[2:], params["D.y.weight"][2:, 0], rtol=1e-6, atol=1e-7)
    got = tr.read_metrics()
    assert got["gradient_penalty"] == pytest.approx(10 * (nw - 0.5) ** 2, rel=1e-5)
    assert got["r1"] == pytest.approx(nw ** 2, rel=1e-5)


def test_penalty_metrics_average_over_the_updates_that_applied_them():
    """Three D-updates, the gradient penalty due on the first and the third, then a G-update: the
    penalty's metric is the mean of its two terms (at the weights before each), r1's is its one
    term, g_loss the G-update's."""
    prog = program("wasserstein", PENALTIES, linear_d=True)
    x, z = data()
    tr, params = ready(prog, x)
    schedule = [("gradient_penalty", "r1"), (), ("gradient_penalty",)]
    gp, r1 = [], []
    for due in schedule:
        w, _, terms = _linear_d_update(tr.state_dict(), x, z, due, prog)
        gp += [terms["gradient_penalty"]] if "gradient_penalty" in due else []
        r1 += [terms["r1"]] if "r1" in due else []
        tr.d_step(0, LR, 0.0, z=z, penalties=due)
        np.testing.assert_allclose(tr.state_dict()["D.y.weight"][:, 0], w, rtol=1e-5, atol=1e-6)
    g_want = R.g_loss(prog.G, prog.D, f64(tr.state_dict()), z, "wasserstein")
    tr.g_step(LR, 0.0, z=z)  # one G-update to three D-updates: g_loss is its own mean
    np.testing.assert_array_equal(tr.state_dict()["metrics/counts"], [3, 1, 2, 1])
    got = tr.read_metrics()
    assert got["g_loss"] == pytest.approx(g_want, rel=1e-5)
    assert got["gradient_penalty"] == pytest.approx(np.mean(gp), rel=1e-5)
    assert got["r1"] == pytest.approx(r1[0], rel=1e-5)


# ---- spectral norm ---------------------------------------------------------------------------

WEIGHTED = [d.op for d in OPS.values() if d.spectral_axis is not None]


def _largest_singular_value(op, w):
    """torch.nn.utils.spectral_norm's matrix, spelled out per layer kind: nn.Linear's (out, in)
    is our dense/maxout weight transposed, nn.Conv2d's (out, in·k·k), ConvTranspose2d's
    (out, in·k·k) after swapping its (in, out) axes."""
    if op in (Op.DENSE, Op.MAXOUT):
        m = w.T
    elif op is Op.CONV_T2D:
        m = w.transpose(1, 0, 2, 3).reshape(w.shape[1], -1)
    else:
        m = w.reshape(w.shape[0], -1)
    return np.linalg.svd(m.astype(np.float64), compute_uv=False)[0]


@pytest.mark.parametrize("op", WEIGHTED, ids=[op.value for op in WEIGHTED])
def test_sigma_after_many_power_iterations_is_the_largest_singular_value(op):
    from advgraph_torch.objective import Spectral

    in_shape, attrs = OPS[op].examples[0]
    shape = OPS[op].param_shapes(in_shape, attrs)["weight"]
    s = SpectralWeight("D.n.weight", shape, OPS[op].spectral_axis)
    w = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    sn = Spectral(Objective("hinge", spectral=(s,), spectral_iterations=100),
                  {s.tensor: torch.as_tensor(w)})
    sn.load({})
    for _ in range(20):
        sn.iterate("D")
    sigma = float(sn.sigma(s, sn.tensors[s.tensor]))
    assert sigma == pytest.approx(_largest_singular_value(op, w), rel=1e-4)


def test_gradient_through_w_over_sigma_is_the_explicit_formula():
    """For L = ⟨C, W/σ⟩: ∂L/∂W = C/σ − (⟨C, W⟩/σ²)·u vᵀ (Miyato et al. 2018), u vᵀ put
    back in W's layout (a deconv weight: its axis 1 indexes the rows)."""
    from advgraph_torch.objective import Spectral

    rng = np.random.default_rng(4)
    shape, axis = (4, 3, 2, 2), 1
    s = SpectralWeight("G.n.weight", shape, axis)
    w = torch.as_tensor(rng.normal(size=shape).astype(np.float32)).requires_grad_(True)
    sn = Spectral(Objective(spectral=(s,)), {s.tensor: w})
    sn.load({})
    sn.iterate("G")
    c = rng.normal(size=shape)
    (grad,) = torch.autograd.grad((sn.params(grad="G")[s.tensor] * torch.as_tensor(c)).sum(), w)
    u, v = sn.u[s.tensor].double().numpy(), sn.v[s.tensor].double().numpy()
    w64 = w.detach().double().numpy()
    sigma = u @ spectral_matrix(w64, axis) @ v
    uv = np.moveaxis(np.outer(u, v).reshape(3, 4, 2, 2), 0, axis)
    want = c / sigma - (c * w64).sum() / sigma ** 2 * uv
    np.testing.assert_allclose(grad.numpy(), want, rtol=1e-4, atol=1e-6)


def _with_spectral(prog, names):
    specs = [SpectralWeight(t.name, t.shape, OPS[n.op].spectral_axis)
             for g in (prog.G, prog.D) for n in g.nodes for t in n.tensors.values()
             if t.name in names]
    return dataclasses.replace(prog, objective=dataclasses.replace(prog.objective,
                                                                   spectral=tuple(specs)))


def _normalised(prog, p, uv):
    """p with each spectral weight W / σ, σ = uᵀMv for the fixed u, v given (float64)."""
    out = dict(p)
    for s in prog.objective.spectral:
        u, v = uv[s.tensor]
        out[s.tensor] = p[s.tensor] / (u @ spectral_matrix(p[s.tensor], s.axis) @ v)
    return out


def _same_vectors(prog, state, uv):
    for s in prog.objective.spectral:
        for i, vec in enumerate("uv"):
            np.testing.assert_allclose(state[f"spectral/{s.tensor}/{vec}"], uv[s.tensor][i],
                                       atol=1e-5, err_msg=f"{s.tensor}: {vec}")


@pytest.mark.parametrize("op", WEIGHTED, ids=[op.value for op in WEIGHTED])
def test_spectral_g_step_per_weighted_op(op):
    """One G-update of a G that is one weighted op, spectrally normalised with D's dense layer:
    G's u, v are advgraph.objective.power_iteration's from the stored ones; D's stay;
    θ moves by −lr·∇ of the reference loss of W / σ with u, v held fixed (finite differences);
    sampling afterwards is the reference forward of the folded weights."""
    in_shape, attrs = OPS[op].examples[0]
    prog = _with_spectral(one_op_program(op, in_shape, attrs), {"G.n.weight", "D.y.weight"})
    tr, params = build(prog, batch=4)
    z = np.random.default_rng(6).normal(size=(4, *in_shape)).astype(np.float32)
    p64 = f64(params)
    uv = {}
    for s in prog.objective.spectral:
        u0, v0 = params[f"spectral/{s.tensor}/u"], params[f"spectral/{s.tensor}/v"]
        uv[s.tensor] = (power_iteration(p64[s.tensor], s.axis, u0)[:2] if s.net == "G"
                        else (u0.astype(np.float64), v0.astype(np.float64)))
    names = [t.name for t in prog.G.params()]
    grad = _num_grad(lambda p: R.g_loss(prog.G, prog.D, _normalised(prog, p, uv), z,
                                        "non_saturating"), p64, names, eps=1e-4)
    tr.g_step(LR, 0.0, z=z)
    after = tr.state_dict()
    _same_vectors(prog, after, uv)
    for n in names:
        np.testing.assert_allclose(after[n], p64[n] - LR * grad[n], rtol=1e-3, atol=1e-5,
                                   err_msg=n)
    np.testing.assert_allclose(tr.generate(z), R.forward(prog.G, folded(prog, after), z),
                               rtol=1e-4, atol=1e-5)


def test_spectral_d_and_g_steps_follow_finite_differences():
    """BASE with spectral norm on every weighted layer of both nets, two iterations: the
    D-update iterates D's vectors only (power_iteration), G's fake batch uses G's stored ones;
    then the G-update iterates G's and uses D's as the D-update left them. Each update is −lr·∇
    of the reference loss of W / σ with u, v fixed (finite differences)."""
    prog = program("hinge", "spectral_norm: {nets: [G, D], iterations: 2}")
    x, z = data()
    tr, params = ready(prog, x)
    p64 = f64(params)
    uv = {s.tensor: (p64[f"spectral/{s.tensor}/u"], p64[f"spectral/{s.tensor}/v"])
          for s in prog.objective.spectral}

    def iterate(net):
        for s in prog.objective.spectral_of(net):
            uv[s.tensor] = power_iteration(p64[s.tensor], s.axis, uv[s.tensor][0], 2)[:2]

    for net, step in (("D", lambda: tr.d_step(0, LR, 0.0, z=z)),
                      ("G", lambda: tr.g_step(LR, 0.0, z=z))):
        iterate(net)
        fake = R.forward(prog.G, _normalised(prog, p64, uv), z)

        def loss(p, net=net, fake=fake):
            if net == "D":
                return R.d_loss(prog.D, _normalised(prog, p, uv), x, fake, loss="hinge")
            return R.g_loss(prog.G, prog.D, _normalised(prog, p, uv), z, "hinge")

        names = [t.name for t in getattr(prog, net).params()]
        grad = _num_grad(loss, p64, names)
        step()
        after = tr.state_dict()
        _same_vectors(prog, after, uv)
        for n in names:
            np.testing.assert_allclose(after[n], p64[n] - LR * grad[n], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{net}: {n}")
            p64[n] = after[n].astype(np.float64)
    np.testing.assert_allclose(tr.discriminate(x), R.forward(prog.D, folded(prog, after), x)[:, 0],
                               rtol=1e-4, atol=1e-6)


# ---- EMA and the state -----------------------------------------------------------------------


def test_ema_follows_the_recurrence_from_start():
    """ema/<θ> after each G-update n: a copy of θ while n ≤ start (2), then
    0.8·ema + 0.2·θ, θ as the trainer left it; buffers and D have none."""
    prog = program("non_saturating", "ema: {decay: 0.8, start: 2}")
    x, _ = data()
    tr, params = ready(prog, x)
    names = [t.name for t in prog.G.params()]
    assert sorted(k for k in tr.state_dict() if k.startswith("ema/")) == \
        sorted(f"ema/{n}" for n in names)
    ema = {n: params[n].astype(np.float64) for n in names}
    for n_g in range(1, 6):
        tr.d_step(0, 0.1, 0.5)
        tr.g_step(0.1, 0.5)
        tr.ema_step(prog.objective.ema.rate(n_g))
        state = tr.state_dict()
        decay = 0.8 if n_g > 2 else 0.0
        for n in names:
            ema[n] = decay * ema[n] + (1 - decay) * state[n]
            np.testing.assert_allclose(state[f"ema/{n}"], ema[n], rtol=1e-6, atol=1e-7,
                                       err_msg=f"{n} after G-update {n_g}")


ALL = ("gradient_penalty: {weight: 1, every: 2}\nr1: {weight: 0.5, every: 3}\n"
       "spectral_norm: {nets: [G, D]}\nema: {decay: 0.9, start: 1}")


def _steps(tr, prog, first, n):
    for i in range(first, first + n):
        due = tuple(p.kind for p in prog.objective.penalties if p.due(i))
        tr.d_step(0, 0.05, 0.5, penalties=due)
        tr.g_step(0.05, 0.5)
        tr.ema_step(prog.objective.ema.rate(i + 1))


def test_state_round_trip_gives_the_identical_next_steps():
    """state_dict after three steps with every regulariser → a trainer of another seed →
    the next two steps (drawn noise, drawn ε, lazy penalties, power iterations, EMA) give the
    same state, bit for bit, and the same metrics."""
    prog = program("wasserstein", ALL)
    x, _ = data()
    adam = {g: OptimConfig("adam", 0.5) for g in ("G", "D")}
    a, _ = ready(prog, x, optim=adam)
    _steps(a, prog, 0, 3)
    saved = a.state_dict()
    regs = {k for k in init_params(prog, np.random.default_rng(0), None) if "/" in k}
    assert len(regs) == 12 and regs <= saved.keys()  # spectral/*/u, v of 4 weights, ema/* of 4
    assert saved["metrics/sums"].shape == (6,) and list(saved["metrics/counts"]) == [3, 3, 2, 1]
    b, _ = ready(prog, x, seed=99, optim=adam)
    b.load_state_dict(saved)
    _steps(a, prog, 3, 2)
    _steps(b, prog, 3, 2)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa.keys() | sb.keys():
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.read_metrics() == b.read_metrics()


def test_metrics_of_a_checkpoint_without_penalties_load():
    """A checkpoint written before the penalties (four sums, two counts) resumes a run that has
    them: the loss sums carry on, the penalties' start at zero."""
    prog = program("wasserstein", PENALTIES, linear_d=True)
    x, z = data()
    tr, params = ready(prog, x)
    old = dict(params, **{"metrics/sums": np.array([2.0, 1.0, 0.5, 4.0], np.float32),
                          "metrics/counts": np.array([2, 4], np.int64)})
    tr.load_state_dict(old)
    got = tr.read_metrics(reset=False)
    assert (got["d_loss"], got["d_real"], got["g_loss"], got["gradient_penalty"]) == \
        (1.0, 0.5, 1.0, 0.0)
    _, _, terms = _linear_d_update(tr.state_dict(), x, z, (), prog)
    tr.d_step(0, LR, 0.0, z=z, penalties=("r1",))
    np.testing.assert_array_equal(tr.state_dict()["metrics/counts"], [3, 4, 0, 1])
    assert tr.read_metrics()["r1"] == pytest.approx(terms["r1"], rel=1e-5)


def test_gradient_penalty_on_interpolates_of_a_maxout_d():
    """BASE's D (maxout → dense → sigmoid, non-saturating): ∇x of its logit at x̂ is, in closed
    form, Σ_u w1[u]·W0[:, winning piece of u]; x̂ = εx + (1 − ε)G(z) with ε the trainer's next
    U(0, 1) draws. The D-update is −lr·∇ of loss + 2·penalty (every 2), that gradient by finite
    differences in D's parameters; the metric is the penalty's term."""
    prog = program("non_saturating", "gradient_penalty: {weight: 3, target: 1, every: 2}")
    x, z = data()
    tr, params = ready(prog, x)
    gen = torch.Generator()
    gen.set_state(tr.gen.get_state())
    eps = torch.rand((M, 1), generator=gen).double().numpy()
    p64 = f64(params)
    fake = R.forward(prog.G, p64, z)
    xh = eps * x + (1 - eps) * fake

    def penalty(p):
        h = (xh @ p["D.h0.weight"] + p["D.h0.bias"]).reshape(M, 8, 2)
        win = h.argmax(axis=2)  # (M, units)
        cols = np.arange(8) * 2 + win  # each unit's winning column
        grad = np.einsum("u,diu->id", p["D.y.weight"][:, 0], p["D.h0.weight"][:, cols])
        return 3 * ((np.linalg.norm(grad, axis=1) - 1) ** 2).mean()

    names = [t.name for t in prog.D.params()]
    grad = _num_grad(lambda p: R.d_loss(prog.D, p, x, fake) + 2 * penalty(p), p64, names)
    tr.d_step(0, LR, 0.0, z=z)
    after = tr.state_dict()
    for n in names:
        np.testing.assert_allclose(after[n], p64[n] - LR * grad[n], rtol=1e-4, atol=1e-6,
                                   err_msg=n)
    assert tr.read_metrics()["gradient_penalty"] == pytest.approx(penalty(p64), rel=1e-5)
