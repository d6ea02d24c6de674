"""Losses and regularisers declared wrong (training.loss, training.regularizers): each spec is
refused by `check` and `train` with one located error line (file:line:col: spec path: why)
and exit code 2, never a traceback and never a run directory; and a resume that would change
the objective is refused as any other edit outside RESUMABLE is."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import SPECS
from tests.helpers import cli

HINGE = (SPECS / "ring2d-hinge.yaml").read_text()
GP = (SPECS / "ring2d-wgan-gp.yaml").read_text()
REGS = "training:\n  batch_size: 256\n  k: 1\n  loss: hinge\n"
assert REGS in HINGE


def _with(regs: str) -> str:
    """ring2d-hinge.yaml with `regs` (YAML lines under training.regularizers)."""
    return HINGE.replace(REGS, REGS + "  regularizers:\n" + regs)


# (spec text, the spec path named, words of the reason)
CASES = {
    "gp_negative": (_with("    gradient_penalty: {weight: -1}\n"),
                    "training.regularizers.gradient_penalty.weight", "greater than 0"),
    "gp_zero": (_with("    gradient_penalty: {weight: 0}\n"),
                "training.regularizers.gradient_penalty.weight", "greater than 0"),
    "gp_absurd": (_with("    gradient_penalty: {weight: 1.0e9}\n"),
                  "training.regularizers.gradient_penalty.weight", "less than or equal to"),
    "gp_nan": (_with("    gradient_penalty: {weight: .nan}\n"),
               "training.regularizers.gradient_penalty.weight", "finite"),
    "gp_target_negative": (_with("    gradient_penalty: {target: -1}\n"),
                           "training.regularizers.gradient_penalty.target", "greater than 0"),
    "r1_zero": (_with("    r1: {weight: 0}\n"), "training.regularizers.r1.weight",
                "greater than 0"),
    "r1_infinite": (_with("    r1: {weight: .inf}\n"), "training.regularizers.r1.weight",
                    "finite"),
    "r1_every_zero": (_with("    r1: {every: 0}\n"), "training.regularizers.r1.every",
                      "greater than 0"),
    "score_loss_sigmoid_d": (HINGE.replace("    - {type: linear}\ntraining",
                                           "    - {type: sigmoid}\ntraining"),
                             "discriminator.layers[3]", "the hinge loss needs D's raw score"),
    "wasserstein_sigmoid_d": (GP.replace("    - {type: linear}\ntraining",
                                         "    - {type: sigmoid}\ntraining"),
                              "discriminator.layers[3]", "the wasserstein loss needs D's raw"),
    "probability_loss_linear_d": (HINGE.replace("loss: hinge", "loss: non_saturating"),
                                  "discriminator.layers[3]",
                                  "reads D's output as a probability"),
    "old_g_loss_linear_d": (HINGE.replace("loss: hinge", "g_loss: minimax"),
                            "discriminator.layers[3]", "reads D's output as a probability"),
    "wasserstein_unconstrained": (HINGE.replace("loss: hinge", "loss: wasserstein"),
                                  "training.loss", "gradient_penalty (WGAN-GP) or spectral_norm"),
    "wasserstein_sn_on_g_only": (
        _with("    spectral_norm: {nets: [G]}\n").replace("loss: hinge", "loss: wasserstein"),
        "training.loss", "spectral_norm on every weighted layer of D"),
    "gp_batchnorm_d": (GP.replace("    - {type: maxout, name: h1",
                                  "    - {type: batchnorm}\n    - {type: maxout, name: h1"),
                       "training.regularizers.gradient_penalty", "whole minibatch"),
    "r1_batchnorm_d": (_with("    r1: {weight: 1}\n").replace(
        "    - {type: maxout, name: h1", "    - {type: batchnorm}\n    - {type: maxout, name: h1"),
        "training.regularizers.r1", "use layernorm"),
    "sn_no_weights": (_with("    spectral_norm: {layers: [D.l3]}\n"),
                      "training.regularizers.spectral_norm.layers[0]", "no weight to normalise"),
    "sn_unknown_layer": (_with("    spectral_norm: {layers: [D.nope]}\n"),
                         "training.regularizers.spectral_norm.layers[0]",
                         "D has no layer 'D.nope'; its weighted layers: D.h0, D.h1, D.y"),
    "sn_listed_twice": (_with("    spectral_norm: {layers: [D.h0, D.h0]}\n"),
                        "training.regularizers.spectral_norm.layers[1]", "listed twice"),
    "sn_other_net": (_with("    spectral_norm: {layers: [G.h0]}\n"),
                     "training.regularizers.spectral_norm.layers[0]", "give a layer of D"),
    "sn_net_twice": (_with("    spectral_norm: {nets: [D, D]}\n"),
                     "training.regularizers.spectral_norm.nets", "at most once"),
    "sn_no_iterations": (_with("    spectral_norm: {iterations: 0}\n"),
                         "training.regularizers.spectral_norm.iterations", "greater than 0"),
    "ema_zero": (_with("    ema: {decay: 0}\n"), "training.regularizers.ema.decay",
                 "greater than 0"),
    "ema_one": (_with("    ema: {decay: 1}\n"), "training.regularizers.ema.decay", "less than 1"),
    "ema_above_one": (_with("    ema: {decay: 1.5}\n"), "training.regularizers.ema.decay",
                      "less than 1"),
    "ema_one_in_float32": (_with("    ema: {decay: 0.99999999999}\n"),
                           "training.regularizers.ema.decay", "is 1 in float32"),
    "wasserstein_sn_on_one_layer": (
        _with("    spectral_norm: {layers: [D.h0]}\n").replace("loss: hinge", "loss: wasserstein"),
        "training.loss", "(without: D.h1.weight, D.y.weight)"),
    "ema_negative_start": (_with("    ema: {start: -1}\n"), "training.regularizers.ema.start",
                           "greater than or equal to 0"),
    "unknown_regularizer": (_with("    dropout_penalty: {weight: 1}\n"),
                            "training.regularizers.dropout_penalty", ""),
    "unknown_loss": (HINGE.replace("loss: hinge", "loss: relativistic"), "training.loss",
                     "hinge"),
}


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_objective_is_one_located_error(tmp_path, case, command):
    text, path, why = CASES[case]
    spec = tmp_path / f"{case}.yaml"
    spec.write_text(text)
    r = cli(command, spec)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.match(rf"error: {re.escape(str(spec))}:\d+:\d+: {re.escape(path)}: ", lines[0]), \
        lines[0]
    assert why in lines[0]
    runs = Path(os.environ["ADVGRAPH_RUNS"])
    assert not runs.exists() or not any(runs.iterdir())  # nothing created


def test_the_new_specs_pass_check():
    for name in ("ring2d-wgan-gp", "ring2d-hinge", "fashion-mnist-conv-hinge-sn"):
        r = cli("check", SPECS / f"{name}.yaml")
        assert r.exit_code == 0, (name, r.stderr)


FAST = ["--set", "data.train=1000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.checkpoint={steps: 10}", "--set", "training.stop.steps=10"]


REFUSED = [
    ("training.loss=minimax", "training.loss"),  # what D's output means changes
    ("training.regularizers.ema={decay: 0.9}", "training.regularizers.ema"),
    ("training.regularizers.r1={weight: 1}", "training.regularizers.r1"),
]


def test_a_resume_that_changes_the_objective_is_refused():
    """Each refusal on one trained run (a refused resume leaves the run as it was, so the next
    override meets the same run; and the run still resumes as it is)."""
    r = cli("train", SPECS / "ring2d.yaml", "--name", "obj", *FAST)
    assert r.exit_code == 0, r.stderr
    for override, named in REFUSED:
        r = cli("train", "--resume", "obj", "--set", "training.stop.steps=20", "--set", override)
        assert r.exit_code == 2, (override, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        assert "on --resume only training.stop/" in r.stderr and named in r.stderr, override
    r = cli("train", "--resume", "obj", "--set", "training.stop.steps=11")
    assert r.exit_code == 0, r.stderr
