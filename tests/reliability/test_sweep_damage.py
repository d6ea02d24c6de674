"""A sweep's files damaged or edited by hand, and members lost: `advgraph sweep --resume`,
`eval`, `rm` and `runs` each give a located error or recover, and never touch a run that is
not a member of the sweep."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import SPECS
from tests.helpers import cli, runs_root

RING = str(SPECS / "ring2d.yaml")
TINY = ["--set", "data.train=512", "--set", "data.valid=64", "--set", "data.test=64",
        "--set", "training.batch_size=64", "--set", "training.stop.steps=4",
        "--set", "training.log_every=2", "--set", "training.checkpoint={steps: 2}",
        "--set", "training.keep_checkpoints=3", "--set", "training.sample_grid=null"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished sweep `sw` of 2 members (checkpoints at steps 2 and 4), built once."""
    base = tmp_path_factory.mktemp("sweep") / "runs"
    r = cli("sweep", RING, "--name", "sw", "--seeds", "0-1", "--runs-dir", base, *TINY)
    assert r.exit_code == 0, r.stderr
    return base


@pytest.fixture
def sweep(built):
    shutil.copytree(built, runs_root())
    return runs_root()


def _edit(root, change) -> None:
    path = root / "sw" / "sweep.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def _no_traceback(r) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def test_a_member_listed_twice_is_damage_not_a_lock_held_by_itself(sweep):
    _edit(sweep, lambda i: i["members"].append(dict(i["members"][0])))
    for args in (["sweep", "--resume", "sw"], ["eval", "sw", "--modes"], ["rm", "sw", "--yes"]):
        r = cli(*args)
        _no_traceback(r)
        assert r.exit_code == 1 and "'sw.s0' is listed twice" in r.stderr, (args, r.stderr)
    assert sorted(p.name for p in sweep.iterdir()) == ["sw", "sw.s0", "sw.s1"]


@pytest.mark.parametrize("name", ["other", "sw"])
def test_rm_never_deletes_a_run_the_edited_list_names(sweep, name):
    shutil.copytree(sweep / "sw.s0", sweep / "other")  # a run of the user's, no member
    _edit(sweep, lambda i: i["members"][0].update(name=name))
    r = cli("rm", "sw", "--yes")
    _no_traceback(r)
    assert r.exit_code == 1 and f"{name!r} is not named after the sweep" in r.stderr, r.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["other", "sw", "sw.s0", "sw.s1"]


def test_a_sweep_resumes_without_a_deleted_member_and_marks_it_missing(sweep):
    assert cli("rm", "sw.s1", "--yes").exit_code == 0
    r = cli("sweep", "--resume", "sw", "--set", "training.stop.steps=6")
    _no_traceback(r)
    assert r.exit_code == 0, r.stderr
    assert "member(s) sw.s1 deleted: the sweep goes on without them" in r.stderr
    assert not (sweep / "sw.s1").exists()  # no lock file (or directory) made for it
    info = json.loads((sweep / "sw" / "sweep.json").read_text())
    assert [(m["name"], m["status"]) for m in info["members"]] == [
        ("sw.s0", "finished"), ("sw.s1", "missing")]
    assert info["step"] == 6
    r = cli("eval", "sw", "--modes", "--mode-samples", "200", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["excluded"] == ["sw.s1"]
    assert cli("rm", "sw.s0", "--yes").exit_code == 0
    r = cli("sweep", "--resume", "sw", "--set", "training.stop.steps=8")
    assert r.exit_code == 1 and "no member left to train" in r.stderr, r.stderr


def test_a_damaged_newest_checkpoint_resumes_from_the_step_before(sweep):
    (sweep / "sw.s1" / "checkpoints" / "step-0000004.safetensors").write_bytes(b"garbage")
    r = cli("sweep", "--resume", "sw")
    _no_traceback(r)
    assert r.exit_code == 0, r.stderr
    assert "skipping step 4 for every member" in r.stderr and "checksum mismatch" in r.stderr
    assert "sweep sw finished" in r.stdout and "step 4" in r.stdout, r.stdout
    info = json.loads((sweep / "sw.s0" / "run.json").read_text())
    assert info["resumed_from"] == 2 and info["step"] == 4


def test_a_sweep_without_any_checkpoint_says_so(sweep):
    for m in ("sw.s0", "sw.s1"):
        shutil.rmtree(sweep / m / "checkpoints")
    r = cli("sweep", "--resume", "sw")
    _no_traceback(r)
    assert r.exit_code == 1 and "sweep 'sw' has no checkpoint yet" in r.stderr, r.stderr


def test_a_resume_removes_what_a_kill_mid_write_left(sweep):
    """SIGKILL during a checkpoint or a sweep.json write leaves atomic_write's temporary
    files; the resume, holding the locks, removes them as `train --resume` does."""
    left = [sweep / "sw.s0" / "checkpoints" / ".step-0000006.safetensors.abcd1234.tmp",
            sweep / "sw.s1" / ".run.json.abcd1234.tmp", sweep / "sw" / ".sweep.json.abcd1234.tmp"]
    for p in left:
        p.write_bytes(b"partial")
    r = cli("sweep", "--resume", "sw", "--set", "training.stop.steps=6")
    assert r.exit_code == 0, r.stderr
    assert [p for p in left if p.exists()] == []


def test_runs_and_plot_tell_a_killed_sweep_and_a_deleted_member(sweep):
    """sweep.json still says 'running' after SIGKILL: `runs` shows what the members' runs
    show (stopped: their process is gone); a deleted member is missing, not 'no metrics'."""
    _edit(sweep, lambda i: [m.update(status="running") for m in i["members"]])
    for m in ("sw.s0", "sw.s1"):
        path = sweep / m / "run.json"
        info = json.loads(path.read_text())
        info.update(status="running", pid=2**22 + 1)  # above pid_max: no such process
        path.write_text(json.dumps(info))
    assert cli("rm", "sw.s1", "--yes").exit_code == 0
    r = cli("runs")
    assert "sweep sw: 2 members (1 missing, 1 stopped)" in r.stdout, r.stdout
    r = cli("plot", "sw", "--out", sweep / "p.png")
    assert r.exit_code == 0 and "member sw.s1 is gone" in r.stderr, r.stderr


def test_train_resume_of_a_sweep_points_to_sweep_resume(sweep):
    r = cli("train", "--resume", "sw")
    _no_traceback(r)
    assert r.exit_code == 2 and "advgraph sweep --resume sw" in r.stderr, r.stderr


def test_a_sweep_killed_while_recording_its_members_can_be_removed(monkeypatch):
    """Killed (here: a second Ctrl-C) after its directories were made, before every member
    was recorded: the sweep is still one that `sweep --resume` names and `rm` deletes."""
    from advgraph.sweep import starting

    calls = []

    def record(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    real = starting._record
    monkeypatch.setattr(starting, "_record", record)
    cli("sweep", RING, "--name", "sw", "--seeds", "0-1", *TINY)
    monkeypatch.setattr(starting, "_record", real)
    r = cli("sweep", "--resume", "sw")
    _no_traceback(r)
    assert r.exit_code == 1 and "sweep 'sw' has no checkpoint yet" in r.stderr, r.stderr
    r = cli("rm", "sw", "--yes")
    assert r.exit_code == 0, r.stderr
    assert list(runs_root().iterdir()) == []


def test_rm_of_a_damaged_sweep_says_what_to_do_and_deletes_nothing(sweep):
    (sweep / "sw" / "sweep.json").write_text("{not json")
    r = cli("rm", "sw", "--yes")
    _no_traceback(r)
    assert r.exit_code == 1 and "sweep.json" in r.stderr, r.stderr
    assert "rm cannot tell the sweep's members" in r.stderr, r.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["sw", "sw.s0", "sw.s1"]


def test_rm_of_a_sweep_keeps_a_run_made_since_under_a_removed_members_name():
    from tests.conftest import SPECS
    from tests.helpers import cli, runs_root

    tiny = ["--set", "data.train=512", "--set", "training.batch_size=64",
            "--set", "training.stop.steps=2", "--set", "training.log_every=1",
            "--set", "training.checkpoint={steps: 2}", "--set", "training.sample_grid=null"]
    assert cli("sweep", SPECS / "toy1d.yaml", "--seeds", "0-1", "--name", "sw",
               *tiny).exit_code == 0
    assert cli("rm", "sw.s1", "--yes").exit_code == 0
    assert cli("train", SPECS / "toy1d.yaml", "--name", "sw.s1", *tiny).exit_code == 0
    r = cli("rm", "sw", "--yes")
    assert r.exit_code == 0 and "run sw.s1 is not a member of sweep sw" in r.stderr
    assert (runs_root() / "sw.s1" / "run.json").exists()
    assert not (runs_root() / "sw").exists() and not (runs_root() / "sw.s0").exists()


def test_a_first_checkpoint_cut_short_says_to_start_again(sweep):
    """A full disk during the first checkpoint: some members wrote theirs, others none."""
    shutil.rmtree(sweep / "sw.s1" / "checkpoints")
    r = cli("sweep", "--resume", "sw", "--set", "training.stop.steps=6")
    _no_traceback(r)
    assert r.exit_code == 1, r.stderr
    assert ("sweep 'sw' has no checkpoint that every member has (sw.s1 have none: its first "
            "checkpoint was cut short); start it again (advgraph rm sw)") in r.stderr
