"""The `layernorm` layer as a user meets it: checked, trained on torch (its gain and bias are
trained, from 1 and 0), on cupy as on torch, and its options validated."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.run.directory import RunDir  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

SPEC = """\
name: ring-ln
prior: {type: gaussian, dim: 8}
data: {dataset: toy-ring2d, modes: 4, train: 512, valid: 64, test: 64}
generator:
  layers:
    - {type: dense, name: h0, units: 32}
    - {type: layernorm, name: ln}
    - {type: relu}
    - {type: dense, name: y, units: 2}
    - {type: linear}
discriminator:
  layers:
    - {type: dense, name: h0, units: 32}
    - {type: layernorm, name: ln, eps: 1.0e-3}
    - {type: leaky_relu}
    - {type: dense, name: y, units: 1}
    - {type: sigmoid}
training:
  batch_size: 32
  optimizer: {type: adam, lr: 0.01}
  stop: {steps: 40}
  checkpoint: {steps: 40}
  log_every: 20
  seed: 3
"""


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "ring-ln.yaml"
    p.write_text(SPEC)
    return p


def test_check_lists_layernorm_with_its_parameters(spec):
    r = cli("check", spec)
    assert r.exit_code == 0, r.stderr
    assert "D.ln" in r.stdout and "layernorm" in r.stdout


def test_layernorm_trains_its_gain_and_bias(spec):
    r = cli("train", spec, "--name", "ln")
    assert r.exit_code == 0, r.stderr
    tensors = RunDir(runs_root() / "ln").latest_checkpoint()[1]
    for net in ("G", "D"):
        w, b = tensors[f"{net}.ln.weight"], tensors[f"{net}.ln.bias"]
        assert w.shape == b.shape == (32,)
        assert np.all(np.isfinite(w)) and np.abs(w - 1).max() > 1e-3 and np.abs(b).max() > 1e-3
    r = cli("sample", "ln", "--npz", runs_root() / "s.npz", "--n", "10")
    assert r.exit_code == 0, r.stderr


@pytest.mark.slow
def test_layernorm_on_cupy_matches_torch_and_trains(spec):
    """The cupy backend's layernorm kernels on the host executor: forward, every gradient and
    one Adam step as torch computes them (parity); a cupy run trains its gain and bias and
    samples on torch."""
    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(str(available()))
    r = cli("parity", spec, "--backends", "torch,cupy", "--devices", "cpu", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)
    assert all(row["ok"] for row in rows)
    assert {"G.ln.weight", "D.ln.bias"} <= {row["tensor"] for row in rows
                                            if row["stage"] == "gradient"}
    r = cli("train", spec, "--name", "lnc", "--backend", "cupy", "--device", "cpu")
    assert r.exit_code == 0, r.stderr
    tensors = RunDir(runs_root() / "lnc").latest_checkpoint()[1]
    for net in ("G", "D"):
        w, b = tensors[f"{net}.ln.weight"], tensors[f"{net}.ln.bias"]
        assert np.all(np.isfinite(w)) and np.abs(w - 1).max() > 1e-3 and np.abs(b).max() > 1e-3
    r = cli("sample", "lnc", "--backend", "torch", "--npz", runs_root() / "s.npz", "--n", "10")
    assert r.exit_code == 0, r.stderr


def test_bad_eps_is_located(spec):
    spec.write_text(SPEC.replace("eps: 1.0e-3", "eps: 0"))
    r = cli("check", spec)
    assert r.exit_code == 2
    assert "discriminator.layers[1].eps" in r.stderr
