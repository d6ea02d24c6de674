"""ImagesDataset (`dataset: images`): shape and classes from the spec alone (no file read),
absolute paths, and what loading gives: the splits of a seeded permutation scaled to [0, 1],
labels, class names checked against those a run recorded, and the provenance a run keeps.
Preparing is stood in for (its own tests are test_images_*): each image is filled with its
row number, so every row of every split says which file it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import advgraph.data.images as images
from advgraph.data import dataset_for
from advgraph.data.images import Packed
from advgraph.errors import DataError, SpecError
from advgraph.spec import load_text
from advgraph.spec.gan import ImagesData


def data(**kw) -> ImagesData:
    return ImagesData.model_validate({"dataset": "images", "path": "pics", "size": [6, 4],
                                      **kw})


def test_shape_and_classes_come_from_the_spec_without_reading_a_file():
    grey = dataset_for(data(path="/nowhere/at/all", channels=1, labels="subdirs"))
    assert grey.shape() == (1, 6, 4) and grey.image_shape((1, 6, 4)) == (6, 4)
    assert grey.classes == 0  # only the folder can tell
    flat = dataset_for(data(flatten=True))
    assert flat.shape() == (3 * 6 * 4,) and flat.image_shape((72,)) == (3, 6, 4)
    assert flat.classes is None and flat.class_names is None
    named = dataset_for(data(labels="subdirs", class_names=["cat", "dog", "owl"]))
    assert named.classes == 3 and named.class_names == ["cat", "dog", "owl"]


def test_absolute_paths_resolve_the_folder_and_a_labels_file(tmp_path):
    for labels, want in (("subdirs", "subdirs"), ("none", "none"),
                         ("dataset.json", "dataset.json"),  # a word: the one in the folder
                         ("meta/labels.csv", str(tmp_path / "meta" / "labels.csv"))):
        d = dataset_for(data(labels=labels), tmp_path).with_absolute_paths()
        assert d.path == str(tmp_path / "pics") and d.labels == want


def test_class_names_need_labels_and_two_distinct_names():
    for bad in ({"class_names": ["a", "b"]}, {"labels": "subdirs", "class_names": ["a"]},
                {"labels": "subdirs", "class_names": ["a", "a"]}):
        with pytest.raises(ValueError):
            data(**bad)


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """Two class folders of 5 and 7 files (scanned for real); preparing stood in for."""
    for cls, n in (("cat", 5), ("dog", 7)):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "pics" / cls / f"{i}.png").write_bytes(b"stand-in")
    calls = []

    def prepare(listing, prep, workers=None, progress=None, warn=None):
        calls.append(prep)
        n = len(listing.entries)
        if progress:
            progress(0, n)
            progress(n, n)
        pixels = np.arange(n, dtype=np.uint8)[:, None, None, None] * 10
        labels = (None if listing.labels == "none" else
                  np.array([e.label for e in listing.entries], np.int64))
        return Packed(np.broadcast_to(pixels, (n, *prep.shape())).copy(), labels,
                      [e.name for e in listing.entries], listing.class_names, [], "f" * 64,
                      "a" * 64, None, cached=False)

    monkeypatch.setattr(images, "prepare", prepare)
    return tmp_path


class Report:
    def __init__(self):
        self.seen = []

    def warn(self, msg):
        self.seen.append(("warn", msg))

    def progress(self, what, done, total):
        self.seen.append((what, done, total))


def test_load_splits_scales_labels_and_records_provenance(folder):
    report = Report()
    sp = dataset_for(data(labels="subdirs", valid=2, test=0.25, split_seed=3),
                     folder).load(report=report)
    rows = {k: np.rint(getattr(sp, k)[:, 0, 0, 0] * 255 / 10).astype(int)
            for k in ("train", "valid", "test")}
    assert sorted(np.concatenate(list(rows.values()))) == list(range(12))  # each file once
    assert (len(rows["valid"]), len(rows["test"])) == (2, 3)  # 0.25 of 12
    perm = np.random.default_rng(3).permutation(12)  # the split's own rule, independently
    assert set(rows["test"]) == set(perm[:3]) and set(rows["valid"]) == set(perm[3:5])
    assert sp.train.dtype == np.float32 and sp.train.shape[1:] == (3, 6, 4)
    assert float(sp.train.max()) <= 110 / 255 + 1e-6
    for k in ("train", "valid", "test"):  # files 0-4 are cats, 5-11 dogs
        np.testing.assert_array_equal(sp.labels(k), (rows[k] >= 5).astype(int))
    assert sp.class_names == ["cat", "dog"] and sp.image_shape == (3, 6, 4)
    p = sp.provenance
    assert p["images"] == 12 and p["skipped"] == 0 and p["cached"] is False
    assert p["split"] == {"seed": 3, "train": 7, "valid": 2, "test": 3}
    assert p["fingerprint"] == "f" * 64 and p["sha256"] == "a" * 64
    assert p["preparation"]["size"] == [6, 4] and p["path"] == str(folder / "pics")
    assert ("preparing images", 12, 12) in report.seen


def test_unlabelled_and_flattened(folder):
    sp = dataset_for(data(flatten=True), folder).load()
    assert sp.train.shape == (12, 72) and sp.train_y is None and sp.class_names is None


def test_classes_that_changed_since_the_run_recorded_them_are_refused(folder):
    ds = dataset_for(data(labels="subdirs", class_names=["cat", "dog"]), folder)
    assert ds.load().class_names == ["cat", "dog"]
    recorded = ImagesData.model_validate(  # as a run's spec.yaml is read (load_file(stored=True))
        {"dataset": "images", "path": "pics", "size": [6, 4], "labels": "subdirs",
         "class_names": ["cat", "cow"]}, context={"stored": True})
    with pytest.raises(DataError, match="recorded when the run began.*the folder's classes "
                                        "changed"):
        dataset_for(recorded, folder).load()


def test_class_names_a_user_gives_in_another_order_are_told_the_folders_order(folder):
    with pytest.raises(DataError) as e:
        dataset_for(data(labels="subdirs", class_names=["dog", "cat"]), folder).load()
    msg = str(e.value)
    assert "the folder's classes (sorted by name) are cat, dog, but data.class_names gives " \
           "dog, cat (in label order: the folders sorted by name)" in msg, msg
    assert "recorded" not in msg and "changed" not in msg


def test_a_condition_with_another_number_of_classes_is_refused(folder):
    sp = dataset_for(data(labels="subdirs"), folder).load()
    sp.check_labels(2)
    with pytest.raises(DataError, match=r"holds 2 classes \(cat, dog\), but condition.classes"):
        sp.check_labels(3)


def test_a_missing_folder_is_located_at_its_spec_line(tmp_path):
    text = ("name: x\nprior: {type: gaussian, dim: 2}\ndata:\n  dataset: images\n"
            "  path: nowhere\n  size: [4, 4]\n"
            "generator: {layers: [{type: dense, units: 48}, {type: sigmoid}]}\n"
            "discriminator: {layers: [{type: flatten}, {type: dense, units: 1}, "
            "{type: sigmoid}]}\n"
            "training: {batch_size: 2, optimizer: {type: adam}, stop: {steps: 1}}\n")
    loaded = load_text(text, str(tmp_path / "x.yaml"), path=tmp_path / "x.yaml")
    ds = dataset_for(loaded.spec.data, loaded.base_dir)
    with pytest.raises(SpecError, match=r"x\.yaml:5:\d+: data\.path: no such folder or \.zip"):
        ds.check_paths(loaded)


SPEC = ("name: x\nprior: {type: gaussian, dim: 2}\ndata:\n  dataset: images\n"
        "  path: pics\n  size: [4, 4]\n  labels: subdirs\n"
        "generator: {layers: [{type: dense, units: 48}, {type: sigmoid}]}\n"
        "discriminator: {layers: [{type: flatten}, {type: dense, units: 1}, "
        "{type: sigmoid}]}\n"
        "training: {batch_size: 2, optimizer: {type: adam}, stop: {steps: 1}}\n")


def _problems(*sets: str) -> list[str]:
    with pytest.raises(SpecError) as e:
        load_text(SPEC, "x.yaml", overrides=list(sets))
    return [str(p) for p in e.value.problems]


def test_a_count_or_share_is_one_problem_in_one_line_and_true_is_no_count():
    for value in ("true", "false", "1.5", "-1", "1e12", ".nan", "'3'"):
        (line,) = _problems(f"data.valid={value}")
        assert "data.valid: a count ≥ 0" in line and "or a share in (0, 1)" in line, line
    (line,) = _problems("data.test=true")
    assert "data.test:" in line and "got true" in line
    ok = load_text(SPEC, "x.yaml", overrides=["data.valid=0.25", "data.test=3"]).spec.data
    assert (ok.valid, ok.test) == (0.25, 3)
    assert type(load_text(SPEC, "x.yaml", overrides=["data.valid=3.0"]).spec.data.valid) is int


def test_booleans_are_refused_where_a_number_is_meant():
    for key, where in (("split_seed", "data.split_seed"), ("channels", "data.channels"),
                       ("size=[true, 4]", "data.size[0]"), ("background=[0, true, 0]",
                                                            "data.background[1]")):
        setting = f"data.{key}" if "=" in key else f"data.{key}=true"
        (line,) = _problems(setting)
        assert f"{where}: a number, not true" in line, line


def test_an_empty_path_or_labels_is_refused_at_validation():
    for setting in ("data.path=''", "data.path=", "data.path='  '"):
        (line,) = _problems(setting)
        assert "data.path: empty" in line, line
    for setting in ("data.labels=''", "data.labels="):
        (line,) = _problems(setting)
        assert "data.labels: empty" in line, line


def test_problems_of_an_overridden_field_are_located_at_set_and_in_the_file_at_its_line():
    for setting, msg in (("data.class_names=[a]", "at least two classes"),
                         ("data.class_names=[a, a]", "its own name"),
                         ("data.labels=''", "empty")):
        (line,) = _problems(setting)
        assert line.startswith("`overrides`: data.") and msg in line, line
    text = SPEC.replace("  labels: subdirs\n", "  labels: none\n  class_names: [a, b]\n")
    with pytest.raises(SpecError) as e:
        load_text(text, "x.yaml")
    assert str(e.value.problems[0]).startswith("x.yaml:8:"), str(e.value)  # class_names' line


def test_labels_dataset_json_is_the_word_passed_to_scan_not_a_path(tmp_path, monkeypatch):
    """Only this side: the word reaches scan unchanged (the images package finds the
    dataset.json at the folder's root) and no ./dataset.json beside the spec is looked for."""
    loaded = load_text(SPEC.replace("labels: subdirs", "labels: dataset.json"),
                       str(tmp_path / "x.yaml"), path=tmp_path / "x.yaml")
    (tmp_path / "pics").mkdir()
    ds = dataset_for(loaded.spec.data, loaded.base_dir)
    ds.check_paths(loaded)  # no "no such labels file: …/dataset.json"
    seen = []

    def scan(path, labels):
        seen.append((path, labels))
        raise DataError("stop here")

    monkeypatch.setattr(images, "scan", scan)
    with pytest.raises(DataError, match="stop here"):
        ds.load()
    assert seen == [(tmp_path / "pics", "dataset.json")]


def test_a_set_value_that_is_not_utf8_or_not_yaml_is_one_line():
    (line,) = _problems("data.path=/tmp/\udcff")  # as Python decodes a non-UTF-8 argv
    assert line.startswith("`overrides`: data.path:") and "not UTF-8" in line, line
    assert "\n" not in line and "#x" not in line
    (line,) = _problems("data.path=[a")
    assert "not valid YAML" in line and "\n" not in line, line


def test_a_class_folder_name_of_255_undecodable_bytes_can_be_recorded():
    """A run records the class names it found in its spec.yaml, which is validated when read
    back: a folder's name may be 255 bytes, each shown as \\xNN."""
    long = "\\xff" * 255
    data = ImagesData(dataset="images", path="p", size=(8, 8), labels="subdirs",
                      class_names=[long, "b"])
    assert data.class_names[0] == long
