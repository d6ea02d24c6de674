"""The cupy backend on a real GPU (skipped with the reason elsewhere): the CUDA executor against
the NumPy twins over whole training iterations, CUDA-graph replay against eager launches, and
parity with torch on CUDA. Run these whenever a GPU is lent."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SPECS
from tests.helpers import cli

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy.backend import _cuda_count  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(_cuda_count() == 0, reason="no CUDA device (cupy finds none)")]


def _train(spec: str, executor, iters: int = 4, m: int = 32):
    from tests.programs import compile_loaded
    from advgraph.params import init_params
    from advgraph.spec import load_file
    from advgraph.run.schedule import Schedule
    from advgraph_cupy.backend import CupyTrainer

    loaded = load_file(SPECS / spec, ["training.k=2"])
    program = compile_loaded(loaded)
    sched = {g: Schedule(loaded.spec.training.optimizer_for(g)) for g in ("G", "D")}
    rng = np.random.default_rng(0)
    n = 5 * m + 3
    data = rng.random((n, *program.data_shape)).astype(np.float32)
    y = rng.integers(0, program.classes, n) if program.conditional else None
    tr = CupyTrainer(program, executor, 5, m, {g: s.config() for g, s in sched.items()})
    tr.load_state_dict(init_params(program, np.random.default_rng(1), data))
    tr.load_data(data, y)
    tr.set_order(np.arange(n))
    b, per = 0, n // m
    for it in range(iters):
        for _ in range(2):
            if b and b % per == 0:
                tr.set_order(rng.permutation(n))
            tr.d_step((b % per) * m, sched["D"].lr(b), 0.5)
            b += 1
        tr.g_step(sched["G"].lr(it), 0.5)
    return tr.state_dict(), tr.read_metrics()


@pytest.mark.parametrize("spec", ["mnist.yaml", "ring2d-cgan.yaml", "toy1d.yaml"])
def test_cuda_executor_matches_the_twins(spec):
    from advgraph_cupy.runtime import CudaExecutor, TwinExecutor

    a, ma = _train(spec, CudaExecutor())
    b, mb = _train(spec, TwinExecutor())
    for key in b:
        if b[key].dtype.kind == "f":
            scale = max(float(np.abs(b[key]).max()), 1e-6)
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-3 * scale, err_msg=key)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ma:
        assert ma[key] == pytest.approx(mb[key], rel=1e-3, abs=1e-5), key


def test_graph_replay_equals_eager_launches():
    from advgraph_cupy.runtime import CudaExecutor

    a, ma = _train("mnist.yaml", CudaExecutor(graphs=True))
    b, mb = _train("mnist.yaml", CudaExecutor(graphs=False))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("spec", ["mnist.yaml", "mnist-cgan.yaml", "ring2d-cgan.yaml"])
def test_parity_on_cuda(spec):
    r = cli("parity", SPECS / spec, "--backends", "torch,cupy", "--devices", "cuda")
    assert r.exit_code == 0, r.stdout + r.stderr


def test_train_through_the_cli_on_cuda():
    r = cli("train", SPECS / "toy1d.yaml", "--backend", "cupy", "--device", "cuda", "--name", "g")
    assert r.exit_code == 0, r.stderr
    r = cli("eval", "g", "--theory", "--backend", "torch")
    assert r.exit_code == 0, r.stderr


def test_sweep_members_on_cuda_are_their_solo_runs(tmp_path):
    """The batched engine's one graph for all members against solo cuda trainers: the MLP
    with dropout and per-member lr and momentum, and the conditional conv net with batchnorm,
    layernorm, pooling and an EMA. The same deterministic kernels (no atomics; gemm_batched's
    product is gemm's), so within float32 rounding at most; bit for bit on the host executor
    (tests/backend/test_cupy_members.py)."""
    from advgraph.spec import load_file, load_text
    from tests.backend.test_cupy_members import assert_identical, setup
    from tests.backend.test_torch_members import (CONV_LAYERNORM, DECAY, LR, MLP, MOMENTUM, SGD,
                                                  iterate, ring)
    from tests.programs import compile_loaded, write_conv_spec

    x, _ = ring()
    solos, members = setup(compile_loaded(load_text(MLP, "x.yaml")), SGD, x, device="cuda")
    iterate(solos, members, LR, MOMENTUM, iters=20, due=())
    assert_identical(solos, members, rtol=1e-5, atol=1e-6)
    path = write_conv_spec(tmp_path)
    path.write_text(path.read_text().replace(*CONV_LAYERNORM).replace(
        "training:\n", "training:\n  regularizers:\n    ema: {decay: 0.9}\n"))
    data = np.load(tmp_path / "images.npz")
    solos, members = setup(compile_loaded(load_file(path)), SGD, data["x"][:40], data["y"][:40],
                           device="cuda")
    iterate(solos, members, LR, MOMENTUM, decay=DECAY, iters=3, due=())
    assert_identical(solos, members, rtol=1e-5, atol=1e-6)


def test_a_sweep_through_the_cli_on_cuda():
    from tests.e2e.test_sweep_cli import TINY, _same_training

    args = ["--backend", "cupy", "--device", "cuda", *TINY]
    r = cli("sweep", SPECS / "ring2d-cgan.yaml", "--seeds", "0-3", "--name", "cu", *args)
    assert r.exit_code == 0, r.stderr
    assert "4 members as one batched program" in r.stdout
    assert cli("train", SPECS / "ring2d-cgan.yaml", "--name", "solo", *args,
               "--set", "training.seed=2").exit_code == 0
    _same_training("cu.s2", "solo", 20, exact=False)
