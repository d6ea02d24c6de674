"""`advgraph train`'s display on a terminal: the bar shows step/total, speed, ETA and the latest
losses and D outputs; metric lines scroll above it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("unit, total, eta", [("steps", 1000, "0:01:04"), ("epochs", 5, "0:00:04")])
def test_pipes_get_an_eta_on_each_line(unit, total, eta):
    """Without the bar the metric line says how long is left at its speed: (1000 − 200) / 12.5 s,
    or by epochs the steps of the one epoch left (50 per epoch so far) / 12.5."""
    out = io.StringIO()
    d = Display(Console(file=out, force_terminal=False, width=200, markup=False,
                        highlight=False))
    d.start(StartInfo(run_name="r", run_path=Path("/runs/r"), step=0, total=total, unit=unit,
                      per_epoch=50, epoch=0.0))
    d.report({"step": 200, "epoch": 4.0, "d_loss": 1.0, "g_loss": 2.0, "d_real": 0.5,
              "d_fake": 0.25, "steps_per_s": 12.5})
    assert out.getvalue().splitlines()[-1].endswith(f" 12.5 steps/s, ETA {eta}")


def _frames(name: str, width: int, unit: str = "steps", total: int = 300) -> list[str]:
    """The bar's frames on a terminal `width` columns wide, for a run that ticks to step 300
    (epoch 2) faster than the bar refreshes."""
    out = io.StringIO()
    d = Display(Console(file=out, force_terminal=True, width=width, markup=False,
                        highlight=False))
    d.start(StartInfo(run_name=name, run_path=Path("/runs") / name, step=0, total=total,
                      unit=unit, per_epoch=150, epoch=0.0))
    d.report({"step": 276, "epoch": 1.84, "d_loss": -12.2345, "g_loss": 0.9876, "d_real": 0.61,
              "d_fake": 0.42, "steps_per_s": 1234.5})
    d._last = 0.0
    for step in range(276, 301):
        d.tick(step, step / 150)
    d.stop()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # cursor moves, colours
    return re.split(r"[\r\n]", text)


def test_at_80_columns_the_bar_cuts_nothing_and_ends_at_the_last_step():
    last = [line for line in _frames("toy1d-001", 80) if "━" in line][-1]
    assert len(last) <= 80 and "…" not in last
    assert re.fullmatch(r"toy1d-001 ━+ step 300/300 · epoch 2\.00 1234\.5 steps/s "
                        r"ETA \d:\d\d:\d\d", last.strip()), last


def test_a_long_name_leaves_the_bar_whole_and_stays_on_the_line_above():
    name = "fashion-mnist-conditional-long-name-001"
    lines = _frames(name, 80, unit="epochs", total=250)
    last = [line for line in lines if "━" in line][-1]
    assert len(last) <= 80 and "…" not in last
    assert lines[0].startswith(f"run {name}: ")
    assert "step 300 · epoch 2.00/250 1234.5 steps/s ETA" in last


def test_preparing_images_shows_a_bar_on_a_terminal_and_two_lines_otherwise():
    from advgraph.cli.progress import LoadDisplay

    out = io.StringIO()
    d = LoadDisplay(Console(file=out, force_terminal=True, width=120, markup=False,
                            highlight=False))
    for done in (0, 40, 100):
        d.progress("preparing images", done, 100)
    d.warn("skipped a.png: not an image")
    text = out.getvalue()
    assert "preparing images" in text and "100/100" in text and "━" in text
    assert "warning: skipped a.png: not an image" in text
    out = io.StringIO()
    d = LoadDisplay(Console(file=out, force_terminal=False, markup=False, highlight=False))
    for done in (0, 40, 100):
        d.progress("preparing images", done, 100)
    assert out.getvalue().splitlines() == ["preparing images: 0/100",
                                           "preparing images: 100/100 done"]
