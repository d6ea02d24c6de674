"""Figures as `sample`, `eval --theory` and `plot` draw them, inspected as drawn: toy data by
class gets a panel per class, every toy plot keeps its colour key outside the axes, a
one-row metrics plot shows markers, and labelled image grids name the class of each row."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from advgraph import figures  # noqa: E402
from advgraph.data.toy import ring2d_centres  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

RING = ["--set", "data.train=2000", "--set", "data.valid=200", "--set", "data.test=200",
        "--set", "training.stop.steps=20", "--set", "training.checkpoint={steps: 20}"]


def _describe(fig) -> dict:
    renderer = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return {
        "axes": [{"box": ax.get_window_extent(renderer), "title": ax.get_title(),
                  "points": [np.asarray(c.get_offsets()) for c in ax.collections],
                  "lines": {ln.get_label(): (ln.get_marker(), len(ln.get_xdata()))
                            for ln in ax.lines}}
                 for ax in fig.axes],
        "legends": [{"box": leg.get_window_extent(renderer),
                     "texts": [t.get_text() for t in leg.get_texts()]} for leg in legends],
    }


@pytest.fixture
def drawn(monkeypatch) -> list[dict]:
    """Every matplotlib figure the commands save, described as laid out in the PNG."""
    seen, save = [], figures._save_fig

    def capture(fig, path, follow=False):
        out = save(fig, path, follow)
        fig.canvas.draw()
        seen.append(_describe(fig))
        return out

    monkeypatch.setattr(figures, "_save_fig", capture)
    return seen


def assert_key_off_the_data(fig: dict) -> None:
    assert fig["legends"], "no legend"
    for leg in fig["legends"]:
        for ax in fig["axes"]:
            assert not leg["box"].overlaps(ax["box"]), (leg["texts"], ax["title"])


def test_toy_by_label_draws_a_panel_per_class(drawn, tmp_path):
    assert cli("train", SPECS / "ring2d-cgan.yaml", "--name", "rc", *RING).exit_code == 0
    drawn.clear()  # training's own sample grids
    r = cli("sample", "rc", "--by-label", "--n", "800")
    assert r.exit_code == 0, r.stderr
    assert "step-0000020-seed0-by-label.png" in r.stdout
    (fig,) = drawn
    assert [ax["title"] for ax in fig["axes"]] == [f"y = {c}" for c in range(8)]
    assert_key_off_the_data(fig)
    # the same draw as --npz: panel c holds exactly G's samples for class c
    assert cli("sample", "rc", "--by-label", "--n", "800", "--npz", tmp_path / "s.npz").exit_code == 0
    with np.load(tmp_path / "s.npz") as z:
        x, y = z["samples"], z["labels"]
    centres = ring2d_centres(8, 2.0)
    for c, ax in enumerate(fig["axes"]):
        data, mine, modes = ax["points"]
        np.testing.assert_allclose(mine, x[y == c], rtol=1e-6)
        assert len(mine) == 100 and len(data) == 100
        nearest = ((data[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        assert (nearest == c).all()  # the panel's data is its class's mode
        np.testing.assert_allclose(modes, centres)


def test_toy_plots_keep_their_colour_key_off_the_data(drawn):
    assert cli("train", SPECS / "ring2d-cgan.yaml", "--name", "rc", *RING).exit_code == 0
    assert cli("train", SPECS / "toy1d.yaml", "--name", "t", "--set", "training.stop.steps=20",
               "--set", "data.train=2000").exit_code == 0
    for fig in drawn:  # training's own sample grids
        assert_key_off_the_data(fig)
    drawn.clear()
    assert cli("sample", "rc").exit_code == 0
    assert cli("sample", "rc", "--label", "3").exit_code == 0
    assert cli("sample", "t").exit_code == 0
    assert cli("eval", "t", "--theory", "--samples", "2000").exit_code == 0
    conditional, one_label, hist, theory = drawn
    # a key entry per class colour
    assert [t for t in conditional["legends"][0]["texts"] if t.startswith("G(z|y)")] == \
        [f"G(z|y), y = {c}" for c in range(8)]
    assert one_label["legends"][0]["texts"] == ["data", "G(z)", "modes"]
    assert hist["legends"][0]["texts"] == ["data", "G(z)", "p_data"]
    assert {"D(x)", "D*(x)"} <= set(theory["legends"][0]["texts"])
    for fig in drawn:
        assert_key_off_the_data(fig)


def test_metrics_plot_of_a_single_row_shows_markers(drawn):
    assert cli("train", SPECS / "toy1d.yaml", "--name", "one", "--set", "training.stop.steps=5",
               "--set", "training.log_every=5", "--set", "data.train=500").exit_code == 0
    assert len((runs_root() / "one" / "metrics.jsonl").read_text().splitlines()) == 1
    drawn.clear()
    assert cli("plot", "one").exit_code == 0
    losses, outputs = drawn[0]["axes"][:2]
    for panel, names in ((losses, ("D loss", "G loss")), (outputs, ("mean D(x)", "mean D(G(z))"))):
        for name in names:
            marker, n = panel["lines"][name]
            assert n == 1 and marker not in (None, "", "None", " "), (name, marker)


def test_metrics_plot_of_a_wgan_gp_run_reads_scores_and_shows_the_penalty(drawn):
    assert cli("train", SPECS / "ring2d-wgan-gp.yaml", "--name", "wg", "--set",
               "training.stop.steps=4", "--set", "training.log_every=2", "--set",
               "data.train=600", "--set", "training.sample_grid=null").exit_code == 0
    drawn.clear()
    assert cli("plot", "wg").exit_code == 0
    losses, outputs = drawn[0]["axes"][:2]
    assert set(losses["lines"]) == {"D loss", "G loss", "gradient_penalty term"}
    assert set(outputs["lines"]) == {"mean D(x)", "mean D(G(z))"}  # no 0.5 line for scores


def _strip(png, rows: int, cols: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The label strip left of a grid of 28-px cells (pad 2, ×2) and its band per row."""
    a = np.asarray(Image.open(png).convert("L"))
    grid_w = 2 * (cols * 28 + (cols + 1) * 2)
    assert a.shape[0] == 2 * (rows * 28 + (rows + 1) * 2) and a.shape[1] > grid_w
    strip = a[:, : a.shape[1] - grid_w]
    bands = [strip[2 * (2 + r * 30): 2 * (2 + r * 30 + 28)] for r in range(rows)]
    return strip, bands


def _right(band: np.ndarray, width: int) -> np.ndarray:
    return band[:, band.shape[1] - width:]  # labels are right-aligned against the grid


@pytest.mark.slow
def test_labelled_grids_name_each_rows_class(mnist_dir):
    r = cli("train", SPECS / "mnist-cgan.yaml", "--name", "f", "--data-root", mnist_dir,
            "--set", "data.dataset=fashion-mnist", "--set", "data.train=250",
            "--set", "data.valid=50", "--set", "training.stop={steps: 2}")
    assert r.exit_code == 0, r.stderr
    samples = runs_root() / "f" / "samples"
    assert cli("sample", "f", "--by-label", "--cols", "3").exit_code == 0
    strip, rows = _strip(samples / "step-0000002-seed0-by-label.png", 10, 3)
    ink = strip > 128
    in_bands = np.zeros(len(strip), bool)
    for r_ in range(10):
        in_bands[2 * (2 + r_ * 30): 2 * (2 + r_ * 30 + 28)] = True
    assert all((band > 128).any() for band in rows) and not ink[~in_bands].any()
    assert len({band.tobytes() for band in rows}) == 10  # ten different labels

    # --label 9 labels every row with the same text as row 9 of --by-label
    assert cli("sample", "f", "--label", "9", "--rows", "2", "--cols", "3").exit_code == 0
    strip9, rows9 = _strip(samples / "step-0000002-seed0-label9.png", 2, 3)
    w = strip9.shape[1]
    assert all(np.array_equal(b, _right(rows[9], w)) for b in rows9)
    # the text is the class's name: "1 Trouser" is narrower than "0 T-shirt/top"
    assert cli("sample", "f", "--label", "1", "--rows", "1", "--cols", "3").exit_code == 0
    strip1, _ = _strip(samples / "step-0000002-seed0-label1.png", 1, 3)
    assert strip1.shape[1] < strip.shape[1]

    # interpolate: row r of a conditional G is class r
    r = cli("interpolate", "f", "--rows", "2", "--steps", "3")
    assert r.exit_code == 0, r.stderr
    strip_i, rows_i = _strip(samples / "interp-step-0000002-seed0-lerp.png", 2, 3)
    for k in range(2):
        w = min(strip_i.shape[1], strip.shape[1])
        assert np.array_equal(_right(rows_i[k], w), _right(rows[k], w))
