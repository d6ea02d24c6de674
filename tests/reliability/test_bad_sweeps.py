"""Bad input to `advgraph sweep`: every case a located one-line error, exit 2 (1 for a run
conflict), and nothing left in the runs directory."""

from __future__ import annotations

import pytest

from tests.conftest import SPECS
from tests.helpers import cli, runs_root

RING = str(SPECS / "ring2d.yaml")
TINY = ["--set", "data.train=512", "--set", "data.valid=64", "--set", "data.test=64",
        "--set", "training.batch_size=64", "--set", "training.stop.steps=4",
        "--set", "training.log_every=2", "--set", "training.checkpoint={steps: 4}",
        "--set", "training.sample_grid=null"]

CASES = [
    (["--seeds", ""], "--seeds is empty"),
    (["--seeds", "a"], "'a' is not a seed or a range"),
    (["--seeds", "3-1"], "the range 3-1 runs backwards"),
    (["--seeds", "1,2,1"], "seed 1 is given twice"),
    (["--seeds", "0-99999"], "more than 4096 seeds"),
    (["--seeds", "-1"], "'-1' is not a seed or a range"),
    ([], "--seeds is required"),
    (["--seeds", "0", "--vary", "training.optimizer.lr"], "expected KEY=V1,V2"),
    (["--seeds", "0", "--vary", "training.optimizer.lr="], "an empty value"),
    (["--seeds", "0", "--vary", "training.optimizer.lr=0.1,,0.2"], "an empty value"),
    (["--seeds", "0", "--vary", "training.optimizer.lr=0.1,0.1"], "a value is given twice"),
    (["--seeds", "0", "--vary", "training..lr=1"], "not a dotted path"),
    (["--seeds", "0", "--vary", "training.seed=1,2"], "give the seeds with --seeds"),
    (["--seeds", "0", "--vary", "training.k=1", "--vary", "training.k=2"], "given twice"),
    (["--seeds", "0", "--vary", "training.optimizer.lr=0.001,-1"],
     "member sw.lr--1.s0 (training.optimizer.lr=-1): "),
    (["--seeds", "0", "--vary", "generator.layers[0].units=64,128"],
     "G of sw.units-128.s0 differs from sw.units-64.s0's"),
    (["--seeds", "0", "--vary", "training.batch_size=32,64"],
     "training.batch_size differs between members sw.batch_size-32.s0 and sw.batch_size-64.s0"),
    (["--seeds", "0", "--engine", "fast"], "--engine 'fast': use auto, batched or loop"),
    (["--seeds", "0", "--vary", "training.optimizer.beta1=0.5,0.9", "--engine", "batched"],
     "as one batched program (the members' optimisers differ): use --engine loop"),
    (["--seeds", "0", "--name", "../x"], "invalid run name '../x'"),
    (["--seeds", "0", "--name", "a" * 99], "leaves no room for its members' names"),
    (["--seeds", "0", "--set", "training.seed=5"], "--set training.seed: each member's seed"),
]


@pytest.mark.parametrize("args,msg", CASES, ids=[str(i) for i in range(len(CASES))])
def test_bad_arguments_are_located_errors(args, msg):
    r = cli("sweep", RING, *(["--name", "sw"] if "--name" not in args else []), *args, *TINY)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not runs_root().exists() or not any(runs_root().iterdir())


def test_a_member_value_failing_validation_names_the_member_and_the_key():
    r = cli("sweep", RING, "--name", "sw", "--seeds", "0",
            "--vary", "training.optimizer.lr=0.001,-1", *TINY)
    assert "training.optimizer.lr" in r.stderr and "greater than 0" in r.stderr, r.stderr


def test_shape_changing_values_train_with_the_loop_engine():
    r = cli("sweep", RING, "--name", "sw", "--seeds", "0", "--engine", "loop",
            "--vary", "generator.layers[0].units=16,32", *TINY)
    assert r.exit_code == 0, r.stderr
    assert "2 members one after another (--engine loop)" in r.stdout


def test_paths_and_sweeps_that_do_not_exist():
    r = cli("sweep", "nope.yaml", "--seeds", "0")
    assert r.exit_code == 2 and "nope.yaml: no such spec file" in r.stderr
    r = cli("sweep", "--resume", "nosuch")
    assert r.exit_code == 1 and "no sweep 'nosuch'" in r.stderr
    r = cli("sweep", RING, "--resume", "x")
    assert r.exit_code == 2 and "give no spec" in r.stderr
    r = cli("sweep")
    assert r.exit_code == 2 and "missing spec file" in r.stderr


def test_a_member_name_taken_by_a_run_leaves_nothing_behind():
    assert cli("train", RING, "--name", "sw.s1", *TINY).exit_code == 0
    r = cli("sweep", RING, "--name", "sw", "--seeds", "0-1", *TINY)
    assert r.exit_code == 1 and "run 'sw.s1' already exists" in r.stderr, r.stderr
    assert sorted(p.name for p in runs_root().iterdir()) == ["sw.s1"]


def test_a_sweep_too_large_for_memory_is_refused_before_allocating(monkeypatch):
    from advgraph import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 50 * 2**20)
    r = cli("sweep", RING, "--name", "sw", "--seeds", "0-63", *TINY)
    assert r.exit_code == 2, r.stderr
    assert "64 members need at least" in r.stderr and "lower the number of members" in r.stderr
    assert not runs_root().exists() or not any(runs_root().iterdir())


def test_a_sweep_out_of_gpu_memory_is_one_line_naming_what_to_lower(capsys):
    """A GPU allocation failing (torch.cuda.OutOfMemoryError, a RuntimeError; cupy's is a
    MemoryError) is an error line and exit 1, not a traceback; other RuntimeErrors pass."""
    import typer

    from advgraph.cli.common import user_errors

    class OutOfMemoryError(RuntimeError):  # as torch.cuda names it
        pass

    for exc, said in ((OutOfMemoryError("CUDA out of memory"), "out of GPU memory"),
                      (MemoryError(), "out of memory")):
        with pytest.raises(typer.Exit) as e:
            with user_errors(0, "fewer members"):
                raise exc
        assert e.value.exit_code == 1
        assert f"error: {said}; try fewer members" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="other"):
        with user_errors():
            raise RuntimeError("other")
