"""No lost or corrupted runs: SIGKILL at random points, damaged checkpoints, a full disk,
an unwritable runs directory, non-finite training; and nothing is ever unpickled."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.run.directory import RunDir  # noqa: E402
from tests.conftest import ROOT, SPECS  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

FAST = ["--set", "data.train=2000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.log_every=1", "--set", "training.checkpoint={steps: 10}"]



def final(name):
    return RunDir(runs_root() / name).latest_checkpoint()[1]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.usefixtures("one_torch_thread")
def test_sigkill_at_a_random_point_loses_at_most_one_interval(seed):
    spec = SPECS / "ring2d.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "advgraph", "train", str(spec), "--name", "k",
                             *FAST, "--set", "training.stop.steps=1000000"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = runs_root() / "k" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 15):
        time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run = RunDir(runs_root() / "k")
    reached = max(json.loads(x)["step"] for x in metrics.read_text().splitlines()
                  if x.strip().endswith("}"))
    ckpt, tensors, _ = run.latest_checkpoint()  # loads and verifies
    assert reached - ckpt.step < 10 + 1
    assert run.status() == "stopped"  # its process is gone
    target = ckpt.step + 15
    assert cli("train", "--resume", "k", "--set", f"training.stop.steps={target}").exit_code == 0
    assert cli("train", spec, "--name", "ref", *FAST, "--set",
               f"training.stop.steps={target}").exit_code == 0
    a, b = final("k"), final("ref")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["bitflip", "truncate"])
def test_damaged_latest_checkpoint_falls_back_and_still_resumes_exactly(damage):
    spec = SPECS / "ring2d.yaml"
    assert cli("train", spec, "--name", "d", *FAST, "--set", "training.stop.steps=30").exit_code == 0
    latest = runs_root() / "d" / "checkpoints" / "step-0000030.safetensors"
    blob = bytearray(latest.read_bytes())
    if damage == "bitflip":
        blob[len(blob) // 2] ^= 0x10
        latest.write_bytes(bytes(blob))
    else:
        latest.write_bytes(bytes(blob[: len(blob) // 3]))
    # Asking for the damaged one by step names the file.
    r = cli("sample", "d", "--checkpoint", "30")
    assert r.exit_code == 1 and str(latest) in r.stderr and "checksum mismatch" in r.stderr
    r = cli("train", "--resume", "d", "--set", "training.stop.steps=40")
    assert r.exit_code == 0, r.stderr
    assert f"warning: skipping damaged checkpoint: {latest}: checksum mismatch" in r.stderr
    assert cli("train", spec, "--name", "ref", *FAST, "--set", "training.stop.steps=40").exit_code == 0
    a, b = final("d"), final("ref")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_full_disk_keeps_the_last_good_checkpoint(monkeypatch):
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        # Let the first checkpoint and the run files through, then the disk is full.
        calls["n"] += 1
        if calls["n"] > 12:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    r = cli("train", SPECS / "ring2d.yaml", "--name", "full", *FAST,
            "--set", "training.stop.steps=100")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert r.exit_code == 1, r.stderr
    assert "No space left on device" in r.stderr and "Traceback" not in r.stderr
    run = RunDir(runs_root() / "full")
    ckpt, _, _ = run.latest_checkpoint()
    assert ckpt.step == 10
    assert not [p for p in run.ckpt_dir.iterdir() if p.name.startswith(".")]  # no temp files


def test_unwritable_runs_directory(tmp_path, monkeypatch):
    """--runs-dir inside a directory the user may not write to (mode 0o500). Root writes there
    all the same (permission bits do not bind it): then mkdir is refused for that directory's
    contents alone, as the kernel would refuse them to anyone else."""
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    runs = ro / "runs"
    if os.geteuid() == 0:
        real = Path.mkdir

        def mkdir(self, *a, **kw):
            if Path(os.path.abspath(self)).is_relative_to(ro):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real(self, *a, **kw)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    try:
        r = cli("train", SPECS / "toy1d.yaml", "--runs-dir", runs)
    finally:
        ro.chmod(0o700)  # for pytest's clean-up
    assert r.exit_code == 1
    assert r.stderr.strip() == f"error: cannot create the runs directory {runs}: Permission denied"
    assert not runs.exists()


def test_nothing_is_ever_unpickled():
    """Checkpoints are safetensors + JSON; arrays load with allow_pickle=False; the only pickle
    reader is CIFAR-10's, and it is a restricted Unpickler."""
    cifar = ROOT / "advgraph" / "data" / "cifar10.py"
    sources = [p for d in ("advgraph", "backends") for p in (ROOT / d).rglob("*.py") if p != cifar]
    text = "\n".join(p.read_text() for p in sources)
    for forbidden in ("import pickle", "pickle.load", "torch.load(", "allow_pickle=True",
                      "yaml.load(", "yaml.unsafe_load"):
        assert forbidden not in text, forbidden
    # the builtins, not methods such as torch's Module.eval()
    assert not re.search(r"(?<![\w.])(eval|exec)\(", text)
    c = cifar.read_text()
    assert "class _Restricted(pickle.Unpickler)" in c and "def find_class" in c
    assert "pickle.load(" not in c and "pickle.loads(" not in c


def test_a_spec_cannot_choose_where_runs_are_written():
    spec = (SPECS / "ring2d.yaml").read_text().replace("name: ring2d", "name: ../../escape")
    path = runs_root().parent / "evil.yaml"
    path.write_text(spec)
    r = cli("train", path, *FAST, "--set", "training.stop.steps=2")
    assert r.exit_code == 2 and "evil.yaml:2:7: name: '../../escape' cannot name runs" in r.stderr
    assert not runs_root().exists() or not any(runs_root().iterdir())  # nothing written
    assert not (runs_root().parent.parent / "escape").exists()
