"""The CuPy backend's losses and regularisers (issue 23) in training, on the host executor (the
kernels compiled as C++): steps against the NumPy reference forward differentiated by finite
differences in float64 (spectral norm: W / σ with u, v from advgraph.objective.power_iteration),
the power iteration carried across steps, inference through W / σ, the EMA against its
recurrence, bit-exact resume, checkpoints crossing to torch and back; and, where a GPU is lent,
the CUDA executor against the twins."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from advgraph import reference as R
from advgraph.backend_protocol import OptimConfig
from advgraph.errors import BackendError
from advgraph.ir.objective import LOSSES
from advgraph.objective import folded, power_iteration, spectral_sigma
from advgraph.params import init_params
from tests.backend.test_cupy_objective import M, _fd, needs_host, program_for
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy.backend import CupyBackend, CupyTrainer  # noqa: E402
from advgraph_cupy.runtime import HostExecutor  # noqa: E402

SGD = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}
SN_BOTH = "{spectral_norm: {nets: [G, D]}}"


def _setup(program, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = rng.uniform(-1, 1, (4 * M, *program.data_shape)).astype(np.float32)
    params = init_params(program, np.random.default_rng(seed + 1), data)
    z = [rng.standard_normal((M, program.prior.dim)).astype(np.float32) for _ in range(3)]
    return data, params, z


def _trainer(program, data, params, optim=SGD, seed: int = 7) -> CupyTrainer:
    tr = CupyTrainer(program, HostExecutor(), seed, M, optim)
    tr.load_state_dict(params)
    tr.load_data(data)
    tr.set_order(np.arange(len(data)))
    return tr


def _uv_after(program, params, net: str | None) -> dict:
    """Each normalised weight's (u, v) as a step of `net` uses them: iterated from the stored u
    for net's weights (advgraph.objective.power_iteration), the stored ones for the others."""
    out = {}
    for s in program.objective.spectral:
        u, v = params[f"spectral/{s.tensor}/u"], params[f"spectral/{s.tensor}/v"]
        if s.net == net:
            u, v, _ = power_iteration(params[s.tensor], s.axis, u,
                                      program.objective.spectral_iterations)
        out[s.tensor] = (u, v)
    return out


def _normalised(program, params, uv) -> dict:
    out = {k: np.asarray(v, np.float64) for k, v in params.items()}
    for s in program.objective.spectral:
        out[s.tensor] = out[s.tensor] / spectral_sigma(out[s.tensor], s.axis, *uv[s.tensor])
    return out


def _with(program, params, net: str, flat: np.ndarray) -> dict:
    out, i = dict(params), 0
    for t in getattr(program, net).params():
        out[t.name] = flat[i:i + t.size].reshape(t.shape)
        i += t.size
    return out


def _flat(program, params, net: str) -> np.ndarray:
    return np.concatenate([np.asarray(params[t.name], np.float64).reshape(-1)
                           for t in getattr(program, net).params()])


def _reference_grad(program, params, net: str, x, z) -> tuple[np.ndarray, float]:
    """The gradient of net's loss with respect to its raw parameters (finite differences of the
    reference forward, W / σ with u, v held at what the step uses), and the loss."""
    G, D, loss = program.G, program.D, program.loss
    uv = _uv_after(program, params, net)
    if net == "D":
        x_fake = R.forward(G, _normalised(program, params, uv), z)

        def f(flat):
            q = _normalised(program, _with(program, params, "D", flat), uv)
            return R.loss_values(loss, R.forward(D, q, x, upto=D.logits),
                                 R.forward(D, q, x_fake, upto=D.logits))[0]
    else:
        def f(flat):
            q = _normalised(program, _with(program, params, "G", flat), uv)
            lf = R.forward(D, q, R.forward(G, q, z), upto=D.logits)
            return R.loss_values(loss, lf, lf)[1]
    flat = _flat(program, params, net)
    return _fd(f, flat), f(flat)


def _step_grad(program, data, params, net: str, z) -> tuple[np.ndarray, dict, dict]:
    """θ0 − θ1 of one SGD step with lr 1, momentum 0 on the host executor; the state after it
    and the metrics."""
    tr = _trainer(program, data, params)
    if net == "D":
        tr.d_step(0, 1.0, 0.0, z=z)
    else:
        tr.g_step(1.0, 0.0, z=z)
    metrics = tr.read_metrics()
    state = tr.state_dict()
    return _flat(program, params, net) - _flat(program, state, net), state, metrics


CASES = [pytest.param(loss, "{}", False, id=f"{loss}") for loss in LOSSES
         if loss != "wasserstein"] + [  # (which needs D kept Lipschitz)
    pytest.param(loss, SN_BOTH, False, id=f"{loss}-sn") for loss in LOSSES] + [
    pytest.param("hinge", "{spectral_norm: {nets: [D], iterations: 3}}", False, id="hinge-snD3"),
    pytest.param("wasserstein", "{spectral_norm: {nets: [D]}}", True, id="wasserstein-conv-snD"),
    pytest.param("non_saturating", "{spectral_norm: {nets: [G]}}", True, id="ns-conv-snG"),
    pytest.param("hinge", SN_BOTH, True, id="hinge-conv-sn")]


@needs_host
@pytest.mark.parametrize("loss,regs,conv", CASES)
@pytest.mark.parametrize("net", ["D", "G"])
def test_a_step_descends_the_reference_loss(loss, regs, conv, net):
    """Each net's gradient (spectral norm: through W / σ to W) against finite differences of
    the reference loss; the loss in the metrics; u and v after the step: the owner's iterated
    as power_iteration does, the other net's kept."""
    program = program_for(loss, regs, conv)
    data, params, z = _setup(program)
    x = data[:M].astype(np.float64)
    got, state, metrics = _step_grad(program, data, params, net, z[0])
    want, value = _reference_grad(program, params, net, x, z[0])
    scale = np.abs(want).max()
    assert scale > 1e-3
    assert np.abs(got - want).max() <= 2e-4 * scale, (np.abs(got - want).max(), scale)
    assert metrics["d_loss" if net == "D" else "g_loss"] == pytest.approx(value, rel=1e-5,
                                                                          abs=1e-6)
    for tensor, (u, v) in _uv_after(program, params, net).items():
        np.testing.assert_allclose(state[f"spectral/{tensor}/u"], u, atol=2e-6)
        np.testing.assert_allclose(state[f"spectral/{tensor}/v"], v, atol=2e-6)


@needs_host
def test_the_power_iteration_carries_on_from_the_stored_vectors():
    """Two D-steps: the second iterates from the u the first left, on the weights it left."""
    program = program_for("hinge", SN_BOTH)
    data, params, z = _setup(program)
    tr = _trainer(program, data, params)
    tr.d_step(0, 0.1, 0.0, z=z[0])
    first = tr.state_dict()
    tr.d_step(M, 0.1, 0.0, z=z[1])
    second = tr.state_dict()
    for tensor, (u, v) in _uv_after(program, first, "D").items():
        np.testing.assert_allclose(second[f"spectral/{tensor}/u"], u, atol=2e-6)
        np.testing.assert_allclose(second[f"spectral/{tensor}/v"], v, atol=2e-6)
        if tensor == "D.h0.weight":  # (D.y's u has one element: ±1 always)
            assert not np.allclose(u, first[f"spectral/{tensor}/u"], atol=1e-6)


@needs_host
@pytest.mark.parametrize("conv", [False, True])
def test_inference_uses_w_over_sigma_from_the_stored_vectors(conv):
    program = program_for("non_saturating", SN_BOTH, conv)
    data, params, z = _setup(program)
    tr = _trainer(program, data, params)
    tr.d_step(0, 0.1, 0.0, z=z[0])
    tr.g_step(0.1, 0.0, z=z[1])
    state = tr.state_dict()
    plain = {k: np.asarray(v, np.float64) for k, v in folded(program, state).items()}
    np.testing.assert_allclose(tr.generate(z[2]), R.forward(program.G, plain, z[2]),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tr.discriminate(data), R.forward(program.D, plain, data)[:, 0],
                               rtol=1e-5, atol=1e-6)


@needs_host
def test_ema_of_g_follows_the_recurrence_over_steps():
    """ema_step(Ema.rate(t)) after each G-update: a copy of θ until `start`, then the
    recurrence on the parameters each update left."""
    program = program_for("least_squares", "{ema: {decay: 0.75, start: 1}}")
    ema = program.objective.ema
    data, params, z = _setup(program)
    tr = _trainer(program, data, params)
    want = None
    for t in range(1, 4):
        tr.d_step(0, 0.1, 0.0)
        tr.g_step(0.1, 0.0)
        tr.ema_step(ema.rate(t))
        state = tr.state_dict()
        theta = {x.name: state[x.name].astype(np.float64) for x in program.G.params()}
        d = ema.rate(t)
        want = theta if want is None else {k: d * want[k] + (1 - d) * theta[k] for k in theta}
        for k in theta:
            np.testing.assert_allclose(state[f"ema/{k}"], want[k], rtol=1e-6, atol=1e-7)
    assert ema.rate(1) == 0.0 and ema.rate(2) == 0.75
    assert set(state) >= {f"ema/{x.name}" for x in program.G.params()}


@needs_host
@pytest.mark.parametrize("loss", ["hinge", "non_saturating"])
def test_a_resumed_run_repeats_the_uninterrupted_one(loss):
    """State (spectral u, v, the EMA, the metrics' sums) saved mid-interval and loaded into a
    fresh trainer: the next steps and the interval's metrics are the uninterrupted run's, to
    the bit."""
    program = program_for(loss, "{spectral_norm: {nets: [G, D]}, ema: {decay: 0.9}}", True)
    data, params, _ = _setup(program)
    adam = {g: OptimConfig("adam") for g in "GD"}

    def steps(tr, n):
        for i in range(n):
            tr.d_step((i % 2) * M, 1e-3, 0.0)
            tr.d_step(((i + 1) % 2) * M, 1e-3, 0.0)
            tr.g_step(1e-3, 0.0)
            tr.ema_step(0.9)

    a = _trainer(program, data, params, adam)
    steps(a, 2)
    saved = a.state_dict()
    steps(a, 2)
    b = _trainer(program, data, init_params(program, np.random.default_rng(9), data), adam, 1)
    b.load_state_dict(saved)
    steps(b, 2)
    assert a.read_metrics() == b.read_metrics()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert {k for k in sa if k.startswith(("spectral/", "ema/"))}
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k


@needs_host
def test_a_state_without_spectral_vectors_starts_them_from_the_weight():
    """Parameters alone: u, v start as objective.spectral_vectors says (the torch backend's
    too), σ from them already the weight's largest singular value."""
    from advgraph.objective import initial_vectors, spectral_matrix

    program = program_for("hinge", "{spectral_norm: {nets: [D]}}")
    data, params, _ = _setup(program)
    del params["spectral/D.h0.weight/u"], params["spectral/D.h0.weight/v"]
    state = _trainer(program, data, params).state_dict()
    (s,) = [w for w in program.objective.spectral if w.tensor == "D.h0.weight"]
    u, v = initial_vectors(params[s.tensor], s.axis, np.random.default_rng(0))
    np.testing.assert_array_equal(state["spectral/D.h0.weight/u"], u)
    np.testing.assert_array_equal(state["spectral/D.h0.weight/v"], v)
    m = spectral_matrix(params[s.tensor], s.axis).astype(np.float64)
    assert float(u @ m @ v) == pytest.approx(np.linalg.svd(m, compute_uv=False)[0], rel=0.05)


@pytest.mark.gpu
@pytest.mark.skipif(not CupyBackend().cuda_available(), reason="no CUDA device (cupy finds none)")
@pytest.mark.parametrize("conv", [False, True])
def test_cuda_executor_matches_the_twins_with_the_regularisers(conv):
    """Spectral norm on both nets, hinge, EMA: a few iterations (captured, replayed) on a GPU
    against the NumPy twins."""
    from advgraph_cupy.runtime import CudaExecutor, TwinExecutor

    program = program_for("hinge", "{spectral_norm: {nets: [G, D]}, ema: {decay: 0.9}}", conv)
    data, params, _ = _setup(program)
    adam = {g: OptimConfig("adam") for g in "GD"}
    out = []
    for ex in (CudaExecutor(), TwinExecutor()):
        tr = CupyTrainer(program, ex, 5, M, adam)
        tr.load_state_dict(params)
        tr.load_data(data)
        tr.set_order(np.arange(len(data)))
        for _ in range(3):
            tr.d_step(0, 1e-3, 0.0)
            tr.d_step(M, 1e-3, 0.0)
            tr.g_step(1e-3, 0.0)
            tr.ema_step(0.9)
        z = np.linspace(-1, 1, 5 * program.prior.dim, dtype=np.float32).reshape(5, -1)
        out.append((tr.state_dict(), tr.read_metrics(), tr.generate(z)))
    (a, ma, ga), (b, mb, gb) = out
    for key in b:
        scale = max(float(np.abs(b[key]).max()), 1e-6)
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-3 * scale, err_msg=key)
    for key in mb:
        assert ma[key] == pytest.approx(mb[key], rel=1e-3, abs=1e-5), key
    np.testing.assert_allclose(ga, gb, rtol=1e-4, atol=1e-5)


@needs_host
def test_checkpoints_cross_between_torch_and_cupy():
    """A torch state with spectral vectors, an EMA and metric sums loads into cupy (the same
    G(z), D(x) and metrics), and cupy's state back into torch."""
    pytest.importorskip("torch")
    from advgraph.backend_protocol import get_backend

    program = program_for("hinge", "{spectral_norm: {nets: [G, D]}, ema: {decay: 0.9}}", True)
    data, params, z = _setup(program)
    adam = {g: OptimConfig("adam") for g in "GD"}
    torch_tr = get_backend("torch").build(program, "cpu", 3, M, adam)
    torch_tr.load_state_dict(params)
    torch_tr.load_data(data)
    torch_tr.set_order(np.arange(len(data)))
    for _ in range(2):
        torch_tr.d_step(0, 1e-3, 0.0)
        torch_tr.g_step(1e-3, 0.0)
        torch_tr.ema_step(0.9)
    cupy_tr = _trainer(program, data, torch_tr.state_dict(), adam)
    np.testing.assert_allclose(cupy_tr.generate(z[0]), torch_tr.generate(z[0]), atol=1e-6)
    np.testing.assert_allclose(cupy_tr.discriminate(data), torch_tr.discriminate(data), atol=1e-6)
    assert cupy_tr.read_metrics(reset=False) == torch_tr.read_metrics(reset=False)
    back = get_backend("torch").build(program, "cpu", 3, M, adam)
    back.load_state_dict(cupy_tr.state_dict())
    assert np.array_equal(back.generate(z[0]), torch_tr.generate(z[0]))
