"""sample, interpolate, eval and plot as a user runs them, on briefly trained runs."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from advgraph.evaluate.theory import theory as theory_report  # noqa: E402
from advgraph.figures import to_images  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.run.directory import RunDir  # noqa: E402
from advgraph.run.samples import draw_samples  # noqa: E402
from advgraph.spec import load_file  # noqa: E402
from advgraph.run.context import Context  # noqa: E402
from advgraph.run.restore import RestoredRun, restore_run  # noqa: E402
from advgraph.run.session import make_trainer  # noqa: E402
from tests.conftest import SPECS, make_mnist_dir  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402


def _trained_once(tmp_path_factory, name: str, *args) -> Path:
    """A run trained once for the module, in its own runs directory and cache root."""
    root = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVGRAPH_OFFLINE", "1")
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        r = cli("train", *args, "--name", name, "--runs-dir", root / "runs")
    assert r.exit_code == 0, r.stderr
    return root / "runs" / name


def _copy(trained: Path) -> str:
    """A copy of a module's run in the test's runs directory (commands write into a run)."""
    shutil.copytree(trained, runs_root() / trained.name)
    return trained.name


@pytest.fixture(scope="module")
def _ring(tmp_path_factory) -> Path:
    return _trained_once(tmp_path_factory, "ring", SPECS / "ring2d.yaml", "--set", "data.train=3000",
                         "--set", "data.valid=500", "--set", "data.test=500",
                         "--set", "training.stop.steps=150", "--set", "training.checkpoint={steps: 75}",
                         "--set", "training.log_every=25")


@pytest.fixture
def ring_run(_ring):
    return _copy(_ring)


@pytest.fixture(scope="module")
def _digits(tmp_path_factory) -> Path:
    data = make_mnist_dir(tmp_path_factory.mktemp("mnist"))
    return _trained_once(tmp_path_factory, "digits", SPECS / "mnist.yaml", "--data-root", data,
                         "--set", "data.train=250", "--set", "data.valid=50",
                         "--set", "training.stop={steps: 10}", "--set", "training.checkpoint={steps: 5}")


@pytest.fixture
def mnist_run(_digits):
    return _copy(_digits)


def test_toy_sample_plot_npz_and_metrics_plot(ring_run, tmp_path):
    r = cli("sample", ring_run)
    assert r.exit_code == 0, r.stderr
    png = runs_root() / "ring" / "samples" / "step-0000150-seed0.png"
    assert r.stdout.strip() == f"wrote {png}" and Image.open(png).size[0] > 200
    r = cli("sample", ring_run, "--npz", tmp_path / "s.npz", "--n", "123", "--seed", "4")
    assert r.exit_code == 0 and r.stdout.strip() == f"wrote {tmp_path / 's.npz'}"
    with np.load(tmp_path / "s.npz") as z:
        assert z["samples"].shape == (123, 2) and int(z["step"]) == 150
    r = cli("sample", ring_run, "--npz", tmp_path / "t.npz", "--grid", "--seed", "4")
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 2  # both written
    assert "--grid" not in r.stderr
    r = cli("sample", ring_run, "--grid")  # the same file as plain `sample`, and it says so
    assert r.exit_code == 0 and r.stdout.strip() == f"wrote {png}"
    assert "warning: --grid changes nothing without --npz" in r.stderr
    r = cli("sample", ring_run, "--checkpoint", "75", "--out", tmp_path / "early.png")
    assert r.exit_code == 0 and Image.open(tmp_path / "early.png").format == "PNG"
    r = cli("sample", ring_run, "--checkpoint", "75", "--npz", tmp_path / "e.npz", "--n", "123",
            "--seed", "4")  # the same noise as s.npz, through step 75's G
    assert r.exit_code == 0, r.stderr
    with np.load(tmp_path / "e.npz") as e, np.load(tmp_path / "s.npz") as s:
        assert int(e["step"]) == 75 and e["samples"].shape == (123, 2)
        assert not np.allclose(e["samples"], s["samples"])
    r = cli("plot", ring_run)
    assert r.exit_code == 0 and (runs_root() / "ring" / "plots" / "metrics.png").exists()
    (tmp_path / "adir").mkdir()
    for args in (["--npz", tmp_path / "adir"], ["--out", tmp_path / "adir"]):
        r = cli("sample", ring_run, *args)
        assert r.exit_code == 1 and r.stderr.strip() == f"error: cannot write {tmp_path / 'adir'}: Is a directory"


def test_parzen_eval_writes_provenance(ring_run):
    r = cli("eval", ring_run, "--parzen", "--samples", "1000", "--valid-limit", "200")
    assert r.exit_code == 0, r.stderr
    assert "test log-likelihood:" in r.stdout and "← chosen" in r.stdout
    rep = json.loads((runs_root() / "ring" / "eval" / "parzen.json").read_text())
    assert rep["checkpoint_step"] == 150 and rep["samples"] == 1000
    assert len(rep["sigma_grid"]) == 19 and rep["valid_used"] == 200  # toy data: 3 decades
    assert rep["n_evaluated"] == 500 and rep["split_sizes"] == {"train": 3000, "valid": 500, "test": 500}
    best = max(rep["valid_scores"], key=lambda row: row["mean_log_likelihood"])
    assert rep["sigma"] == best["sigma"] and len(rep["valid_scores"]) == 19
    assert rep["stderr"] > 0 and rep["seed"] == 0 and "seconds" in rep
    # The reference every figure should be read against.
    r = cli("eval", ring_run, "--parzen", "--samples", "1000", "--baseline", "train", "--sigma", "0.1")
    assert r.exit_code == 0, r.stderr
    base = json.loads((runs_root() / "ring" / "eval" / "parzen-baseline-train.json").read_text())
    assert base["sigma_fixed"] and base["baseline"] == "train"


def test_kmeans_baseline_scores_the_centres(ring_run):
    """--baseline kmeans: the figure is the Parzen estimate of k-means centres of the training
    set, recomputed here from the cached centres with the float64 definition."""
    from advgraph.evaluate.kmeans import kmeans_centres
    from advgraph.parzen import log_densities_direct

    r = cli("eval", ring_run, "--parzen", "--samples", "50", "--baseline", "kmeans",
            "--sigma", "0.1")
    assert r.exit_code == 0, r.stderr
    assert "k-means: round 1/20" in r.stderr and "k-means centres of the training set" in r.stdout
    rep = json.loads((runs_root() / "ring" / "eval" / "parzen-baseline-kmeans.json").read_text())
    assert rep["baseline"] == "kmeans" and "compare with" not in rep["caveat"]
    restored = restore_run(RunDir(runs_root() / "ring"), None)
    km = kmeans_centres(restored.splits.train, 50, seed=0)
    assert km.cached and km.centres.shape == (50, 2)
    want = log_densities_direct(restored.splits.test, km.centres, 0.1).mean()
    assert rep["mean_log_likelihood"] == pytest.approx(want, abs=1e-3)
    # the second evaluation reads the centres from the cache
    r = cli("eval", ring_run, "--parzen", "--samples", "50", "--baseline", "kmeans",
            "--sigma", "0.1")
    assert r.exit_code == 0 and "k-means: round" not in r.stderr
    assert json.loads((runs_root() / "ring" / "eval" / "parzen-baseline-kmeans.json")
                      .read_text())["mean_log_likelihood"] == rep["mean_log_likelihood"]


@pytest.mark.parametrize("args,message", [
    (["--parzen", "--sigmas", "0.1,x"], "not a comma-separated list"),
    (["--parzen", "--sigmas", "-1"], "positive"),
    (["--parzen", "--split", "nope"], "Invalid value for '--split'"),
    (["--theory", "--by-label"], "--by-label goes with --parzen"),
    (["--fid", "--samples", "3"], "--samples must be more than 5"),
    ([], "choose --parzen, --fid, --prdc, --score, --theory and/or --modes"),
    (["--theory"], "--theory needs 1-D data"),
    (["--parzen", "--checkpoint", "3"], "no checkpoint at step 3"),
    (["--parzen", "--baseline", "kmean"],
     "Invalid value for '--baseline': Value error, 'kmean' is not one of 'train', 'kmeans'"),
    (["--parzen", "--samples", "0"], "Invalid value for '--samples'"),
    (["--parzen", "--valid-limit", "-1"], "Invalid value for '--valid-limit'"),
    (["--parzen", "--baseline", "kmeans", "--samples", "3001"],
     "--baseline kmeans: only 3000 training examples for --samples 3001"),
    (["--fid", "--baseline", "kmeans", "--samples", "3001"],
     "--baseline kmeans: only 3000 training examples"),
])
def test_eval_argument_errors(ring_run, args, message):
    r = cli("eval", ring_run, *args)
    assert r.exit_code in (1, 2) and message in r.stderr and "Traceback" not in r.stderr


def test_unknown_run():
    r = cli("sample", "ghost")
    assert r.exit_code == 1 and "no run named 'ghost'" in r.stderr


def test_image_grid_with_nearest_neighbour_column(mnist_run):
    r = cli("sample", mnist_run, "--grid", "--nearest", "--rows", "3", "--cols", "4", "--seed", "7")
    assert r.exit_code == 0, r.stderr
    png = Path(r.stdout.split("wrote ")[1].strip())
    img = np.asarray(Image.open(png))[::2, ::2]  # undo the ×2 display scale
    pad, sep = 2, 6
    assert img.shape == (3 * 28 + 4 * pad, 5 * 28 + 6 * pad + sep)
    loaded = restore_run(RunDir(runs_root() / mnist_run))
    samples = draw_samples(loaded, 12, 7)
    train = loaded.splits.train
    for row in range(3):
        neighbour = samples[row * 4 + 3]
        want = ((train.astype(np.float64) - neighbour) ** 2).sum(1).argmin()
        y0, x0 = pad + row * 30, pad + 4 * 30 + sep
        cell = img[y0:y0 + 28, x0:x0 + 28]
        np.testing.assert_array_equal(cell, to_images(train[want:want + 1], (28, 28))[0])


def test_interpolation_grid(mnist_run):
    r = cli("interpolate", mnist_run, "--rows", "2", "--steps", "6", "--slerp")
    assert r.exit_code == 0, r.stderr
    png = Path(r.stdout.split("wrote ")[1].strip())
    assert png.name.endswith("-slerp.png")
    assert Image.open(png).size == ((6 * 28 + 7 * 2) * 2, (2 * 28 + 3 * 2) * 2)
    r = cli("interpolate", mnist_run, "--steps", "1")
    assert r.exit_code == 2 and ("Invalid value for '--steps': Input should be greater than or "
                                 "equal to 2") in r.stderr


@pytest.mark.slow
def test_theory_shrinks_with_training():
    """Figure 1 measured: trained D is closer to D*, and p_g closer to p_data, than at init."""
    r = cli("train", SPECS / "toy1d.yaml", "--name", "fig1", "--set", "training.stop.steps=1500",
            "--set", "data.train=10000")
    assert r.exit_code == 0, r.stderr
    r = cli("eval", "fig1", "--theory", "--samples", "20000")
    assert r.exit_code == 0, r.stderr
    assert "JSD(p_data ‖ p_g)" in r.stdout
    trained = json.loads((runs_root() / "fig1" / "eval" / "theory.json").read_text())
    assert Path(trained["figure"]).exists()

    run = RunDir(runs_root() / "fig1")
    spec = load_file(run.spec_path)
    program, trainer, _ = make_trainer(spec, Context("torch", "cpu"))
    trainer.load_state_dict(init_params(program, np.random.default_rng(0), None))
    untrained = theory_report(RestoredRun(run, spec, program, trainer, 0, "cpu", None),
                              samples=20000, seed=0, out=None)
    assert trained["jsd"] < 0.5 * untrained["jsd"]
    assert trained["mean_abs_d_minus_dstar"] < untrained["mean_abs_d_minus_dstar"]
    assert trained["c_of_g"] < untrained["c_of_g"]


@pytest.mark.slow
def test_feature_metrics_with_their_floor_and_history(mnist_run):
    r = cli("eval", mnist_run, "--fid", "--prdc", "--score", "--samples", "60", "--baseline",
            "train")
    # (the k-means row is checked in test_feature_metrics_kmeans_row)
    assert r.exit_code == 0, r.stderr
    rep = json.loads((runs_root() / "digits" / "eval" / "quality.json").read_text())
    rows = rep["rows"]
    assert set(rows) == {"G", "real (valid split)", "train as samples"}
    assert rep["classifier"]["test_accuracy"] > 0.9  # one bright square per class
    for name, row in rows.items():
        assert row["fid"] >= 0 and 0 <= row["precision"] <= 1 and 1 <= row["score"] <= 10, name
    # real data lies far closer to the test data than a G trained for 10 steps
    assert rows["real (valid split)"]["fid"] < rows["G"]["fid"]
    assert rows["real (valid split)"]["coverage"] > rows["G"]["coverage"]
    assert "classifier: test accuracy" in r.stdout and "FID" in r.stdout
    assert "domain classifier: epoch 4/4" in r.stderr  # trained once…
    _check_rows_by_definition(rep, mnist_run)
    r = cli("eval", mnist_run, "--fid", "--samples", "60", "--parzen", "--valid-limit", "20")
    assert r.exit_code == 0, r.stderr
    assert "domain classifier" not in r.stderr  # …then read from the cache
    history = [json.loads(line) for line in
               (runs_root() / "digits" / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert [h["metric"] for h in history] == ["quality", "parzen", "quality"]
    assert all(h["checkpoint_step"] == 10 for h in history)
    assert history[2]["metrics"] == ["fid"] and "precision" not in history[2]["rows"]["G"]


def _prdc_by_definition(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Kynkäänniemi et al.'s precision and recall, Naeem et al.'s density and coverage, from
    SciPy's Euclidean distances (a set's k-th neighbour: column k of its sorted distances,
    column 0 being the point itself)."""
    from scipy.spatial.distance import cdist

    r_real = np.sort(cdist(real, real), axis=1)[:, k]
    r_fake = np.sort(cdist(fake, fake), axis=1)[:, k]
    d = cdist(real, fake)
    inside = d <= r_real[:, None]  # fake j in real i's ball
    return {"precision": inside.any(0).mean(), "recall": (d <= r_fake[None, :]).any(1).mean(),
            "density": inside.sum() / (k * len(fake)), "coverage": (d.min(1) <= r_real).mean()}


def _check_rows_by_definition(rep: dict, run: str) -> None:
    """The held-out and training rows of a quality report recomputed from the classifier's
    features: PRDC by its definitions, FID with SciPy's sqrtm."""
    from scipy import linalg

    from advgraph.evaluate.classifier import domain_classifier

    sp = restore_run(RunDir(runs_root() / run)).splits
    clf = domain_classifier(sp.train, sp.train_y, sp.test, sp.test_y, 10, (1, 28, 28))
    assert str(clf.path) == rep["classifier"]["path"]  # the report's classifier, from its cache
    ref = clf.features_and_probs(sp.test)[0].astype(np.float64)
    n, k = rep["samples"], rep["prdc_k"]
    for name, x in (("real (valid split)", sp.valid[:n]), ("train as samples", sp.train[:n])):
        feats = clf.features_and_probs(x)[0].astype(np.float64)
        row = rep["rows"][name]
        for key, want in _prdc_by_definition(ref, feats, k).items():
            assert row[key] == pytest.approx(want, abs=1e-12), (name, key)
        s1, s2 = np.cov(ref, rowvar=False), np.cov(feats, rowvar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular: see below
            root = linalg.sqrtm(s1 @ s2)
        fid = (((ref.mean(0) - feats.mean(0)) ** 2).sum() + np.trace(s1 + s2)
               - 2 * np.trace(root).real)
        # 60 samples span fewer dimensions than the features: both covariances are singular,
        # and sqrtm's roots of their rounding-level eigenvalues move it by a few 1e-6
        assert row["fid"] == pytest.approx(fid, rel=2e-5), name


def test_a_classifier_that_could_not_be_cached_is_reported_as_such(mnist_run, tmp_path,
                                                                  monkeypatch):
    """No report names a cache file that is not there."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ADVGRAPH_CACHE", str(tmp_path / "a-file"))  # no directory can go there
    r = cli("eval", mnist_run, "--fid", "--samples", "40")
    assert r.exit_code == 0, r.stderr
    clf = json.loads((runs_root() / "digits" / "eval" / "quality.json").read_text())["classifier"]
    assert clf["path"] is None and "a-file" in clf["not_cached"]
    assert "not cached (cannot write" in r.stdout and "warning: domain classifier not cached" \
        in r.stderr
    monkeypatch.delenv("ADVGRAPH_CACHE")
    r = cli("eval", mnist_run, "--fid", "--samples", "40")
    clf = json.loads((runs_root() / "digits" / "eval" / "quality.json").read_text())["classifier"]
    assert Path(clf["path"]).is_file() and clf["not_cached"] is None and clf["path"] in r.stdout


def test_feature_metrics_over_checkpoints_share_what_g_does_not_change(mnist_run):
    """--all-checkpoints: the classifier is trained (here: retrained) once, not per checkpoint,
    and each checkpoint's report equals evaluating that checkpoint alone."""
    r = cli("eval", mnist_run, "--fid", "--prdc", "--samples", "40", "--all-checkpoints",
            "--retrain-classifier")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("domain classifier: epoch 4/4") == 1
    history = [json.loads(line) for line in
               (runs_root() / "digits" / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert [h["checkpoint_step"] for h in history] == [5, 10]
    r = cli("eval", mnist_run, "--fid", "--prdc", "--samples", "40", "--checkpoint", "5")
    assert r.exit_code == 0, r.stderr
    alone = json.loads((runs_root() / "digits" / "eval" / "quality.json").read_text())
    assert alone["rows"] == history[0]["rows"]


def test_feature_metrics_kmeans_row(mnist_run):
    r = cli("eval", mnist_run, "--fid", "--prdc", "--samples", "40", "--baseline", "kmeans")
    assert r.exit_code == 0, r.stderr
    rep = json.loads((runs_root() / "digits" / "eval" / "quality.json").read_text())
    assert set(rep["rows"]) == {"G", "real (valid split)", "k-means centres"}
    assert rep["rows"]["k-means centres"]["n"] == 40
    assert "k-means centres: 40 k-means centres of the training set" in r.stdout
    assert "40 k-means centres" in rep["rows_about"]["k-means centres"]
    # averages of a few digits of one class stay near the data: far closer than a G of 10 steps
    assert rep["rows"]["k-means centres"]["fid"] < rep["rows"]["G"]["fid"]


def test_feature_metrics_need_labels():
    r = cli("train", SPECS / "toy1d.yaml", "--name", "t", "--set", "training.stop={steps: 5}")
    assert r.exit_code == 0, r.stderr
    r = cli("eval", "t", "--fid")
    assert r.exit_code == 1
    assert "need labels" in r.stderr and "this data has none" in r.stderr


def test_flags_that_do_nothing_say_so(ring_run, mnist_run, tmp_path):
    r = cli("sample", ring_run, "--nearest")
    assert r.exit_code == 0 and "warning: --nearest adds a column" in r.stderr
    r = cli("sample", ring_run, "--rows", "2")
    assert r.exit_code == 0 and "warning: --rows and --cols shape an image grid" in r.stderr
    r = cli("sample", ring_run, "--npz", tmp_path / "s.npz", "--rows", "2", "--cols", "3")
    assert r.exit_code == 0 and "warning" not in r.stderr  # they set the .npz's count
    assert len(np.load(tmp_path / "s.npz")["samples"]) == 6
    r = cli("sample", mnist_run, "--n", "7")
    assert r.exit_code == 0 and "warning: --n sets the number of samples" in r.stderr
    r = cli("interpolate", mnist_run, "--slerp", "--rows", "1", "--steps", "3")
    assert r.exit_code == 0 and "warning: --slerp follows great circles" in r.stderr  # U prior
    r = cli("sample", mnist_run, "--out", tmp_path / "grid.jpg")
    assert r.exit_code == 2 and "--out: figures are written as PNG" in r.stderr
    assert not (tmp_path / "grid.jpg").exists()


def test_parzen_sigma_at_the_grid_edge_warns_and_the_baseline_has_no_hint(ring_run):
    r = cli("eval", ring_run, "--parzen", "--samples", "500", "--valid-limit", "100",
            "--sigmas", "5,6")  # far too wide for a ring of σ 0.02: the smallest wins
    assert r.exit_code == 0, r.stderr
    assert "warning: the chosen σ 5 is at the edge of the grid [5, 6]" in r.stderr
    assert "compare with --baseline train" in r.stdout
    r = cli("eval", ring_run, "--parzen", "--baseline", "train", "--samples", "500",
            "--valid-limit", "100")
    assert r.exit_code == 0, r.stderr
    assert "caveat:" in r.stdout and "compare with --baseline train" not in r.stdout


def test_eval_all_checkpoints_accumulates_a_history(ring_run):
    png = runs_root() / "ring" / "plots" / "metrics.png"
    assert cli("plot", ring_run).exit_code == 0
    height_before = Image.open(png).size[1]
    r = cli("eval", ring_run, "--parzen", "--all-checkpoints", "--samples", "300",
            "--valid-limit", "50")
    assert r.exit_code == 0, r.stderr
    assert cli("plot", ring_run).exit_code == 0  # now with a panel of the evaluations
    assert Image.open(png).size[1] > height_before * 1.3
    assert "step 75" in r.stdout and "step 150" in r.stdout
    history = [json.loads(line) for line in
               (runs_root() / "ring" / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert [(h["metric"], h["checkpoint_step"]) for h in history] == [("parzen", 75),
                                                                     ("parzen", 150)]
    assert all(np.isfinite(h["mean_log_likelihood"]) for h in history)
    r = cli("eval", ring_run, "--parzen", "--all-checkpoints", "--checkpoint", "75")
    assert r.exit_code == 2 and "not both" in r.stderr
    # a baseline does not depend on the checkpoint: scored once (with the last), not per step
    r = cli("eval", ring_run, "--parzen", "--all-checkpoints", "--baseline", "train",
            "--samples", "300", "--valid-limit", "50")
    assert r.exit_code == 0, r.stderr
    history = [json.loads(line) for line in
               (runs_root() / "ring" / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert [(h["checkpoint_step"], h["baseline"]) for h in history[2:]] == [(150, "train")]
    # and says that --all-checkpoints did nothing for it (G is not scored with --baseline)
    assert "--all-checkpoints does nothing with --parzen --baseline train" in r.stderr


@pytest.mark.parametrize("gone", [75, 150])
def test_all_checkpoints_skips_one_pruned_after_listing(ring_run, monkeypatch, gone):
    """A run still training prunes old checkpoints: one that vanishes between eval's listing
    and its loading is skipped with a note naming it; the others are evaluated."""
    import advgraph.run.restore as R

    real = R.restore_run

    def pruned_meanwhile(run, *a, **k):  # the listing is done; now the trainer prunes
        for c in run.checkpoints():
            if c.step == gone:
                c.state_path.unlink()
                c.tensors_path.unlink()
        return real(run, *a, **k)

    monkeypatch.setattr(R, "restore_run", pruned_meanwhile)
    r = cli("eval", ring_run, "--parzen", "--all-checkpoints", "--samples", "300",
            "--valid-limit", "50")
    assert r.exit_code == 0, r.stderr
    assert f"skipped the checkpoint at step {gone}: it was removed" in r.stderr
    kept = 150 if gone == 75 else 75
    history = [json.loads(line) for line in
               (runs_root() / "ring" / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert [h["checkpoint_step"] for h in history] == [kept]


def _strict_json(text: str):
    """json.loads refusing NaN and ±Infinity, which are not JSON."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def test_parzen_with_a_tiny_sigma_writes_json_and_a_degenerate_one_is_refused(ring_run):
    """σ = 1e-30 used to print 'nan ± nan' and write bare NaN: now the float64 value (every
    term but the nearest far below e⁻⁸⁰, taken in log space), in strict JSON. A σ whose
    estimate is −∞ in float64 is an error naming --sigma, and nothing is written."""
    eval_dir = runs_root() / "ring" / "eval"
    r = cli("eval", ring_run, "--parzen", "--sigma", "1e-30", "--samples", "300")
    assert r.exit_code == 0, r.stderr
    assert "nan" not in r.stdout.lower()
    report = _strict_json((eval_dir / "parzen.json").read_text())
    assert report["mean_log_likelihood"] < -1e50 and np.isfinite(report["stderr"])
    # a grid holding a σ too small for float64: that σ's score is null with the reason
    r = cli("eval", ring_run, "--parzen", "--sigmas", "1e-200,0.1", "--samples", "300",
            "--valid-limit", "50")
    assert r.exit_code == 0, r.stderr
    scores = _strict_json((eval_dir / "parzen.json").read_text())["valid_scores"]
    assert scores[0]["mean_log_likelihood"] is None and "−∞" in scores[0]["why_null"]
    assert "−∞" in r.stdout
    lines = (eval_dir / "metrics.jsonl").read_text().splitlines()
    assert [_strict_json(line)["sigma"] for line in lines] == [1e-30, 0.1]
    r = cli("eval", ring_run, "--parzen", "--sigma", "1e-200", "--samples", "300")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: --sigma: at σ = 1e-200, ") and r.stderr.count("\n") == 1
    assert "log-likelihood −∞" in r.stderr and "give a larger σ" in r.stderr
    assert (eval_dir / "metrics.jsonl").read_text().splitlines() == lines  # nothing written
