"""The files of an image folder or zip (advgraph.data.images.scan and walk), labels files and
the train/valid/test split. Every folder and zip is built here, in tmp_path."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advgraph.data.images import labels as labels_mod
from advgraph.data.images import walk
from advgraph.data.images.labels import read_labels, read_labels_file
from advgraph.data.images.scan import Entry, scan, shown
from advgraph.data.images.split import split_indices
from advgraph.errors import DataError


def png(colour=(255, 0, 0), size=(4, 3)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def put(root: Path, name: str, data: bytes | None = None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png() if data is None else data)
    return path


def names(listing) -> list[str]:
    return [e.name for e in listing.entries]


def reasons(listing) -> dict[str, str]:
    return {s.name: s.reason for s in listing.skipped}


# ---- a folder --------------------------------------------------------------------------------


def test_a_folder_is_walked_recursively_sorted_with_slash_names(tmp_path):
    for n in ["b/z.png", "a/y/x.png", "a/b.png", "top.png", "a/y/a.txt"]:
        put(tmp_path, n)
    listing = scan(tmp_path)
    assert names(listing) == ["a/b.png", "a/y/a.txt", "a/y/x.png", "b/z.png", "top.png"]
    assert [e.label for e in listing.entries] == [-1] * 5
    assert listing.class_names is None and not listing.is_zip and listing.skipped == []
    e = listing.entries[0]
    st = os.stat(tmp_path / "a/b.png")
    assert (e.size, e.mtime_ns) == (st.st_size, st.st_mtime_ns)
    with listing.open(e) as f:
        assert f.read() == (tmp_path / "a/b.png").read_bytes()


def test_hidden_files_macosx_and_dataset_json_are_not_candidates(tmp_path):
    put(tmp_path, "a/ok.png")
    put(tmp_path, ".DS_Store", b"junk")
    put(tmp_path, "a/._ok.png", b"junk")
    put(tmp_path, ".git/objects/x.png")  # a hidden folder counts once
    put(tmp_path, "__MACOSX/a/._ok.png", b"junk")
    put(tmp_path, "dataset.json", b'{"labels": null}')
    put(tmp_path, "a/dataset.json", b"{}")  # only the root's is left out
    listing = scan(tmp_path)
    assert names(listing) == ["a/dataset.json", "a/ok.png"]
    assert listing.ignored == 4 and listing.skipped == []


def test_links_to_files_and_folders_are_followed(tmp_path):
    data = tmp_path / "data"
    put(tmp_path, "elsewhere/pic.png")
    put(data, "a/one.png")
    os.symlink(tmp_path / "elsewhere", data / "linked")
    os.symlink(tmp_path / "elsewhere/pic.png", data / "a/alias.png")
    listing = scan(data)
    assert names(listing) == ["a/alias.png", "a/one.png", "linked/pic.png"]
    with listing.open(listing.entries[0]) as f:
        assert f.read() == png()


def test_a_link_loop_a_link_to_itself_and_a_broken_link_are_skipped_by_name(tmp_path):
    put(tmp_path, "a/one.png")
    os.symlink(tmp_path / "a", tmp_path / "a/up")  # a loop back to its folder
    os.symlink(tmp_path / "a/self", tmp_path / "a/self")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "a/broken.png")
    listing = scan(tmp_path)
    assert names(listing) == ["a/one.png"]
    assert reasons(listing) == {"a/up/": "symbolic link loop, not followed",
                                "a/self": "symbolic link loop, not followed",
                                "a/broken.png": "broken symbolic link"}


def test_a_link_to_the_root_or_a_folder_holding_it_is_not_followed(tmp_path):
    """`ln -s / everything` walked the whole file system."""
    root = tmp_path / "data"
    put(root, "a/one.png")
    put(tmp_path, "beside.png")
    os.symlink("/", root / "everything")
    os.symlink(tmp_path, root / "a/parent")
    os.symlink(root, root / "a/root")
    os.symlink("..", root / "up")
    os.symlink(tmp_path.parent, root / "grandparent")
    put(tmp_path, "other/x.png")
    os.symlink(tmp_path / "other", root / "other")  # an unrelated folder: followed
    listing = scan(root)
    assert names(listing) == ["a/one.png", "other/x.png"]
    holds = "link to a folder that holds this one, not followed"
    assert reasons(listing) == {"everything/": holds, "a/parent/": holds, "a/root/": holds,
                                "up/": holds, "grandparent/": holds}
    # reached through a link itself: the folders that hold the link hold it too
    os.symlink(root, tmp_path / "via")
    assert names(scan(tmp_path / "via")) == ["a/one.png", "other/x.png"]


def test_two_links_into_one_folder_walk_it_once_more_at_most(tmp_path):
    put(tmp_path, "d/x.png")
    os.symlink(tmp_path / "d", tmp_path / "l1")
    os.symlink(tmp_path / "d", tmp_path / "l2")
    listing = scan(tmp_path)
    assert names(listing) == ["d/x.png"]
    assert set(reasons(listing)) == {"l1/", "l2/"}


def test_a_fifo_is_skipped_and_never_opened(tmp_path):
    put(tmp_path, "ok.png")
    os.mkfifo(tmp_path / "pipe.png")
    listing = scan(tmp_path)  # would block forever if the FIFO were opened for reading
    assert names(listing) == ["ok.png"]
    assert reasons(listing) == {"pipe.png": "a FIFO (named pipe), not a regular file"}
    # a file replaced by a FIFO after the scan: open refuses it without blocking
    with pytest.raises(OSError, match="not a regular file"):
        listing.open(Entry("pipe.png", 0, 0))


def test_an_unreadable_file_and_folder_are_skipped_as_permission_denied(tmp_path, monkeypatch):
    put(tmp_path, "ok.png")
    os.chmod(put(tmp_path, "secret.png"), 0)
    put(tmp_path, "locked/in.png")
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    # root can read anything: stand in for a user who cannot
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).endswith("secret.png"))
    monkeypatch.setattr(os, "scandir", scandir)
    listing = scan(tmp_path)
    assert names(listing) == ["ok.png"]
    assert reasons(listing) == {"secret.png": "permission denied",
                                "locked/": "permission denied"}


def test_a_file_over_the_size_limit_is_skipped(tmp_path, monkeypatch):
    put(tmp_path, "small.png", b"x" * 10)
    put(tmp_path, "big.png", b"x" * 11)
    monkeypatch.setattr(walk, "MAX_FILE_BYTES", 10)
    listing = scan(tmp_path)
    assert names(listing) == ["small.png"]
    assert reasons(listing)["big.png"].startswith("too large: 11 bytes")


def test_non_utf8_names_are_usable_and_shown_escaped(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT)
    os.write(fd, png())
    os.close(fd)
    listing = scan(tmp_path)
    (entry,) = listing.entries
    assert entry.name == os.fsdecode(b"caf\xe9.png")
    assert shown(entry.name) == "caf\\xe9.png"
    with listing.open(entry) as f:
        assert f.read() == png()
    assert len(listing.fingerprint()) == 64
    assert shown("a\nb.png") == "a\\x0ab.png" and shown("été.png") == "été.png"


# ---- classes from folders --------------------------------------------------------------------


def test_subdirs_labels_by_sorted_first_folder(tmp_path):
    for n in ["dogs/1.png", "cats/2.png", "cats/deep/3.png", "birds/4.png"]:
        put(tmp_path, n)
    listing = scan(tmp_path, "subdirs")
    assert listing.class_names == ["birds", "cats", "dogs"]
    assert [(e.name, e.label) for e in listing.entries] == [
        ("birds/4.png", 0), ("cats/2.png", 1), ("cats/deep/3.png", 1), ("dogs/1.png", 2)]


def test_subdirs_skips_root_files_and_empty_class_folders(tmp_path):
    put(tmp_path, "cats/1.png")
    put(tmp_path, "dogs/2.png")
    put(tmp_path, "stray.png")
    (tmp_path / "empty").mkdir()
    put(tmp_path, "onlyhidden/.x.png")
    listing = scan(tmp_path, "subdirs")
    assert listing.class_names == ["cats", "dogs"]
    assert reasons(listing) == {"stray.png": "not in a class folder",
                                "empty/": "empty class folder, left out",
                                "onlyhidden/": "empty class folder, left out"}


def test_subdirs_with_one_class_is_an_error_suggesting_labels_none(tmp_path):
    put(tmp_path, "cats/1.png")
    put(tmp_path, "cats/2.png")
    with pytest.raises(DataError) as e:
        scan(tmp_path, "subdirs")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path}: ") and "\n" not in msg
    assert "at least two class folders" in msg and "'cats'" in msg and "none" in msg
    (tmp_path / "emptyclass").mkdir()
    (tmp_path / "dogs").mkdir()
    put(tmp_path, "dogs/.hidden.png")
    with pytest.raises(DataError, match=r"it has one: 'cats' with images, and 2 with none: "
                                        r"dogs/, emptyclass/ \(use `labels` none"):
        scan(tmp_path, "subdirs")


def test_subdirs_class_names_are_shown_safely(tmp_path):
    put(tmp_path, "a/1.png")
    os.mkdir(os.fsencode(tmp_path) + b"/b\xff")
    put(tmp_path, os.fsdecode(b"b\xff") + "/2.png")
    listing = scan(tmp_path, "subdirs")
    assert listing.class_names == ["a", "b\\xff"]


# ---- errors ----------------------------------------------------------------------------------


def test_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"^.*/nope: no such folder or \.zip file$"):
        scan(tmp_path / "nope")


def test_a_path_that_is_neither_folder_nor_zip_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not a folder or a readable \.zip file"):
        scan(tmp_path / "notes.txt")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(DataError, match=r"pipe: is a FIFO"):
        scan(tmp_path / "pipe")


def test_an_empty_folder_says_how_many_hidden_files_were_left_out(tmp_path):
    with pytest.raises(DataError, match=r": no image files$"):
        scan(tmp_path)
    put(tmp_path, ".a.png")
    put(tmp_path, ".b.png")
    with pytest.raises(DataError, match=r": no image files \(2 hidden files left out\)$"):
        scan(tmp_path)


def test_a_folder_of_only_unusable_files_says_why(tmp_path):
    os.symlink(tmp_path / "gone.png", tmp_path / "a.png")
    with pytest.raises(DataError, match=r": no image files \(1 unusable, e\.g\. a\.png: broken "
                                        r"symbolic link\)$"):
        scan(tmp_path)


def test_an_unreadable_root_is_an_error(tmp_path, monkeypatch):
    put(tmp_path, "a.png")

    def scandir(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match=r": cannot read the folder: Permission denied$"):
        scan(tmp_path)


# ---- a zip -----------------------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes], dirs=()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_a_zip_is_listed_like_a_folder_without_extracting(tmp_path):
    z = make_zip(tmp_path / "d.zip", {"dogs/1.png": png((0, 0, 255)), "cats/2.png": png(),
                                      "cats/.hidden.png": png(), "__MACOSX/cats/._2.png": b"x"},
                 dirs=["cats/", "dogs/", "empty/"])
    before = sorted(os.listdir(tmp_path))
    listing = scan(z, "subdirs")
    assert sorted(os.listdir(tmp_path)) == before
    assert listing.is_zip and listing.zip_stat == (z.stat().st_size, z.stat().st_mtime_ns)
    assert [(e.name, e.label, e.mtime_ns) for e in listing.entries] == [
        ("cats/2.png", 0, 0), ("dogs/1.png", 1, 0)]
    assert listing.ignored == 2
    assert reasons(listing) == {"empty/": "empty class folder, left out"}
    assert listing.open(listing.entries[1]).read() == png((0, 0, 255))


@pytest.mark.parametrize("bad", ["../up.png", "a/../../up.png", "/abs.png", "a\\b.png",
                                 "C:/win.png", "c:evil.png"])
def test_unsafe_zip_names_are_skipped(tmp_path, bad):
    z = make_zip(tmp_path / "d.zip", {"ok.png": png(), bad: png()})
    listing = scan(z)
    assert names(listing) == ["ok.png"]
    assert reasons(listing) == {bad: "unsafe name in the zip"}


def test_links_and_encrypted_members_of_a_zip_are_skipped(tmp_path):
    z = make_zip(tmp_path / "d.zip", {"ok.png": png()})
    with zipfile.ZipFile(z, "a") as zf:
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (0o120777 << 16)  # S_IFLNK, as `zip --symlinks` writes it
        zf.writestr(link, "/etc/passwd")
        zf.writestr("secret.png", b"scrambled")
    data = bytearray(z.read_bytes())  # mark it encrypted in the central directory
    at = data.rindex(b"PK\x01\x02")  # the last entry's (secret.png), flags at +8
    data[at + 8] |= 0x1
    z.write_bytes(bytes(data))
    listing = scan(z)
    assert names(listing) == ["ok.png"]
    assert reasons(listing) == {"link.png": "a symbolic link inside the zip, not followed",
                                "secret.png": "encrypted"}


def test_unsafe_zip_names_are_never_classes(tmp_path):
    z = make_zip(tmp_path / "d.zip", {"a/1.png": png(), "b/2.png": png(), "../c/3.png": png()})
    assert scan(z, "subdirs").class_names == ["a", "b"]


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not really a zip", b"\x00" * 100])
def test_a_corrupt_zip_is_a_one_line_error(tmp_path, data):
    (tmp_path / "bad.zip").write_bytes(data)
    with pytest.raises(DataError) as e:
        scan(tmp_path / "bad.zip")
    assert str(e.value).startswith(
        f"{tmp_path / 'bad.zip'}: not a folder or a readable .zip file")
    assert "\n" not in str(e.value)


def test_a_zip_member_over_the_size_limit_is_skipped_and_open_reads_at_most_the_limit(
        tmp_path, monkeypatch):
    z = make_zip(tmp_path / "d.zip", {"small.png": b"x" * 10, "big.png": b"y" * 11})
    monkeypatch.setattr(walk, "MAX_FILE_BYTES", 10)
    listing = scan(z)
    assert names(listing) == ["small.png"]
    assert reasons(listing)["big.png"].startswith("too large: 11 bytes")
    assert listing.open(listing.entries[0]).read() == b"x" * 10
    # a member that holds more than the limit (a lying header, or a changed limit)
    with pytest.raises(OSError, match="larger than the limit"):
        listing.open(Entry("big.png", 11, 0))


def test_a_zip_opened_before_a_fork_reads_right_in_the_child(tmp_path):
    rng = np.random.default_rng(0)  # larger than a read buffer: every read seeks the file
    members = {f"{i:02d}.png": rng.bytes(50_000) for i in range(20)}
    listing = scan(make_zip(tmp_path / "d.zip", members))
    assert listing.open(listing.entries[5]).read() == members["05.png"]  # opened in the parent
    fd = listing._zip.fp.fileno()
    offset = os.lseek(fd, 0, os.SEEK_CUR)
    pid = os.fork()
    if pid == 0:  # the child (a pack worker): every member
        ok = all(listing.open(e).read() == members[e.name] for e in listing.entries)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the child read through a handle of its own: had it used the parent's, the two would
    # share one file offset, and reads at the same time in both would get each other's bytes
    assert os.lseek(fd, 0, os.SEEK_CUR) == offset
    assert all(listing.open(e).read() == members[e.name] for e in reversed(listing.entries))
    clone = pickle.loads(pickle.dumps(listing))  # a spawned worker gets its own handle
    assert clone.open(clone.entries[3]).read() == members["03.png"]


# ---- fingerprint -----------------------------------------------------------------------------


def test_the_fingerprint_follows_every_change_that_decides_the_data(tmp_path):
    put(tmp_path, "cats/1.png")
    put(tmp_path, "dogs/2.png")
    first = scan(tmp_path, "subdirs").fingerprint()
    assert scan(tmp_path, "subdirs").fingerprint() == first
    seen = {first}

    def changed():
        fp = scan(tmp_path, "subdirs").fingerprint()
        assert fp not in seen
        seen.add(fp)

    st = os.stat(tmp_path / "cats/1.png")
    os.utime(tmp_path / "cats/1.png", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    changed()
    (tmp_path / "cats/1.png").write_bytes(png() + b"\0")
    changed()
    put(tmp_path, "cats/3.png")
    changed()
    (tmp_path / "cats/1.png").unlink()
    changed()
    (tmp_path / "dogs").rename(tmp_path / "wolves")
    changed()
    assert scan(tmp_path, "none").fingerprint() not in seen


def test_the_fingerprint_follows_the_labels_file_and_the_zip(tmp_path):
    put(tmp_path, "a.png")
    put(tmp_path, "b.png")
    lab = tmp_path / "labels.csv"
    lab.write_text("file,label\na.png,0\nb.png,1\n")
    first = scan(tmp_path, str(lab)).fingerprint()
    lab.write_text("file,label\na.png,1\nb.png,0\n")
    assert scan(tmp_path, str(lab)).fingerprint() != first
    z = make_zip(tmp_path / "d.zip", {"a.png": png()})
    zfp = scan(z).fingerprint()
    make_zip(z, {"a.png": png((1, 2, 3))})
    assert scan(z).fingerprint() != zfp


# ---- labels files ----------------------------------------------------------------------------


def labelled(tmp_path: Path, text: str, suffix: str, files=("a/1.png", "a/2.png", "b/3.png")):
    root = tmp_path / "imgs"
    for n in files:
        put(root, n)
    path = tmp_path / f"labels{suffix}"
    path.write_text(text, encoding="utf-8")
    return root, path


def test_a_dataset_json_gives_integer_labels(tmp_path):
    doc = {"labels": [["a/1.png", 3], ["b/3.png", 0], ["./a/2.png", None]]}
    root, path = labelled(tmp_path, json.dumps(doc), ".json")
    listing = scan(root, str(path))
    assert [e.label for e in listing.entries] == [3, -1, 0]
    assert listing.class_names is None and listing.labels == str(path)
    assert read_labels_file(path, ["b/3.png", "x.png"]) == ([0, -1], None)


def test_a_dataset_json_with_null_labels_is_unlabelled(tmp_path):
    root, path = labelled(tmp_path, '{"labels": null}', ".json")
    assert [e.label for e in scan(root, str(path)).entries] == [-1, -1, -1]


def test_a_csv_with_class_names_sorts_them(tmp_path):
    text = "id,file,label\n1,a/1.png,zebra\n2,a/2.png,ant\n3,b/3.png,\n"
    root, path = labelled(tmp_path, "\ufeff" + text, ".csv")
    listing = scan(root, str(path))
    assert listing.class_names == ["ant", "zebra"]
    assert [e.label for e in listing.entries] == [1, 0, -1]


def test_a_csv_with_integer_labels_has_no_names(tmp_path):
    root, path = labelled(tmp_path, "FILE , Label\na/1.png,2\nb/3.png,0\n\n", ".csv")
    listing = scan(root, str(path))
    assert [e.label for e in listing.entries] == [2, -1, 0] and listing.class_names is None


def test_a_labels_file_inside_the_folder_is_not_a_candidate(tmp_path):
    root, _ = labelled(tmp_path, "", ".csv")
    (root / "labels.csv").write_text("file,label\na/1.png,0\nb/3.png,1\n")
    listing = scan(root, str(root / "labels.csv"))
    assert names(listing) == ["a/1.png", "a/2.png", "b/3.png"]


def test_names_not_in_the_folder_are_reported_and_none_matching_is_an_error(tmp_path):
    root, path = labelled(tmp_path, "file,label\na/1.png,0\ngone.png,1\nalso.png,1\n"
                                    "b/broken.png,0\n", ".csv")
    os.symlink(root / "nothing", root / "b/broken.png")  # found, but skipped: not unmatched
    listing = scan(root, str(path))
    assert listing.unmatched == ["gone.png", "also.png"]
    assert read_labels(path, ["a/1.png"]).unmatched == ["gone.png", "also.png",
                                                        "b/broken.png"]
    path.write_text("file,label\nx.png,0\ny.png,1\n")
    with pytest.raises(DataError, match=r"labels\.csv: none of the 2 files it names is in the "
                                        r"folder \(the first: 'x\.png'\)"):
        scan(root, str(path))


@pytest.mark.parametrize("suffix,text,where", [
    (".json", '{"labels": [["a/1.png", 1],', r"labels\.json:1: not valid JSON"),
    (".json", '{"labels": [["a/1.png", -2]]}', r"labels\.json: labels\[0\]: the label must "
                                               r"be ≥ 0; got -2"),
    (".json", '{"labels": [["a/1.png", 1], ["b/3.png", 1.5]]}',
     r"labels\.json: labels\[1\]: the label must be a whole number"),
    (".json", '{"labels": [["a/1.png", true]]}', r"labels\[0\]: the label must be a whole"),
    (".json", '{"labels": [["a/1.png"]]}', r"labels\[0\]: each entry is \[\"file\", label\]"),
    (".json", '{"labls": []}', r'labels\.json: a JSON labels file is'),
    (".json", '{"labels": [["a/1.png", 1], ["a/1.png", 2]]}',
     r"labels\[1\]: 'a/1\.png' is labelled again, differently \(first at labels\[0\]\)"),
    (".json", '{"labels": [["a/1.png", 100000]]}', r"labels\.json: labels\[0\]: the label "
                                                   r"must be below 100,000 .*; got 100,000$"),
    (".json", '{"labels": [["a/1.png", 99999999999999999999999]]}',
     r"labels\[0\]: the label must be below 100,000 .*; got a number of 23 digits$"),
    (".json", '{"labels": [["a/1.png", ' + "9" * 5000 + ']]}', r"labels\.json: not usable JSON"),
    (".csv", "name,label\na/1.png,1\n", r"labels\.csv:1: a CSV labels file needs a header "
                                        r"with 'file' and 'label' columns; found name, label"),
    (".csv", "file,label\na/1.png,1\nb/3.png,-1\n", r"labels\.csv:3: the label must be "
                                                    r"≥ 0; got -1"),
    (".csv", "file,label\na/1.png,1\nb/3.png,99999999999999999999999\n",
     r"labels\.csv:3: the label must be below 100,000 .*; got a number of 23 digits$"),
    (".csv", "file,label\na/1.png,100000\n", r"labels\.csv:2: the label must be below 100,000 "
                                             r"\(the most classes a model has\); got 100,000$"),
    (".csv", "file,label\na/1.png," + "9" * 5000 + "\n", r"labels\.csv:2: the label must be "
                                                      r"below 100,000 .* 5,000 digits$"),
    (".csv", "file,label\n\n", r"labels\.csv: the labels file has a header but no rows$"),
    (".csv", "file,label\na/1.png,1\nb/3.png\n", r"labels\.csv:3: 1 column\(s\)"),
    (".csv", "file,label\na/1.png,1\n,2\n", r"labels\.csv:3: names no file"),
    (".csv", "file,label\na/1.png,1\na/1.png,0\n", r"labels\.csv:3: 'a/1\.png' is "
                                                   r"labelled again, differently \(first at "
                                                   r"line 2\)"),
    (".csv", "", r"labels\.csv: the labels file is empty"),
])
def test_a_malformed_labels_file_is_an_error_naming_where(tmp_path, suffix, text, where):
    root, path = labelled(tmp_path, text, suffix)
    with pytest.raises(DataError, match=where) as e:
        scan(root, str(path))
    assert "\n" not in str(e.value)


def test_the_label_limit_is_the_conditional_model_s():
    from advgraph.spec.gan import LabelCondition

    limit = [m.le for m in LabelCondition.model_fields["classes"].metadata if hasattr(m, "le")]
    assert limit == [labels_mod.MAX_LABEL]


def test_the_largest_label_is_packed(tmp_path):
    root, path = labelled(tmp_path, "file,label\na/1.png,99999\nb/3.png,0\n", ".csv")
    assert [e.label for e in scan(root, str(path)).entries] == [99999, -1, 0]


def test_a_name_listed_twice_with_the_same_label_is_fine(tmp_path):
    root, path = labelled(tmp_path, "file,label\na/1.png,1\na/1.png,1\n", ".csv")
    assert [e.label for e in scan(root, str(path)).entries] == [1, -1, -1]


def test_a_labels_file_must_be_a_small_regular_utf8_file(tmp_path, monkeypatch):
    root, path = labelled(tmp_path, "file,label\na/1.png,1\n", ".csv")
    monkeypatch.setattr(labels_mod, "MAX_LABELS_BYTES", 10)
    with pytest.raises(DataError,
                       match=r"labels\.csv: the labels file is 21 bytes; the limit is 10$"):
        read_labels_file(path, ["a/1.png"])
    monkeypatch.undo()
    path.write_bytes(b"file,label\n\xff.png,1\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_labels_file(path, ["a/1.png"])
    os.mkfifo(tmp_path / "fifo.csv")
    with pytest.raises(DataError, match=r"fifo\.csv: .*FIFO"):
        scan(root, str(tmp_path / "fifo.csv"))
    with pytest.raises(DataError, match=r"missing\.csv: the labels file cannot be read"):
        scan(root, str(tmp_path / "missing.csv"))


# ---- the split -------------------------------------------------------------------------------


def test_the_split_is_the_seeded_permutation_sorted():
    train, valid, test = split_indices(50, 5, 7, seed=3)
    perm = np.random.default_rng(3).permutation(50)
    assert test.tolist() == sorted(perm[:7].tolist())
    assert valid.tolist() == sorted(perm[7:12].tolist())
    assert train.tolist() == sorted(perm[12:].tolist())
    again = split_indices(50, 5, 7, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again))
    assert not np.array_equal(split_indices(50, 5, 7, seed=4)[2], test)
    both = np.concatenate([train, valid, test])
    assert sorted(both.tolist()) == list(range(50))  # disjoint and covering


def test_the_split_takes_shares_rounded_and_at_least_one():
    train, valid, test = split_indices(1000, 0.1, 0.25, seed=0)
    assert (len(train), len(valid), len(test)) == (650, 100, 250)
    assert [len(x) for x in split_indices(10, 0.01, 0, seed=0)] == [9, 1, 0]
    assert [len(x) for x in split_indices(7, 0, 0, seed=0)] == [7, 0, 0]
    assert [len(x) for x in split_indices(10, 2.0, 1, seed=0)] == [7, 2, 1]


@pytest.mark.parametrize("n,valid,test", [(10, 5, 5), (10, 0.5, 0.5), (3, 3, 0), (1, 0.5, 1)])
def test_a_split_without_training_images_is_an_error_naming_valid_and_test(n, valid, test):
    with pytest.raises(DataError, match=r"`valid` \(\d+\) and `test` \(\d+\) leave no training "
                                        rf"image of the {n} usable ones"):
        split_indices(n, valid, test, seed=0)


# ---- labels: dataset.json (the file at the root of the folder or zip) ---------------------


def test_labels_dataset_json_reads_the_folder_s_own(tmp_path, monkeypatch):
    root, _ = labelled(tmp_path, "", ".csv")
    (root / "dataset.json").write_text(json.dumps({"labels": [["a/1.png", 2], ["b/3.png", 0]]}))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "dataset.json").write_text('{"labels": [["a/2.png", 7]]}')
    monkeypatch.chdir(elsewhere)  # never the current folder's
    listing = scan(root, "dataset.json")
    assert [e.label for e in listing.entries] == [2, -1, 0]
    assert names(listing) == ["a/1.png", "a/2.png", "b/3.png"]
    assert listing.labels == "dataset.json" and listing.labels_file() == root / "dataset.json"
    before = listing.fingerprint()
    (root / "dataset.json").write_text(json.dumps({"labels": [["a/1.png", 1]]}))
    again = scan(root, "dataset.json")
    assert [e.label for e in again.entries] == [1, -1, -1] and again.fingerprint() != before
    # another path is a labels file by that path, as before
    assert [e.label for e in scan(root, str(elsewhere / "dataset.json")).entries] == [-1, 7, -1]


def test_labels_dataset_json_reads_the_zip_s_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        for n in ("00000/img00000000.png", "00000/img00000001.png"):
            z.writestr(n, png())
        z.writestr("dataset.json", json.dumps({"labels": [["00000/img00000000.png", 4],
                                                          ["00000/img00000001.png", 1]]}))
    listing = scan(tmp_path / "d.zip", "dataset.json")
    assert [e.label for e in listing.entries] == [4, 1] and listing.labels_file() is None
    assert names(listing) == ["00000/img00000000.png", "00000/img00000001.png"]


def test_labels_dataset_json_that_is_not_there_or_too_large_is_an_error(tmp_path, monkeypatch):
    root, _ = labelled(tmp_path, "", ".csv")
    with pytest.raises(DataError, match=r"imgs: has no dataset\.json at its root \(`labels` "
                                        r"dataset\.json reads that file"):
        scan(root, "dataset.json")
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr("a.png", png())
    with pytest.raises(DataError, match=r"d\.zip: has no dataset\.json at its root"):
        scan(tmp_path / "d.zip", "dataset.json")
    with zipfile.ZipFile(tmp_path / "d.zip", "a") as z:
        z.writestr("dataset.json", '{"labels": [["a.png", 1]]}' + " " * 100)
    monkeypatch.setattr(labels_mod, "MAX_LABELS_BYTES", 50)
    import importlib

    monkeypatch.setattr(importlib.import_module("advgraph.data.images.scan"),
                        "MAX_LABELS_BYTES", 50)
    with pytest.raises(DataError, match=r"d\.zip/dataset\.json: the labels file is 126 bytes; "
                                        r"the limit is 50$"):
        scan(tmp_path / "d.zip", "dataset.json")
    monkeypatch.undo()
    with zipfile.ZipFile(tmp_path / "e.zip", "w") as z:
        z.writestr("a.png", png())
        z.writestr("dataset.json", '{"labels": [["a.png", -1]]}')
    with pytest.raises(DataError, match=r"e\.zip/dataset\.json: labels\[0\]: the label must be "
                                        r"≥ 0"):
        scan(tmp_path / "e.zip", "dataset.json")
