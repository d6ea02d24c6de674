"""What a restored run's G is made of outside training (sample, eval, export, the API): its EMA
weights unless `raw`, spectral norm's u, v handed to the trainer, and for export and the API's
generator() a plain network with W / σ folded in. A checkpoint is written by hand and the
trainer is a recorder, so the plumbing is checked against values known in advance (no backend
has to train EMA or spectral norm for it)."""

from __future__ import annotations

import numpy as np
import pytest

from advgraph.objective import init_state
from advgraph.params import init_params
from advgraph.run import restore as R
from advgraph.run.directory import RunDir
from advgraph.spec import load_file
from tests.programs import compile_loaded

SPEC = """
name: ema-sn
prior: {type: gaussian, dim: 3}
data: {dataset: toy-ring2d, train: 64, valid: 0, test: 0}
generator:
  layers:
    - {type: dense, name: h0, units: 5}
    - {type: relu}
    - {type: dense, name: y, units: 2}
    - {type: linear}
discriminator:
  layers:
    - {type: dense, name: h0, units: 4}
    - {type: relu}
    - {type: dense, name: y, units: 1}
    - {type: linear}
training:
  batch_size: 8
  loss: hinge
  regularizers:
    spectral_norm: {nets: [G, D]}
    ema: {decay: 0.9}
  optimizer: {type: adam, lr: 0.001}
  stop: {steps: 1}
"""


class Recorder:
    """A trainer that keeps what it is given."""

    def __init__(self):
        self.loaded: dict[str, np.ndarray] = {}

    def load_state_dict(self, state):
        self.loaded = {k: np.array(v) for k, v in state.items()}

    def state_dict(self):
        return dict(self.loaded)


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run whose checkpoint holds G's weights, a different EMA of them (θ + 1) and
    spectral norm's vectors; restore_run builds a Recorder for it."""
    r = RunDir(tmp_path / "ema-sn")
    r.path.mkdir()
    r.spec_path.write_text(SPEC)
    r.write_info(status="done", backend="torch", step=1)
    loaded = load_file(r.spec_path, stored=True)
    program = compile_loaded(loaded)
    rng = np.random.default_rng(0)
    tensors = init_params(program, rng, np.zeros((64, 2), np.float32))
    tensors.update(init_state(program, rng, tensors))
    for t in program.G.params():
        tensors[f"ema/{t.name}"] = tensors[t.name] + 1.0
    r.save_checkpoint(1, tensors, {"step": 1}, keep=5)
    monkeypatch.setattr(R, "make_trainer", lambda loaded, ctx: (program, Recorder(), None))
    return r, program, tensors


def test_restore_gives_ema_weights_unless_raw(run):
    r, program, tensors = run
    names = [t.name for t in program.G.params()]
    assert names and "G.h0.weight" in names
    ema = R.restore_run(r)
    raw = R.restore_run(r, raw=True)
    assert (ema.weights, raw.weights) == ("ema", "raw")
    for n in names:
        np.testing.assert_array_equal(ema.trainer.loaded[n], tensors[n] + 1.0)
        np.testing.assert_array_equal(raw.trainer.loaded[n], tensors[n])
    for d in program.D.params():  # D is never averaged
        np.testing.assert_array_equal(ema.trainer.loaded[d.name], tensors[d.name])
    spectral = [k for k in tensors if k.startswith("spectral/")]
    assert len(spectral) == 8  # u and v of 2 weights in each net
    for k in spectral + [f"ema/{n}" for n in names]:  # the state goes through to the trainer
        np.testing.assert_array_equal(ema.trainer.loaded[k], tensors[k])
    ema.load_checkpoint(1)  # another checkpoint keeps the choice
    raw.load_checkpoint(1)
    np.testing.assert_array_equal(ema.trainer.loaded["G.y.bias"], tensors["G.y.bias"] + 1.0)
    np.testing.assert_array_equal(raw.trainer.loaded["G.y.bias"], tensors["G.y.bias"])


def _sigma(w: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
    """uᵀ Wᵀ v for a dense weight stored (in, out): its output units are the rows."""
    return float(u.astype(np.float64) @ w.T.astype(np.float64) @ v.astype(np.float64))


def _numpy_g(t: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
    """G by hand, each weight divided by its σ: relu(z W0/σ0 + b0) W1/σ1 + b1."""
    def w(name):
        return t[name] / _sigma(t[name], t[f"spectral/{name}/u"], t[f"spectral/{name}/v"])

    h = np.maximum(z @ w("G.h0.weight") + t["G.h0.bias"], 0)
    return h @ w("G.y.weight") + t["G.y.bias"]


@pytest.mark.parametrize("raw", [False, True])
def test_export_and_api_generator_fold_spectral_norm(run, raw):
    torch = pytest.importorskip("torch")
    from advgraph import api
    from advgraph.export import generator_module, metadata

    r, program, tensors = run
    restored = R.restore_run(r, raw=raw)
    used = dict(tensors)
    if not raw:
        used.update({t.name: tensors[f"ema/{t.name}"] for t in program.G.params()})
    z = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    want = _numpy_g(used, z)
    with torch.no_grad():
        got = generator_module(restored)(torch.from_numpy(z)).numpy()
        api_got = api.Run(restored).generator()(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(api_got, want, rtol=1e-4, atol=1e-5)
    assert api.Run(restored).weights == ("raw" if raw else "ema")
    files = (r.path / "G.safetensors", r.path / "G.spec.yaml", r.path / "G.json")
    meta = metadata(restored, "safetensors", files, generator_module(restored))
    assert meta["weights"] == ("raw" if raw else "ema")
    assert meta["spectral_norm_folded"] == ["h0.weight", "y.weight"]
