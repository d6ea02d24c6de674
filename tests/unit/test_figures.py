"""Figures and the pieces behind them: grid geometry, nearest neighbours, interpolation,
and the Figure 1 theory measures on distributions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.evaluate import theory as T  # noqa: E402
from advgraph.nearest import nearest  # noqa: E402
from advgraph.figures import grid, to_images  # noqa: E402
from advgraph.sampling import lerp, slerp  # noqa: E402


def test_grid_geometry_and_cells():
    imgs = to_images(np.random.default_rng(0).random((12, 784)), (28, 28))
    img = grid(imgs, rows=3, cols=4, pad=2, scale=2)
    assert img.size == ((4 * 28 + 5 * 2) * 2, (3 * 28 + 4 * 2) * 2)
    a = np.asarray(img)[::2, ::2]
    r, c = 1, 2  # cell (1, 2) holds image 1·4 + 2
    y0, x0 = 2 + r * 30, 2 + c * 30
    np.testing.assert_array_equal(a[y0:y0 + 28, x0:x0 + 28], imgs[6])


def test_nearest_finds_planted_neighbours_across_chunks():
    rng = np.random.default_rng(1)
    train = rng.random((1000, 64)).astype(np.float32)
    plant = np.array([3, 999, 500, 0, 731])
    q = train[plant] + 1e-3 * rng.standard_normal((5, 64)).astype(np.float32)
    idx, d2 = nearest(q, train, chunk=37)
    np.testing.assert_array_equal(idx, plant)
    brute = ((train[None].astype(np.float64) - q[:, None]) ** 2).sum(2)
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(d2, brute.min(1), rtol=1e-9)


def test_interpolation_paths():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    for f in (lerp, slerp):
        p = f(a, b, 7)
        assert p.shape == (7, 100)
        np.testing.assert_allclose(p[0], a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(p[-1], b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lerp(a, b, 3)[1], (a + b) / 2, rtol=1e-6)
    # slerp between equal-norm endpoints stays on the sphere
    b2 = b / np.linalg.norm(b) * np.linalg.norm(a)
    norms = np.linalg.norm(slerp(a, b2, 9), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(a), rtol=1e-5)


def test_theory_measures_known_cases():
    rng = np.random.default_rng(3)
    data = rng.normal(4, 0.5, 20000)
    pdf = lambda xs: T.normal_pdf(xs, 4, 0.5)  # noqa: E731
    # p_g = p_data and D = 1/2: at Theorem 1's optimum.
    same = rng.normal(4, 0.5, 20000)
    half = lambda x: np.full(len(x), 0.5)  # noqa: E731
    th, _ = T.measure(half, same, data, pdf)
    assert th.jsd < 2e-3 and abs(th.c_of_g + np.log(4)) < 4e-3
    assert th.mean_abs_d_minus_dstar < 0.03
    assert th.v_measured == pytest.approx(-np.log(4), abs=1e-9)
    # Disjoint supports: JSD → log 2, C(G) → 0, and D* is 1 on the data.
    far = rng.normal(40, 0.5, 20000)
    th2, curves = T.measure(half, far, data, pdf)
    assert th2.jsd == pytest.approx(np.log(2), abs=1e-3) and abs(th2.c_of_g) < 2e-3
    on_data = curves["p_data"] > 1e-3 * curves["p_data"].max()
    assert curves["D_star"][on_data].min() > 0.999


@pytest.mark.parametrize("classes", [2, 8, 9, 10, 18, 30])
def test_class_colours_are_distinct_and_never_the_datas_grey(classes):
    """The data are drawn in grey and the modes in black: no class may share their colour."""
    from advgraph.figures import class_colours

    rgb = np.array([c[:3] for c in class_colours(classes)])
    assert len(rgb) == classes and len({tuple(np.round(c, 3)) for c in rgb}) == classes
    assert (rgb.max(1) - rgb.min(1) > 0.12).all(), "a grey (or black) class colour"


def test_metrics_plot_draws_references_as_lines_not_as_points_of_g(monkeypatch, tmp_path):
    """Baselines and held-out data belong to no checkpoint of G: horizontal lines, while G's
    evaluations are its points."""
    import advgraph.figures as F

    figs = []
    monkeypatch.setattr(F, "_save_fig", lambda fig, path, follow=False: figs.append(fig) or path)
    monkeypatch.setattr(F._pyplot(), "close", lambda fig: None)
    rows = [{"step": s, "d_loss": 1.3, "g_loss": 0.8, "d_real": 0.5, "d_fake": 0.5}
            for s in (10, 20)]
    evals = [{"metric": "parzen", "checkpoint_step": 10, "mean_log_likelihood": 5.0, "stderr": 1.0},
             {"metric": "parzen", "checkpoint_step": 20, "mean_log_likelihood": 6.0, "stderr": 1.0},
             {"metric": "parzen", "checkpoint_step": 20, "baseline": "kmeans",
              "mean_log_likelihood": 50.0, "stderr": 1.0},
             {"metric": "quality", "checkpoint_step": 20,
              "rows": {"G": {"fid": 9.0}, "real (valid split)": {"fid": 0.2}}}]
    F.plot_metrics(rows, tmp_path / "m.png", evals=evals)
    parzen_ax, fid_ax = figs[0].axes[2], figs[0].axes[3]
    [g_points] = [c for c in parzen_ax.containers]  # one errorbar series: G's
    assert list(g_points.lines[0].get_ydata()) == [5.0, 6.0]
    texts = [t.get_text() for t in parzen_ax.get_legend().get_texts()]
    assert "k-means centres: 50" in texts and "G: eval --parzen (± s.e.)" in texts
    assert [list(line.get_ydata()) for line in parzen_ax.lines if line.get_label().startswith("k-means")] == [[50.0, 50.0]]
    assert "real (valid split): 0.2" in [t.get_text() for t in fid_ax.get_legend().get_texts()]


def test_metrics_plot_draws_one_parzen_series_per_setting_with_legends_beside_the_axes(
        monkeypatch, tmp_path):
    """Estimates with another split, sample count or σ are not comparable: a series each,
    labelled with its setting; every panel's legend lies outside its axes, off the curves."""
    import advgraph.figures as F

    figs = []
    monkeypatch.setattr(F, "_save_fig", lambda fig, path, follow=False: figs.append(fig) or path)
    monkeypatch.setattr(F._pyplot(), "close", lambda fig: None)
    rows = [{"step": s, "d_loss": 1.3, "g_loss": 0.8, "d_real": 0.5, "d_fake": 0.5}
            for s in (10, 20)]
    grid = [0.1 * 10 ** (i / 9) for i in range(10)]
    paper = {"metric": "parzen", "evaluated_split": "test", "samples": 10000,
             "sigma_fixed": False, "sigma_grid": grid, "sigma": 0.2, "stderr": 1.0}
    fixed = {"metric": "parzen", "evaluated_split": "valid", "samples": 500,
             "sigma_fixed": True, "sigma_grid": None, "sigma": 0.25, "stderr": 1.0}
    evals = [{**paper, "checkpoint_step": 10, "mean_log_likelihood": 5.0},
             {**fixed, "checkpoint_step": 10, "mean_log_likelihood": -3.0},
             {**paper, "checkpoint_step": 20, "mean_log_likelihood": 6.0},
             {**paper, "checkpoint_step": 20, "mean_log_likelihood": 40.0, "baseline": "train"}]
    F.plot_metrics(rows, tmp_path / "m.png", evals=evals)
    fig = figs[0]
    parzen_ax = fig.axes[2]
    series = {c.get_label(): list(c.lines[0].get_ydata()) for c in parzen_ax.containers}
    assert series == {
        "G: eval --parzen (± s.e.), test, 10000 samples, σ from 10 in [0.1, 1]": [5.0, 6.0],
        "G: eval --parzen (± s.e.), valid, 500 samples, σ 0.25": [-3.0]}
    texts = [t.get_text() for t in parzen_ax.get_legend().get_texts()]
    assert "train as samples (test, 10000 samples, σ from 10 in [0.1, 1]): 40" in texts
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box, key = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
        assert key.x0 >= box.x1, ax.get_ylabel()


def test_metrics_plot_of_raw_scores_has_no_probability_axis_and_shows_penalties(monkeypatch,
                                                                                tmp_path):
    """A wasserstein D's mean scores (here 7 and −3) are drawn on an axis that holds them, with
    no log 4 / 0.5 equilibrium lines; a penalty's term is a curve of the loss panel."""
    import advgraph.figures as F

    figs = []
    monkeypatch.setattr(F, "_save_fig", lambda fig, path, follow=False: figs.append(fig) or path)
    monkeypatch.setattr(F._pyplot(), "close", lambda fig: None)
    rows = [{"step": s, "d_loss": -10.0, "g_loss": 3.0, "d_real": 7.0, "d_fake": -3.0,
             "gradient_penalty": 0.25} for s in (10, 20)]
    F.plot_metrics(rows, tmp_path / "m.png", scores=True)
    loss_ax, d_ax = figs[0].axes[0], figs[0].axes[1]
    assert [ln.get_label() for ln in loss_ax.lines] == ["D loss", "G loss",
                                                        "gradient_penalty term"]
    lo, hi = d_ax.get_ylim()
    assert lo <= -3.0 and hi >= 7.0 and len(d_ax.lines) == 2
    F.plot_metrics(rows, tmp_path / "p.png")  # read as probabilities: the paper's axes
    assert figs[1].axes[1].get_ylim() == (0.0, 1.0)
    assert "log 4 (D at equilibrium)" in [ln.get_label() for ln in figs[1].axes[0].lines]
