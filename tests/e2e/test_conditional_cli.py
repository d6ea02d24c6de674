"""Conditional GANs through the CLI: conditioning really conditions, and sample / interpolate /
eval understand labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from advgraph.data.toy import ring2d_centres  # noqa: E402
from advgraph.run.directory import RunDir  # noqa: E402
from advgraph.run.restore import restore_run  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

RING = SPECS / "ring2d-cgan.yaml"
FAST = ["--set", "data.train=5000", "--set", "data.valid=500", "--set", "data.test=500",
        "--set", "training.checkpoint={steps: 500}"]

# The same nets in graph form: the label enters G and D through branches of their own.
GRAPH_FORM = """\
name: ring2d-cgan-graph
condition: {type: label, classes: 8}
prior: {type: gaussian, dim: 16}
data: {dataset: toy-ring2d, modes: 8, radius: 2.0, std: 0.02, train: 5000, valid: 500, test: 500}
generator:
  graph:
    - {name: hz, inputs: z, layers: [{type: dense, units: 64}, {type: relu}]}
    - {name: hy, inputs: y, layers: [{type: dense, units: 64}, {type: relu}]}
    - name: out
      inputs: [hz, hy]
      layers: [{type: dense, units: 128}, {type: relu}, {type: dense, units: 2}, {type: linear}]
discriminator:
  graph:
    - {name: hx, inputs: x, layers: [{type: maxout, units: 64, pieces: 2}]}
    - {name: hy, inputs: y, layers: [{type: maxout, units: 32, pieces: 2}]}
    - name: out
      inputs: [hx, hy]
      layers: [{type: maxout, units: 128, pieces: 2}, {type: dense, units: 1}, {type: sigmoid}]
training:
  batch_size: 256
  optimizer: {type: adam, lr: 0.001, beta1: 0.5}
  stop: {steps: 1000}
  checkpoint: {steps: 500}
  log_every: 250
"""


def mode_hits(name: str, n: int = 1000) -> np.ndarray:
    """hits[c, j]: the share of samples of G(·|c) within 0.5 of mode j (the modes are 1.53
    apart, the data's std 0.02)."""
    loaded = restore_run(RunDir(runs_root() / name))
    centres = ring2d_centres(8, 2.0)
    hits = np.zeros((8, 8))
    for c in range(8):
        x = loaded.trainer.generate(loaded.trainer.sample_noise(n), np.full(n, c))
        d = np.sqrt(((x[:, None, :] - centres[None]) ** 2).sum(-1))
        for j in range(8):
            hits[c, j] = ((d.argmin(1) == j) & (d.min(1) < 0.5)).mean()
    return hits


@pytest.mark.slow
@pytest.mark.parametrize("form", ["layers", "graph"])
def test_conditioning_conditions(tmp_path, form):
    """After brief training, ≥ 90% of the samples drawn for label c land in mode c (chance is
    1/8), and almost none in the neighbouring mode."""
    if form == "layers":
        r = cli("train", RING, "--name", "c", *FAST, "--set", "training.stop.steps=1000")
    else:
        (tmp_path / "g.yaml").write_text(GRAPH_FORM)
        r = cli("train", tmp_path / "g.yaml", "--name", "c")
    assert r.exit_code == 0, r.output
    hits = mode_hits("c")
    assert hits.diagonal().min() >= 0.9, hits.round(3)
    assert np.roll(hits, -1, axis=1).diagonal().max() <= 0.05, hits.round(3)


@pytest.mark.slow
def test_sample_interpolate_and_eval_by_label(mnist_dir):
    common = ["--data-root", mnist_dir, "--set", "data.train=250", "--set", "data.valid=50",
              "--set", "training.stop={steps: 4}", "--set", "training.log_every=2"]
    r = cli("train", SPECS / "mnist-cgan.yaml", "--name", "m", *common)
    assert r.exit_code == 0, r.output
    run = runs_root() / "m"

    r = cli("sample", "m", "--by-label", "--cols", "4", "--nearest")
    assert r.exit_code == 0, r.output
    png = run / "samples" / "step-0000004-seed0-by-label-nearest.png"
    w, h = Image.open(png).size
    # one row per class (10) of 4 samples + the nearest-neighbour column; 28 px, pad 2, ×2;
    # the class labels in a strip on the left (tests/e2e/test_plots_cli.py)
    assert h == 2 * (10 * 28 + 11 * 2) and w > 2 * (5 * 28 + 6 * 2 + 6)

    r = cli("sample", "m", "--label", "3", "--npz", "s.npz", "--n", "7")
    assert r.exit_code == 0, r.output
    with np.load("s.npz") as z:
        assert z["samples"].shape == (7, 784) and (z["labels"] == 3).all()
    # the label changes the samples; the same label and seed give the same ones
    loaded = restore_run(RunDir(run))
    zs = loaded.trainer.sample_noise(5)
    a, b = loaded.trainer.generate(zs, np.full(5, 3)), loaded.trainer.generate(zs, np.full(5, 4))
    assert not np.allclose(a, b)

    r = cli("interpolate", "m", "--label", "2", "--rows", "2", "--steps", "3")
    assert r.exit_code == 0 and "interp-step-0000004-seed0-lerp-label2.png" in r.output

    r = cli("eval", "m", "--parzen", "--by-label", "--samples", "50")
    assert r.exit_code == 0, r.output
    rep = json.loads((run / "eval" / "parzen-by-label.json").read_text())
    test_labels = loaded.splits.test_y
    assert [row["label"] for row in rep["by_label"]] == list(range(10))
    assert [row["n_evaluated"] for row in rep["by_label"]] == \
        [int((test_labels == c).sum()) for c in range(10)]
    scored = [row for row in rep["by_label"] if row["n_evaluated"]]
    assert all(np.isfinite(row["mean_log_likelihood"]) and row["sigma"] > 0 for row in scored)
    # the marginal figure: samples take their labels from the training labels
    r = cli("eval", "m", "--parzen", "--samples", "50")
    assert r.exit_code == 0 and "labels drawn from the training labels" in r.output

    for args, msg in ((["sample", "m", "--label", "10"], "--label must be one of 0..9"),
                      (["sample", "m", "--label", "1", "--by-label"], "either --label or --by-label"),
                      (["eval", "m", "--theory", "--by-label"], "--by-label goes with --parzen"),
                      (["eval", "m", "--parzen", "--by-label", "--baseline", "kmeans"],
                       "does not go with --by-label")):
        r = cli(*args)
        assert r.exit_code == 2 and msg in r.output, r.output


def test_label_options_on_an_unconditional_run():
    r = cli("train", SPECS / "toy1d.yaml", "--name", "u", "--set", "training.stop.steps=3",
            "--set", "data.train=500")
    assert r.exit_code == 0, r.output
    for args in (["sample", "u", "--label", "1"], ["sample", "u", "--by-label"],
                 ["eval", "u", "--parzen", "--by-label", "--samples", "10"]):
        r = cli(*args)
        assert r.exit_code == 2 and "not a conditional GAN" in r.output, (args, r.output)


@pytest.mark.slow
def test_conditional_resume_is_exact():
    """The labels drawn for G-steps come from the trainer's generator, which is checkpointed."""
    common = [*FAST, "--set", "training.checkpoint={steps: 10}"]
    assert cli("train", RING, "--name", "full", *common, "--set", "training.stop.steps=30").exit_code == 0
    assert cli("train", RING, "--name", "half", *common, "--set", "training.stop.steps=20").exit_code == 0
    assert cli("train", "--resume", "half", "--set", "training.stop.steps=30").exit_code == 0
    full = RunDir(runs_root() / "full").latest_checkpoint()[1]
    half = RunDir(runs_root() / "half").latest_checkpoint()[1]
    for k in full:
        np.testing.assert_array_equal(full[k], half[k], err_msg=k)


def test_unlabelled_training_examples_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32),
             y=np.r_[np.arange(49) % 8, -1])
    text = RING.read_text().replace(
        "{dataset: toy-ring2d, modes: 8, radius: 2.0, std: 0.02, train: 50000, valid: 5000, test: 5000}",
        f"{{dataset: npz, path: {tmp_path / 'd.npz'}, key: x, labels: y}}")
    (tmp_path / "s.yaml").write_text(text)
    r = cli("train", tmp_path / "s.yaml", "--name", "n", "--set", "training.batch_size=10")
    assert r.exit_code == 1 and "1 train example(s) have no label in 0..7" in r.output, r.output
    assert not (runs_root() / "n").exists()
