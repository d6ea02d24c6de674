"""The torch backend against independent oracles: the NumPy reference forward (op by op and
whole specs), finite differences of the reference loss (gradients), and NumPy optimiser steps."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph import reference as R  # noqa: E402
from advgraph.backend_protocol import OptimConfig, get_backend  # noqa: E402
from tests.programs import compile_loaded, one_op_program  # noqa: E402
from advgraph.errors import BackendError  # noqa: E402
from advgraph.ir import Graph, Node, Op, Prior, Program, Tensor  # noqa: E402
from advgraph.ops import OPS  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.spec import load_file, load_text  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import central_differences  # noqa: E402
from tests.unit.test_spec import BASE  # noqa: E402

SGD = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}


def build(program, batch=8, optim=SGD, seed=0, params=None):
    tr = get_backend("torch").build(program, "cpu", seed, batch, optim)
    rng = np.random.default_rng(seed)
    params = params if params is not None else init_params(program, rng, None)
    tr.load_state_dict(params)
    return tr, params


# Every example of every op in the registry: a new op is checked here without a new test.
EXAMPLES = [(d.op, shape, attrs) for d in OPS.values() for shape, attrs in d.examples]


@pytest.mark.parametrize("op,in_shape,attrs", EXAMPLES,
                         ids=[f"{op.value}-{shape}" for op, shape, _ in EXAMPLES])
def test_each_op_matches_the_reference(op, in_shape, attrs):
    program = one_op_program(op, in_shape, attrs)
    tr, params = build(program)
    for t in program.G.tensors():  # buffers (running variances…) must be positive
        if not t.trainable:
            params[t.name] = np.abs(params[t.name]) + 0.5
    tr.load_state_dict(params)
    x = np.random.default_rng(1).normal(size=(11, *in_shape)).astype(np.float32)
    got = tr.generate(x)  # inference mode
    want = R.forward(program.G, params, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mnist", "toy1d", "ring2d"])
def test_whole_specs_match_the_reference(name):
    program = compile_loaded(load_file(SPECS / f"{name}.yaml"))
    data = np.random.default_rng(0).random((64, *program.data_shape)).astype(np.float32)
    tr, params = build(program, params=init_params(program, np.random.default_rng(3), data))
    z = tr.sample_noise(16)
    np.testing.assert_allclose(tr.generate(z), R.forward(program.G, params, z), rtol=1e-4, atol=1e-5)
    x = data[:16]
    np.testing.assert_allclose(tr.discriminate(x), R.forward(program.D, params, x)[:, 0],
                               rtol=1e-4, atol=1e-6)


def _tiny_program(g_loss="non_saturating"):
    text = BASE.replace("training:", "training:\n  g_loss: " + g_loss)
    return compile_loaded(load_text(text, "x.yaml"))


def _num_grad(f, params, names, eps=1e-5):
    """∂f(params)/∂params[n] for each of `names`, by central differences in float64."""
    return {n: central_differences(lambda v, n=n: f({**params, n: v}), params[n], eps)
            for n in names}


@pytest.mark.parametrize("g_loss", ["non_saturating", "minimax"])
def test_one_sgd_step_follows_finite_difference_gradients(g_loss):
    """d_step and g_step each move θ by −lr·∇loss, the gradient taken by finite differences
    of the float64 NumPy reference loss (momentum 0, no dropout in this spec)."""
    program = _tiny_program(g_loss)
    m, lr = 8, 0.05
    tr, params = build(program, batch=m)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    rng = np.random.default_rng(5)
    x = rng.normal(size=(m, 2)).astype(np.float32)
    z = rng.normal(size=(m, 8)).astype(np.float32)
    tr.load_data(x)
    tr.set_order(np.arange(m))

    fake = R.forward(program.G, p64, z)
    d_names = [t.name for t in program.D.params()]
    grad_d = _num_grad(lambda p: R.d_loss(program.D, p, x, fake), p64, d_names)
    tr.d_step(0, lr, 0.0, z=z)
    after = tr.state_dict()
    for n in d_names:
        np.testing.assert_allclose(after[n], p64[n] - lr * grad_d[n], rtol=1e-4, atol=1e-6)
        p64[n] = after[n].astype(np.float64)

    g_names = [t.name for t in program.G.params()]
    grad_g = _num_grad(lambda p: R.g_loss(program.G, program.D, p, z, g_loss), p64, g_names)
    tr.g_step(lr, 0.0, z=z)
    after = tr.state_dict()
    for n in g_names:
        np.testing.assert_allclose(after[n], p64[n] - lr * grad_g[n], rtol=1e-4, atol=1e-6)
    for n in d_names:  # the G step leaves D alone
        np.testing.assert_array_equal(after[n], p64[n].astype(np.float32))
    m_ = tr.read_metrics()
    assert m_["finite"] == 1.0
    assert m_["d_loss"] == pytest.approx(R.d_loss(program.D, {k: v.astype(np.float64) for k, v in params.items()}, x, fake), rel=1e-5)


def test_momentum_and_adam_updates_match_numpy():
    """Three D-updates with SGD + momentum and with Adam: the gradient at each step by finite
    differences of the float64 NumPy reference loss at the parameters NumPy tracks (not by the
    backend), the update by Pylearn2's momentum rule and by Adam's (Kingma & Ba, Algorithm 1,
    bias-corrected moments)."""
    program = _tiny_program()
    m, lr, mu, lr_adam = 8, 0.1, 0.5, 0.01
    rng = np.random.default_rng(2)
    x = rng.normal(size=(m, 2)).astype(np.float32)
    zs = [rng.normal(size=(m, 8)).astype(np.float32) for _ in range(3)]
    sgd, params = build(program, batch=m)
    adam, _ = build(program, batch=m, params=params,
                    optim={g: OptimConfig("adam", 0.5, 0.999, 1e-8) for g in ("G", "D")})
    for tr in (sgd, adam):
        tr.load_data(x)
        tr.set_order(np.arange(m))
    names = [t.name for t in program.D.params()]
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    theta, theta_a = dict(p64), dict(p64)  # G's parameters stay those of p64: D-steps only
    vel = {n: 0.0 for n in names}
    m1 = {n: 0.0 for n in names}
    m2 = {n: 0.0 for n in names}

    def grad(p, z):
        fake = R.forward(program.G, p, z)
        return _num_grad(lambda q: R.d_loss(program.D, q, x, fake), dict(p), names)

    for t, z in enumerate(zs, start=1):
        g = grad(theta, z)
        sgd.d_step(0, lr, mu, z=z)
        for n in names:
            vel[n] = mu * vel[n] - lr * g[n]
            theta[n] = theta[n] + vel[n]
            np.testing.assert_allclose(sgd.state_dict()[n], theta[n], rtol=1e-5, atol=1e-6,
                                       err_msg=f"sgd {n} at {t}")
        ga = grad(theta_a, z)
        adam.d_step(0, lr_adam, 0.0, z=z)
        for n in names:
            m1[n] = 0.5 * m1[n] + 0.5 * ga[n]
            m2[n] = 0.999 * m2[n] + 0.001 * ga[n] ** 2
            mhat, vhat = m1[n] / (1 - 0.5 ** t), m2[n] / (1 - 0.999 ** t)
            theta_a[n] = theta_a[n] - lr_adam * mhat / (np.sqrt(vhat) + 1e-8)
            np.testing.assert_allclose(adam.state_dict()[n], theta_a[n], rtol=1e-4, atol=1e-6,
                                       err_msg=f"adam {n} at {t}")


def test_training_mode_dropout_masks_and_scales():
    program = compile_loaded(load_file(SPECS / "mnist.yaml"))
    data = np.full((4, 784), 0.5, np.float32)
    tr, _ = build(program, batch=100, params=init_params(program, np.random.default_rng(0), data))
    import torch

    from advgraph_torch.lower import Ctx

    x = torch.ones(100, 784)
    node = program.D.nodes[1]
    assert node.op is Op.DROPOUT
    y = tr.D.steps[0][0](x, node, tr.tensors, Ctx(True, True, tr.gen))
    vals = set(torch.unique(y).tolist())
    assert vals == {0.0, 1.25}
    assert abs((y > 0).float().mean().item() - 0.8) < 0.01


def test_state_roundtrip_includes_optimizer_and_rng():
    program = _tiny_program()
    tr, _ = build(program, batch=8)
    tr.load_data(np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32))
    tr.set_order(np.arange(8))
    tr.d_step(0, 0.1, 0.5)
    state = tr.state_dict()
    assert any(k.startswith("optim/D/velocity/") for k in state) and "rng/torch/cpu" in state
    tr2, _ = build(program, batch=8, seed=99)
    tr2.load_state_dict(state)
    np.testing.assert_array_equal(tr.sample_noise(4), tr2.sample_noise(4))


def test_unknown_backend_and_device_errors():
    with pytest.raises(BackendError, match=r"unknown backend 'jax'; installed: cupy, torch"):
        get_backend("jax")
    import torch

    if not torch.cuda.is_available():
        program = _tiny_program()
        with pytest.raises(BackendError, match="no CUDA device"):
            get_backend("torch").build(program, "cuda", 0, 8, SGD)
    with pytest.raises(BackendError, match="not supported"):
        get_backend("torch").build(_tiny_program(), "meta", 0, 8, SGD)
