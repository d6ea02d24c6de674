"""`advgraph train --nproc 2` (gloo on CPU) as a user runs it: a run directory written once,
checkpoints with every rank's state, exact resume, interruption, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.run.directory import RunDir  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli_proc, interrupt_training, runs_root  # noqa: E402

FAST = ["--set", "data.train=4000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.log_every=10", "--set", "training.checkpoint={steps: 20}"]



def tensors(name):
    return RunDir(runs_root() / name).latest_checkpoint()[1]


@pytest.mark.slow
def test_distributed_run_resumes_exactly_and_in_one_process():
    spec = SPECS / "ring2d.yaml"
    r = cli_proc("train", spec, "--nproc", "2", "--name", "full", *FAST,
                 "--set", "training.stop.steps=40")
    assert r.returncode == 0, r.stderr
    assert "run full finished: step 40, epoch 2 (d_loss " in r.stdout
    assert ", 2 processes) →" in r.stdout  # the losses too, as on one process
    r = cli_proc("train", spec, "--nproc", "2", "--name", "half", *FAST,
                 "--set", "training.stop.steps=20")
    assert r.returncode == 0, r.stderr
    r = cli_proc("train", "--resume", "half", "--nproc", "2", "--set", "training.stop.steps=40")
    assert r.returncode == 0, r.stderr
    a, b = tensors("full"), tensors("half")
    assert "rng/torch/cpu" in a and "rng/torch/cpu/rank1" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    rows = RunDir(runs_root() / "full").metrics()
    assert [x["step"] for x in rows] == [10, 20, 30, 40]  # written once, by rank 0
    assert json.loads((runs_root() / "full" / "run.json").read_text())["world_size"] == 2
    state = json.loads((runs_root() / "full" / "checkpoints" / "step-0000040.json").read_text())
    assert state["world_size"] == 2
    # a checkpoint of 2 ranks resumes in one process (the run above: no third 2-rank training)
    r = cli_proc("train", "--resume", "full", "--set", "training.stop.steps=50")
    assert r.returncode == 0, r.stderr
    assert RunDir(runs_root() / "full").latest_checkpoint()[0].step == 50


@pytest.mark.slow
def test_interrupting_a_distributed_run():
    spec = SPECS / "ring2d.yaml"
    code, err = interrupt_training("int", 2, spec, "--nproc", "2", "--name", "int", *FAST,
                                   "--set", "training.stop.steps=1000000")
    assert code == 130, err
    assert "--resume int --nproc 2" in err and "Traceback" not in err
    info = json.loads((runs_root() / "int" / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert RunDir(runs_root() / "int").latest_checkpoint()[0].step == info["step"]


@pytest.mark.parametrize("args,message", [
    (["--backend", "cupy"], "--nproc needs the torch backend"),
    (["--set", "training.batch_size=255"], "does not split evenly over 2 processes"),
    (["--set", "training.k=0"], "training.k: Input should be greater than 0"),
])
def test_distributed_refusals(args, message):
    r = cli_proc("train", SPECS / "ring2d.yaml", "--nproc", "2", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1  # reported once, not once per rank


def test_nproc_on_cuda_without_one_device_per_rank_is_one_error():
    """torch.cuda.set_device's traceback came from every rank; now one line, before any rank."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
        pytest.skip("this machine has a CUDA device for each rank")
    r = cli_proc("train", SPECS / "ring2d.yaml", "--nproc", "2", "--device", "cuda",
                 "--name", "nocuda")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1 and "2 ranks need one each" in r.stderr
    assert not (runs_root() / "nocuda").exists()


@pytest.mark.parametrize("args,message", [
    (["eval", "none", "--parzen"], "no run named 'none'"),
    (["eval", "none", "--parzen", "--split", "bogus"],
     "Invalid value for '--split': Value error, 'bogus' is not one of 'test', 'valid', 'train'"),
    (["eval", "none", "--fid", "--all-checkpoints", "--checkpoint", "3"], "not both"),
    (["sample", "none", "--nearest"], "no run named 'none'"),
    (["sample", "none", "--rows", "0"],
     "Invalid value for '--rows': Input should be greater than or equal to 1"),
])
def test_eval_and_sample_refusals_are_reported_once(args, message):
    """Checked before --nproc launches its ranks, so the error is one line, not one per rank."""
    r = cli_proc(*args, "--nproc", "2")
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.lower().count("error:") == 1 and r.stderr.count(message) == 1, r.stderr


@pytest.mark.slow
def test_parzen_nearest_and_kmeans_shared_over_ranks_agree_with_one_process(mnist_dir, tmp_path):
    """eval --parzen, sample --nearest and eval --baseline kmeans with --nproc 2 give what one
    process gives, on one trained run (one training for the three). With kmeans, rank 0
    computes the centres and the ranks share the Parzen work; a cache that cannot be written
    is one warning (rank 0's), not a failure. (Rank 0 failing: tests/unit/test_kmeans.py.)"""
    r = cli_proc("train", SPECS / "mnist.yaml", "--name", "m", "--data-root", mnist_dir,
                 "--set", "data.train=250", "--set", "data.valid=50",
                 "--set", "training.stop={steps: 4}", "--set", "training.checkpoint={steps: 4}")
    assert r.returncode == 0, r.stderr
    evals = []
    for nproc in ("1", "2"):
        r = cli_proc("eval", "m", "--parzen", "--samples", "300", "--nproc", nproc)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("test log-likelihood") == 1  # printed by rank 0 only
        evals.append(json.loads((runs_root() / "m" / "eval" / "parzen.json").read_text()))
    one, two = evals
    assert two["processes"] == 2 and one["sigma"] == two["sigma"]
    assert two["mean_log_likelihood"] == pytest.approx(one["mean_log_likelihood"], abs=1e-4)
    assert two["stderr"] == pytest.approx(one["stderr"], rel=1e-5)
    pngs = []
    for nproc in ("1", "2"):
        out = tmp_path / f"nn{nproc}.png"
        r = cli_proc("sample", "m", "--nearest", "--nproc", nproc, "--out", out)
        assert r.returncode == 0, r.stderr
        pngs.append(out.read_bytes())
    assert pngs[0] == pngs[1]
    args = ["eval", "m", "--parzen", "--baseline", "kmeans", "--samples", "30", "--sigma", "0.1"]
    figures = []
    for nproc in ("1", "2"):
        r = cli_proc(*args, "--nproc", nproc)
        assert r.returncode == 0, r.stderr
        rep = json.loads((runs_root() / "m" / "eval" / "parzen-baseline-kmeans.json").read_text())
        assert rep["processes"] == int(nproc)
        figures.append(rep["mean_log_likelihood"])
    assert figures[1] == pytest.approx(figures[0], abs=1e-4)
    (tmp_path / "not-a-dir").write_text("")
    r = cli_proc(*args, "--samples", "31", "--nproc", "2",
                 env={"XDG_CACHE_HOME": str(tmp_path / "not-a-dir")})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("warning: k-means centres not cached (cannot write") == 1
