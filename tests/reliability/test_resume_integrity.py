"""Nothing silently wrong on resume, nothing lost under concurrent use: the checksum covers the
checkpoint's JSON state; contents are validated against the program; a hand-edited spec.yaml is
refused; metrics.jsonl after a resume is the uninterrupted run's; one writer per run; readers
survive pruning; outputs never replace what is not a regular file; a full disk is one line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

from advgraph.errors import CheckpointError  # noqa: E402
from advgraph.run.checkpoints import Checkpoint, state_digest  # noqa: E402
from advgraph.run.directory import RunDir  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli, interrupt_training, runs_root  # noqa: E402

FAST = ["--set", "data.train=2000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.log_every=10", "--set", "training.checkpoint={steps: 7}"]
TIMING = ("steps_per_s", "time_s")


def _train(name: str, steps: int, *extra: str):
    r = cli("train", SPECS / "ring2d.yaml", "--name", name, *FAST,
            "--set", f"training.stop.steps={steps}", *extra)
    assert r.exit_code == 0, r.stderr
    return RunDir(runs_root() / name)


def _tensors(name: str) -> dict[str, np.ndarray]:
    return RunDir(runs_root() / name).latest_checkpoint()[1]


def _same(a: str, b: str) -> None:
    x, y = _tensors(a), _tensors(b)
    assert set(x) == set(y)
    for key in x:
        np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def _rows(run: RunDir) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in run.metrics_path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run with checkpoints at steps 7, 14, 21 (copied per test)."""
    root = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "ADVGRAPH_RUNS": str(root)}
    subprocess.run([sys.executable, "-m", "advgraph", "train", str(SPECS / "ring2d.yaml"),
                    "--name", "base", *FAST, "--set", "training.stop.steps=21"], env=env,
                   check=True, capture_output=True)
    return root / "base"


def _copy(trained: Path, name: str) -> RunDir:
    dest = runs_root() / name
    runs_root().mkdir(parents=True, exist_ok=True)
    shutil.copytree(trained, dest)
    return RunDir(dest)


# ---- the checksum covers the state JSON ---------------------------------------------------------

STATE_EDITS = {
    "step": lambda s: s.update(step=s["step"] + 1),
    "batches": lambda s: s["stream"].update(batches=s["stream"]["batches"] - 1),
    "generator": lambda s: s["stream"]["rng"]["state"].update(
        state=s["stream"]["rng"]["state"]["state"] + 1),
    "updates": lambda s: s["updates"].update(D=0),
    "spec lr": lambda s: s["spec"]["training"]["optimizer"].update(lr=0.5),
    "format": lambda s: s.update(format=1),  # format 1 had no digest: it must not skip this one
}


@pytest.mark.parametrize("edit", list(STATE_EDITS))
def test_an_edited_state_json_falls_back_to_the_previous_checkpoint(trained, edit):
    run = _copy(trained, "e")
    newest = run.checkpoints()[-1].state_path
    state = json.loads(newest.read_text())
    STATE_EDITS[edit](state)
    newest.write_text(json.dumps(state, indent=2))
    warnings: list[str] = []
    ckpt, _, _ = run.latest_checkpoint(warn=warnings.append)
    assert ckpt.step == 14
    assert warnings == [f"skipping damaged checkpoint: {newest}: checksum mismatch (the state "
                        "was changed or damaged after it was written)"]


SAME_KIND = {bool: st.booleans(), int: st.integers(-2**63, 2**63), str: st.text(max_size=5),
             float: st.floats(allow_nan=False, allow_infinity=False)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_changed_value_in_the_state_is_refused_by_the_reader(trained, tmp_path, data):
    """Property: change any one scalar anywhere in the state JSON (other than its digest),
    write it back, and the reader refuses the checkpoint. Half the new values are of the old
    one's kind, which the schema accepts: for those only the checksum refuses."""
    state = json.loads((trained / "checkpoints" / "step-0000021.json").read_text())
    paths = []

    def walk(obj, path):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, path + [k])
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, path + [i])
        elif path != ["state_sha256"]:
            paths.append(path)

    walk(state, [])
    path = data.draw(st.sampled_from(paths))
    parent = state
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    any_kind = st.one_of(*SAME_KIND.values(), st.none())
    kind = st.one_of(SAME_KIND[type(old)], any_kind) if type(old) in SAME_KIND else any_kind
    parent[path[-1]] = data.draw(kind.filter(lambda v: v != old or type(v) is not type(old)))
    damaged = Checkpoint(21, trained / "checkpoints" / "step-0000021.safetensors",
                         tmp_path / "step-0000021.json")
    damaged.state_path.write_text(json.dumps(state, indent=2))
    with pytest.raises(CheckpointError):
        damaged.state()  # what every reader of a checkpoint calls first


@pytest.mark.slow
def test_resume_after_a_tampered_state_is_exact(trained):
    run = _copy(trained, "t")
    newest = run.checkpoints()[-1].state_path
    state = json.loads(newest.read_text())
    state["step"] = 900  # would have skipped hundreds of steps
    newest.write_text(json.dumps(state))
    r = cli("train", "--resume", "t", "--set", "training.stop.steps=30")
    assert r.exit_code == 0, r.stderr
    assert f"skipping damaged checkpoint: {newest}: checksum mismatch" in r.stderr
    _train("ref", 30)
    _same("t", "ref")


# ---- contents validated against the program -----------------------------------------------------


def _rewrite(run: RunDir, change) -> Path:
    """Change the newest checkpoint's tensors and re-hash them as a (buggy) writer would."""
    import hashlib

    from safetensors.numpy import load, save

    ckpt = run.checkpoints()[-1]
    tensors = dict(load(ckpt.tensors_path.read_bytes()))
    change(tensors)
    blob = save(tensors)
    ckpt.tensors_path.write_bytes(blob)
    state = json.loads(ckpt.state_path.read_text())
    state["sha256"] = hashlib.sha256(blob).hexdigest()
    state["state_sha256"] = state_digest(state)
    ckpt.state_path.write_text(json.dumps(state))
    return ckpt.tensors_path


def _drop(key):
    return lambda t: t.pop(key)


def _set(key, value):
    return lambda t: t.__setitem__(key, value)


CONTENT = {
    "rng wrong size": (_set("rng/torch/cpu", np.zeros(7, np.uint8)),
                       "rng/torch/cpu is uint8[7], expected uint8[5056]"),
    "order out of range": (lambda t: t["data/order"].__setitem__(0, 10**6),
                           "data/order is not a permutation of the 2000 training examples"),
    "order repeats": (lambda t: t["data/order"].__setitem__(0, t["data/order"][1]),
                      "data/order is not a permutation"),
    "slot wrong shape": (_set("optim/D/m/D.h0.weight", np.zeros((3, 3), np.float32)),
                         "optim/D/m/D.h0.weight is float32[3, 3], expected float32[2, 256]"),
    "parameter wrong dtype": (lambda t: t.__setitem__("G.h0.bias", t["G.h0.bias"].astype(np.float64)),
                              "G.h0.bias is float64[128], expected float32[128]"),
    "no optimiser state": (lambda t: [t.pop(k) for k in list(t) if k.startswith("optim/D/v/")],
                           "lacks 6 piece(s) of state a resume needs, e.g. optim/D/v/"),
    "no rng": (_drop("rng/torch/cpu"), "lacks 1 piece(s) of state a resume needs, e.g. "
                                       "rng/torch/cpu"),
    "a NaN parameter": (lambda t: t["G.h0.bias"].__setitem__(0, np.nan),
                        "G.h0.bias holds non-finite values"),
}


@pytest.mark.parametrize("case", list(CONTENT))
def test_checkpoint_contents_are_validated_and_the_file_named(trained, case):
    change, message = CONTENT[case]
    run = _copy(trained, "c")
    path = _rewrite(run, change)
    r = cli("train", "--resume", "c", "--set", "training.stop.steps=30")
    assert r.exit_code == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {path}: ") and message in r.stderr, r.stderr


def test_parameters_alone_are_enough_to_sample(trained):
    run = _copy(trained, "p")
    _rewrite(run, lambda t: [t.pop(k) for k in list(t) if not k.startswith(("G.", "D."))])
    r = cli("sample", "p", "--npz", "s.npz", "--n", "5")
    assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "p", "--set", "training.stop.steps=30")
    assert r.exit_code == 1 and "lacks" in r.stderr


# ---- the spec --------------------------------------------------------------------------------------


def test_a_hand_edited_spec_is_refused_on_resume(trained):
    run = _copy(trained, "s")
    text = run.spec_path.read_text()
    run.spec_path.write_text(text.replace("lr: 0.001", "lr: 0.01"))
    r = cli("train", "--resume", "s", "--set", "training.stop.steps=30")
    assert r.exit_code == 2
    assert f"error: {run.spec_path}: edited since the checkpoint at step 21" in r.stderr
    assert "training.optimizer.lr" in r.stderr
    # keys that may change on resume may change in the file too
    run.spec_path.write_text(text.replace("log_every: 10", "log_every: 5"))
    assert cli("train", "--resume", "s", "--set", "training.stop.steps=30").exit_code == 0


# ---- metrics.jsonl after a resume ---------------------------------------------------------------


@pytest.mark.slow
def test_metrics_after_a_resume_equal_the_uninterrupted_run():
    """Stopped at 17 (off the logging schedule, between checkpoints 14 and 21), resumed to 40:
    the same rows as one run to 40, the interval 11–20 included, timing aside."""
    whole = _train("whole", 40)
    part = _train("part", 17)
    assert _rows(part)[-1]["step"] == 17  # a finished run shows its last state
    r = cli("train", "--resume", "part", "--set", "training.stop.steps=40")
    assert r.exit_code == 0, r.stderr
    assert _rows(part) == _rows(whole)
    _same("part", "whole")


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_metrics_after_an_interrupt_equal_the_uninterrupted_run():
    code, _ = interrupt_training("i", 4, SPECS / "ring2d.yaml", "--name", "i", *FAST,
                                 "--set", "training.log_every=3",
                                 "--set", "training.stop.steps=100000",
                                 env={"OMP_NUM_THREADS": "1"}, poll=0.01)
    assert code == 130
    run = RunDir(runs_root() / "i")
    stopped = run.info()["step"]
    target = stopped + 8
    r = cli("train", "--resume", "i", "--set", f"training.stop.steps={target}")
    assert r.exit_code == 0, r.stderr
    ref = _train("ref", target, "--set", "training.log_every=3")
    assert _rows(run) == _rows(ref)


# ---- one writer per run ------------------------------------------------------------------------


def test_a_second_writer_is_refused_with_the_holders_pid():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "advgraph", "train", str(SPECS / "ring2d.yaml"),
                             "--name", "busy", *FAST, "--set", "training.stop.steps=100000"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ckpts = runs_root() / "busy" / "checkpoints"
        deadline = time.time() + 60
        while time.time() < deadline and not (ckpts.is_dir() and any(ckpts.glob("*.json"))):
            time.sleep(0.02)
        r = cli("train", "--resume", "busy")
        assert r.exit_code == 1
        assert f"run 'busy' is being written by process {proc.pid}" in r.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # the kernel released the lock with the process: a killed run is never locked for ever
    # (one step past its last checkpoint is enough to show it; 3000 steps took 90 s)
    step = RunDir(runs_root() / "busy").latest_checkpoint()[0].step
    r = cli("train", "--resume", "busy", "--set", f"training.stop.steps={step + 1}")
    assert r.exit_code == 0, r.stderr
    assert "being written" not in r.stderr


def test_readers_look_again_when_a_checkpoint_vanishes(trained, monkeypatch):
    """A training run prunes old checkpoints while sample/eval read: a file that disappears
    between listing and reading is not damage."""
    import advgraph.run.checkpoints as runs_module

    run = _copy(trained, "v")
    newest = run.checkpoints()[-1]
    real = runs_module.read_regular

    def pruned(path):
        if Path(path) == newest.tensors_path and Path(path).exists():
            newest.state_path.unlink()
            Path(path).unlink()  # pruned just now, between the listing and this read
        return real(path)

    monkeypatch.setattr(runs_module, "read_regular", pruned)
    warnings: list[str] = []
    ckpt, _, _ = run.latest_checkpoint(warn=warnings.append)
    assert ckpt.step == 14 and warnings == []


def test_a_missing_tensor_file_is_damage_not_a_vanished_checkpoint(trained):
    """The state JSON is still there but its tensors are gone: skipped (once, with a warning)
    for the previous checkpoint, never an endless look-again."""
    run = _copy(trained, "m")
    newest = run.checkpoints()[-1]
    newest.tensors_path.unlink()
    warnings: list[str] = []
    ckpt, _, _ = run.latest_checkpoint(warn=warnings.append)
    assert ckpt.step == 14
    assert warnings == [f"skipping damaged checkpoint: {newest.tensors_path}: missing"]


# ---- outputs -------------------------------------------------------------------------------------


def test_outputs_never_replace_what_is_not_a_regular_file(trained, tmp_path):
    _copy(trained, "o")
    r = cli("sample", "o", "--npz", "/dev/null", "--n", "4")
    assert r.exit_code == 0, r.stderr
    assert Path("/dev/null").is_char_device()
    target = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert cli("sample", "o", "--npz", str(link), "--n", "4").exit_code == 0
    assert link.is_symlink() and np.load(target)["samples"].shape == (4, 2)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    r = cli("sample", "o", "--out", str(fifo))
    assert r.exit_code == 1 and f"cannot write {fifo}: not a regular file" in r.stderr
    assert fifo.is_fifo()


def test_a_full_disk_during_training_is_one_line_and_keeps_the_checkpoint(monkeypatch):
    real_write = os.write
    calls = {"n": 0}

    def full_disk(fd, data):  # the disk fills up after two rows of metrics.jsonl
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            calls["n"] += 1
            if calls["n"] > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    r = cli("train", SPECS / "ring2d.yaml", "--name", "full", *FAST,
            "--set", "training.stop.steps=100")
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: cannot write {runs_root() / 'full' / 'metrics.jsonl'}: "
                      "No space left on device"] and "Traceback" not in r.stderr
    ckpt, _, _ = RunDir(runs_root() / "full").latest_checkpoint()
    assert ckpt.step == 28


def test_a_running_variance_that_is_not_positive_is_refused(tmp_path):
    """batchnorm's running variance from a checkpoint: negative or NaN, torch sampled NaN and
    cupy a constant, both exiting 0; now every command that reads it names the file."""
    from tests.reliability.test_bad_input import BATCHNORM_FLAT

    spec = tmp_path / "bn.yaml"
    spec.write_text(BATCHNORM_FLAT.replace("batch_size: 1", "batch_size: 4"))
    assert cli("train", spec, "--name", "bn").exit_code == 0
    run = RunDir(runs_root() / "bn")
    for bad, message in ((-1.0, "G.bn.running_var must be positive (a variance), holds -1"),
                         (np.nan, "G.bn.running_var holds non-finite values")):
        path = _rewrite(run, lambda t: t["G.bn.running_var"].__setitem__(0, bad))
        for args in (("sample", "bn", "--npz", tmp_path / "s.npz"),
                     ("train", "--resume", "bn", "--set", "training.stop.steps=5")):
            r = cli(*args)
            assert r.exit_code == 1 and "Traceback" not in r.stderr, r.stderr
            assert f"{path}: {message}" in r.stderr, r.stderr
