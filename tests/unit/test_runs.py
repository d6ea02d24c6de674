"""Run directories: names that cannot escape, atomic checksummed checkpoints, retention."""

from __future__ import annotations

import numpy as np
import pytest

from advgraph.errors import CheckpointError, RunError, UsageError
from advgraph.runs import RunDir, list_runs


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".hidden", "x" * 101, "a b"])
def test_run_names_stay_inside_the_runs_directory(tmp_path, bad):
    with pytest.raises(UsageError):
        RunDir.create(tmp_path, bad)


def test_numbering_and_existing_names(tmp_path):
    a, b = RunDir.create(tmp_path, None), RunDir.create(tmp_path, None)
    assert (a.name, b.name) == ("run-001", "run-002")
    RunDir.create(tmp_path, "exp")
    with pytest.raises(RunError, match="already exists"):
        RunDir.create(tmp_path, "exp")
    for r in (a, b):
        r.write_info(status="finished")
    assert [r.name for r in list_runs(tmp_path)] == ["run-001", "run-002"]


def test_default_names_are_the_spec_name_and_a_counter(tmp_path):
    names = [RunDir.create(tmp_path, None, stem="fashion-mnist").name for _ in range(2)]
    assert names == ["fashion-mnist-001", "fashion-mnist-002"]
    assert RunDir.create(tmp_path, None, stem="toy1d").name == "toy1d-001"  # its own counter
    for bad in ("../escape", "", "a b", "x" * 100):  # never a path or an invalid name
        assert RunDir.create(tmp_path, None, stem=bad).name.startswith("run-")


def test_checkpoints_verify_and_fall_back(tmp_path):
    run = RunDir.create(tmp_path, "r")
    for step in (10, 20, 30):
        run.save_checkpoint(step, {"w": np.full(3, step, np.float32)}, {"step": step}, keep=2)
    assert [c.step for c in run.checkpoints()] == [20, 30]  # retention
    ckpt, tensors, state = run.latest_checkpoint()
    assert ckpt.step == 30 and tensors["w"][0] == 30 and state["step"] == 30
    # Damage the newest: resume falls back to the previous good one, with a warning.
    blob = bytearray(ckpt.tensors_path.read_bytes())
    blob[-1] ^= 0xFF
    ckpt.tensors_path.write_bytes(bytes(blob))
    warnings = []
    ckpt2, tensors2, _ = run.latest_checkpoint(warn=warnings.append)
    assert ckpt2.step == 20 and tensors2["w"][0] == 20
    assert "checksum mismatch" in warnings[0] and "step-0000030.safetensors" in warnings[0]
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        run.latest_checkpoint(step=30)
    with pytest.raises(CheckpointError, match="no checkpoint at step 5"):
        run.latest_checkpoint(step=5)


def test_a_checkpoint_without_its_state_file_does_not_count(tmp_path):
    run = RunDir.create(tmp_path, "r")
    run.save_checkpoint(10, {"w": np.zeros(2, np.float32)}, {"step": 10}, keep=5)
    (run.ckpt_dir / "step-0000020.safetensors").write_bytes(b"half written")
    assert run.latest_checkpoint()[0].step == 10
    assert not list(run.ckpt_dir.glob(".*tmp"))


def test_metrics_truncation_on_resume(tmp_path):
    run = RunDir.create(tmp_path, "r")
    for s in (10, 20, 30):
        run.append_metrics({"step": s})
    run.truncate_metrics(20)
    assert [r["step"] for r in run.metrics()] == [10, 20]


def test_a_killed_run_shows_as_stopped(tmp_path):
    import platform
    import subprocess
    import sys

    run = RunDir.create(tmp_path, "r")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    run.write_info(status="running", pid=int(dead), host=platform.node())
    assert run.status() == "stopped"
    import os

    run.write_info(status="running", pid=os.getpid(), host=platform.node())
    assert run.status() == "running"
    run.write_info(status="finished")
    assert run.status() == "finished"
