"""The Python API as a user calls it: open a trained run by name or path, draw the samples
`advgraph sample --npz` draws, and use G as a torch.nn.Module (eager and through torch.export)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import advgraph  # noqa: E402
from advgraph.errors import AdvGraphError  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

SHORT = ["--set", "data.train=2000", "--set", "data.valid=200", "--set", "data.test=200",
         "--set", "training.stop.steps=60", "--set", "training.checkpoint={steps: 30}",
         "--set", "training.log_every=30"]


@pytest.fixture
def ring_run():
    r = cli("train", SPECS / "ring2d.yaml", "--name", "ring", *SHORT)
    assert r.exit_code == 0, r.stderr
    return "ring"


def test_open_run_generates_what_sample_writes(ring_run, tmp_path):
    run = advgraph.open_run(ring_run)
    assert run.step == 60 and run.checkpoints == [30, 60] and run.spec.name == "ring2d"
    assert advgraph.open_run(runs_root() / ring_run).path == run.path  # by path too
    r = cli("sample", ring_run, "--npz", tmp_path / "s.npz", "--n", "50", "--seed", "7")
    assert r.exit_code == 0, r.stderr
    with np.load(tmp_path / "s.npz") as f:
        written = f[f.files[0]]
    np.testing.assert_array_equal(run.generate(50, seed=7), written)
    assert advgraph.open_run(ring_run, checkpoint=30).step == 30


def test_a_name_is_the_run_in_the_runs_dir_and_a_path_is_a_path(ring_run, tmp_path,
                                                                 monkeypatch):
    """`ring` means runs/ring for the API as for the CLI, even beside a ./ring directory;
    `./ring`, `sub/ring` or a Path is that directory, for both."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(runs_root() / ring_run, tmp_path / "ring")  # a copy that stops at step 30
    for f in (tmp_path / "ring" / "checkpoints").glob("step-0000060.*"):
        f.unlink()
    assert advgraph.open_run("ring").path == runs_root() / ring_run
    assert advgraph.open_run("ring").step == 60
    for path in ("./ring", Path("ring"), str(tmp_path / "ring")):
        assert advgraph.open_run(path).step == 30, path
    for run, step in (("ring", 60), ("./ring", 30)):
        r = cli("sample", run, "--npz", tmp_path / "s.npz", "--n", "4")
        assert r.exit_code == 0, r.stderr
        with np.load(tmp_path / "s.npz") as f:
            assert int(f["step"]) == step, run
    r = cli("sample", "./nope", "--npz", tmp_path / "s.npz")
    assert r.exit_code != 0 and "nope: not a run directory" in r.stderr


def test_generator_is_a_module_that_reproduces_generate(ring_run):
    run = advgraph.open_run(ring_run)
    G = run.generator()
    assert isinstance(G, torch.nn.Module) and not G.training
    assert [n for n, _ in G.named_parameters()] == ["h0.weight", "h0.bias", "h1.weight",
                                                     "h1.bias", "y.weight", "y.bias"]
    z = torch.as_tensor(run.sample_noise(20, seed=3))
    with torch.no_grad():
        out = G(z).numpy()
    np.testing.assert_array_equal(out, run.generate(20, seed=3))
    exported = torch.export.export(G, (z,))  # what a deployment would do with it
    np.testing.assert_allclose(exported.module()(z).detach().numpy(), out, rtol=1e-6, atol=1e-6)


def test_conditional_generator_takes_labels():
    r = cli("train", SPECS / "ring2d-cgan.yaml", "--name", "cg", *SHORT)
    assert r.exit_code == 0, r.stderr
    run = advgraph.open_run("cg")
    assert run.classes == run.spec.condition.classes
    x = run.generate(16, seed=1, label=2)
    z = torch.as_tensor(run.sample_noise(16, seed=1))
    y = torch.full((16,), 2)
    G = run.generator()
    with torch.no_grad():
        np.testing.assert_array_equal(G(z, y).numpy(), x)
        one_hot = torch.nn.functional.one_hot(y, run.classes).float()
        np.testing.assert_array_equal(G(z, one_hot).numpy(), x)


def test_bad_runs_are_clear_errors(tmp_path):
    with pytest.raises(AdvGraphError, match="no run named 'nope'"):
        advgraph.open_run("nope")
    with pytest.raises(AdvGraphError, match="not a run directory"):
        advgraph.open_run(tmp_path)


def test_layer_names_that_nn_module_uses_still_make_a_module():
    r = cli("train", SPECS / "ring2d.yaml", "--name", "odd", *SHORT,
            "--set", "generator.layers[0].name=training", "--set", "generator.layers[2].name=forward")
    assert r.exit_code == 0, r.stderr
    run = advgraph.open_run("odd")
    G = run.generator()
    names = [n for n, _ in G.named_parameters()]
    assert names[:4] == ["training_.weight", "training_.bias", "forward_.weight", "forward_.bias"]
    z = torch.as_tensor(run.sample_noise(8, seed=2))
    with torch.no_grad():
        np.testing.assert_array_equal(G(z).numpy(), run.generate(8, seed=2))
        with pytest.raises(ValueError, match="not conditional"):
            G(z, torch.zeros(8, dtype=torch.int64))
