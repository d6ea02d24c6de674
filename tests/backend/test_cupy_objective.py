"""The CuPy backend's losses and regularisers (issue 23), kernel by kernel: each new kernel's
NumPy twin against the definitions (advgraph.reference.loss_values and its finite differences,
advgraph.objective.power_iteration, numpy.linalg.svd, the EMA recurrence), and the refusal of
the gradient penalties. The programs here (`program_for`) serve the training tests
(test_cupy_objective_training.py) and the parity tests (tests/e2e/test_parity_cli.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from advgraph import reference as R
from advgraph.backend_protocol import check_supported
from advgraph.compile import compile_spec
from advgraph.errors import BackendError
from advgraph.ir.data import DataInfo
from advgraph.ir.objective import LOSSES, SCORE_LOSSES
from advgraph.objective import power_iteration, spectral_matrix, spectral_sigma
from advgraph.spec import load_text
from tests.conftest import ROOT
from tests.helpers import central_differences

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import twins  # noqa: E402
from advgraph_cupy.backend import CupyBackend  # noqa: E402
from advgraph_cupy.codes import METRICS, SCORE_LOSSES as CODES  # noqa: E402
from advgraph_cupy.host import available  # noqa: E402

needs_host = pytest.mark.skipif(available() is not None, reason=str(available()))
M = 6  # minibatch

TRAINING = """training:
  batch_size: {m}
  loss: {loss}
  regularizers: {regs}
  optimizer: {{type: adam, lr: 0.001}}
  stop: {{steps: 3}}
"""

DENSE = """
prior: {{type: gaussian, dim: 3}}
data: {{dataset: toy-ring2d}}
generator:
  layers:
    - {{type: dense, name: h0, units: 6}}
    - {{type: tanh}}
    - {{type: dense, name: y, units: 2}}
    - {{type: linear}}
discriminator:
  layers:
    - {{type: maxout, name: h0, units: 4, pieces: 2}}
    - {{type: dense, name: y, units: 1}}
    - {{type: {end}}}
""" + TRAINING

CONV = """
prior: {{type: gaussian, dim: 3}}
data: {{dataset: npz, path: x.npz, flatten: false}}
generator:
  layers:
    - {{type: dense, name: h0, units: 8}}
    - {{type: tanh}}
    - {{type: reshape, shape: [2, 2, 2]}}
    - {{type: conv_transpose2d, name: up, channels: 1, kernel: 2, stride: 2}}
    - {{type: tanh}}
discriminator:
  layers:
    - {{type: conv2d, name: c0, channels: 2, kernel: 3, pad: 1}}
    - {{type: leaky_relu, slope: 0.2}}
    - {{type: flatten}}
    - {{type: dense, name: y, units: 1}}
    - {{type: {end}}}
""" + TRAINING


def program_for(loss: str, regs: str = "{}", conv: bool = False):
    end = "linear" if loss in SCORE_LOSSES else "sigmoid"
    text = (CONV if conv else DENSE).format(end=end, m=M, loss=loss, regs=regs)
    shape = (1, 4, 4) if conv else (2,)
    return compile_spec(load_text(text, "x.yaml"), DataInfo(shape, None))


# ---- the kernels' twins against the definitions ----------------------------------------------

_fd = central_differences


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_kernels_give_loss_values_and_their_gradients(loss):
    rng = np.random.default_rng(3)
    m = 37
    lr = (rng.standard_normal(m) * 2).astype(np.float32)
    lf = (rng.standard_normal(m) * 2).astype(np.float32)
    metrics = np.zeros(len(METRICS), np.float32)
    g_real, g_fake, g_gen = (np.zeros(m, np.float32) for _ in range(3))
    if loss in SCORE_LOSSES:
        twins.KERNELS["score_d"](lr, lf, g_real, g_fake, m, CODES[loss], metrics)
        twins.KERNELS["score_g"](lf, g_gen, m, CODES[loss], metrics)
    else:
        twins.KERNELS["bce_d"](lr, lf, g_real, g_fake, m, metrics, 1, 0, 0, 0, 0, 0)
        twins.KERNELS["bce_g"](lf, g_gen, m, int(loss == "non_saturating"), metrics, 1, 0, 0, 0)
    d, g = R.loss_values(loss, lr, lf)
    i = METRICS.index
    assert metrics[i("d_loss")] == pytest.approx(d, rel=1e-6)
    assert metrics[i("g_loss")] == pytest.approx(g, rel=1e-6, abs=1e-7)
    out = (lambda x: x) if loss in SCORE_LOSSES else (lambda x: 1 / (1 + np.exp(-x)))
    assert metrics[i("d_real")] == pytest.approx(out(lr.astype(np.float64)).mean(), rel=1e-6)
    assert metrics[i("d_fake")] == pytest.approx(out(lf.astype(np.float64)).mean(), rel=1e-6)
    np.testing.assert_allclose(g_real, _fd(lambda x: R.loss_values(loss, x, lf)[0], lr),
                               atol=1e-7)
    np.testing.assert_allclose(g_fake, _fd(lambda x: R.loss_values(loss, lr, x)[0], lf),
                               atol=1e-7)
    np.testing.assert_allclose(g_gen, _fd(lambda x: R.loss_values(loss, x, x)[1], lf),
                               atol=1e-7)


# (shape, axis) of a dense weight (in, out), a conv weight (out, in, kh, kw), a deconv's
# (in, out, kh, kw)
WEIGHTS = [((20, 7), 1), ((5, 3, 3, 3), 0), ((3, 4, 3, 3), 1), ((1, 9), 1)]


def _dims(shape, axis):
    return int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:]))


def _twin_power(w, u, v, shape, axis, iterations):
    """The kernels of one normalised weight as the lowering chains them (regularizers.py):
    `iterations` of Mᵀu, v, Mv, u; then σ = uᵀMv. Returns σ; u, v updated in place."""
    outer, rows, inner = _dims(shape, axis)
    cols, k = outer * inner, twins.KERNELS
    raw, sigma = np.zeros(max(rows, cols), np.float32), np.zeros(1, np.float32)
    flat = w.reshape(-1)
    for _ in range(iterations):
        k["sn_mv"](flat, u, raw, outer, rows, inner, 1)
        k["sn_normalize"](raw, v, cols)
        k["sn_mv"](flat, v, raw, outer, rows, inner, 0)
        k["sn_normalize"](raw, u, rows)
    if not iterations:
        k["sn_mv"](flat, v, raw, outer, rows, inner, 0)
    k["sn_sigma"](u, raw, sigma, rows)
    return float(sigma[0])


@pytest.mark.parametrize("shape,axis", WEIGHTS)
def test_power_iteration_twins_match_the_reference_and_svd(shape, axis):
    rng = np.random.default_rng(4)
    w = rng.standard_normal(shape).astype(np.float32)
    outer, rows, inner = _dims(shape, axis)
    u0 = rng.standard_normal(rows).astype(np.float32)
    u0 /= np.linalg.norm(u0)
    u, v = u0.copy(), np.zeros(outer * inner, np.float32)
    sigma = _twin_power(w, u, v, shape, axis, 2)
    ru, rv, rs = power_iteration(w, axis, u0, 2)
    np.testing.assert_allclose(u, ru, atol=1e-6)
    np.testing.assert_allclose(v, rv, atol=1e-6)
    assert sigma == pytest.approx(rs, rel=1e-6)
    # σ from the stored vectors, without iterating: uᵀMv
    assert _twin_power(w, u, v, shape, axis, 0) == pytest.approx(spectral_sigma(w, axis, u, v),
                                                                 rel=1e-6)
    # converged: the largest singular value
    top = np.linalg.svd(np.moveaxis(w.astype(np.float64), axis, 0).reshape(rows, -1),
                        compute_uv=False)[0]
    assert _twin_power(w, u, v, shape, axis, 500) == pytest.approx(top, rel=1e-5)


@pytest.mark.parametrize("shape,axis", WEIGHTS)
def test_spectral_gradient_twins_give_the_gradient_through_w_over_sigma(shape, axis):
    """d/dW ⟨G, W / σ(W)⟩ with σ = uᵀM(W)v, u and v held constant, by finite differences."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal(shape)
    outer, rows, inner = _dims(shape, axis)
    u = rng.standard_normal(rows).astype(np.float32)
    v = rng.standard_normal(outer * inner).astype(np.float32)
    g = rng.standard_normal(shape)

    def f(x):
        return float((g * x).sum() / (u @ spectral_matrix(x, axis) @ v))

    sigma = np.array([spectral_sigma(w, axis, u, v)], np.float32)
    mine, w32, parts = g.astype(np.float32).reshape(-1), w.astype(np.float32).reshape(-1), \
        np.zeros(6, np.float32)
    twins.KERNELS["sn_dot_parts"](mine, w32, parts, mine.size, 3)
    twins.KERNELS["sn_grad"](mine, u, v, sigma, parts, 3, outer, rows, inner)
    want = _fd(f, w.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(mine.reshape(shape), want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())


def test_ema_twin_follows_the_recurrence():
    rng = np.random.default_rng(6)
    ema = rng.standard_normal(50).astype(np.float32)
    thetas = [rng.standard_normal(50).astype(np.float32) for _ in range(4)]
    want = ema.astype(np.float64)
    for i, (theta, decay) in enumerate(zip(thetas, (0.0, 0.9, 0.99, 0.5))):
        twins.KERNELS["ema_update"](ema, theta, 50, np.array([decay], np.float32))
        want = decay * want + (1 - decay) * theta
        if i == 0:
            assert np.array_equal(ema, theta)  # decay 0 copies θ
    np.testing.assert_allclose(ema, want, rtol=1e-6, atol=1e-6)


# ---- refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("penalty,loss", [("gradient_penalty", "wasserstein"),
                                          ("r1", "non_saturating")])
def test_gradient_penalties_are_refused_with_the_reason(penalty, loss):
    program = program_for(loss, f"{{{penalty}: {{weight: 10}}}}")
    with pytest.raises(BackendError) as e:
        check_supported(CupyBackend(), program)
    assert str(e.value) == (
        f"training.regularizers.{penalty}: {penalty} is not supported by backend 'cupy': it "
        "needs gradients of gradients (the double backward of every op), which the cupy kernels "
        "do not implement; use --backend torch")


def test_every_loss_spectral_norm_and_ema_are_supported():
    program = program_for("hinge", "{spectral_norm: {nets: [G, D]}, ema: {decay: 0.9}}")
    check_supported(CupyBackend(), program)
    assert all(CupyBackend().unsupported_feature(f"loss:{x}") is None for x in LOSSES)
