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
    r = cli("eval", "ring", "--modes", "--mode-share", "0")
    assert r.exit_code == 2 and "--mode-share must be in (0, 1]" in r.stderr
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

