"""Resource bounds (issue 11): every data read is bounded by its declared size before it is
read (no /dev/zero, no FIFO, no decompression bomb), the memory check compares against the
memory still available (MemAvailable or the cgroup's limit), and its estimate is honest:
measured against the peak resident memory of real training runs."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advgraph import memory
from advgraph.data.idx import read_idx
from advgraph.errors import DataError
from advgraph.run.directory import RunDir
from advgraph.run.session import training_peak
from tests.conftest import make_mnist_dir
from tests.helpers import cli, runs_root

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
VALID = (HERE / "valid.yaml").read_text()
TOY_DATA = "data: {dataset: toy-ring2d, train: 500, valid: 50, test: 50}"


def _npz_spec(tmp_path: Path, data_path) -> Path:
    spec = tmp_path / "npz.yaml"
    spec.write_text(VALID.replace(TOY_DATA, f"data: {{dataset: npz, path: '{data_path}'}}")
                    .replace("batch_size: 50", "batch_size: 10"))
    return spec


def _npy_header(shape, dtype="<f4") -> bytes:
    """A .npy 1.0 header declaring `shape`, written by hand."""
    d = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    pad = 64 - (10 + len(d) + 1) % 64
    d += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d


def _bomb(path: Path, shape=(10**12, 2), data: bytes = b"\0" * 4096) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_header(shape) + data)
    return path


# ---- bounded reads ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "train"])
def test_npz_member_declaring_a_huge_shape_is_refused_quickly(tmp_path, command):
    """A member whose header declares 8 TB: refused from its header, before decompressing."""
    bomb = _bomb(tmp_path / "bomb.npz")
    t = time.monotonic()
    r = cli(command, _npz_spec(tmp_path, bomb))
    assert time.monotonic() - t < 10
    assert r.exit_code in (1, 2) and "Traceback" not in r.stderr
    assert str(bomb) in r.stderr and "declares shape (1000000000000, 2)" in r.stderr


def test_npz_bigger_than_available_memory_is_refused_before_decompressing(tmp_path,
                                                                           monkeypatch):
    """An honest header whose data does not fit: refused before any of it is inflated."""
    from advgraph.data.npz import load

    np.savez_compressed(tmp_path / "big.npz", x=np.zeros((2**18, 2), np.float32))  # 2 MiB
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)  # 1 MiB left
    inflated = []
    real_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read",
                        lambda self, n=-1: inflated.append(n) or real_read(self, n))
    with pytest.raises(DataError) as e:
        load(tmp_path / "big.npz", None)
    assert str(e.value) == (f"{tmp_path / 'big.npz'}: loading array 'x' (262144, 2) float32 "
                            "would need 4.5 MiB of memory; only 1.0 MiB is available")
    assert all(0 <= n < 4096 for n in inflated)  # headers only
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**30)
    assert load(tmp_path / "big.npz", None).shape == (2**18, 2)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("command", ["check", "train"])
def test_devices_and_fifos_are_refused(tmp_path, target, command):
    """/dev/zero used to be read until memory ran out; a FIFO blocked forever."""
    if target == "fifo":
        target = tmp_path / "pipe.npz"
        os.mkfifo(target)
    t = time.monotonic()
    r = cli(command, _npz_spec(tmp_path, target))
    assert time.monotonic() - t < 10
    assert r.exit_code in (1, 2) and "Traceback" not in r.stderr
    kind = "character device" if str(target) == "/dev/zero" else "FIFO"
    assert f"{target}: is a {kind}" in r.stderr and "not a regular file" in r.stderr


def test_idx_fifo_and_device_are_refused_by_name(tmp_path):
    root = make_mnist_dir(tmp_path / "m", n_train=40, n_test=10)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    os.mkfifo(root / "t10k-labels-idx1-ubyte")
    r = cli("train", ROOT / "specs" / "mnist.yaml", "--data-root", root,
            "--set", "data.train=30", "--set", "data.valid=10")
    assert r.exit_code == 1
    assert f"{root / 't10k-labels-idx1-ubyte'}: is a FIFO (named pipe)" in r.stderr
    with pytest.raises(DataError, match="/dev/zero: is a character device"):
        read_idx(Path("/dev/zero"))


def test_tfd_device_is_refused(tmp_path):
    spec = tmp_path / "tfd.yaml"
    spec.write_text((ROOT / "specs" / "tfd.yaml").read_text() + "\n")
    r = cli("train", spec, "--set", "data.path=/dev/zero")
    assert r.exit_code == 1 and "/dev/zero: is a character device" in r.stderr


def _gz_idx(path: Path, dims, payload: bytes) -> Path:
    import gzip

    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, len(dims)]) +
                                   struct.pack(f">{len(dims)}I", *dims) + payload))
    return path


def test_idx_gzip_is_decompressed_only_up_to_its_declared_size(tmp_path, monkeypatch):
    """50 MB of zeros behind a header declaring 10 bytes: the gzip stream is read to 11
    bytes, not to its end, and the trailing data is reported."""
    import gzip

    reads = []
    real = gzip.GzipFile.read
    monkeypatch.setattr(gzip.GzipFile, "read", lambda self, n=-1: reads.append(n) or real(self, n))
    p = _gz_idx(tmp_path / "bomb-idx1-ubyte.gz", (10,), b"\0" * 50_000_000)
    with pytest.raises(DataError, match=r"has trailing bytes: dims \(10,\) need 10 bytes of data, "
                                        "found more than 10"):
        read_idx(p)
    assert max(reads) <= 11 and -1 not in reads


def test_idx_header_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    p = _gz_idx(tmp_path / "big-idx3-ubyte.gz", (60000, 4000, 4000), b"\0" * 100)
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)
    with pytest.raises(DataError, match=r"big-idx3-ubyte.gz: an IDX array of dims "
                                        r"\(60000, 4000, 4000\) would need .* GiB of memory; only "
                                        r"8.0 GiB is available"):
        read_idx(p)
    raw = tmp_path / "raw-idx1-ubyte"
    raw.write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10**9) + b"\0" * 10)
    with pytest.raises(DataError, match="truncated: dims \\(1000000000,\\) need 1,000,000,000 "
                                        "bytes of data, found 10"):
        read_idx(raw)  # judged from the file's size, without reading


# ---- the memory check ------------------------------------------------------------------------


def test_memory_check_uses_available_memory(monkeypatch):
    """The check compares with what is available now, not with the machine's total RAM."""
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * 2**20)  # 64 MiB free
    monkeypatch.setattr(memory, "current_rss", lambda: 40 * 2**20)  # as a fresh interpreter
    r = cli("train", HERE / "valid.yaml")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert "need at least 265." in r.stderr and "only 64.0 MiB of memory is available" in r.stderr
    runs = Path(os.environ["ADVGRAPH_RUNS"])
    assert not runs.exists() or not any(runs.iterdir())  # refused before anything was created


def test_memory_check_passes_with_enough_memory(monkeypatch):
    asked = []
    monkeypatch.setattr(memory, "available_bytes", lambda: asked.append(1) or 64 * 2**30)
    r = cli("train", HERE / "valid.yaml", "--name", "fits", "--set", "training.stop={steps: 2}")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert asked  # the check ran, and let the run through to its end
    assert "run fits finished: step 2" in r.stdout
    ckpt, tensors, _ = RunDir(runs_root() / "fits").latest_checkpoint()
    assert ckpt.step == 2 and {"G.h0.weight", "D.y.bias"} <= set(tensors)


def test_available_memory_reads_meminfo_and_cgroups(tmp_path, monkeypatch):
    """cgroup v2: the tightest limit among the process's cgroup and its ancestors, minus
    what is used (reclaimable page cache not counted); cgroup v1: limit_in_bytes."""
    cg = tmp_path / "cg"
    (cg / "a" / "b").mkdir(parents=True)
    (cg / "a" / "memory.max").write_text(f"{3 * 2**30}\n")
    (cg / "a" / "memory.current").write_text(f"{2**30}\n")
    (cg / "a" / "memory.stat").write_text(f"anon 5\ninactive_file {2**29}\n")
    (cg / "a" / "b" / "memory.max").write_text("max\n")
    monkeypatch.setattr(memory, "CGROUP_ROOT", cg)
    monkeypatch.setattr(memory, "_own_cgroups", lambda: (["/a/b"], None))
    assert memory.cgroup_available() == 3 * 2**30 - (2**30 - 2**29)
    monkeypatch.setattr(memory, "meminfo_available", lambda: 2**40)
    assert memory.available_bytes() == 3 * 2**30 - 2**29
    monkeypatch.setattr(memory, "meminfo_available", lambda: 2**20)
    assert memory.available_bytes() == 2**20
    (cg / "memory" / "x").mkdir(parents=True)
    (cg / "memory" / "x" / "memory.limit_in_bytes").write_text(f"{2**31}\n")
    (cg / "memory" / "x" / "memory.usage_in_bytes").write_text(f"{2**30}\n")
    monkeypatch.setattr(memory, "_own_cgroups", lambda: ([], "/x"))
    assert memory.cgroup_available() == 2**30
    monkeypatch.undo()
    assert memory.available_bytes() and memory.available_bytes() > 0


# ---- the estimate against measured peaks -----------------------------------------------------

CHILD = r"""
import sys
from advgraph.cli import app
try:
    app(sys.argv[1:])
except SystemExit as e:
    code = e.code
else:
    code = 0
# ru_maxrss survives execve (it would be the forking parent's peak); VmHWM is this image's own
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print("PEAK", int(hwm.split()[1]) * 1024)
sys.exit(code)
"""


def _peak_and_estimate(spec: Path, sets: list[str], extra: list[str]) -> tuple[int, int]:
    from tests.programs import compile_loaded
    from advgraph.spec import load_file

    args = [sys.executable, "-c", CHILD, "train", str(spec), "--backend", "torch", "--device",
            "cpu", *extra]
    for s in sets:
        args += ["--set", s]
    r = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert r.returncode == 0, r.stderr
    peak = int(r.stdout.strip().splitlines()[-1].split()[1])
    loaded = load_file(spec, sets)
    return peak, training_peak(compile_loaded(loaded), loaded.spec)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["ring2d", "mnist"])
def test_estimate_is_honest_against_measured_peak(tmp_path, which):
    """Train a few steps (a checkpoint included) in a child process; its peak resident
    memory must not exceed the estimate by more than 25 %, nor the estimate the peak by more
    than 50 %: the estimate refuses runs before they allocate, and one 50 % high would refuse
    a run that needs only two thirds of the free memory. (Measured: estimate/peak 0.92 for
    ring2d, 1.22 for mnist; the margin is for other platforms' runtime sizes.)"""
    pytest.importorskip("torch")
    stop = ["training.stop={steps: 3}", "training.checkpoint={steps: 3}", "training.log_every=1"]
    if which == "ring2d":
        peak, est = _peak_and_estimate(ROOT / "specs" / "ring2d.yaml",
                                       stop + ["data.train=20000"], [])
    else:
        root = make_mnist_dir(tmp_path / "mnist", n_train=1200, n_test=200)
        peak, est = _peak_and_estimate(ROOT / "specs" / "mnist.yaml",
                                       stop + ["data.train=1000", "data.valid=200"],
                                       ["--data-root", str(root)])
    print(f"{which}: peak {peak / 2**20:.0f} MiB, estimate {est / 2**20:.0f} MiB")
    assert peak <= est * 1.25, (peak, est)
    assert est <= 1.5 * peak, (peak, est)


# ---- sizes of the other commands ----------------------------------------------------------


@pytest.fixture
def toy_run():
    r = cli("train", HERE / "valid.yaml", "--name", "toy", "--set", "training.stop={steps: 2}")
    assert r.exit_code == 0, r.stderr
    return "toy"


def _nothing_allocated(monkeypatch):
    """8 GiB free, and G or a trainer used at all is a failure: the check must come first."""
    import advgraph.run.samples as C
    import advgraph.parity as P

    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)

    def allocated(*a, **k):
        raise AssertionError("allocated before the size check")

    monkeypatch.setattr(C, "run_generator", allocated)
    monkeypatch.setattr(P, "compare", allocated)


HUGE = str(10**12)


@pytest.mark.parametrize("args,option", [
    (["sample", "toy", "--npz", "s.npz", "--n", HUGE], "--n"),
    (["sample", "toy", "--npz", "s.npz", "--rows", "1000000", "--cols", "1000000"],
     "--rows or --cols"),
    (["sample", "toy", "--n", HUGE], "--n"),  # a toy plot of --n samples
    (["interpolate", "toy", "--rows", "1000000", "--steps", "1000000"], "--rows or --steps"),
    (["eval", "toy", "--parzen", "--samples", HUGE], "--samples"),
    (["eval", "toy", "--parzen", "--samples", HUGE, "--baseline", "kmeans"], "--samples"),
    (["parity", HERE / "valid.yaml", "--backends", "torch,torch", "--batch", HUGE], "--batch"),
], ids=["sample-npz-n", "sample-npz-grid", "sample-toy-n", "interpolate", "eval", "eval-kmeans",
        "parity"])
def test_sizes_that_cannot_fit_are_refused_before_allocating(toy_run, monkeypatch, args,
                                                             option):
    _nothing_allocated(monkeypatch)
    r = cli(*args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: " + option.split()[0])
    assert "need at least" in r.stderr and "only 8.0 GiB of memory is available" in r.stderr
    assert r.stderr.rstrip().endswith(f"lower {option}")


def test_an_image_grid_that_cannot_fit_is_refused_and_one_that_fits_is_drawn(tmp_path,
                                                                            monkeypatch):
    root = make_mnist_dir(tmp_path / "m", n_train=60, n_test=10)
    r = cli("train", ROOT / "specs" / "mnist.yaml", "--name", "img", "--data-root", root,
            "--set", "data.train=50", "--set", "data.valid=10",
            "--set", "training.stop={steps: 1}", "--set", "training.batch_size=10")
    assert r.exit_code == 0, r.stderr
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**30)
    r = cli("sample", "img", "--rows", "100000", "--cols", "1000")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: --rows 100,000 × --cols 1,000: 100,000,000 samples of "
                               "784 values need at least ")
    assert r.stderr.rstrip().endswith("lower --rows or --cols")
    r = cli("sample", "img", "--rows", "2", "--cols", "3", "--npz", tmp_path / "s.npz")
    assert r.exit_code == 0, r.stderr  # sizes that fit are not refused


def test_memory_estimate_of_drawing_samples_counts_their_copies():
    """generation_bytes: noise, labels, the sample copies and one batch's activations."""
    from types import SimpleNamespace as NS

    g = NS(nodes=[NS(shape=(8,)), NS(shape=(16,)), NS(shape=(2,))])
    prog = NS(data_shape=(2,), prior=NS(dim=8), classes=None, G=g)
    assert memory.generation_bytes(prog, 5000, 4) == 5000 * (4 * 8 + 4 * 4 * 2) + 4 * 1000 * 26
    prog.classes = 10
    assert memory.generation_bytes(prog, 10, 2, 100) == 10 * (32 + 8 + 16 + 100) + 4 * 10 * 26


# ---- spec files -----------------------------------------------------------------------------


@pytest.mark.parametrize("target,kind", [("/dev/zero", "is a character device"),
                                         ("fifo", "is a FIFO (named pipe)"),
                                         ("dir", "is a directory"),
                                         ("big", "larger than 1 MiB")])
def test_spec_files_are_read_within_a_bound(tmp_path, monkeypatch, target, kind):
    """`advgraph check /dev/zero` read until memory ran out, a FIFO blocked and a 50 MB spec
    took 21 s to be rejected: a device, FIFO or directory is refused from its type, a file
    over 1 MiB without being parsed."""
    import advgraph.spec.load as L

    if target == "fifo":
        target = tmp_path / "pipe.yaml"
        os.mkfifo(target)
    elif target == "dir":
        target = tmp_path
    elif target == "big":
        target = tmp_path / "big.yaml"
        target.write_text(VALID + "# padding\n" * 200_000)  # 2 MiB of valid YAML

    def parsed(*a, **k):
        raise AssertionError("parsed")

    monkeypatch.setattr(L, "parse_yaml", parsed)
    r = cli("check", target)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr == f"error: {target}: {kind}" + (
        ", the most a spec may be (specs are a few KiB); not read further\n" if target != "/dev/zero"
        and "larger" in kind else ", not a spec file\n")
