"""`advgraph check` and `--help`: what they print, and that they never import torch or cupy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import SPECS
from tests.helpers import cli

PROBE = """
import sys

import pytest
from advgraph.cli import app
try:
    app(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "cupy") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
sys.exit(code)
"""


def _probe(*args):
    return subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True,
                          text=True)


def test_check_and_help_import_neither_torch_nor_cupy():
    r = _probe("check", SPECS / "mnist.yaml")
    assert r.returncode == 0, r.stderr
    assert "HEAVY=\n" in r.stdout
    r = _probe("--help")
    assert r.returncode == 0 and "HEAVY=\n" in r.stdout


def test_check_prints_graphs_and_totals():
    r = cli("check", SPECS / "mnist.yaml")
    assert r.exit_code == 0
    assert "G parameters: 2,503,984" in r.stdout
    assert "D parameters: 1,231,441" in r.stdout
    assert "maxout (units=240, pieces=5)" in r.stdout
    assert "estimated FLOPs per training iteration" in r.stdout


def test_check_json():
    r = cli("check", SPECS / "mnist.yaml", "--json")
    data = json.loads(r.stdout)
    assert data["G"]["params"] == 2_503_984 and data["D"]["params"] == 1_231_441
    assert [n["name"] for n in data["G"]["nodes"]][:2] == ["G.input", "G.h0"]
    assert data["G"]["nodes"][1]["shape"] == [1200]
    # G forward per example: 2·(100·1200 + 1200·1200 + 1200·784) multiply-adds + activations.
    assert data["G"]["flops_per_example"] == 2 * (100 * 1200 + 1200 * 1200 + 1200 * 784) + 1200 + 1200 + 784
    assert data["flops_per_iteration"] > 0
    # float32 parameters × (value, gradient, two optimiser slots) + activations of 3m passes
    acts_g, acts_d = 100 + 4 * 1200 + 2 * 784, 2 * 784 + 4 * 240 + 2
    want = 4 * ((2_503_984 + 1_231_441) * 4 + 100 * 3 * (acts_g + acts_d))
    assert data["training_bytes_min"] == want


def test_check_backend_cupy_reports_device_memory():
    """The cupy plan's device memory at the spec's batch size, scratch reused by liveness and
    not (the numbers memory.py computes), in lines of at most 80 columns; without cupy."""
    sys.path.insert(0, str(SPECS.parent / "backends"))
    from advgraph.spec import load_file
    from advgraph.run.schedule import Schedule
    from advgraph_cupy import lowering as L
    from advgraph_cupy.backend import HOST_WRITTEN
    from advgraph_cupy.memory import memory_bytes
    from tests.programs import compile_loaded

    r = _probe("check", SPECS / "mnist.yaml", "--backend", "cupy")
    assert r.returncode == 0, r.stderr
    assert "HEAVY=\n" in r.stdout
    loaded = load_file(SPECS / "mnist.yaml")
    optim = {g: Schedule(loaded.spec.training.optimizer_for(g)).config() for g in "GD"}
    b = memory_bytes(L.lower(compile_loaded(loaded), 100, optim), HOST_WRITTEN)
    mib = {k: f"{v / 2**20:,.1f}" for k, v in b.items()}
    lines = r.stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("cupy device memory"))
    total = f"{(b['state'] + b['reused']) / 2**20:,.1f}"
    assert lines[i] == f"cupy device memory to train, m=100, data set excluded: {total} MiB"
    assert lines[i + 1] == (f"  state {mib['state']} MiB + scratch {mib['reused']} MiB, reused "
                            f"by liveness ({mib['scratch']} without)")
    assert b["reused"] < b["scratch"] / 2 and all(len(line) <= 80 for line in lines[i:i + 2])
    data = json.loads(cli("check", SPECS / "mnist.yaml", "-b", "cupy", "--json").stdout)
    assert data["backend"] == {"name": "cupy", "report": lines[i:i + 2]}


def test_check_backend_unknown():
    r = cli("check", SPECS / "mnist.yaml", "--backend", "nope")
    assert r.exit_code != 0 and "unknown backend 'nope'" in r.stdout + r.stderr


def test_check_with_override():
    r = cli("check", SPECS / "mnist.yaml", "--set", "generator.layers[0].units=600", "--json")
    assert json.loads(r.stdout)["G"]["params"] == 2_503_984 - 600 * 101 - 600 * 1200


def test_version_and_short_help():
    from advgraph import __version__

    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"advgraph {__version__}"
    for args in (["-h"], ["train", "-h"], ["sample", "-h"]):
        r = cli(*args)
        assert r.exit_code == 0 and r.stdout.startswith("Usage: ") and "-h, --help" in r.stdout, args


@pytest.mark.parametrize("usage", ["sample [OPTIONS] RUN", "check [OPTIONS] SPEC",
                                   "train [OPTIONS] [SPEC]", "rm [OPTIONS] RUN..."])
def test_usage_lines_name_arguments_in_capitals(usage):
    """`Usage: advgraph sample [OPTIONS] RUN`, not typer's `{run}` (read as a set of choices)."""
    r = cli(usage.split()[0], "-h")
    assert r.stdout.splitlines()[0].endswith(f" {usage}")  # after the program's name
