"""Damaged run directories: run.json, metrics.jsonl and checkpoint state are parsed through
schemas, so damage is one `error:` line naming the file (and line), never a traceback; `runs`
shows a damaged run as `damaged` beside the healthy ones; leftover temporary files of a killed
writer are cleaned up; run names are validated whole."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

from advgraph.errors import CheckpointError, RunError, UsageError  # noqa: E402
from advgraph.names import NAME_RE, check_name  # noqa: E402
from advgraph.run.directory import RunDir  # noqa: E402
from advgraph.run.schemas import parse_checkpoint_state, parse_run_info  # noqa: E402
from tests.conftest import ROOT, SPECS  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

FAST = ["--set", "data.train=2000", "--set", "data.valid=100", "--set", "data.test=100",
        "--set", "training.stop.steps=20", "--set", "training.log_every=10",
        "--set", "training.checkpoint={steps: 10}"]
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One small finished run (20 steps, metrics every 10, checkpoints at 10 and 20)."""
    root = tmp_path_factory.mktemp("trained")
    r = cli("train", SPECS / "ring2d.yaml", "--name", "good", "--runs-dir", root, *FAST)
    assert r.exit_code == 0, r.stderr
    return root / "good"


def copy_run(trained: Path, name: str, root: Path | None = None) -> Path:
    root = root or runs_root()
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    shutil.copytree(trained, dest)
    return dest


def assert_clean_error(r, path: Path, code: int = 1) -> None:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    assert r.stderr.startswith("error: "), r.stderr
    assert str(path) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


# ---- run.json -------------------------------------------------------------------------------

RUN_JSON_DAMAGE = {
    "list": b"[1, 2, 3]\n",
    "string_step": b'{"status": "finished", "step": "20", "backend": "torch"}',
    "bool_step": b'{"status": "finished", "step": true, "backend": "torch"}',
    "float_step": b'{"status": "finished", "step": 20.0, "backend": "torch"}',
    "null_status": b'{"status": null, "step": 20}',
    "status_object": b'{"status": {"a": 1}, "step": 20}',
    "pid_string": b'{"status": "running", "pid": "123", "host": "h"}',
    "last_metrics_list": b'{"status": "finished", "last_metrics": [1, 2]}',
    "last_metrics_str_loss": b'{"status": "finished", "last_metrics": {"step": 2, "d_loss": "x"}}',
    "not_utf8": b'{"status": "fin\xff\xfeished", "step": 20}',
    "truncated": b'{"status": "finished", "st',
    "empty": b"",
    "nested": b"[" * 100_000,
}


@pytest.mark.parametrize("damage", RUN_JSON_DAMAGE, ids=list(RUN_JSON_DAMAGE))
def test_a_damaged_run_json_is_named_by_every_command(trained, damage):
    copy_run(trained, "ok")
    bad = copy_run(trained, "bad")
    (bad / "run.json").write_bytes(RUN_JSON_DAMAGE[damage])
    with pytest.raises(RunError, match="run.json"):
        RunDir(bad).info()

    listing = cli("runs")
    assert listing.exit_code == 0, listing.stderr
    lines = {ln.split()[0]: ln.split()[1] for ln in listing.stdout.splitlines()
             if ln.strip() and ln.split()[0] in ("ok", "bad")}
    assert lines == {"ok": "finished", "bad": "damaged"}
    assert f"warning: run bad is damaged: {bad / 'run.json'}" in listing.stderr
    rows = {r["name"]: r for r in json.loads(cli("runs", "--json").stdout)}
    assert rows["ok"]["status"] == "finished" and rows["ok"]["error"] is None
    assert rows["bad"]["status"] == "damaged" and str(bad / "run.json") in rows["bad"]["error"]

    for args in (["sample", "bad", "--npz", "x.npz"], ["eval", "bad", "--parzen", "--samples", "10"],
                 ["train", "--resume", "bad", "--set", "training.stop.steps=30"]):
        assert_clean_error(cli(*args), bad / "run.json")
    assert cli("plot", "bad").exit_code == 0  # plot reads metrics.jsonl only
    assert cli("sample", "ok", "--npz", "y.npz").exit_code == 0


# ---- metrics.jsonl --------------------------------------------------------------------------

def _damage_metrics(text: str, how: str) -> tuple[bytes, int]:
    """Damage the first of metrics.jsonl's lines; returns the bytes and the damaged line."""
    lines = text.splitlines()
    row = json.loads(lines[0])
    if how == "list":
        lines[0] = json.dumps([row])
    elif how == "number":
        lines[0] = "42"
    elif how == "string_loss":
        lines[0] = json.dumps({**row, "d_loss": "0.5"})
    elif how == "null_step":
        lines[0] = json.dumps({**row, "step": None})
    elif how == "no_step":
        lines[0] = json.dumps({k: v for k, v in row.items() if k != "step"})
    elif how == "garbled":
        lines[0] = lines[0][:20]  # not the last line: damage, not a crash
    elif how == "parzen_sigma_string":
        lines[0] = json.dumps({"step": 10, "parzen_sigma": "0.2", "parzen_valid": 1.0})
    blob = "\n".join(lines).encode() + b"\n"
    if how == "not_utf8":
        blob = blob.replace(b'"step"', b'"st\xffp"', 1)
    return blob, 1


METRICS_DAMAGE = ["list", "number", "string_loss", "null_step", "no_step", "garbled",
                  "parzen_sigma_string", "not_utf8"]


@pytest.mark.parametrize("how", METRICS_DAMAGE)
def test_a_damaged_metrics_line_is_named_with_its_line(trained, how):
    copy_run(trained, "ok")
    bad = copy_run(trained, "bad")
    path = bad / "metrics.jsonl"
    blob, line = _damage_metrics(path.read_text(), how)
    path.write_bytes(blob)
    with pytest.raises(RunError, match=f"metrics.jsonl:{line}: "):
        RunDir(bad).metrics()
    r = cli("plot", "bad")
    assert_clean_error(r, path)
    assert f"{path}:{line}: " in r.stderr
    # Resume rewrites metrics.jsonl: it refuses rather than drop or keep a damaged row.
    assert_clean_error(cli("train", "--resume", "bad", "--set", "training.stop.steps=30"), path)
    rows = {r["name"]: r for r in json.loads(cli("runs", "--json").stdout)}
    assert rows["ok"]["status"] == "finished"
    assert rows["bad"]["status"] == "damaged" and f"{path}:{line}" in rows["bad"]["error"]
    assert rows["bad"]["step"] == 20  # run.json is fine: what it says is still shown
    assert cli("sample", "bad", "--npz", "x.npz").exit_code == 0  # needs no metrics


def test_a_last_line_cut_short_by_a_crash_is_skipped(trained):
    run = copy_run(trained, "cut")
    path = run / "metrics.jsonl"
    whole = path.read_bytes()
    for tail in (whole[:-7], whole + b'{"step": 30, "epo', whole + b"\x00" * 64):
        path.write_bytes(tail)
        assert [r["step"] for r in RunDir(run).metrics()] in ([10], [10, 20])
        assert cli("plot", "cut").exit_code == 0
        assert json.loads(cli("runs", "--json").stdout)[0]["status"] == "finished"
    path.write_bytes(whole[:-7])
    r = cli("train", "--resume", "cut", "--set", "training.stop.steps=30")
    assert r.exit_code == 0, r.stderr
    assert [r["step"] for r in RunDir(run).metrics()] == [10, 30]  # the cut row is gone
    assert path.read_bytes().endswith(b"}\n")  # and its remains with it


def test_what_training_writes_parses(trained, tmp_path):
    """The schemas accept every file a real run writes, Parzen monitor rows included."""
    r = cli("train", SPECS / "ring2d.yaml", "--name", "mon", *FAST,
            "--set", "training.monitor={parzen: {every: {steps: 10}, samples: 50, sigma: 0.2}}")
    assert r.exit_code == 0, r.stderr
    for run in (trained, runs_root() / "mon"):
        parse_run_info(run / "run.json", (run / "run.json").read_bytes())
        assert RunDir(run).metrics()
        for state in sorted((run / "checkpoints").glob("*.json")):
            s = parse_checkpoint_state(state, state.read_bytes())
            assert s.step in (10, 20) and s.stream.batches > 0 and s.updates.G == s.step
    assert any("parzen_valid" in row for row in RunDir(runs_root() / "mon").metrics())


# ---- checkpoint state -----------------------------------------------------------------------

def test_checkpoint_state_schema_names_the_file(trained):
    path = trained / "checkpoints" / "step-0000020.json"
    good = json.loads(path.read_text())
    for bad in ([good], "text", None, {**good, "step": "20"}, {**good, "sha256": "abc"},
                {**good, "stream": {"batches": -1, "rng": {}}},
                {**good, "updates": {"D": 1.5, "G": 1}}, {**good, "tensors": "../x"},
                {k: v for k, v in good.items() if k != "sha256"}):
        with pytest.raises(CheckpointError, match=str(path)):
            parse_checkpoint_state(path, bad)
    for blob in (b"\xff\xfe", b"{", b"[" * 50_000):
        with pytest.raises(CheckpointError, match=str(path)):
            parse_checkpoint_state(path, blob)
    assert parse_checkpoint_state(path, {**good, "future_key": [1]}).step == 20


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
KEYS = ["format", "step", "sha256", "tensors", "stream", "updates", "seed", "backend", "device",
        "elapsed_s", "versions", "world_size", "epoch", "status", "pid", "last_metrics",
        "d_loss", "parzen_sigma", "parzen_valid"]


@pytest.mark.parametrize("key", ["\n", "a\rb", "\x1b[2J", ""])
def test_a_key_that_is_not_printable_is_quoted_in_the_one_line_error(key):
    """A damaged run.json whose nested key holds a newline (hypothesis found
    {"versions": {"\n": null}}) is still one error line: such keys are shown quoted."""
    p = Path("somewhere/x.json")
    with pytest.raises(RunError) as e:
        parse_run_info(p, {"step": 1, "versions": {key: None}})
    msg = str(e.value)
    assert msg.startswith(f"{p}: versions.{key!r}: ") and msg.isprintable(), msg


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6) | JSON)
def test_fuzzed_json_parses_or_names_the_file(value):
    p = Path("somewhere/x.json")
    for parse, error in ((parse_checkpoint_state, CheckpointError), (parse_run_info, RunError)):
        try:
            parse(p, value)
        except error as e:
            assert str(e).startswith(f"{p}: ") and "\n" not in str(e)


# ---- random damage through the CLI ----------------------------------------------------------

_example = itertools.count()


@st.composite
def damage(draw):
    target = draw(st.sampled_from(["run.json", "metrics.jsonl"]))
    kind = draw(st.sampled_from(["truncate", "flip", "bytes", "json"]))
    if kind == "bytes":
        arg = draw(st.binary(max_size=64))
    elif kind == "json":
        arg = json.dumps(draw(JSON)).encode()
    else:
        arg = (draw(st.floats(0, 1, exclude_max=True)), draw(st.integers(1, 255)))
    return target, kind, arg


@pytest.mark.slow
@FUZZ
@given(damage())
def test_random_damage_fails_cleanly_or_not_at_all(trained, tmp_path, dmg):
    target, kind, arg = dmg
    root = tmp_path / f"runs{next(_example)}"
    run = copy_run(trained, "r", root)
    path = run / target
    blob = bytearray(path.read_bytes())
    if kind == "truncate":
        blob = blob[: int(arg[0] * len(blob))]
    elif kind == "flip":
        blob[int(arg[0] * len(blob))] ^= arg[1]
    else:
        blob = bytearray(arg)
    path.write_bytes(bytes(blob))

    listing = cli("runs", "--runs-dir", root)
    assert listing.exit_code == 0 and "r " in listing.stdout, listing.stderr
    row = json.loads(cli("runs", "--runs-dir", root, "--json").stdout)[0]
    assert row["name"] == "r"
    if row["status"] == "damaged":
        assert row["error"].startswith(str(path)), row["error"]
    for args in (["plot", "r"], ["sample", "r", "--npz", root / "x.npz"]):
        r = cli(*args, "--runs-dir", root)
        if r.exit_code != 0:
            assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
            # A damaged file is named; a flipped byte can also leave valid JSON naming a
            # backend that does not exist (a clean error of its own).
            assert str(path) in r.stderr or "backend" in r.stderr, r.stderr


# ---- leftover temporary files ---------------------------------------------------------------

def test_stale_tmp_files_are_removed(trained):
    run = copy_run(trained, "t")
    stale = [run / ".run.json.abcd_123.tmp", run / ".metrics.jsonl.zzzzzzzz.tmp",
             run / "checkpoints" / ".step-0000030.safetensors.k2j4h5g6.tmp",
             run / "checkpoints" / ".step-0000030.json.a1b2c3d4.tmp"]
    keep = [run / "notes.tmp", run / ".run.json.short.tmp", run / "checkpoints" / "x.tmp",
            run / "samples" / ".grid.png.abcdefgh.tmp"]
    for p in stale + keep:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half")
    (run / ".dir.abcdefgh.tmp").mkdir()  # not a file: never ours
    fresh = stale[0]
    old = time.time() - 3600
    for p in stale[1:]:
        os.utime(p, (old, old))
    r = RunDir(run)
    # With an age limit (no lock held), a file a live writer may still be writing is kept.
    assert sorted(r.clean_stale_tmp(older_than=60)) == sorted(stale[1:])
    assert fresh.exists()
    assert r.clean_stale_tmp() == [fresh]  # under the writer's lock: every one is stale
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep) and (run / ".dir.abcdefgh.tmp").is_dir()
    assert RunDir(run).latest_checkpoint()[0].step == 20  # checkpoints untouched
    assert r.clean_stale_tmp() == []


def test_a_write_killed_midway_leaves_a_tmp_file_that_cleanup_removes(tmp_path):
    run = RunDir(tmp_path / "k")
    run.path.mkdir()
    code = ("import os, sys, time\n"
            "from pathlib import Path\n"
            "from advgraph.atomic import atomic_write\n"
            "os.replace = lambda a, b: (print('written', flush=True), time.sleep(60))\n"
            "atomic_write(Path(sys.argv[1]), b'{}')\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run.path / "run.json")],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    left = [p for p in run.path.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".run.json.") and left[0].suffix == ".tmp"
    assert run.clean_stale_tmp() == left
    assert list(run.path.iterdir()) == []


# ---- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["x\n", "run1\n", "a\nb", "\nx", "x\r", "x\x00", "x ", "é"])
def test_names_are_matched_whole(bad, tmp_path):
    with pytest.raises(UsageError):
        check_name(bad)
    r = cli("train", SPECS / "ring2d.yaml", "--name", bad, *FAST)
    assert r.exit_code == 2 and r.stderr.startswith("error: invalid run name"), r.stderr
    assert not runs_root().exists() or list(runs_root().iterdir()) == []


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=110) | st.from_regex(NAME_RE, fullmatch=True)
       | st.from_regex(NAME_RE, fullmatch=True).map(lambda s: s + "\n"))
def test_a_valid_name_is_one_plain_path_component(name):
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    expect = (0 < len(name) <= 100 and set(name) <= allowed and name[0] not in "._-")
    try:
        assert check_name(name) == name
    except UsageError as e:
        assert not expect, name
        assert str(e).startswith("invalid run name")
        return
    assert expect, name
    root = Path("/r/runs")
    assert (root / name).parent == root and os.path.normpath(root / name) == str(root / name)


def test_no_partial_match_regexes_left():
    """`^…$` with .match accepts a trailing newline: names and file patterns match whole."""
    import re

    for p in (ROOT / "advgraph").rglob("*.py"):
        for m in re.finditer(r"""re\.(?:compile|match)\(r?["'][^"'\n]*\$["']""", p.read_text()):
            pytest.fail(f"{p}: `$`-anchored regex (use fullmatch): {m.group(0)}")


# ---- `runs` never cuts a name or a status short ---------------------------------------------

def test_runs_never_truncates_names_or_statuses(trained):
    long = "a-run-with-a-rather-long-name-" + "x" * 70  # 100 characters, the longest allowed
    copy_run(trained, long)
    bad = copy_run(trained, "b" * 100)
    (bad / "run.json").write_bytes(b"[]")
    r = cli("runs")  # CliRunner: not a terminal, 80 columns
    assert r.exit_code == 0
    got = {ln.split()[0]: ln.split()[1] for ln in r.stdout.splitlines() if len(ln.split()) > 1}
    assert got[long] == "finished" and got["b" * 100] == "damaged"
    assert "…" not in r.stdout
    # The same through a pipe (`advgraph runs | cat`), in a fresh process.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    p = subprocess.run([sys.executable, "-m", "advgraph", "runs"], capture_output=True,
                       text=True, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    lines = [ln.split() for ln in p.stdout.splitlines()]
    assert [long, "finished"] in [ln[:2] for ln in lines]
    assert ["b" * 100, "damaged"] in [ln[:2] for ln in lines]
    assert "…" not in p.stdout and "Traceback" not in p.stderr


def test_runs_fits_80_columns_by_leaving_out_the_least_useful_columns(trained, monkeypatch):
    """At 80 columns (a pipe, or CliRunner) a usual listing fits: backend and the D outputs
    go before the step and losses; a wide terminal shows every column."""
    import advgraph.cli.rundirs as runs_cli
    from rich.console import Console

    copy_run(trained, "fashion-mnist-001")
    stopped = copy_run(trained, "fashion-mnist-002")
    info = json.loads((stopped / "run.json").read_text())
    (stopped / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    r = cli("runs")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert r.exit_code == 0 and max(map(len, lines)) <= 80, r.stdout
    assert lines[0].split() == ["name", "status", "step", "epoch", "D", "loss", "G", "loss"]
    assert ["fashion-mnist-002", "interrupted", "20"] in [ln.split()[:3] for ln in lines]
    monkeypatch.setattr(runs_cli, "console", Console(width=200, highlight=False, markup=False))
    wide = [ln for ln in cli("runs").stdout.splitlines() if ln.strip()]
    assert wide[0].split() == ["name", "status", "step", "epoch", "backend", "D", "loss", "G",
                               "loss", "D(x)", "D(G(z))"]


# ---- links planted where advgraph writes its own files --------------------------------------
# A symbolic link at a file advgraph names itself is never written through (it could point at
# any file the user can write); the directories above may be links; --out / --npz may be.

RESUME = ("train", "--resume", "{run}", "--set", "training.stop.steps=30")
LINKED = {  # planted link (in the run) → the command that writes there
    "run.json": RESUME,
    "metrics.jsonl": RESUME,
    ".lock": RESUME,
    "checkpoints/step-0000030.safetensors": RESUME,
    "eval/parzen.json": ("eval", "{run}", "--parzen", "--samples", "200", "--valid-limit", "50"),
    "eval/metrics.jsonl": ("eval", "{run}", "--parzen", "--samples", "200", "--valid-limit",
                           "50"),
    "samples/step-0000020-seed0.png": ("sample", "{run}"),
    "plots/metrics.png": ("plot", "{run}"),
}


@pytest.mark.parametrize("name", sorted(LINKED))
def test_a_link_planted_at_a_run_file_is_not_written_through(trained, tmp_path, name):
    run = copy_run(trained, "linked")
    planted = run / name
    victim = tmp_path / "victim"
    # the victim holds what the file held where the command reads it first (so that it reads
    # fine), else other bytes
    read = name in ("run.json", "metrics.jsonl")
    victim.write_bytes(planted.read_bytes() if read else b"precious\n")
    before = victim.read_bytes()
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.unlink(missing_ok=True)
    planted.symlink_to(victim)
    r = cli(*(a.format(run="linked") for a in LINKED[name]))
    assert victim.read_bytes() == before, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    if r.exit_code != 0:
        assert str(planted) in r.stderr and "symbolic link" in r.stderr, r.stderr


def test_the_users_out_and_npz_paths_and_linked_run_directories_are_followed(trained, tmp_path):
    """--out / --npz name the user's own paths: a link there is followed, as are directories
    that are links (runs/ on a bigger disk)."""
    disk = tmp_path / "big-disk"
    disk.mkdir()
    root = tmp_path / "runs-link"
    root.symlink_to(disk, target_is_directory=True)
    copy_run(trained, "good", disk)
    target_png, target_npz = tmp_path / "fig.png", tmp_path / "s.npz"
    target_png.write_bytes(b"old")
    target_npz.write_bytes(b"old")
    (tmp_path / "fig-link.png").symlink_to(target_png)
    (tmp_path / "s-link.npz").symlink_to(target_npz)
    r = cli("sample", "good", "--runs-dir", root, "--out", tmp_path / "fig-link.png",
            "--npz", tmp_path / "s-link.npz", "--n", "5")
    assert r.exit_code == 0, r.stderr
    assert target_png.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "fig-link.png").is_symlink() and (tmp_path / "s-link.npz").is_symlink()
    import numpy as np

    assert np.load(target_npz)["samples"].shape[0] == 5
    r = cli("train", "--resume", "good", "--runs-dir", root, "--set", "training.stop.steps=30")
    assert r.exit_code == 0, r.stderr
    assert RunDir(disk / "good").checkpoints()[-1].step == 30


def _cache_victim(tmp_path: Path, cached: Path) -> tuple[Path, bytes]:
    """Replace a cache file by a link to a victim (which the cache check finds damaged)."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    cached.unlink()
    cached.symlink_to(victim)
    return victim, victim.read_bytes()


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_a_link_planted_in_the_kmeans_cache_is_not_written_through(tmp_path, suffix):
    import numpy as np

    from advgraph.cache import cache_dir
    from advgraph.evaluate.kmeans import kmeans_centres

    x = np.random.default_rng(0).random((60, 4)).astype(np.float32)
    first = kmeans_centres(x, 5, seed=0)
    [cached] = cache_dir("kmeans").glob(f"*{suffix}")
    victim, before = _cache_victim(tmp_path, cached)
    warnings: list[str] = []
    again = kmeans_centres(x, 5, seed=0, warn=warnings.append)
    assert victim.read_bytes() == before
    assert np.array_equal(again.centres, first.centres)
    assert "symbolic link" in warnings[-1] and str(cached) in warnings[-1]


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_a_link_planted_in_the_classifier_cache_is_not_written_through(tmp_path, suffix):
    import numpy as np

    from advgraph.cache import cache_dir
    from advgraph.evaluate.classifier import domain_classifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    x = (rng.random((100, 8)) * 0.2 + y[:, None]).astype(np.float32)
    domain_classifier(x, y, x, y, 2, (8,))
    [cached] = cache_dir("classifiers").glob(f"*{suffix}")
    victim, before = _cache_victim(tmp_path, cached)
    warnings: list[str] = []
    domain_classifier(x, y, x, y, 2, (8,), warn=warnings.append)
    assert victim.read_bytes() == before
    assert "symbolic link" in warnings[-1] and str(cached) in warnings[-1]
