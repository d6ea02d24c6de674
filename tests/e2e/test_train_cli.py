"""`advgraph train` as a user runs it: learning, run directories, resume, interruption, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.run.directory import RunDir  # noqa: E402
from advgraph.run.restore import restore_run  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli, interrupt_training, runs_root  # noqa: E402

FAST = ["--set", "data.train=2000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.log_every=10", "--set", "training.checkpoint={steps: 20}"]



def final_tensors(name: str) -> dict[str, np.ndarray]:
    return RunDir(runs_root() / name).latest_checkpoint()[1]


@pytest.mark.slow
def test_toy1d_learns_the_data_distribution():
    r = cli("train", SPECS / "toy1d.yaml")
    assert r.exit_code == 0, r.stderr
    assert "run toy1d-001 finished: step 3000" in r.stdout
    loaded = restore_run(RunDir(runs_root() / "toy1d-001"))
    x = loaded.trainer.generate(loaded.trainer.sample_noise(20_000))[:, 0]
    assert loaded.step == 3000
    assert abs(x.mean() - 4.0) < 0.1 * 4.0
    assert abs(x.std() - 0.5) < 0.1 * 0.5
    # D is near 1/2 on the data, as at the game's equilibrium.
    d = loaded.trainer.discriminate(loaded.splits.test)
    assert abs(d.mean() - 0.5) < 0.1


def test_run_directory_layout_and_runs_listing():
    r = cli("train", SPECS / "ring2d.yaml", "--name", "ring", *FAST,
            "--set", "training.stop.steps=40")
    assert r.exit_code == 0, r.stderr
    run = runs_root() / "ring"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-0000020.json", "step-0000020.safetensors",
        "step-0000040.json", "step-0000040.safetensors"]
    spec = (run / "spec.yaml").read_text()
    assert "batch_size: 256" in spec and "keep_checkpoints: 5" in spec  # resolved defaults
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [10, 20, 30, 40]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "lr_d", "momentum", "steps_per_s"} <= set(rows[0])
    state = json.loads((run / "checkpoints" / "step-0000040.json").read_text())
    assert state["step"] == 40 and state["backend"] == "torch" and len(state["sha256"]) == 64
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == 40
    listing = cli("runs")
    assert listing.exit_code == 0 and "ring" in listing.stdout and "finished" in listing.stdout
    data = json.loads(cli("runs", "--json").stdout)
    assert data[0]["name"] == "ring" and data[0]["step"] == 40


def test_same_seed_same_result_and_seed_matters():
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        r = cli("train", SPECS / "ring2d.yaml", "--name", name, *FAST,
                "--set", "training.stop.steps=20", "--set", f"training.seed={seed}")
        assert r.exit_code == 0, r.stderr
    a, b, c = final_tensors("a"), final_tensors("b"), final_tensors("c")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["G.h0.weight"], c["G.h0.weight"])


def test_resume_equals_an_uninterrupted_run():
    spec = SPECS / "ring2d.yaml"
    assert cli("train", spec, "--name", "full", *FAST, "--set", "training.stop.steps=60").exit_code == 0
    assert cli("train", spec, "--name", "half", *FAST, "--set", "training.stop.steps=30").exit_code == 0
    r = cli("train", "--resume", "half", "--set", "training.stop.steps=60")
    assert r.exit_code == 0, r.stderr
    full, half = final_tensors("full"), final_tensors("half")
    assert set(full) == set(half)
    for k in full:
        np.testing.assert_array_equal(full[k], half[k], err_msg=k)
    steps = [json.loads(x)["step"] for x in (runs_root() / "half" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40, 50, 60]


@pytest.mark.slow
def test_sgd_momentum_run_resumes_exactly_across_epochs(mnist_dir):
    """The paper's MNIST spec on small IDX files: SGD, momentum ramp, dropout, marginals."""
    common = ["--data-root", mnist_dir, "--set", "data.train=250", "--set", "data.valid=50",
              "--set", "training.checkpoint={steps: 2}", "--set", "training.log_every=2",
              "--set", "training.optimizer.momentum.saturate=3"]
    spec = SPECS / "mnist.yaml"
    assert cli("train", spec, "--name", "full", *common, "--set", "training.stop={steps: 8}").exit_code == 0
    assert cli("train", spec, "--name", "part", *common, "--set", "training.stop={steps: 5}").exit_code == 0
    assert cli("train", "--resume", "part", "--set", "training.stop.steps=8").exit_code == 0
    full, part = final_tensors("full"), final_tensors("part")
    for k in full:
        np.testing.assert_array_equal(full[k], part[k], err_msg=k)
    rows = RunDir(runs_root() / "full").metrics()
    losses = [r for r in rows if "d_loss" in r]
    assert losses[-1]["epoch"] == pytest.approx(8 / 2) and losses[-1]["momentum"] > 0.5
    # The spec's Parzen monitor ran each epoch (2 minibatches here), identically after resume.
    parzen = [(r["step"], r["parzen_valid"]) for r in rows if "parzen_valid" in r]
    resumed = [(r["step"], r["parzen_valid"]) for r in RunDir(runs_root() / "part").metrics()
               if "parzen_valid" in r]
    assert [s for s, _ in parzen] == [2, 4, 6, 8] and parzen == resumed
    assert all(np.isfinite(v) for _, v in parzen)
    # A sample grid at every checkpoint, from the same noise each time: a resumed run draws
    # the very same images.
    def grids(name):
        return {p.name: p.read_bytes()
                for p in (runs_root() / name / "samples" / "training").glob("*.png")}
    assert sorted(grids("full")) == [f"step-{s:07d}.png" for s in (2, 4, 6, 8)]
    part = grids("part")
    assert part.pop("step-0000005.png")  # where it stopped before the resume
    assert part == grids("full")


def test_marginal_bias_is_the_logit_of_the_pixel_means(mnist_dir):
    from advgraph.spec import load_file
    from advgraph.run.context import Context
    from advgraph.run.session import build_session

    loaded = load_file(SPECS / "mnist.yaml", ["data.train=250", "data.valid=50"])
    s = build_session(loaded, Context("torch", "cpu"), str(mnist_dir))
    mean = np.clip(s.splits.train.mean(0, dtype=np.float64), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(s.trainer.state_dict()["G.y.bias"], np.log(mean / (1 - mean)),
                               rtol=1e-5)
    w = s.trainer.state_dict()["D.h0.weight"]
    assert w.shape == (784, 1200) and np.abs(w).max() <= 0.005


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_interrupt_checkpoints_and_resume_continues_exactly(tmp_path):
    """SIGINT (what Ctrl-C sends) mid-run: exit 130, a checkpoint, then an exact resume."""
    spec = SPECS / "ring2d.yaml"
    args = [*FAST, "--set", "training.checkpoint={steps: 100000}"]
    code, err = interrupt_training("int", 3, spec, "--name", "int", *args,
                                   "--set", "training.stop.steps=1000000",
                                   env={"OMP_NUM_THREADS": "1"})
    assert code == 130, err
    assert "Continue with: advgraph train --resume int" in err and "Traceback" not in err
    info = json.loads((runs_root() / "int" / "run.json").read_text())
    stopped = info["step"]
    assert info["status"] == "interrupted" and stopped >= 30
    assert RunDir(runs_root() / "int").latest_checkpoint()[0].step == stopped

    target = stopped + 25
    r = cli("train", "--resume", "int", "--set", f"training.stop.steps={target}")
    assert r.exit_code == 0, r.stderr
    r = cli("train", spec, "--name", "ref", *args, "--set", f"training.stop.steps={target}")
    assert r.exit_code == 0, r.stderr
    a, b = final_tensors("int"), final_tensors("ref")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("log_every", [1, 1000], ids=["caught-by-metrics", "caught-at-save"])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(log_every):
    r = cli("train", SPECS / "ring2d.yaml", "--name", "nan", *FAST,
            "--set", "training.optimizer={type: sgd, lr: 50, momentum: 0.9}",
            "--set", "training.stop.steps=200",
            "--set", "training.checkpoint={steps: 1}", "--set", f"training.log_every={log_every}")
    assert r.exit_code == 1
    assert "diverged" in r.stderr and "Traceback" not in r.stderr
    run = RunDir(runs_root() / "nan")
    assert run.info()["status"] == "diverged"
    ckpt, tensors, _ = run.latest_checkpoint()
    assert all(np.isfinite(v).all() for k, v in tensors.items() if v.dtype.kind == "f")
    assert ckpt.step < run.info()["step"]
    # the non-finite losses are written as null with their record: strict JSON, still listed
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    for f in (run.metrics_path, run.path / "run.json"):
        text = f.read_text() if f.exists() else ""  # no metrics logged before it diverged
        for line in ([text] if f.suffix == ".json" else text.splitlines()):
            json.loads(line, parse_constant=refuse)
    if log_every == 1:
        assert "nonfinite" in run.metrics()[-1]
    assert cli("runs").exit_code == 0
    r = cli("runs", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout, parse_constant=refuse)[0]["status"] == "diverged"


@pytest.mark.parametrize("args,code,message", [
    (["--backend", "jax"], 1, "error: unknown backend 'jax'; installed: cupy, torch"),
    (["--device", "cuda:7"], 1, "error: torch: device 'cuda:7'"),
    (["--name", "../escape"], 2, "error: invalid run name '../escape'"),
    (["--set", "training.batch_size=999999"], 2, "larger than the training set"),
    (["--set", "generator.layers[0].units=40000", "--set", "training.batch_size=10000000"], 2,
     "parameters) and D (17,217) need at least"),
])
def test_bad_arguments_are_clear_errors(args, code, message):
    r = cli("train", SPECS / "toy1d.yaml", *args)
    assert r.exit_code == code, r.stderr
    assert message in r.stderr.splitlines()[-1]
    assert "Traceback" not in r.stderr
    assert not runs_root().exists() or not any(runs_root().iterdir())  # nothing half-created


def test_missing_mnist_files_explain_where_to_put_them(tmp_path):
    r = cli("train", SPECS / "mnist.yaml", "--data-root", tmp_path / "nowhere")
    assert r.exit_code == 1
    assert "mnist: the IDX files were not found in" in r.stderr
    assert "train-images-idx3-ubyte.gz" in r.stderr


def test_resume_errors():
    r = cli("train", "--resume", "ghost")
    assert r.exit_code == 1 and "no run named 'ghost'" in r.stderr
    assert cli("train", SPECS / "ring2d.yaml", "--name", "x", *FAST,
               "--set", "training.stop.steps=20").exit_code == 0
    r = cli("train", "--resume", "x", "--set", "generator.layers[0].units=64")
    assert r.exit_code == 2 and "generator.layers" in r.stderr
    r = cli("train", SPECS / "ring2d.yaml", "--resume", "x")
    assert r.exit_code == 2 and "not both" in r.stderr
    r = cli("train", SPECS / "ring2d.yaml", "--name", "x")
    assert r.exit_code == 1 and "already exists" in r.stderr
    r = cli("train", "--resume", "x")
    assert r.exit_code == 2 and "already reached its stop (20 steps)" in r.stderr


def test_parzen_monitor_leaves_training_unchanged():
    base = [SPECS / "ring2d.yaml", *FAST, "--set", "training.stop.steps=30"]
    assert cli("train", *base, "--name", "plain").exit_code == 0
    r = cli("train", *base, "--name", "mon",
            "--set", "training.monitor={parzen: {every: {steps: 10}, samples: 50, sigma: 0.1}}")
    assert r.exit_code == 0, r.stderr
    assert "Parzen log-likelihood of validation data (σ 0.1, 50 samples)" in r.stderr
    a, b = final_tensors("plain"), final_tensors("mon")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    rows = [x for x in RunDir(runs_root() / "mon").metrics() if "parzen_valid" in x]
    assert [x["step"] for x in rows] == [10, 20, 30]
    r = cli("plot", "mon")
    assert r.exit_code == 0 and (runs_root() / "mon" / "plots" / "metrics.png").exists()


def test_resume_says_where_it_resumed():
    r = cli("train", SPECS / "ring2d.yaml", "--name", "r", *FAST, "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "r", "--set", "training.stop.steps=30")
    assert r.exit_code == 0, r.stderr
    assert "resumed at step 20; on cpu; stop after 30 steps" in r.stderr


def test_an_epoch_based_run_resumes_to_a_step_count():
    """The README's `train --resume RUN --set training.stop.steps=N` on a run that stops after
    epochs: the interval switches to steps."""
    r = cli("train", SPECS / "ring2d.yaml", "--name", "e", *FAST, "--set", "training.stop.epochs=1")
    assert r.exit_code == 0, r.stderr
    one_epoch = 2000 // 256  # examples // batch size
    assert RunDir(runs_root() / "e").checkpoints()[-1].step == one_epoch
    r = cli("train", "--resume", "e", "--set", "training.stop.steps=30")
    assert r.exit_code == 0, r.stderr
    assert f"resumed at step {one_epoch}; on cpu; stop after 30 steps" in r.stderr
    assert RunDir(runs_root() / "e").checkpoints()[-1].step == 30


def test_rm_deletes_runs_but_never_one_being_written():
    from advgraph.run.directory import RunDir

    for name in ("a", "b"):
        r = cli("train", SPECS / "toy1d.yaml", "--name", name, "--set", "training.stop.steps=5")
        assert r.exit_code == 0, r.stderr
    r = cli("rm", "a")  # no terminal to confirm on
    assert r.exit_code == 2 and "add --yes" in r.stderr and (runs_root() / "a").is_dir()
    r = cli("rm", "a", "nope", "--yes")  # every name is checked before anything is deleted
    assert r.exit_code == 1 and "no run named 'nope'" in r.stderr and (runs_root() / "a").is_dir()
    writer = RunDir(runs_root() / "b")
    writer.lock()
    try:
        r = cli("rm", "b", "--yes")
        assert r.exit_code == 1 and "is being written by process" in r.stderr
        assert (runs_root() / "b" / "run.json").is_file()
        r = cli("rm", "a", "b", "--yes")  # the lock is checked for every name before deleting
        assert r.exit_code == 1 and "run 'b' is being written by process" in r.stderr
        assert (runs_root() / "a" / "run.json").is_file() and "deleted" not in r.stdout
    finally:
        writer.unlock()
    r = cli("rm", "a", "b", "-y")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == [f"deleted {runs_root() / 'a'}", f"deleted {runs_root() / 'b'}"]
    assert not any(runs_root().iterdir())


def test_device_auto_is_the_default_and_says_what_it_chose():
    r = cli("train", SPECS / "toy1d.yaml", "--name", "auto", "--set", "training.stop.steps=5")
    assert r.exit_code == 0, r.stderr
    import torch

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert r.stderr.splitlines()[0].startswith(f"run auto: {runs_root() / 'auto'}  (on {want}; ")
    assert json.loads((runs_root() / "auto" / "run.json").read_text())["device"] == want
    r = cli("sample", "auto", "--npz", runs_root() / "s.npz", "--n", "3")  # auto there too
    assert r.exit_code == 0, r.stderr


def test_sample_grid_can_be_spaced_or_switched_off():
    common = ["--set", "training.stop.steps=6", "--set", "training.checkpoint={steps: 6}"]
    r = cli("train", SPECS / "toy1d.yaml", "--name", "a", *common,
            "--set", "training.sample_grid={every: {steps: 2}}")
    assert r.exit_code == 0, r.stderr
    pngs = sorted(p.name for p in (runs_root() / "a" / "samples" / "training").iterdir())
    assert pngs == ["step-0000002.png", "step-0000004.png", "step-0000006.png"]  # toy: plots
    r = cli("train", SPECS / "toy1d.yaml", "--name", "b", *common,
            "--set", "training.sample_grid=null")
    assert r.exit_code == 0 and not (runs_root() / "b" / "samples").exists()
