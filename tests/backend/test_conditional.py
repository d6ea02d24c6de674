"""Conditional graphs on the torch backend against the NumPy reference: branches and CONCAT
(flat, and a label broadcast over image channels), the forward of the shipped conditional
specs, and one D-step and G-step against finite differences of the conditional losses."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph import reference as R  # noqa: E402
from tests.programs import compile_loaded  # noqa: E402
from advgraph.errors import BackendError  # noqa: E402
from advgraph.ir import Op  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.spec import load_file, load_text  # noqa: E402
from tests.backend.test_torch_backend import _num_grad, build  # noqa: E402
from tests.conftest import SPECS  # noqa: E402

# A conv D where the label joins as constant maps, and a G with two branches.
BRANCHED = """\
condition: {type: label, classes: 3}
prior: {type: gaussian, dim: 4}
data: {dataset: npz, path: d.npz, labels: y, flatten: false}
generator:
  graph:
    - {name: hz, inputs: z, layers: [{type: dense, units: 6}, {type: tanh}]}
    - {name: hy, inputs: y, layers: [{type: dense, units: 5}, {type: relu}]}
    - name: out
      inputs: [hz, hy]
      layers:
        - {type: dense, units: 32, init: {type: normal, std: 0.5}}
        - {type: reshape, shape: [2, 4, 4]}
discriminator:
  graph:
    - {name: j, inputs: [x, y]}
    - name: c
      inputs: j
      layers:
        - {type: conv2d, channels: 3, kernel: 3, init: {type: normal, std: 0.5}}
        - {type: flatten}
    - name: out
      inputs: [c, y]
      layers:
        - {type: dense, units: 1, init: {type: normal, std: 0.5}}
        - {type: sigmoid}
training:
  batch_size: 6
  optimizer: {type: sgd, lr: 0.1}
  stop: {steps: 10}
"""


def branched(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 2, 4, 4), np.float32),
             y=np.arange(20) % 3)
    return compile_loaded(load_text(BRANCHED, str(tmp_path / "s.yaml"), path=tmp_path / "s.yaml"))


def test_branches_and_concat_lower_as_declared(tmp_path):
    p = branched(tmp_path)
    assert p.classes == 3
    d = p.D
    j = d.node("D.j.concat")
    assert j.op is Op.CONCAT and j.inputs == ("D.input", "D.label") and j.shape == (5, 4, 4)
    assert d.node("D.out.concat").shape == (3 * 2 * 2 + 3,)
    assert d.logits == "D.out.l0"
    assert p.G.node("G.out.concat").inputs == ("G.hz.l1", "G.hy.l1")


def test_conditional_forward_matches_the_reference(tmp_path):
    p = branched(tmp_path)
    tr, params = build(p, batch=6)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 4)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    np.testing.assert_allclose(tr.generate(z, y), R.forward(p.G, params, z, y=y),
                               rtol=1e-5, atol=1e-5)
    x = rng.normal(size=(7, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(tr.discriminate(x, y), R.forward(p.D, params, x, y=y)[:, 0],
                               rtol=1e-5, atol=1e-6)
    # the label really is an input: another label, another output
    assert not np.allclose(tr.generate(z, (y + 1) % 3), tr.generate(z, y))
    with pytest.raises(BackendError, match="conditional"):
        tr.generate(z)


@pytest.mark.parametrize("name", ["mnist-cgan", "ring2d-cgan"])
def test_shipped_conditional_specs_match_the_reference(name):
    program = compile_loaded(load_file(SPECS / f"{name}.yaml"))
    data = np.random.default_rng(0).random((64, *program.data_shape)).astype(np.float32)
    tr, params = build(program, params=init_params(program, np.random.default_rng(3), data))
    z = tr.sample_noise(16)
    y = np.arange(16) % program.classes
    np.testing.assert_allclose(tr.generate(z, y), R.forward(program.G, params, z, y=y),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tr.discriminate(data[:16], y),
                               R.forward(program.D, params, data[:16], y=y)[:, 0],
                               rtol=1e-4, atol=1e-6)


def test_conditional_steps_follow_finite_difference_gradients(tmp_path):
    """The D-step conditions the fake half on the real half's labels; the G-step on the
    labels it is given. Both move θ by −lr·∇ of the conditional loss."""
    p = branched(tmp_path)
    m, lr = 6, 0.05
    tr, params = build(p, batch=m)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    rng = np.random.default_rng(4)
    x = rng.normal(size=(m, 2, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, m)
    z = rng.normal(size=(m, 4)).astype(np.float32)
    tr.load_data(x, y)
    tr.set_order(np.arange(m))
    fake = R.forward(p.G, p64, z, y=y)
    d_names = [t.name for t in p.D.params()]
    grad_d = _num_grad(lambda q: R.d_loss(p.D, q, x, fake, y=y), p64, d_names)
    tr.d_step(0, lr, 0.0, z=z)
    after = tr.state_dict()
    for n in d_names:
        np.testing.assert_allclose(after[n], p64[n] - lr * grad_d[n], rtol=1e-4, atol=1e-6)
        p64[n] = after[n].astype(np.float64)
    y_g = (y + 1) % 3
    g_names = [t.name for t in p.G.params()]
    grad_g = _num_grad(lambda q: R.g_loss(p.G, p.D, q, z, "non_saturating", y=y_g), p64, g_names)
    tr.g_step(lr, 0.0, z=z, y=y_g)
    after = tr.state_dict()
    for n in g_names:
        np.testing.assert_allclose(after[n], p64[n] - lr * grad_g[n], rtol=1e-4, atol=1e-6)


def test_labels_are_checked_when_loaded(tmp_path):
    p = branched(tmp_path)
    tr, _ = build(p, batch=6)
    x = np.zeros((6, 2, 4, 4), np.float32)
    with pytest.raises(BackendError, match="one label per training example"):
        tr.load_data(x)
    with pytest.raises(BackendError, match=r"labels must lie in 0\.\.2"):
        tr.load_data(x, np.array([0, 1, 2, 3, 0, 1]))
