"""`advgraph train`'s display on a terminal: the bar shows step/total, speed, ETA and the latest
losses and D outputs; metric lines scroll above it."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from advgraph.cli.progress import Display
from advgraph.train.hooks import StartInfo


def test_the_live_bar_shows_progress_speed_eta_and_losses():
    out = io.StringIO()
    d = Display(Console(file=out, force_terminal=True, width=220, markup=False,
                        highlight=False))
    assert d.live
    d.start(StartInfo(run_name="r", run_path=Path("/runs/r"), step=100, total=1000,
                      unit="steps", per_epoch=50, epoch=2.0))
    d.report({"step": 200, "epoch": 4.0, "d_loss": 1.2345, "g_loss": 0.9876, "d_real": 0.61,
              "d_fake": 0.42, "steps_per_s": 12.5})
    d._last = 0.0
    d.tick(200, 4.0)
    d.progress.refresh()
    d.stop()
    text = out.getvalue()
    assert "resumed at step 100; on cpu;" in text
    assert "step 200/1000" in text and "12.5 steps/s" in text and "ETA" in text
    assert "D 1.2345 G 0.9876 D(x) 0.610 D(G(z)) 0.420" in text


def test_pipes_get_plain_lines():
    out = io.StringIO()
    d = Display(Console(file=out, force_terminal=False, markup=False, highlight=False))
    assert not d.live
    d.report({"step": 10, "epoch": 0.5, "d_loss": 1.0, "g_loss": 2.0, "d_real": 0.5,
              "d_fake": 0.25, "steps_per_s": 3.0})
    assert out.getvalue() == ("step 10 epoch 0.50: D 1.0000 G 2.0000 D(x) 0.500 D(G(z)) 0.250 "
                              "3.0 steps/s\n")
