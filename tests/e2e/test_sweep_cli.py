"""`advgraph sweep` end to end: each member is the solo run with its seed and values, a resume
continues exactly, a diverged member leaves the others' numbers alone, and a sweep is a set of
ordinary runs that `runs` and `rm` know."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.conftest import SPECS
from tests.helpers import cli, runs_root

TINY = ["--set", "data.train=1024", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.batch_size=64", "--set", "training.checkpoint={steps: 10}",
        "--set", "training.stop.steps=20", "--set", "training.log_every=5",
        "--set", "training.sample_grid=null"]


def _ckpt(run: str, step: int) -> dict[str, np.ndarray]:
    return load_file(runs_root() / run / "checkpoints" / f"step-{step:07d}.safetensors")


def _rows(run: str) -> list[dict]:
    return [json.loads(x) for x in (runs_root() / run / "metrics.jsonl").read_text().splitlines()]


def _same_training(a: str, b: str, step: int, exact: bool = True) -> None:
    """Two runs' checkpoints at `step` (every tensor) and their metrics rows agree."""
    ta, tb = _ckpt(a, step), _ckpt(b, step)
    assert sorted(ta) == sorted(tb)
    for k in ta:
        if exact:
            np.testing.assert_array_equal(ta[k], tb[k], err_msg=k)
        elif ta[k].dtype.kind == "f":
            np.testing.assert_allclose(ta[k], tb[k], rtol=1e-4, atol=1e-5, err_msg=k)
    keys = ("step", "d_loss", "g_loss", "d_real", "d_fake", "lr_d", "lr_g")
    ra = [[r[k] for k in keys] for r in _rows(a) if "d_loss" in r]
    rb = [[r[k] for k in keys] for r in _rows(b) if "d_loss" in r]
    np.testing.assert_allclose(ra, rb, rtol=0 if exact else 1e-4, atol=0 if exact else 1e-5)


@pytest.mark.parametrize("engine", ["loop", "auto"])
def test_each_member_is_the_solo_run_with_its_seed_and_values(engine):
    r = cli("sweep", SPECS / "ring2d.yaml", "--seeds", "3,5",
            "--vary", "training.optimizer.lr=0.001,0.0005", "--name", "sw", "--engine", engine,
            *TINY)
    assert r.exit_code == 0, r.stderr
    assert "sweep sw finished: 4 members" in r.stdout
    info = json.loads((runs_root() / "sw" / "sweep.json").read_text())
    assert [m["name"] for m in info["members"]] == [
        "sw.lr-0.001.s3", "sw.lr-0.001.s5", "sw.lr-0.0005.s3", "sw.lr-0.0005.s5"]
    assert info["step"] == 20 and info["status"] == "finished"
    assert cli("train", SPECS / "ring2d.yaml", "--name", "solo", *TINY, "--set",
               "training.seed=5", "--set", "training.optimizer.lr=0.0005").exit_code == 0
    _same_training("sw.lr-0.0005.s5", "solo", 20, exact=info["engine"] == "loop")
    run = json.loads((runs_root() / "sw.lr-0.0005.s5" / "run.json").read_text())
    assert run["sweep"] == "sw" and run["status"] == "finished"
    # a member is a run: eval and sample read it as any run
    assert cli("sample", "sw.lr-0.001.s3", "--n", "8", "--npz", "s.npz").exit_code == 0


def test_a_conditional_sweep_member_is_its_solo_run():
    args = [*TINY, "--set", "training.stop.steps=10"]
    r = cli("sweep", SPECS / "ring2d-cgan.yaml", "--seeds", "0-1", "--name", "c", *args)
    assert r.exit_code == 0, r.stderr
    assert cli("train", SPECS / "ring2d-cgan.yaml", "--name", "solo", *args,
               "--set", "training.seed=1").exit_code == 0
    info = json.loads((runs_root() / "c" / "sweep.json").read_text())
    _same_training("c.s1", "solo", 10, exact=info["engine"] == "loop")


def test_a_resumed_sweep_continues_exactly():
    args = ["--seeds", "0-1", "--engine", "loop", *TINY]
    assert cli("sweep", SPECS / "ring2d.yaml", "--name", "whole", *args).exit_code == 0
    assert cli("sweep", SPECS / "ring2d.yaml", "--name", "part", *args,
               "--set", "training.stop.steps=10").exit_code == 0
    r = cli("sweep", "--resume", "part", "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr
    for s in (0, 1):
        _same_training(f"part.s{s}", f"whole.s{s}", 20)
    r = cli("sweep", "--resume", "part")
    assert r.exit_code == 2 and "already reached its stop" in r.stderr


def test_a_diverged_member_is_frozen_and_the_others_are_untouched():
    args = ["--seeds", "0", "--engine", "loop", *TINY]
    r = cli("sweep", SPECS / "ring2d.yaml", "--name", "d", *args,
            "--vary", "training.optimizer.lr=0.001,1e30")
    assert r.exit_code == 0, r.stderr  # the sweep finished: its other member did
    assert "member d.lr-1e30.s0 diverged at step 5" in r.stderr
    assert "diverged: d.lr-1e30.s0" in r.stdout
    assert cli("sweep", SPECS / "ring2d.yaml", "--name", "ok", *args).exit_code == 0
    _same_training("d.lr-0.001.s0", "ok.s0", 20)
    info = json.loads((runs_root() / "d" / "sweep.json").read_text())
    assert [m["status"] for m in info["members"]] == ["finished", "diverged"]
    bad = json.loads((runs_root() / "d.lr-1e30.s0" / "run.json").read_text())
    assert bad["status"] == "diverged" and bad["step"] == 5
    # `runs` lists the members and the sweep
    r = cli("runs")
    assert "d.lr-1e30.s0" in r.stdout and "sweep d: 2 members (1 diverged, 1 finished)" in r.stdout


def test_ctrl_c_checkpoints_every_member_and_rm_waits_for_the_sweep(tmp_path):
    env = {**os.environ, "ADVGRAPH_RUNS": str(runs_root())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "advgraph", "sweep", str(SPECS / "ring2d.yaml"), "--seeds",
         "0-1", "--name", "live", *TINY, "--set", "training.stop.steps=100000",
         "--set", "training.checkpoint={steps: 1000}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = runs_root() / "live.s1" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.05)
    try:
        for target in ("live.s0", "live"):
            r = cli("rm", target, "--yes")
            assert r.exit_code == 1 and f"run {target!r} is being written by process" in r.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "every member checkpointed" in err and "advgraph sweep --resume live" in err
    info = json.loads((runs_root() / "live" / "sweep.json").read_text())
    assert info["status"] == "interrupted" and info["step"] > 0
    for m in ("live.s0", "live.s1"):
        assert (runs_root() / m / "checkpoints" / f"step-{info['step']:07d}.json").exists()
    r = cli("rm", "live", "--yes")
    assert r.exit_code == 0 and not (runs_root() / "live").exists()
    assert not (runs_root() / "live.s0").exists() and not (runs_root() / "live.s1").exists()


@pytest.mark.slow
def test_nproc_shards_the_members_over_processes_and_a_resume_may_change_it():
    args = ["--seeds", "0-2", "--engine", "loop", *TINY]
    assert cli("sweep", SPECS / "ring2d.yaml", "--name", "one", *args).exit_code == 0
    env = {**os.environ, "ADVGRAPH_RUNS": str(runs_root())}
    r = subprocess.run([sys.executable, "-m", "advgraph", "sweep", str(SPECS / "ring2d.yaml"),
                        "--name", "two", *args, "--set", "training.stop.steps=10",
                        "--nproc", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "3 members over 2 processes, each its share one after another (--engine loop)" in r.stdout
    info = json.loads((runs_root() / "two" / "sweep.json").read_text())
    assert info["world_size"] == 2 and info["step"] == 10
    assert [m["status"] for m in info["members"]] == ["finished"] * 3
    r = cli("sweep", "--resume", "two", "--set", "training.stop.steps=20")  # one process now
    assert r.exit_code == 0, r.stderr
    for s in (0, 1, 2):
        _same_training(f"two.s{s}", f"one.s{s}", 20)
    r = subprocess.run([sys.executable, "-m", "advgraph", "sweep", str(SPECS / "ring2d.yaml"),
                        "--name", "x", "--seeds", "0", *TINY, "--nproc", "2"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--nproc 2 for 1 member(s)" in r.stderr


def test_the_api_opens_a_sweep_and_its_members():
    import advgraph
    from advgraph.errors import RunError

    assert cli("sweep", SPECS / "ring2d.yaml", "--seeds", "0-1", "--name", "api",
               *TINY).exit_code == 0
    sw = advgraph.open_sweep("api")
    assert [m["name"] for m in sw.members] == ["api.s0", "api.s1"]
    runs = sw.runs()
    assert [r.name for r in runs] == ["api.s0", "api.s1"] and runs[1].step == 20
    np.testing.assert_array_equal(runs[1].generate(5, seed=3),
                                  advgraph.open_run("api.s1").generate(5, seed=3))
    with pytest.raises(RunError, match="no member 'x'"):
        sw.open("x")
    with pytest.raises(RunError, match="no sweep 'nope'"):
        advgraph.open_sweep("nope")


DROPOUT_D = ("discriminator.layers=[{type: dropout, keep: 0.8, scale: 1.25}, "
             "{type: maxout, name: h0, units: 32, pieces: 2}, {type: dropout, keep: 0.5, "
             "scale: 2.0}, {type: maxout, name: h1, units: 32, pieces: 2}, "
             "{type: dense, name: y, units: 1}, {type: sigmoid}]")


def test_a_cupy_sweep_member_is_its_solo_run_bit_for_bit_on_the_host_executor():
    """Conditional ring2d, a D with dropout, two lrs, 200 steps as one batched cupy program:
    the member's checkpoint and whole metrics trajectory are its solo run's, bit for bit."""
    import sys as _sys

    from tests.conftest import ROOT

    _sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(str(available()))
    args = ["--backend", "cupy", "--device", "cpu", *TINY, "--set", DROPOUT_D,
            "--set", "training.batch_size=32",
            "--set", "training.stop.steps=200", "--set", "training.log_every=10",
            "--set", "training.checkpoint={steps: 200}",
            "--set", "training.optimizer={type: sgd, lr: 0.05, momentum: 0.5}"]
    r = cli("sweep", SPECS / "ring2d-cgan.yaml", "--seeds", "1", "--name", "cu",
            "--vary", "training.optimizer.lr=0.05,0.02", *args)
    assert r.exit_code == 0, r.stderr
    assert "2 members as one batched program" in r.stdout
    assert cli("train", SPECS / "ring2d-cgan.yaml", "--name", "solo", *args,
               "--set", "training.seed=1", "--set", "training.optimizer.lr=0.02").exit_code == 0
    _same_training("cu.lr-0.02.s1", "solo", 200)
    assert len([r for r in _rows("solo") if "d_loss" in r]) == 20


def test_a_cupy_sweep_shards_over_processes_as_one_process_trains_it():
    """`--nproc 2` on the cupy backend: each process its members as one batched program (on
    a GPU machine each its own device), the members those of the one-process sweep."""
    import sys as _sys

    from tests.conftest import ROOT

    _sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(str(available()))
    args = ["--seeds", "0-3", "--backend", "cupy", "--device", "cpu", *TINY,
            "--set", "training.stop.steps=10", "--set", "training.checkpoint={steps: 10}"]
    assert cli("sweep", SPECS / "toy1d.yaml", "--name", "one", *args).exit_code == 0
    env = {**os.environ, "ADVGRAPH_RUNS": str(runs_root())}
    r = subprocess.run([sys.executable, "-m", "advgraph", "sweep", str(SPECS / "toy1d.yaml"),
                        "--name", "two", *args, "--nproc", "2"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "4 members over 2 processes, each its share as one batched program" in r.stdout
    for s in range(4):
        _same_training(f"two.s{s}", f"one.s{s}", 10)


def test_a_sweep_resumed_on_another_backend_says_so_in_each_member():
    """`sweep --resume --backend cupy` of a torch sweep: each member's run.json names the
    backend that trains it from then on, as `train --resume` writes it."""
    import sys as _sys

    from tests.conftest import ROOT

    _sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(str(available()))
    args = [*TINY, "--set", "training.stop.steps=10", "--set", "training.checkpoint={steps: 10}"]
    assert cli("sweep", SPECS / "toy1d.yaml", "--seeds", "0-1", "--name", "sw",
               *args).exit_code == 0
    r = cli("sweep", "--resume", "sw", "--backend", "cupy", "--device", "cpu",
            "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr
    for s in (0, 1):
        run = json.loads((runs_root() / f"sw.s{s}" / "run.json").read_text())
        assert run["backend"] == "cupy" and run["step"] == 20 and "cupy" in run["versions"]


@pytest.mark.slow
def test_a_batched_member_with_dropout_follows_its_solo_run_for_200_steps():
    """The metrics trajectory over 200 steps, and every tensor at the end, within float32
    rounding's reach (1e-4 relative): dropout masks come from each member's own generator."""
    args = [*TINY, "--set", DROPOUT_D, "--set", "training.stop.steps=200",
            "--set", "training.log_every=10", "--set", "training.checkpoint={steps: 200}",
            "--set", "training.optimizer={type: sgd, lr: 0.05, momentum: 0.5}"]
    r = cli("sweep", SPECS / "ring2d.yaml", "--seeds", "0-1", "--vary",
            "training.optimizer.lr=0.05,0.02", "--name", "dr", "--engine", "batched", *args)
    assert r.exit_code == 0, r.stderr
    assert "4 members as one batched program" in r.stdout
    assert cli("train", SPECS / "ring2d.yaml", "--name", "solo", *args, "--set",
               "training.seed=1", "--set", "training.optimizer.lr=0.02").exit_code == 0
    _same_training("dr.lr-0.02.s1", "solo", 200, exact=False)
    assert len([r for r in _rows("solo") if "d_loss" in r]) == 20
