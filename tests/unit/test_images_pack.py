"""Packing an image folder into the cache (advgraph.data.images.pack): the cache entry is used
when sound and prepared again when damaged, linked or stale; the folder changing under the
preparation is an error; parallel decoding gives the same bytes; unusable files are left out and
named; memory is checked first; an unwritable cache is a warning; Ctrl-C leaves nothing behind.
The oracle for the pixels is Pillow itself on files already at the prepared size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import importlib

from advgraph.data.images import decode as decoding
from advgraph.data.images import pack, parallel
from advgraph.data.images.decode import Preparation
from advgraph.errors import DataError, WriteError

scan = importlib.import_module("advgraph.data.images.scan")  # the package's `scan` is the function
PREP = Preparation(size=(8, 8), channels=1)


def write_folder(root: Path, n: int, seed: int = 0, classes: int = 0) -> dict[str, np.ndarray]:
    """n 8×8 greyscale PNGs named 0000.png… (in class folders c0/, c1/… when `classes`): their
    pixels by name."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pixels = {}
    for i in range(n):
        img = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        name = f"c{i % classes}/{i:04d}.png" if classes else f"{i:04d}.png"
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(img, "L").save(root / name)
        pixels[name] = img
    return pixels


def stacked(pixels: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.stack([pixels[k] for k in names])[:, None]


def cache_files() -> list[str]:
    from advgraph.cache import cache_dir

    folder = cache_dir("images")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


class Calls:
    """decode, counted (in this process)."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = decoding.decode

        def counted(fp, prep):
            self.n += 1
            return real(fp, prep)

        monkeypatch.setattr(decoding, "decode", counted)


def prepared(folder: Path, labels: str = "none", **kw) -> pack.Packed:
    warnings: list[str] = []
    kw.setdefault("warn", warnings.append)
    packed = pack.prepare(scan.scan(folder, labels), PREP, **kw)
    packed.warnings = warnings  # type: ignore[attr-defined]
    return packed


def test_the_second_run_reads_the_cache_and_decodes_nothing(tmp_path, monkeypatch):
    expected = write_folder(tmp_path / "imgs", 20)
    first = prepared(tmp_path / "imgs", workers=1)
    assert not first.cached and first.path is not None and first.warnings == []
    assert first.names == sorted(expected)
    np.testing.assert_array_equal(first.images, stacked(expected, first.names))
    calls = Calls(monkeypatch)
    second = prepared(tmp_path / "imgs", workers=1)
    assert second.cached and calls.n == 0 and second.warnings == []
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    np.testing.assert_array_equal(second.images, first.images)
    assert second.sha256 == first.sha256 and second.names == first.names
    # what later runs read is an .npy that numpy itself maps
    np.testing.assert_array_equal(np.load(second.path, mmap_mode="r"), first.images)
    assert [n for n in cache_files() if ".tmp" in n] == []


def test_two_processes_preparing_at_once_leave_one_sound_entry(tmp_path):
    import multiprocessing

    write_folder(tmp_path / "imgs", 300)
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(2)

    def race():
        start.wait()
        packed = pack.prepare(scan.scan(tmp_path / "imgs"), PREP, workers=1)
        os._exit(0 if packed.path is not None else 1)

    racers = [ctx.Process(target=race) for _ in range(2)]
    for p in racers:
        p.start()
    for p in racers:
        p.join(60)
    assert [p.exitcode for p in racers] == [0, 0]
    after = prepared(tmp_path / "imgs", workers=1)
    assert after.cached and after.warnings == [] and len(after.images) == 300
    assert len(cache_files()) == 2  # one .npy and its record, no temporary file


def test_a_damaged_entry_is_prepared_again_with_a_warning(tmp_path, monkeypatch):
    write_folder(tmp_path / "imgs", 10)
    first = prepared(tmp_path / "imgs", workers=1)
    before = np.array(first.images)  # the map would show the damage written below
    data = bytearray(first.path.read_bytes())
    data[-5] ^= 0xFF  # one pixel of the last image
    first.path.write_bytes(bytes(data))
    calls = Calls(monkeypatch)
    again = prepared(tmp_path / "imgs", workers=1)
    assert not again.cached and calls.n == 10
    assert any("SHA-256 does not match" in w and "preparing them again" in w
               for w in again.warnings)
    np.testing.assert_array_equal(again.images, before)
    assert prepared(tmp_path / "imgs", workers=1).cached  # repaired


def test_a_truncated_entry_is_prepared_again(tmp_path):
    write_folder(tmp_path / "imgs", 10)
    first = prepared(tmp_path / "imgs", workers=1)
    with open(first.path, "r+b") as f:
        f.truncate(first.path.stat().st_size - 64)
    again = prepared(tmp_path / "imgs", workers=1)
    assert not again.cached and any("bytes, expected" in w for w in again.warnings)


def test_a_symlinked_entry_is_refused(tmp_path):
    write_folder(tmp_path / "imgs", 10)
    first = prepared(tmp_path / "imgs", workers=1)
    elsewhere = tmp_path / "elsewhere.npy"
    elsewhere.write_bytes(first.path.read_bytes())  # the same bytes: only the link is wrong
    first.path.unlink()
    first.path.symlink_to(elsewhere)
    again = prepared(tmp_path / "imgs", workers=1)
    assert not again.cached and any("symbolic link" in w for w in again.warnings)
    assert not again.path.is_symlink()  # replaced by a file, not written through


def test_a_changed_file_is_prepared_again(tmp_path, monkeypatch):
    write_folder(tmp_path / "imgs", 10)
    first = prepared(tmp_path / "imgs", workers=1)
    img = tmp_path / "imgs" / "0003.png"
    Image.fromarray(np.full((8, 8), 7, np.uint8), "L").save(img)
    os.utime(img, ns=(1, 1))
    calls = Calls(monkeypatch)
    again = prepared(tmp_path / "imgs", workers=1)
    assert not again.cached and calls.n == 10 and again.warnings == []
    assert (again.images[3] == 7).all() and again.sha256 != first.sha256
    # the entry of the folder as it was is gone: the cache holds one entry per folder
    assert cache_files() == sorted([again.path.name, again.path.with_suffix(".json").name])


def test_a_record_that_does_not_match_the_files_is_refused(tmp_path):
    import json

    write_folder(tmp_path / "imgs", 10)
    (tmp_path / "imgs" / "0002.png").write_bytes(b"junk")
    first = prepared(tmp_path / "imgs", workers=1)
    record = first.path.with_suffix(".json")
    meta = json.loads(record.read_text())
    assert [name for name, _ in meta["decode_skipped"]] == ["0002.png"]
    for forged in ([["0004.png", "forged"]], []):  # the wrong rows; one row too many
        meta["decode_skipped"] = forged
        record.write_text(json.dumps(meta))
        again = prepared(tmp_path / "imgs", workers=1)
        assert not again.cached and again.names == first.names
        assert any("does not match the files listed" in w for w in again.warnings)


def test_temporary_files_of_killed_preparations_are_removed(tmp_path):
    import socket
    import subprocess

    write_folder(tmp_path / "imgs", 5)
    first = prepared(tmp_path / "imgs", workers=1)
    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid that has ended
    host = socket.gethostname()
    slot = first.path.name[:16]
    killed = first.path.parent / f"{slot}{'0' * 16}.npy.tmp-{host}-{proc.pid}"
    running = first.path.parent / f"{slot}{'0' * 16}.npy.tmp-{host}-{os.getpid()}"
    other = first.path.parent / f"{'f' * 32}.npy.tmp-{host}-{proc.pid}"  # another folder's
    for p in (killed, running, other):
        p.write_bytes(b"")
    os.utime(tmp_path / "imgs" / "0001.png", ns=(1, 1))
    again = prepared(tmp_path / "imgs", workers=1)
    assert sorted(cache_files()) == sorted([again.path.name, again.path.with_suffix(".json").name,
                                            running.name, other.name])


@pytest.mark.parametrize("workers", [1, 2])
def test_the_folder_changing_while_it_is_prepared_is_an_error(tmp_path, workers):
    write_folder(tmp_path / "imgs", 200)

    def touch(done, total):
        if done == 0:  # before any file is read: caught as it is read
            os.utime(tmp_path / "imgs" / "0150.png", ns=(1, 1))

    with pytest.raises(DataError, match=r"imgs changed while it was being prepared \(0150.png "
                                        r"modified since it was listed\); run again"):
        prepared(tmp_path / "imgs", workers=workers, progress=touch)
    assert cache_files() == []  # nothing cached, no temporary file


def settled(root: Path) -> None:
    """Every folder's and file's times a day back: a folder written long before it is used."""
    old = (os.stat(root).st_mtime_ns - 86_400 * 10**9,) * 2
    for folder, _, files in os.walk(root, topdown=False):
        for f in files:
            os.utime(os.path.join(folder, f), ns=old)
        os.utime(folder, ns=old)


class Scans:
    """scan, counted: the listing again after decoding is what the folders' mtimes spare."""

    def __init__(self, monkeypatch):
        self.n, real = 0, pack.scan

        def counted(*a, **k):
            self.n += 1
            return real(*a, **k)

        monkeypatch.setattr(pack, "scan", counted)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_settled_folder_is_not_listed_again_and_a_file_added_is_still_caught(
        tmp_path, monkeypatch, workers):
    write_folder(tmp_path / "imgs", 200, classes=2)
    settled(tmp_path / "imgs")
    scans = Scans(monkeypatch)
    assert prepared(tmp_path / "imgs", labels="subdirs", workers=workers).images.shape[0] == 200
    assert scans.n == 0  # the folders' mtimes said nothing was added or removed
    from advgraph.cache import cache_dir

    for p in cache_dir("images").iterdir():  # prepared again, not read from the cache
        p.unlink()

    def add(done, total):
        if done == total:  # after every file was read
            Image.new("L", (8, 8)).save(tmp_path / "imgs" / "c1" / "new.png")

    with pytest.raises(DataError, match=r"changed while it was being prepared \(files 1 added: "
                                        r"c1/new.png\)"):
        prepared(tmp_path / "imgs", labels="subdirs", workers=workers, progress=add)
    assert scans.n == 1 and cache_files() == []


def test_a_folder_modified_just_before_the_scan_is_listed_again(tmp_path, monkeypatch):
    write_folder(tmp_path / "imgs", 20)  # just written: its mtime could hide a change
    scans = Scans(monkeypatch)
    prepared(tmp_path / "imgs", workers=1)
    assert scans.n == 1


def test_two_workers_give_the_same_bytes_as_one(tmp_path, monkeypatch):
    expected = write_folder(tmp_path / "imgs", 300, classes=3)
    (tmp_path / "imgs" / "c1" / "0100.png").write_bytes(b"not a png")
    one = prepared(tmp_path / "imgs", labels="subdirs", workers=1)
    from advgraph.cache import cache_dir

    for p in cache_dir("images").iterdir():
        p.unlink()
    used = []
    real = parallel._in_workers
    monkeypatch.setattr(parallel, "_in_workers", lambda *a: used.append(a[2]) or real(*a))
    two = prepared(tmp_path / "imgs", labels="subdirs", workers=2)
    assert used == [2] and not two.cached
    assert two.images.tobytes() == one.images.tobytes() and two.sha256 == one.sha256
    assert two.names == one.names and two.labels.tolist() == one.labels.tolist()
    assert [s.name for s in two.skipped] == ["c1/0100.png"] == [s.name for s in one.skipped]
    del expected["c1/0100.png"]
    assert two.names == sorted(expected)
    np.testing.assert_array_equal(two.images, stacked(expected, two.names))
    assert two.labels.tolist() == [int(k[1]) for k in two.names]


def test_a_zip_in_two_workers_gives_the_folder_s_bytes(tmp_path):
    """Each worker reads the zip through its own handle (a forked one shares the file offset)."""
    import zipfile

    expected = write_folder(tmp_path / "imgs", 200)
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as z:
        for name in sorted(expected):
            z.write(tmp_path / "imgs" / name, name)
    folder = prepared(tmp_path / "imgs", workers=1)
    zipped = prepared(tmp_path / "imgs.zip", workers=2)
    assert zipped.names == folder.names and zipped.sha256 == folder.sha256
    assert prepared(tmp_path / "imgs.zip", workers=2).cached


def test_names_that_are_not_utf8_survive_the_record(tmp_path):
    expected = write_folder(tmp_path / "imgs", 3)
    odd = os.fsdecode(b"\xff\xfe.png")  # surrogate escapes, as the file system gives it
    os.rename(tmp_path / "imgs" / "0001.png", tmp_path / "imgs" / odd)
    first = prepared(tmp_path / "imgs", workers=1)
    assert odd in first.names
    again = prepared(tmp_path / "imgs", workers=1)
    assert again.cached and again.names == first.names and again.warnings == []
    np.testing.assert_array_equal(again.images[first.names.index(odd), 0], expected["0001.png"])


def test_unusable_files_are_left_out_and_named(tmp_path):
    expected = write_folder(tmp_path / "imgs", 12)
    (tmp_path / "imgs" / "0002.png").write_bytes(b"plain text, no image")
    good = (tmp_path / "imgs" / "0005.png").read_bytes()
    (tmp_path / "imgs" / "0005.png").write_bytes(good[: len(good) // 2])  # truncated
    packed = prepared(tmp_path / "imgs", workers=1)
    keep = [f"{k:04d}.png" for k in range(12) if k not in (2, 5)]
    assert packed.names == keep
    np.testing.assert_array_equal(packed.images, stacked(expected, keep))
    assert [s.name for s in packed.skipped] == ["0002.png", "0005.png"]
    assert all(s.reason for s in packed.skipped)
    assert packed.warnings[:2] == [f"skipped 0002.png: {packed.skipped[0].reason}",
                                   f"skipped 0005.png: {packed.skipped[1].reason}"]
    # both named on their own lines: the count does not name them again
    assert packed.warnings[2:] == ["skipped 2 of 12 files that cannot be used"]
    # the compacted entry is what the cache holds, and what numpy reads from it
    np.testing.assert_array_equal(np.load(packed.path), packed.images)
    again = prepared(tmp_path / "imgs", workers=1)
    assert again.cached and again.skipped == packed.skipped and again.names == packed.names
    assert again.warnings == [f"skipped 2 of 12 files that cannot be used: 0002.png "
                              f"({packed.skipped[0].reason}), 0005.png "
                              f"({packed.skipped[1].reason})"]  # not named one per line


def test_a_folder_left_out_is_not_counted_as_a_file(tmp_path):
    write_folder(tmp_path / "imgs", 4)
    os.symlink(tmp_path / "imgs", tmp_path / "imgs" / "self")
    packed = prepared(tmp_path / "imgs", workers=1)
    assert packed.warnings == ["skipped self/: link to a folder that holds this one, not "
                               "followed"]
    (tmp_path / "imgs" / "0001.png").write_bytes(b"junk")
    packed = prepared(tmp_path / "imgs", workers=1)
    assert packed.warnings[2] == "skipped 1 of 4 files that cannot be used and 1 folder"


def test_names_in_the_labels_file_that_match_no_file_are_warned_about(tmp_path):
    write_folder(tmp_path / "imgs", 3)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\n0000.png,0\n0001.PNG,1\n../x.png,1\n0002.png,1\n")
    packed = prepared(tmp_path / "imgs", labels=str(labels), workers=1)
    assert packed.warnings == [
        "2 names in the labels file match no image file: 0001.PNG, ../x.png (names are paths "
        "inside the folder, '/'-separated, case-sensitive)"]
    labels.write_text("file,label\n" + "".join(f"{k}.png,1\n" for k in range(7))
                      + "0000.png,0\n")
    again = prepared(tmp_path / "imgs", labels=str(labels), workers=1)
    assert again.warnings == [
        "7 names in the labels file match no image file: 0.png, 1.png, 2.png, 3.png, 4.png, "
        "… (names are paths inside the folder, '/'-separated, case-sensitive)"]
    labels.write_text("file,label\n0000.png,0\nnope.png,1\n")
    assert prepared(tmp_path / "imgs", labels=str(labels), workers=1).warnings[0].startswith(
        "1 name in the labels file matches no image file: nope.png (")


def test_many_unusable_files_are_named_ten_then_counted(tmp_path):
    write_folder(tmp_path / "imgs", 20)
    for k in range(12):
        (tmp_path / "imgs" / f"{k:04d}.png").write_bytes(b"junk")
    packed = prepared(tmp_path / "imgs", workers=1)
    assert len(packed.images) == 8 and len(packed.skipped) == 12
    assert [w.split(":")[0] for w in packed.warnings[:10]] == [
        f"skipped {k:04d}.png" for k in range(10)]
    assert len(packed.warnings) == 11
    assert packed.warnings[10].startswith("skipped 12 of 20 files that cannot be used; the "
                                          "first: 0000.png (")
    assert packed.warnings[10].endswith(", …")


def test_no_usable_file_is_an_error(tmp_path):
    (tmp_path / "imgs").mkdir()
    for k in range(3):
        (tmp_path / "imgs" / f"{k}.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"imgs: none of the 3 files is a usable image \(first "
                                        r"problems: 0.png: "):
        prepared(tmp_path / "imgs", workers=1)
    assert cache_files() == []


def test_memory_is_checked_before_anything_is_decoded(tmp_path, monkeypatch):
    import advgraph.memory

    write_folder(tmp_path / "imgs", 10)
    calls = Calls(monkeypatch)
    monkeypatch.setattr(advgraph.memory, "available_bytes", lambda: 4 * 10 * 64 - 1)
    with pytest.raises(DataError, match=r"imgs: 10 images of 1×8×8 as float32 would need "):
        prepared(tmp_path / "imgs", workers=1)
    assert calls.n == 0 and cache_files() == []
    monkeypatch.setattr(advgraph.memory, "available_bytes", lambda: 4 * 10 * 64)
    assert len(prepared(tmp_path / "imgs", workers=1).images) == 10


def test_an_unwritable_cache_is_a_warning(tmp_path, monkeypatch):
    expected = write_folder(tmp_path / "imgs", 10)
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("ADVGRAPH_CACHE", str(tmp_path / "afile"))
    packed = prepared(tmp_path / "imgs", workers=1)
    assert packed.path is None and not packed.cached
    np.testing.assert_array_equal(packed.images, stacked(expected, packed.names))
    assert len(packed.warnings) == 1 and "cannot be cached" in packed.warnings[0]
    assert "preparing them in memory" in packed.warnings[0]


def test_preparing_in_memory_needs_room_for_the_uint8_copy_too(tmp_path, monkeypatch):
    import advgraph.memory

    write_folder(tmp_path / "imgs", 10)
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("ADVGRAPH_CACHE", str(tmp_path / "afile"))
    monkeypatch.setattr(advgraph.memory, "available_bytes", lambda: 5 * 10 * 64 - 1)
    with pytest.raises(DataError, match=r"10 images of 1×8×8 as float32 beside their uint8 copy "
                                        r"\(not cached\) would need"):
        prepared(tmp_path / "imgs", workers=1)


def test_no_room_in_the_cache_prepares_in_memory(tmp_path, monkeypatch):
    import errno

    from advgraph.data.images import store

    def full(fd, size, folder):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    write_folder(tmp_path / "imgs", 10)
    monkeypatch.setattr(store, "reserve", full)
    packed = prepared(tmp_path / "imgs", workers=1)
    assert packed.path is None and "No space left on device" in packed.warnings[0]
    assert cache_files() == []  # the temporary file is gone


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_leaves_no_temporary_file(tmp_path, workers):
    write_folder(tmp_path / "imgs", 200)

    def interrupt(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepared(tmp_path / "imgs", workers=workers, progress=interrupt)
    assert cache_files() == []
    assert prepared(tmp_path / "imgs", workers=workers).path is not None


def test_the_workers_leave_ctrl_c_to_the_main_process(tmp_path):
    """A real Ctrl-C reaches every process of the terminal's group: the workers ignore it (the
    main process alone stops, and cleans up; the tests above): sent to them alone, it changes
    nothing."""
    import multiprocessing
    import signal

    expected = write_folder(tmp_path / "imgs", 300)
    sent = []

    def interrupt_workers(done, total):
        if 0 < done < total and not sent:
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signal.SIGINT)
                sent.append(worker.pid)

    packed = prepared(tmp_path / "imgs", workers=2, progress=interrupt_workers)
    np.testing.assert_array_equal(packed.images, stacked(expected, packed.names))
    assert len(packed.images) == 300


def test_a_worker_that_dies_is_an_error(tmp_path, monkeypatch):
    write_folder(tmp_path / "imgs", 200)
    parent = os.getpid()

    def crash(fp, prep):
        if os.getpid() != parent:
            os._exit(3)

    monkeypatch.setattr(decoding, "decode", crash)
    with pytest.raises(DataError, match="a process decoding the images died"):
        prepared(tmp_path / "imgs", workers=2)
    assert cache_files() == []


def test_write_npz_round_trip(tmp_path):
    write_folder(tmp_path / "imgs", 9, classes=3)
    packed = prepared(tmp_path / "imgs", labels="subdirs", workers=1)
    out = tmp_path / "out" / "data.npz"
    pack.write_npz(packed, out)
    with np.load(out, allow_pickle=False) as z:
        assert sorted(z.keys()) == ["class_names", "files", "x", "y"]
        assert z["x"].dtype == np.uint8 and z["y"].dtype == np.int64
        assert packed.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        # rows in a seeded random order (npz's valid/test come from the end: not one class),
        # each still with its own file's pixels and label
        assert z["files"].tolist() != packed.names and sorted(z["files"]) == packed.names
        row = {name: i for i, name in enumerate(packed.names)}
        for j, name in enumerate(z["files"].tolist()):
            np.testing.assert_array_equal(z["x"][j], packed.images[row[name]])
            assert z["y"][j] == packed.labels[row[name]]
        assert z["class_names"].tolist() == ["c0", "c1", "c2"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["data.npz"]


def test_write_npz_refuses_a_link_and_a_folder(tmp_path):
    write_folder(tmp_path / "imgs", 3)
    packed = prepared(tmp_path / "imgs", workers=1)
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "link.npz").symlink_to(target)
    with pytest.raises(WriteError, match="symbolic link"):
        pack.write_npz(packed, tmp_path / "link.npz")
    assert target.read_text() == "keep"
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(WriteError, match="a directory"):
        pack.write_npz(packed, tmp_path / "dir.npz")
    pack.write_npz(packed, tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz") as z:
        assert sorted(z.keys()) == ["files", "x"]


def test_default_workers_follow_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert parallel.default_workers(60_000) == 3
    assert parallel.default_workers(100) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert parallel.default_workers(60_000) == parallel.MAX_WORKERS


# ---- advgraph data inspect (survey.py) ----------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_survey_counts_what_is_there_and_says_what_preparing_does(tmp_path, workers):
    from advgraph.data.images.survey import survey

    root = tmp_path / "imgs"
    write_folder(root, 120, classes=2)  # 8×8 L PNGs: nothing to do to them
    Image.fromarray(np.zeros((10, 16, 4), np.uint8), "RGBA").save(root / "c0" / "rgba.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8), "RGB").save(root / "c1" / "rgb.jpg")
    (root / "c1" / "bad.png").write_bytes(b"junk")
    good = (root / "c0" / "0000.png").read_bytes()
    (root / "c0" / "cut.png").write_bytes(good[:len(good) // 2])
    s = survey(scan.scan(root, "subdirs"), PREP, workers=workers)
    assert (s.files, s.usable) == (124, 122)
    # the usable images only: not bad.png (no header) nor cut.png (a header, then nothing)
    assert s.formats == {"PNG": 121, "JPEG": 1}
    assert s.modes == {"L": 120, "RGBA": 1, "RGB": 1}
    assert s.sizes == {(8, 8): 121, (16, 10): 1}  # (W, H) as stored
    assert s.classes == {"c0": 61, "c1": 61}
    assert [p.name for p in s.problems] == ["c0/cut.png", "c1/bad.png"]
    assert "truncated or corrupt PNG" in s.problems[0].reason
    assert s.plan == [
        "122 images → (1, 8, 8) uint8, 0.0 MB in the cache; training holds 0.0 MiB of them "
        "as float32",
        "1 of 122 resized to 8×8 (crop: scaled to cover, then the centre cut out)",
        "1 with transparency composited over (0, 0, 0)",
        "2 in colour converted to greyscale",
        "skipped 2 files that cannot be used"]
    # what the survey found usable is what preparing keeps
    packed = prepared(root, labels="subdirs", workers=1)
    assert len(packed.images) == s.usable and packed.skipped == s.problems


def test_a_folder_labelled_by_its_own_dataset_json_is_prepared_and_then_cached(tmp_path):
    import json

    write_folder(tmp_path / "imgs", 6)
    (tmp_path / "imgs" / "dataset.json").write_text(json.dumps(
        {"labels": [[f"{i:04d}.png", i % 2] for i in range(6)]}))
    first = prepared(tmp_path / "imgs", labels="dataset.json", workers=1)
    assert first.labels.tolist() == [0, 1, 0, 1, 0, 1] and not first.cached
    assert prepared(tmp_path / "imgs", labels="dataset.json", workers=1).cached


def test_survey_counts_files_not_folders_names_unmatched_labels_and_1_bit(tmp_path):
    from advgraph.data.images.survey import survey

    root = tmp_path / "imgs"
    write_folder(root, 3)
    Image.new("1", (8, 8)).save(root / "bits.png")
    os.symlink(root, root / "self")
    os.symlink(root / "gone.png", root / "broken.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\n0000.png,0\nbits.png,1\nmissing.png,1\n")
    s = survey(scan.scan(root, str(labels)), PREP, workers=1)
    assert (s.files, s.usable) == (5, 4)  # 4 read and broken.png; self/ is a folder
    assert s.modes == {"L": 3, "1-bit": 1}
    assert [(p.name, p.reason.split(" (")[0]) for p in s.problems] == [
        ("broken.png", "broken symbolic link"),
        ("self/", "link to a folder that holds this one, not followed"),
        ("missing.png", "in the labels file, but no image file has this name")]
    assert s.plan[-2:] == ["skipped 1 file that cannot be used",
                           "1 folder left out (see the problems)"]


def test_survey_of_a_folder_with_no_usable_file_raises_prepare_s_error(tmp_path):
    from advgraph.data.images.survey import NoneUsable, survey

    (tmp_path / "imgs").mkdir()
    for k in range(3):
        (tmp_path / "imgs" / f"{k}.png").write_bytes(b"junk")
    listing = scan.scan(tmp_path / "imgs")
    with pytest.raises(DataError) as prepare_error:
        pack.prepare(listing, PREP, workers=1)
    with pytest.raises(NoneUsable) as e:
        survey(listing, PREP, workers=1)
    assert str(e.value) == str(prepare_error.value) and "\n" not in str(e.value)
    assert (e.value.survey.files, e.value.survey.usable) == (3, 0)
    assert len(e.value.survey.problems) == 3


def test_a_folder_prepared_with_and_without_its_classes_keeps_an_entry_for_each(
        tmp_path, monkeypatch):
    """A DCGAN (labels none) and a cDCGAN (labels subdirs) on one folder: storing one's entry
    does not remove the other's, so neither decodes the folder again."""
    write_folder(tmp_path / "imgs", 12, classes=2)
    for labels in ("none", "subdirs"):
        assert not prepared(tmp_path / "imgs", labels=labels, workers=1).cached
    for labels in ("none", "subdirs"):
        assert prepared(tmp_path / "imgs", labels=labels, workers=1).cached
