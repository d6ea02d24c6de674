"""Data-parallel training with torch.distributed (gloo, 2 CPU processes)."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.multiprocessing as mp  # noqa: E402

from advgraph.backend_protocol import OptimConfig, get_backend  # noqa: E402
from tests.programs import compile_loaded  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.spec import load_text  # noqa: E402
from tests.unit.test_spec import BASE  # noqa: E402

M = 8
SGD = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}


COND = "condition: {type: label, classes: 8}\n" + BASE  # the label concatenated to x and z
# The regularisers whose result does not hang on the ranks' generators (the gradient penalty's
# ε would): r1 on each rank's shard, spectral norm's power iteration on both nets, the EMA.
REGS = BASE.replace("    - {type: sigmoid}", "    - {type: linear}").replace(
    "training:\n", "training:\n  loss: hinge\n  regularizers:\n    r1: {weight: 2}\n"
    "    spectral_norm: {nets: [G, D]}\n    ema: {decay: 0.5}\n")


def _inputs():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(M, 2)).astype(np.float32)
    zd = rng.normal(size=(M, 8)).astype(np.float32)
    zg = rng.normal(size=(M, 8)).astype(np.float32)
    y, yg = rng.integers(0, 8, M), rng.integers(0, 8, M)
    return x, zd, zg, y, yg


def _one_step(trainer, x, zd, zg, y, yg, rank=0, world=1):
    cond = trainer.program.conditional
    trainer.load_data(x, y if cond else None)
    trainer.set_order(np.arange(M))
    shard = slice(rank * M // world, (rank + 1) * M // world)
    trainer.d_step(0, 0.1, 0.5, z=zd[shard])
    trainer.g_step(0.1, 0.5, z=zg[shard], y=yg[shard] if cond else None)
    if trainer.program.objective.ema is not None:
        trainer.ema_step(0.5)
    return trainer.state_dict()


def _rank(rank, world, port, out_dir, text=BASE):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    from advgraph import distributed

    dist = distributed.init("cpu")
    program = compile_loaded(load_text(text, "x.yaml"))
    tr = get_backend("torch").build(program, "cpu", 0, M, SGD, dist=dist)
    tr.load_state_dict(init_params(program, np.random.default_rng(0), None))
    state = _one_step(tr, *_inputs(), rank=rank, world=world)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"),
             **{k.replace("/", "|"): v for k, v in state.items()})
    dist.close()


@pytest.mark.parametrize("text", [BASE, pytest.param(COND, marks=pytest.mark.slow),
                                  pytest.param(REGS, marks=pytest.mark.slow)],
                         ids=["plain", "conditional", "regularizers"])  # one in the fast tier
def test_one_distributed_step_equals_one_single_process_step(tmp_path, text):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, args=(2, port, str(tmp_path), text), nprocs=2, join=True,
                       start_method="spawn")
    program = compile_loaded(load_text(text, "x.yaml"))
    single = get_backend("torch").build(program, "cpu", 0, M, SGD)
    single.load_state_dict(init_params(program, np.random.default_rng(0), None))
    want = _one_step(single, *_inputs())
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    # (with regularisers, their state: spectral norm's u, v and the EMA)
    names = [t.name for t in program.tensors()] + [k for k in want if k[:4] in ("spec", "ema/")]
    for name in names:
        key = name.replace("/", "|")
        for got in ranks:  # every rank holds the same parameters …
            np.testing.assert_allclose(got[key], want[name], rtol=1e-5, atol=1e-7, err_msg=name)
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    # the metrics' sums (each rank's shard mean, averaged: the global batch's, r1's too)
    np.testing.assert_allclose(ranks[0]["metrics|sums"], want["metrics/sums"], rtol=1e-5)
    # … and the momentum buffers of the global-batch gradient.
    key = "optim|D|velocity|D.h0.weight"
    np.testing.assert_allclose(ranks[0][key], want[key.replace("|", "/")], rtol=1e-5, atol=1e-7)
