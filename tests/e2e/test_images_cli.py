"""A folder of the user's own images through the CLI: `data inspect` / `data prepare`, training
(torch and the cupy host executor) with classes from the folders, `sample --by-label` naming
them, eval, the cache, and the errors a user meets (located, one line).

The data: Pillow draws circles and squares of random sizes, positions and colours on canvases
of random sizes (so the size rule crops and scales), in folders `circle/` and `square/`, plus
one file that is not an image, which must be left out with a warning naming it."""

from __future__ import annotations

import json
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from advgraph.run import sample_files  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.helpers import cli, cli_proc, make_shapes, runs_root  # noqa: E402

PER_CLASS = 120  # images of each shape
SPEC = """\
name: shapes
condition: {type: label, classes: 2}
prior: {type: gaussian, dim: 16}
data: {dataset: images, path: shapes, size: [16, 16], channels: 3, labels: subdirs,
       valid: 20, test: 20}
generator:
  graph:
    - name: body
      inputs: [z, y]
      layers:
        - {type: dense, units: 512}
        - {type: reshape, shape: [32, 4, 4]}
        - {type: relu}
        - {type: conv_transpose2d, channels: 16, kernel: 4, stride: 2, pad: 1}
        - {type: relu}
        - {type: conv_transpose2d, channels: 3, kernel: 4, stride: 2, pad: 1}
        - {type: sigmoid}
discriminator:
  graph:
    - name: hx
      inputs: x
      layers:
        - {type: conv2d, channels: 16, kernel: 4, stride: 2, pad: 1}
        - {type: leaky_relu}
        - {type: conv2d, channels: 32, kernel: 4, stride: 2, pad: 1}
        - {type: leaky_relu}
        - {type: flatten}
    - name: out
      inputs: [hx, y]
      layers: [{type: dense, units: 1}, {type: sigmoid}]
training:
  batch_size: 32
  optimizer: {type: adam, lr: 0.0005, beta1: 0.5}
  stop: {steps: 200}
  checkpoint: {steps: 100}
  log_every: 50
"""


@pytest.fixture
def shapes(tmp_path) -> Path:
    make_shapes(tmp_path / "shapes")
    (tmp_path / "shapes.yaml").write_text(SPEC)
    return tmp_path / "shapes.yaml"


def _cupy_or_skip() -> list[str]:
    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(str(available()))
    return ["--backend", "cupy", "--device", "cpu"]


def _row_labels(monkeypatch) -> list:
    """The row labels `sample` draws at the start of each grid row (a spy on the grid)."""
    seen: list = []
    original = sample_files._sample_grid

    def spy(restored, samples, rows, cols, shape, nearest, dist, row_labels):
        seen.append(row_labels)
        return original(restored, samples, rows, cols, shape, nearest, dist, row_labels)

    monkeypatch.setattr(sample_files, "_sample_grid", spy)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "cupy"])
def test_shapes_train_sample_by_label_and_eval(shapes, backend, monkeypatch):
    # 20 steps, checkpoints at 10 and 20: nothing here measures learning, and the images'
    # path through training, sampling and eval is the same at any step. The host executor runs
    # the CUDA kernels as C++ on one core: batches of 8 there.
    args = ["--set", "training.stop.steps=20", "--set", "training.checkpoint={steps: 10}",
            "--set", "training.log_every=10"]
    if backend == "cupy":
        args += [*_cupy_or_skip(), "--set", "training.batch_size=8"]
    elif find_spec("tensorboard") is not None:
        args += ["--tensorboard"]  # its sample grids are the images' shape
    r = cli("train", shapes, "--name", "s", *args)
    assert r.exit_code == 0, r.output
    assert "run s finished: step 20" in r.stdout
    warned = [line for line in r.stderr.splitlines() if "broken.png" in line]
    assert warned and warned[0].startswith("warning: "), r.stderr
    run = runs_root() / "s"
    info = json.loads((run / "run.json").read_text())["data"]
    assert info["images"] == 2 * PER_CLASS and info["skipped"] == 1 and not info["cached"]
    assert info["split"] == {"seed": 0, "train": 2 * PER_CLASS - 40, "valid": 20, "test": 20}
    assert info["class_names"] == ["circle", "square"] and len(info["sha256"]) == 64
    assert "class_names:\n  - circle\n  - square" in (run / "spec.yaml").read_text() or \
        "class_names: [circle, square]" in (run / "spec.yaml").read_text()
    rows = _row_labels(monkeypatch)
    r = cli("sample", "s", "--by-label", "--cols", "4", "--nearest")
    assert r.exit_code == 0, r.output
    assert rows == [["0 circle", "1 square"]]
    assert Image.open(r.stdout.split("wrote ")[-1].strip()).size[0] > 16 * 5
    r = cli("eval", "s", "--parzen", "--samples", "200")
    assert r.exit_code == 0, r.output
    assert "data changed" not in r.stderr
    if backend == "torch":
        for command in (["interpolate", "s", "--rows", "2", "--steps", "4", "--label", "1"],
                        ["export", "s", "--format", "safetensors"],
                        ["eval", "s", "--fid", "--prdc", "--samples", "200"]):
            r = cli(*command)
            assert r.exit_code == 0, r.output
        if "--tensorboard" in args:
            assert list((run / "tensorboard").glob("events.out.tfevents.*"))


UNCONDITIONAL = SPEC.replace("condition: {type: label, classes: 2}\n", "").replace(
    "inputs: [z, y]", "inputs: z").replace("inputs: [hx, y]", "inputs: hx")


def test_unlabelled_images_train_and_eval_says_which_metrics_need_labels(tmp_path):
    make_shapes(tmp_path / "shapes", per_class=40)
    (tmp_path / "u.yaml").write_text(UNCONDITIONAL.replace("labels: subdirs", "labels: none")
                                     .replace("stop: {steps: 200}", "stop: {steps: 2}"))
    r = cli("train", tmp_path / "u.yaml", "--name", "u", "--set", "data.test=0")
    assert r.exit_code == 0, r.output
    assert "class_names: null" in (runs_root() / "u" / "spec.yaml").read_text()
    line = _one_error(cli("eval", "u", "--fid", "--samples", "50"))
    assert "--fid" in line and "data.labels: subdirs" in line and "--parzen needs none" in line
    line = _one_error(cli("sample", "u", "--by-label"))
    assert "not a conditional GAN" in line
    line = _one_error(cli("eval", "u", "--parzen", "--samples", "50"))  # test: 0, as trained
    assert "the test split of this run's data is empty: set data.test (a count or a share, " \
           "e.g. 0.1) when training, or use --split valid" in line, line
    # the data changed since: the commands that read it say so
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "shapes" / "circle" / "new.png")
    r = cli("sample", "u", "--nearest", "--rows", "1", "--cols", "2")
    assert r.exit_code == 0, r.output
    assert "warning: the data changed since the run began" in r.stderr, r.stderr


def test_data_inspect_and_prepare_a_folder_and_a_zip(tmp_path):
    folder = make_shapes(tmp_path / "shapes", per_class=12)
    r = cli("data", "inspect", folder, "--labels", "subdirs", "--size", "16", "16")
    assert r.exit_code == 0, r.output
    assert "25 file(s), 24 usable" in r.stdout, r.stdout
    assert "classes (2): circle 12, square 12" in r.stdout
    assert "square/broken.png" in r.stdout and "preparing will:" in r.stdout
    r = cli("data", "inspect", folder, "--labels", "subdirs", "--json")
    survey = json.loads(r.stdout)
    assert survey["usable"] == 24 and survey["classes"] == {"circle": 12, "square": 12}
    assert survey["formats"] == {"PNG": 18, "JPEG": 6}
    (tmp_path / "s.yaml").write_text(SPEC)  # a spec: its data's options (16×16, subdirs)
    r = cli("data", "inspect", tmp_path / "s.yaml")
    assert r.exit_code == 0 and "(3, 16, 16)" in r.stdout and "circle 12" in r.stdout, r.output
    r = cli("data", "inspect", tmp_path / "s.yaml", "--size", "8", "8", "--channels", "1")
    assert r.exit_code == 0 and "(1, 8, 8)" in r.stdout, r.output
    line = _one_error(cli("data", "inspect", ROOT / "specs" / "mnist.yaml"))
    assert "its data is 'mnist'" in line
    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, p.relative_to(folder).as_posix())
    r = cli("data", "inspect", archive, "--labels", "subdirs", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["classes"] == {"circle": 12, "square": 12}
    for source, out in ((folder, "f.npz"), (archive, "z.npz")):
        r = cli("data", "prepare", source, "--out", tmp_path / out, "--labels", "subdirs",
                "--size", "16", "16")
        assert r.exit_code == 0, r.output
        assert "broken.png" in r.stderr
        assert "pixels: true" in r.stdout
    with np.load(tmp_path / "f.npz") as a, np.load(tmp_path / "z.npz") as b:
        assert a["x"].dtype == np.uint8 and a["x"].shape == (24, 3, 16, 16)
        np.testing.assert_array_equal(a["x"], b["x"])  # zip or folder: the same
        assert list(a["class_names"]) == ["circle", "square"]
        # rows in a random order (npz's valid/test come from the end), each with its folder's
        # class
        assert sorted(a["y"].tolist()) == [0] * 12 + [1] * 12 and a["y"].tolist() != sorted(a["y"])
        assert [f.split("/")[0] for f in a["files"]] == [["circle", "square"][y] for y in a["y"]]


def test_training_from_the_prepared_npz_names_its_classes(tmp_path, monkeypatch):
    make_shapes(tmp_path / "shapes", per_class=40)
    r = cli("data", "prepare", tmp_path / "shapes", "--out", tmp_path / "p.npz",
            "--labels", "subdirs", "--size", "16", "16")
    assert r.exit_code == 0, r.output
    line = next(s.strip() for s in r.stdout.splitlines() if s.strip().startswith("data:"))
    spec = SPEC.replace(SPEC.split("\n")[3] + "\n" + SPEC.split("\n")[4], line
                        ).replace("stop: {steps: 200}", "stop: {steps: 4}")
    (tmp_path / "npz.yaml").write_text(spec)
    r = cli("train", tmp_path / "npz.yaml", "--name", "n")
    assert r.exit_code == 0, r.output
    rows = _row_labels(monkeypatch)
    r = cli("sample", "n", "--by-label", "--cols", "2")
    assert r.exit_code == 0, r.output
    assert rows == [["0 circle", "1 square"]]


def test_npz_pixels_refuses_floats_at_the_spec_line(tmp_path):
    np.savez(tmp_path / "f.npz", images=np.zeros((8, 3, 16, 16), np.float32))
    spec = SPEC.replace(SPEC.split("\n")[3] + "\n" + SPEC.split("\n")[4],
                        "data: {dataset: npz, path: f.npz, pixels: true, flatten: false}")
    spec = spec.replace("condition: {type: label, classes: 2}\n", "").replace(
        "inputs: [z, y]", "inputs: z").replace("inputs: [hx, y]", "inputs: hx")
    (tmp_path / "f.yaml").write_text(spec)
    r = cli("check", tmp_path / "f.yaml")
    assert r.exit_code != 0
    assert "f.yaml:3:" in r.stderr and "data.pixels:" in r.stderr
    assert "'images' is float32" in r.stderr


def _one_error(r) -> str:
    """The one `error:` line of a failed command (warnings may precede it: files left out)."""
    lines = [s for s in r.stderr.strip().splitlines() if not s.startswith("warning: ")]
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_errors_are_one_located_line(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no image files" in _one_error(cli("data", "inspect", tmp_path / "empty"))
    make_shapes(tmp_path / "one", per_class=3, classes=("circle",))
    line = _one_error(cli("data", "prepare", tmp_path / "one", "--labels", "subdirs",
                          "--out", tmp_path / "o.npz"))
    assert "two class folders" in line and "--labels" in line
    line = _one_error(cli("data", "inspect", tmp_path / "one", "--size", "0", "16"))
    assert line.startswith("error: --size")
    line = _one_error(cli("data", "prepare", tmp_path / "one", "--out", tmp_path / "o.txt"))
    assert "--out" in line and ".npz" in line
    (tmp_path / "missing.yaml").write_text(SPEC.replace("path: shapes", "path: nowhere"))
    r = cli("check", tmp_path / "missing.yaml")  # check reads no file: the shape is the spec's
    assert r.exit_code == 0 and "(B, 3, 16, 16)" in r.stdout, r.output
    line = _one_error(cli("train", tmp_path / "missing.yaml"))
    assert "missing.yaml:4:" in line and "data.path: no such folder or .zip" in line, line
    assert not runs_root().exists() or not any(runs_root().iterdir())


@pytest.mark.slow
def test_the_second_run_reads_the_cache_and_a_changed_folder_is_noticed(shapes):
    fast = ["--set", "training.stop={steps: 4}", "--set", "training.checkpoint={steps: 2}"]
    for name in ("a", "b"):
        r = cli("train", shapes, "--name", name, *fast)
        assert r.exit_code == 0, r.output
        assert ("preparing images" in r.stderr) == (name == "a"), r.stderr
        assert "broken.png" in r.stderr  # warned again: still left out
    first, second = (json.loads((runs_root() / n / "run.json").read_text())["data"]
                     for n in "ab")
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["sha256"] == second["sha256"]
    r = cli("train", "--resume", "a", "--set", "training.stop={steps: 6}")  # the same images
    assert r.exit_code == 0 and "run a finished: step 6" in r.stdout, r.output
    # another image in a class folder: another data set for run b
    Image.new("RGB", (20, 20), (255, 0, 0)).save(shapes.parent / "shapes" / "circle" / "new.png")
    r = cli("train", "--resume", "b", "--set", "training.stop={steps: 6}")
    assert r.exit_code != 0 and "the data changed since the run began" in r.stderr, r.output
    r = cli("eval", "b", "--parzen", "--samples", "50")
    assert r.exit_code == 0, r.output
    assert "warning: the data changed since the run began" in r.stderr
    # sample --nearest reads the data and warns; without it sample reads only the checkpoint
    # (a conditional G's labels are drawn uniformly) and cannot tell (README)
    for args, warned in ((), False), (("--by-label",), False), (("--nearest",), True):
        r = cli("sample", "b", "--rows", "2", "--cols", "2", *args)
        assert r.exit_code == 0, r.output
        assert ("the data changed since the run began" in r.stderr) == warned, r.stderr
    # a new class folder: the recorded classes no longer match
    make_shapes(shapes.parent / "more", per_class=2, classes=("triangle",))
    (shapes.parent / "more" / "triangle").rename(shapes.parent / "shapes" / "triangle")
    r = cli("eval", "b", "--parzen", "--samples", "50")
    assert r.exit_code != 0 and "the folder's classes changed" in r.stderr, r.output


@pytest.mark.slow
def test_distributed_training_on_a_folder_reports_once(shapes):
    """Two ranks train on a folder; rank 0 alone reports the preparing and the file left out.
    (That rank 1 waits for rank 0 and reads the cache, session.load_splits, is not observable
    from here.)"""
    r = cli_proc("train", shapes, "--nproc", "2", "--name", "d",
                 "--set", "training.stop={steps: 2}", "--set", "training.checkpoint={steps: 2}")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("preparing images: 0/") == 1, r.stderr
    assert r.stderr.count("warning: skipped square/broken.png") == 1, r.stderr  # rank 0 only
    info = json.loads((runs_root() / "d" / "run.json").read_text())
    assert info["world_size"] == 2 and info["data"]["images"] == 2 * PER_CLASS



def test_prepare_refuses_an_out_inside_the_folder_and_bounds_workers(tmp_path):
    folder = make_shapes(tmp_path / "shapes", per_class=3)
    for out in (folder / "packed.npz", folder / "circle" / "p.npz",
                tmp_path / "shapes" / ".." / "shapes" / "new" / "p.npz"):
        line = _one_error(cli("data", "prepare", folder, "--out", out))
        assert line.startswith("error: --out:") and "inside" in line, line
    assert not list(folder.rglob("*.npz"))
    r = cli("data", "prepare", folder, "--out", tmp_path / "o.npz", "--workers", "100000")
    assert r.exit_code == 2 and "--workers" in r.output, r.output
    r = cli("data", "prepare", folder, "--out", tmp_path / "deeper" / "o.npz", "--size", "8",
            "8")  # a missing parent is made, as mkdir -p would
    assert r.exit_code == 0 and (tmp_path / "deeper" / "o.npz").is_file(), r.output


def test_the_printed_data_line_reads_back_the_path_written():
    import yaml

    from advgraph.cli.data import npz_snippet

    for name in ("p.npz", "a b.npz", "x: y.npz", "#c.npz", "*a.npz", "é.npz", "a,b.npz",
                 "{x}.npz", "- x.npz", "'q.npz", 'a"b.npz', "[1].npz", "a #b.npz"):
        line = npz_snippet(Path("/data") / name, True)
        assert yaml.safe_load(line)["data"]["path"] == f"/data/{name}", line
    line = npz_snippet(Path("/data/\udcff.npz"), False)  # bytes that are not UTF-8
    assert "not UTF-8" in line and "rename" in line and "\udcff" not in line


def test_labels_dataset_json_reaches_scan_as_the_word(tmp_path, monkeypatch):
    """This side only: `--labels dataset.json` (the one at the folder's root) is not taken as
    a path beside the working directory; the images package reads it."""
    import advgraph.data.images as images
    from advgraph.errors import DataError

    seen = []

    def scan(path, labels):
        seen.append(labels)
        raise DataError("stop here")

    monkeypatch.setattr(images, "scan", scan)
    monkeypatch.chdir(tmp_path)
    assert "stop here" in _one_error(cli("data", "inspect", tmp_path, "--labels",
                                         "dataset.json"))
    assert seen == ["dataset.json"]


def test_a_flag_the_data_model_refuses_is_one_line_in_plain_words(tmp_path):
    folder = make_shapes(tmp_path / "shapes", per_class=3)
    line = _one_error(cli("data", "inspect", folder, "--labels", ""))
    assert line.startswith("error: --labels: empty") and "Value error" not in line, line


@pytest.mark.parametrize("raised, code, said", [("Terminated", 143, "terminated"),
                                               ("KeyboardInterrupt", 130, "interrupted")])
def test_sigterm_and_ctrl_c_while_preparing_end_with_a_word_and_their_codes(
        raised, code, said, capsys):
    """SIGTERM during preparation arrives as parallel.Terminated (after the temporary file is
    removed): the command says so and exits 128 + 15; Ctrl-C, 128 + 2 (typer alone would end
    without a word)."""
    import typer

    from advgraph.cli.common import user_errors
    from advgraph.data.images import parallel

    exc = parallel.Terminated() if raised == "Terminated" else KeyboardInterrupt()
    with pytest.raises(typer.Exit) as e:
        with user_errors():
            raise exc
    assert e.value.exit_code == code and said in capsys.readouterr().err


def test_inspect_of_a_folder_with_no_usable_image_shows_the_problems_then_one_error(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "notes.txt").write_text("hello")
    (tmp_path / "f" / "fake.png").write_bytes(b"not a png")
    r = cli("data", "inspect", tmp_path / "f")
    assert r.exit_code == 1
    assert "fake.png: not an image" in r.stdout and "notes.txt" in r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "none of the 2 files is a usable image" in errors[0]


def test_a_labels_file_edited_since_the_run_began_is_refused_on_resume(tmp_path):
    """The same images with other labels (a labels file edited): the pixels' SHA-256 is the
    same, their labels' is not, and a resumed run would train on other labels."""
    make_shapes(tmp_path / "shapes", per_class=20)
    names = sorted(p.relative_to(tmp_path / "shapes").as_posix()
                   for p in (tmp_path / "shapes").rglob("*") if p.suffix in (".png", ".jpg")
                   and p.name != "broken.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(names)))
    (tmp_path / "u.yaml").write_text(UNCONDITIONAL.replace("labels: subdirs",
                                                           "labels: labels.csv"))
    fast = ["--set", "training.stop={steps: 2}", "--set", "training.checkpoint={steps: 2}",
            "--set", "data.valid=4", "--set", "data.test=4"]
    r = cli("train", tmp_path / "u.yaml", "--name", "lab", *fast)
    assert r.exit_code == 0, r.output
    r = cli("train", "--resume", "lab", "--set", "training.stop={steps: 4}")
    assert r.exit_code == 0, r.output  # unchanged
    labels.write_text("file,label\n" + "".join(f"{n},{(i + 1) % 2}\n"
                                                for i, n in enumerate(names)))
    r = cli("train", "--resume", "lab", "--set", "training.stop={steps: 6}")
    assert r.exit_code != 0 and "labels changed since the run began" in r.stderr, r.output


def test_data_prepare_of_a_spec_takes_a_labels_flag_from_here(tmp_path, monkeypatch):
    """--labels FILE on the command line is the user's path from the current directory, also
    where PATH is a spec (whose own `labels` is taken from the spec's folder)."""
    make_shapes(tmp_path / "shapes", per_class=4)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "u.yaml").write_text(UNCONDITIONAL.replace(
        "path: shapes", f"path: {tmp_path / 'shapes'}").replace("labels: subdirs",
                                                               "labels: none"))
    (tmp_path / "specs" / "labels.csv").write_text("file,label\ncircle/001.png,1\n")  # a decoy
    (tmp_path / "labels.csv").write_text("file,label\ncircle/001.png,0\nsquare/001.png,1\n")
    monkeypatch.chdir(tmp_path)
    r = cli("data", "prepare", tmp_path / "specs" / "u.yaml", "--labels", "labels.csv",
            "--out", tmp_path / "p.npz")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "p.npz") as z:
        got = dict(zip(z["files"].tolist(), z["y"].tolist()))
    assert got["circle/001.png"] == 0 and got["square/001.png"] == 1
