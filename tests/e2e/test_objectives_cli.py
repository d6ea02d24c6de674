"""The objectives after 2014 from the command line: `check` shows the objective; `eval --modes`
on a trained ring2d run; `--raw` on every command that reads a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SPECS
from tests.helpers import cli, runs_root

TINY = ["--set", "data.train=1000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.checkpoint={steps: 10}", "--set", "training.stop.steps=10",
        "--set", "training.log_every=5", "--set", "training.sample_grid=null"]


def test_check_shows_the_objective():
    r = cli("check", SPECS / "fashion-mnist-conv-hinge-sn.yaml")
    assert r.exit_code == 0, r.stderr
    assert ("objective: hinge loss; spectral_norm on D.c0.weight, D.c1.weight, D.c2.weight, "
            "D.c3.weight, D.c4.weight, D.y.weight; ema (decay 0.999, start 1000)") in r.stdout
    r = cli("check", SPECS / "ring2d-wgan-gp.yaml", "--json")
    assert json.loads(r.stdout)["objective"] == {
        "loss": "wasserstein",
        "regularizers": {"gradient_penalty": {"weight": 10.0, "every": 1, "target": 1.0}}}
    r = cli("check", SPECS / "ring2d.yaml")
    assert "objective: non_saturating loss\n" in r.stdout


def test_eval_modes_on_a_ring2d_run():
    assert cli("train", SPECS / "ring2d.yaml", "--name", "ring", *TINY).exit_code == 0
    r = cli("eval", "ring", "--modes", "--mode-samples", "500", "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["metric"] == "modes" and rep["weights"] == "raw"
    assert rep["samples"] == 500 and rep["covered_min_samples"] == 4  # 20/2500 of 500
    assert 0 <= rep["modes_covered"] <= 8 and 0 <= rep["high_quality_share"] <= 1
    assert sum(rep["counts"]) == round(rep["high_quality_share"] * 500)
    assert rep["modes_covered"] == sum(c >= 4 for c in rep["counts"])
    if rep["kl_uniform"] is not None:
        assert 0 <= rep["kl_uniform"] <= np.log(8) + 1e-9
    lines = (runs_root() / "ring" / "eval" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["metric"] == "modes"
    r = cli("eval", "ring", "--modes")  # the table
    assert r.exit_code == 0 and "modes covered" in r.stdout and "of 8" in r.stdout
    assert "within 3 std (0.02) of the nearest mode" in r.stdout
    for share in ("0", "nan", "1.5"):
        r = cli("eval", "ring", "--modes", "--mode-share", share)
        assert r.exit_code == 2 and "--mode-share must be in (0, 1]" in r.stderr, share
    r = cli("eval", "ring", "--parzen", "--mode-share", "0.1")  # without --modes: said, not lost
    assert r.exit_code == 2 and "--mode-samples and --mode-share go with --modes" in r.stderr
    r = cli("eval", "ring", "--modes", "--mode-samples", "100000000000")  # refused, not tried
    assert r.exit_code != 0 and "lower --mode-samples" in r.stderr


def test_eval_modes_refuses_other_data():
    assert cli("train", SPECS / "toy1d.yaml", "--name", "line", *TINY).exit_code == 0
    r = cli("eval", "line", "--modes")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: --modes counts samples near the mode centres of "
                               "toy-ring2d data")
    assert "trained on toy-gaussian1d, which has no modes to count" in r.stderr


def test_raw_without_ema_says_it_changes_nothing(tmp_path):
    assert cli("train", SPECS / "ring2d.yaml", "--name", "plain", *TINY).exit_code == 0
    for args in (["sample", "plain", "--npz", tmp_path / "a.npz"],
                 ["eval", "plain", "--modes", "--mode-samples", "100"],
                 ["export", "plain"]):
        r = cli(*args, "--raw")
        assert r.exit_code == 0, r.stderr
        assert "--raw changes nothing: run plain keeps no moving average" in r.stderr
    with np.load(tmp_path / "a.npz") as f:
        assert str(f["weights"]) == "raw"


# ---- runs trained with the new objectives (the torch backend) -------------------------------

EMA_SN = ["--set", "training.regularizers.ema={decay: 0.9}",
          "--set", "training.regularizers.spectral_norm={nets: [G, D]}"]


@pytest.fixture
def ema_run():
    """ring2d-hinge for 10 steps with EMA of G and spectral norm on both nets: the run `ema`."""
    r = cli("train", SPECS / "ring2d-hinge.yaml", "--name", "ema", *TINY, *EMA_SN)
    assert r.exit_code == 0, r.stderr
    return runs_root() / "ema"


@pytest.mark.parametrize("spec", ["ring2d-wgan-gp", "ring2d-hinge"])
def test_the_ring_specs_train_and_are_measured(spec):
    r = cli("train", SPECS / f"{spec}.yaml", "--name", "s", *TINY)
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(x) for x in (runs_root() / "s" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [x for x in rows if "d_loss" in x]
    assert train_rows and all(np.isfinite(x["d_loss"]) for x in train_rows)
    if spec == "ring2d-wgan-gp":  # the penalty's term is logged, and non-negative
        assert all(x["gradient_penalty"] >= 0 for x in train_rows)
    r = cli("eval", "s", "--modes", "--mode-samples", "500", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["weights"] == "raw"


def test_the_fashion_mnist_hinge_sn_spec_trains(mnist_dir):  # about 1 s
    r = cli("train", SPECS / "fashion-mnist-conv-hinge-sn.yaml", "--name", "f",
            "--data-root", mnist_dir, "--set", "data.train=250", "--set", "data.valid=50",
            "--set", "training.batch_size=8", "--set", "training.stop={steps: 2}",
            "--set", "training.regularizers.ema.start=1", "--set", "training.sample_grid=null")
    assert r.exit_code == 0, r.stderr
    r = cli("sample", "f", "--npz", runs_root() / "f.npz", "--n", "4")
    assert r.exit_code == 0, r.stderr
    with np.load(runs_root() / "f.npz") as f:
        assert str(f["weights"]) == "ema" and f["samples"].shape == (4, 1, 28, 28)
    for flag in ([], ["--raw"]):  # the raw figure beside the average's, not over it
        r = cli("interpolate", "f", "--rows", "1", "--steps", "2", *flag)
        assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in (runs_root() / "f" / "samples").glob("interp-*.png")) == [
        "interp-step-0000002-seed0-lerp-raw.png", "interp-step-0000002-seed0-lerp.png"]


def test_ema_is_used_unless_raw_and_provenance_says_which(ema_run, tmp_path):
    import advgraph

    for flag, name in (([], "e"), (["--raw"], "r")):
        r = cli("sample", "ema", "--npz", tmp_path / f"{name}.npz", "--n", "64", *flag)
        assert r.exit_code == 0, r.stderr
        assert "changes nothing" not in r.stderr
    with np.load(tmp_path / "e.npz") as e, np.load(tmp_path / "r.npz") as r_:
        assert (str(e["weights"]), str(r_["weights"])) == ("ema", "raw")
        ema_x, raw_x = e["samples"], r_["samples"]
    assert not np.allclose(ema_x, raw_x)  # decay 0.9 over 10 steps: the average lags θ
    # the API draws the same samples as sample --npz, with the same choice of weights
    np.testing.assert_array_equal(advgraph.open_run("ema").generate(64, seed=0), ema_x)
    np.testing.assert_array_equal(advgraph.open_run("ema", raw=True).generate(64, seed=0), raw_x)
    assert advgraph.open_run("ema").weights == "ema"
    # eval's reports and the metrics log record the weights used
    for flag, want in (([], "ema"), (["--raw"], "raw")):
        r = cli("eval", "ema", "--modes", "--mode-samples", "200", "--json", *flag)
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["weights"] == want
    logged = [json.loads(x) for x in
              (ema_run / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert [x["weights"] for x in logged] == ["ema", "raw"]
    # figures of raw weights do not replace those of the average
    assert cli("sample", "ema").exit_code == 0 and cli("sample", "ema", "--raw").exit_code == 0
    assert sorted(p.name for p in (ema_run / "samples").glob("step-*.png")) == [
        "step-0000010-seed0-raw.png", "step-0000010-seed0.png"]


@pytest.mark.parametrize("raw", [False, True])
def test_export_folds_spectral_norm_and_equals_the_trainer(ema_run, tmp_path, raw):
    torch = pytest.importorskip("torch")
    import advgraph

    flag = ["--raw"] if raw else []
    r = cli("export", "ema", "--format", "torchscript", "--out", tmp_path, *flag)
    assert r.exit_code == 0, r.stderr
    model = tmp_path / f"G-step10{'-raw' if raw else ''}.pt"
    meta = json.loads(model.with_name(model.name + ".json").read_text())
    assert meta["weights"] == ("raw" if raw else "ema")
    assert meta["spectral_norm_folded"] == ["h0.weight", "h1.weight", "y.weight"]
    run = advgraph.open_run("ema", raw=raw)
    z = run.sample_noise(32, seed=5)
    with torch.no_grad():
        exported = torch.jit.load(str(model))(torch.from_numpy(z)).numpy()
        generator = run.generator()(torch.from_numpy(z)).numpy()
    trainer = run.generate(32, seed=5)  # the trainer's G: spectral norm from the stored u, v
    np.testing.assert_allclose(exported, trainer, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(generator, trainer, rtol=1e-5, atol=1e-6)


def test_a_resume_that_removes_a_regulariser_is_refused(ema_run):
    for override in ("training.regularizers.ema=null", "training.regularizers.spectral_norm=null",
                     "training.loss=least_squares"):
        r = cli("train", "--resume", "ema", "--set", "training.stop.steps=20", "--set", override)
        assert r.exit_code == 2, (override, r.stderr)
        assert "on --resume only training.stop/" in r.stderr
        assert override.split("=")[0] in r.stderr
    r = cli("train", "--resume", "ema", "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr  # the state (u, v, the average) goes through a resume


def test_theory_refuses_a_raw_score_run():
    """D* and V(D, G) are about probabilities: a hinge run's scores are not one."""
    hinge = ["--set", "training.loss=hinge", "--set", "discriminator.layers[3].type=linear"]
    assert cli("train", SPECS / "toy1d.yaml", "--name", "score", *TINY, *hinge).exit_code == 0
    r = cli("eval", "score", "--theory")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert "this run's D gives a raw score (training.loss: hinge)" in r.stderr
