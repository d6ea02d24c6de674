"""Run directories: names that cannot escape, atomic checksummed checkpoints, retention."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advgraph.errors import CheckpointError, RunError, UsageError
from advgraph.run.directory import RunDir, list_runs


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


@pytest.mark.parametrize("planted", ["link", "directory"])
def test_a_checkpoint_whose_state_cannot_be_written_leaves_no_tensors(tmp_path, planted):
    """A link planted where the state JSON goes (or a directory there) is refused; the tensors
    written just before it are removed, not left behind as a file no checkpoint lists (and no
    pruning ever deletes), and the link's target is untouched."""
    run = RunDir.create(tmp_path, "r")
    run.save_checkpoint(10, {"w": np.zeros(2, np.float32)}, {"step": 10}, keep=5)
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    state = run.ckpt_dir / "step-0000020.json"
    if planted == "link":
        state.symlink_to(victim)
    else:
        state.mkdir()
    with pytest.raises(RunError, match="checkpoint at step 20 not saved"):
        run.save_checkpoint(20, {"w": np.ones(2, np.float32)}, {"step": 20}, keep=5)
    assert not (run.ckpt_dir / "step-0000020.safetensors").exists()
    assert victim.read_text() == "victim"
    assert run.latest_checkpoint(warn=lambda m: None)[0].step == 10


def test_metrics_truncation_on_resume(tmp_path):
    run = RunDir.create(tmp_path, "r")
    for s in (10, 20, 30):
        run.append_metrics({"step": s})
    run.truncate_metrics(20)
    assert [r["step"] for r in run.metrics()] == [10, 20]


def _strict_json(text: str):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def test_json_writer_refuses_nan_and_records_the_legitimate_ones(tmp_path):
    """Every JSON advgraph writes goes through jsontext.dumps: strict JSON. A non-finite
    number is an error naming the file and where it is, unless the writer says it is
    legitimate: then it is null, with what it was recorded beside it."""
    from advgraph.errors import WriteError
    from advgraph.jsontext import dumps

    report = {"rows": [{"fid": 1.0}, {"fid": float("nan")}]}
    with pytest.raises(WriteError, match=r"^eval/q.json: not written: rows\[1\].fid is not a "
                                         "finite number"):
        dumps(report, "eval/q.json")
    assert _strict_json(dumps({"x": 1.5}, "f")) == {"x": 1.5}
    nulled = _strict_json(dumps({"d_loss": float("nan"), "g_loss": float("-inf"), "step": 3,
                                 "v": [0.5, float("inf")]}, "f", nonfinite=True))
    assert nulled == {"d_loss": None, "g_loss": None, "step": 3, "v": [0.5, None],
                      "nonfinite": {"d_loss": "NaN", "g_loss": "-Infinity", "v[1]": "Infinity"}}
    # a diverged run's last row: strict JSON on disk, read back and rewritten on resume
    run = RunDir.create(tmp_path, "r")
    run.append_metrics({"step": 10, "d_loss": 0.7, "g_loss": 0.6})
    run.append_metrics({"step": 20, "d_loss": float("nan"), "g_loss": float("inf")})
    run.write_info(status="diverged", last_metrics={"step": 20, "d_loss": float("nan")})
    for line in run.metrics_path.read_text().splitlines():
        _strict_json(line)
    assert _strict_json((run.path / "run.json").read_text())["last_metrics"]["d_loss"] is None
    assert run.metrics()[1]["nonfinite"] == {"d_loss": "NaN", "g_loss": "Infinity"}
    run.truncate_metrics(20)
    assert [_strict_json(x)["step"] for x in run.metrics_path.read_text().splitlines()] == [10, 20]


def test_runs_shows_a_diverged_runs_losses_as_nan_not_as_missing(tmp_path):
    """run.json holds a diverged run's NaN loss as null with a record of what it was: `runs`
    reads the record back, so the table says nan (not an empty cell, as for a run that has
    logged nothing yet) and --json keeps the record beside the null."""
    from tests.helpers import cli

    run = RunDir.create(tmp_path, "div")
    run.append_metrics({"step": 20, "d_loss": float("nan"), "g_loss": float("inf")})
    run.write_info(status="diverged", step=20, epoch=0, backend="torch",
                   last_metrics={"step": 20, "d_loss": float("nan"), "g_loss": float("inf"),
                                 "d_real": 0.5, "d_fake": 0.25})
    listing = cli("runs", "--runs-dir", tmp_path)
    assert listing.exit_code == 0, listing.stderr
    row = next(ln for ln in listing.stdout.splitlines() if "div" in ln).split()
    assert row[row.index("0.500") - 2:row.index("0.500")] == ["nan", "inf"], row
    listed = json.loads(cli("runs", "--runs-dir", tmp_path, "--json").stdout)[0]
    assert listed["d_loss"] is None and listed["g_loss"] is None
    assert listed["nonfinite"] == {"d_loss": "NaN", "g_loss": "Infinity"}
    assert listed["d_real"] == 0.5


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


@pytest.mark.parametrize("target", ["run.json", "metrics.jsonl",
                                    "checkpoints/step-0000010.json",
                                    "checkpoints/step-0000010.safetensors"])
def test_a_fifo_in_place_of_a_run_file_is_a_located_error_not_a_hang(tmp_path, target):
    """Reading a run's files (`runs`, sample, eval, resume) opens only regular files: a FIFO
    planted there blocked the command for ever (and a link to /dev/zero read until memory ran
    out); now it is the error naming the file, as any damage is."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    run = RunDir.create(tmp_path, "r")
    run.write_info(status="finished", step=10, epoch=0)
    run.append_metrics({"step": 10, "d_loss": 0.5, "g_loss": 0.5})
    run.save_checkpoint(10, {"w": np.zeros(2, np.float32)}, {"step": 10}, keep=5)
    (run.path / target).unlink()
    os.mkfifo(run.path / target)
    script = ("import sys\nfrom pathlib import Path\nfrom advgraph.run.directory import RunDir\n"
              "from advgraph.errors import RunError\nr = RunDir(Path(sys.argv[1]))\n"
              "for read in (r.info, r.metrics, lambda: r.latest_checkpoint(step=10)):\n"
              "    try:\n        read()\n    except RunError as e:\n        print(e)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", script, str(run.path)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    named = [ln for ln in p.stdout.splitlines() if ln.startswith(str(run.path))]
    assert len(named) == 1 and named[0].startswith(str(run.path / target) + ": "), p.stdout
    assert named[0].endswith("is a FIFO (named pipe), not a regular file")


def test_a_run_whose_run_json_is_not_a_file_is_opened_and_its_problem_named(tmp_path):
    """`runs` lists a directory holding any run.json (as damaged when it cannot be read); the
    commands that open a run by name must find the same run and name its problem, not say
    "no run named 'x' (runs: x)"."""
    import os

    from tests.helpers import cli

    (tmp_path / "x").mkdir()
    os.mkfifo(tmp_path / "x" / "run.json")
    assert [r.name for r in list_runs(tmp_path)] == ["x"]
    r = cli("sample", "x", "--runs-dir", tmp_path)
    assert r.exit_code != 0 and "no run named" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: {tmp_path / 'x' / 'run.json'}: "), r.stderr
    assert r.stderr.count("\n") == 1
