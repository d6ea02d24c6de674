"""The TensorBoard hooks without TensorBoard: which numbers become which tags, and a writer
that fails (a full disk) costs the events with one warning, not the run."""

from __future__ import annotations

from pathlib import Path

from advgraph.train.hooks import Fanout, NoHooks
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
