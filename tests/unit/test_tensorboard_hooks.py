"""The TensorBoard hooks without TensorBoard: which numbers become which tags, and a writer
that fails (a full disk) costs the events with one warning, not the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from advgraph.train.hooks import Fanout, NoHooks, StartInfo
from advgraph.train.tensorboard import TensorBoardHooks, scalars


def test_a_monitor_row_gives_its_own_numbers_only():
    assert scalars({"step": 7, "epoch": 1.5, "parzen_sigma": 0.2, "parzen_samples": 50,
                    "parzen_valid": None}) == {"parzen/sigma": 0.2, "parzen/samples": 50.0}
    assert scalars({"step": 7, "epoch": 1.5, "d_loss": 1.0, "momentum": 0.5, "new_key": 3}) == {
        "progress/epoch": 1.5, "loss/D": 1.0, "momentum/D": 0.5, "new_key": 3.0}


class FullDisk:
    def __init__(self):
        self.calls = 0

    def add_scalar(self, *args):
        self.calls += 1
        raise OSError(28, "No space left on device")


def test_a_failing_writer_warns_once_and_stops():
    warnings = []
    board = TensorBoardHooks(warn=warnings.append)
    board.writer = disk = FullDisk()
    fan = Fanout(NoHooks(), board)
    for step in (10, 20):
        fan.report({"step": step, "d_loss": 1.0, "g_loss": 2.0})
    fan.image("samples/training", Path("/nonexistent.png"), 20)
    board.close()
    assert disk.calls == 1 and board.writer is None
    assert warnings == ["TensorBoard events no longer written: [Errno 28] No space left on device"]



READ_ONLY = """
import sys
from pathlib import Path
from tensorboard.compat.tensorflow_stub.io import gfile
from advgraph.train.hooks import StartInfo
from advgraph.train.tensorboard import TensorBoardHooks

class ReadOnly:  # every file the writer opens is on a read-only file system
    @staticmethod
    def open(name, *args, **kw):
        raise OSError(30, "Read-only file system", name)

gfile.io = ReadOnly
run = Path(sys.argv[1])
board = TensorBoardHooks(warn=lambda m: print("warning:", m, file=sys.stderr))
board.start(StartInfo("run", run, 0, 10, "steps", 5, 0.0))
board.report({"step": 1, "d_loss": 1.0})
board.close()
"""


def test_an_unwritable_event_file_is_one_warning_not_a_traceback(tmp_path):
    """The real writer fails on its own thread, whose exception Python would print: the user
    sees the one warning, not the thread's traceback (a fresh interpreter, since pytest takes
    over uncaught thread exceptions)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("torch.utils.tensorboard", reason="tensorboard is not installed")
    (tmp_path / "run").mkdir()
    r = subprocess.run([sys.executable, "-c", READ_ONLY, str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning: TensorBoard events no longer written") == 1, r.stderr
    assert "Read-only file system" in r.stderr and "Traceback" not in r.stderr, r.stderr
