"""`advgraph train --tensorboard`: event files that say what metrics.jsonl and the sample grids
say, step for step, across resumes; a clean refusal when the extra is not installed."""

from __future__ import annotations

import io
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.run.directory import RunDir  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli, cli_proc, runs_root  # noqa: E402

needs_tensorboard = pytest.mark.skipif(find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed "
                                              "(pip install 'advgraph[tensorboard]')")

SPEC = SPECS / "ring2d.yaml"
FAST = ["--set", "data.train=2000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.log_every=10", "--set", "training.checkpoint={steps: 20}",
        "--set", "training.monitor={parzen: {every: {steps: 10}, samples: 50}}"]

# The tags a user finds, and the metrics.jsonl key each one shows (written out here rather
# than taken from advgraph.train.tensorboard, so that a renamed tag fails).
TRAINING = {"loss/D": "d_loss", "loss/G": "g_loss", "D/real": "d_real", "D/fake": "d_fake",
            "lr/D": "lr_d", "lr/G": "lr_g", "momentum/D": "momentum",
            "progress/epoch": "epoch", "progress/time_s": "time_s",
            "progress/steps_per_s": "steps_per_s"}
PARZEN = {"parzen/valid": "parzen_valid", "parzen/sigma": "parzen_sigma",
          "parzen/samples": "parzen_samples"}
GRID = "samples/training"


def events(run: str):
    from tensorboard.backend.event_processing.event_accumulator import (
        IMAGES, SCALARS, EventAccumulator)

    acc = EventAccumulator(str(runs_root() / run / "tensorboard"),
                           size_guidance={SCALARS: 0, IMAGES: 0})  # 0: keep every event
    acc.Reload()
    return acc


def check_mirrors_the_run(run: str) -> None:
    """Every tag holds exactly metrics.jsonl's values at its steps (as float32, TensorBoard's
    type), once per step, and the grid images are the PNGs on disk, pixel for pixel."""
    from PIL import Image

    acc = events(run)
    rows = RunDir(runs_root() / run).metrics()
    assert set(acc.Tags()["scalars"]) == set(TRAINING) | set(PARZEN)
    for tags, kind in ((TRAINING, "d_loss"), (PARZEN, "parzen_valid")):
        kept = [r for r in rows if kind in r]
        for tag, key in tags.items():
            got = [(e.step, e.value) for e in acc.Scalars(tag)]
            assert got == [(r["step"], float(np.float32(r[key]))) for r in kept], tag
    grids = {int(p.stem.removeprefix("step-")): p
             for p in (runs_root() / run / "samples" / "training").glob("*.png")}
    images = acc.Images(GRID)
    assert [e.step for e in images] == sorted(grids)
    for e in images:
        logged = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)))
        on_disk = np.asarray(Image.open(grids[e.step]).convert("RGB"))
        np.testing.assert_array_equal(logged, on_disk, err_msg=f"grid at step {e.step}")


@pytest.mark.slow
@needs_tensorboard
def test_events_mirror_metrics_and_grids_across_resumes():
    r = cli("train", SPEC, "--name", "tb", "--tensorboard", *FAST,
            "--set", "training.stop.steps=35")
    assert r.exit_code == 0, r.stderr
    check_mirrors_the_run("tb")
    # The stop at 35 logged a partial interval; the resume drops it from metrics.jsonl and logs
    # 40 on schedule: the event files must follow, and keep the grid drawn at 35.
    r = cli("train", "--resume", "tb", "--tensorboard", "--set", "training.stop.steps=60")
    assert r.exit_code == 0, r.stderr
    assert [e.step for e in events("tb").Scalars("loss/D")] == [10, 20, 30, 40, 50, 60]
    assert [e.step for e in events("tb").Images(GRID)] == [20, 35, 40, 60]
    check_mirrors_the_run("tb")
    # Events written after the last good checkpoint (as when a process dies before the next
    # one is durable) are redone by the resume, never shown twice.
    for p in (runs_root() / "tb" / "checkpoints").glob("step-0000060.*"):
        p.unlink()
    (runs_root() / "tb" / "samples" / "training" / "step-0000060.png").unlink()
    r = cli("train", "--resume", "tb", "--tensorboard", "--set", "training.stop.steps=70")
    assert r.exit_code == 0, r.stderr
    assert [e.step for e in events("tb").Scalars("parzen/valid")] == [10, 20, 30, 40, 50, 60, 70]
    check_mirrors_the_run("tb")


@needs_tensorboard
def test_first_given_on_a_resume_the_events_get_the_whole_history():
    r = cli("train", SPEC, "--name", "late", *FAST, "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr
    assert not (runs_root() / "late" / "tensorboard").exists()  # opt-in
    r = cli("train", "--resume", "late", "--tensorboard", "--set", "training.stop.steps=40")
    assert r.exit_code == 0, r.stderr
    assert [e.step for e in events("late").Scalars("loss/G")] == [10, 20, 30, 40]
    check_mirrors_the_run("late")
    # a resume without the flag, then one with it: the steps trained in between are logged
    r = cli("train", "--resume", "late", "--set", "training.stop.steps=60")
    assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "late", "--tensorboard", "--set", "training.stop.steps=80")
    assert r.exit_code == 0, r.stderr
    assert [e.step for e in events("late").Scalars("loss/G")] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert [e.step for e in events("late").Images(GRID)] == [20, 40, 60, 80]
    check_mirrors_the_run("late")


@pytest.mark.slow
@needs_tensorboard
def test_an_event_file_cut_short_is_completed_by_the_next_resume():
    """A crash can leave an event file ending mid-way: the resume logs again from the last
    step it holds, so every row and every grid is there once."""
    r = cli("train", SPEC, "--name", "cut", "--tensorboard", *FAST,
            "--set", "training.stop.steps=40")
    assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "cut", "--set", "training.stop.steps=80")  # no events: a gap
    assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "cut", "--tensorboard", "--set", "training.stop.steps=100")
    assert r.exit_code == 0, r.stderr
    newest = max((runs_root() / "cut" / "tensorboard").glob("events.out.tfevents.*"),
                 key=lambda p: p.stat().st_mtime_ns)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])
    r = cli("train", "--resume", "cut", "--tensorboard", "--set", "training.stop.steps=120")
    assert r.exit_code == 0, r.stderr
    assert [e.step for e in events("cut").Images(GRID)] == [20, 40, 60, 80, 100, 120]
    check_mirrors_the_run("cut")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_without_the_extra_it_refuses_before_anything_is_written(monkeypatch):
    r = cli("train", SPEC, "--name", "kept", *FAST, "--set", "training.stop.steps=10")
    assert r.exit_code == 0, r.stderr
    before = tree(runs_root())
    # As if tensorboard were not installed: importing it raises ImportError.
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    for mod in [m for m in sys.modules if m.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, mod)
    for args in (["train", SPEC, "--name", "new", "--tensorboard", *FAST],
                 ["train", "--resume", "kept", "--tensorboard", "--set",
                  "training.stop.steps=20"],
                 ["train", SPEC, "--nproc", "2", "--name", "dist", "--tensorboard", *FAST]):
        r = cli(*args)
        assert r.exit_code == 1, args
        assert r.stderr == ("error: --tensorboard needs the tensorboard package, which is not "
                            "installed: pip install 'advgraph[tensorboard]'\n"), args
        assert r.stdout == ""
        assert tree(runs_root()) == before, args
        assert sorted(p.name for p in runs_root().iterdir()) == ["kept"]


@needs_tensorboard
@pytest.mark.slow
def test_nproc_runs_have_one_writer():
    r = cli_proc("train", SPEC, "--nproc", "2", "--name", "dist", "--tensorboard", *FAST,
                 "--set", "training.stop.steps=20")
    assert r.returncode == 0, r.stderr
    assert len(list((runs_root() / "dist" / "tensorboard").iterdir())) == 1  # rank 0's file
    check_mirrors_the_run("dist")
