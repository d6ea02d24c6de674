"""Scratch buffers reused by liveness (advgraph_cupy/memory.py): every shipped spec's plans
stay checked and train bit for bit as with one allocation per buffer; the reused scratch does
not grow with the number of layers beyond what is live at once; and the verifier catches a
layout from a wrong liveness."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from advgraph.params import init_params
from advgraph.spec import load_file, load_text
from advgraph.run.schedule import Schedule
from tests.conftest import ROOT, SPECS
from tests.programs import compile_loaded, write_conv_spec

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import lowering as L  # noqa: E402
from advgraph_cupy import memory as M  # noqa: E402
from advgraph_cupy import plan as P  # noqa: E402
from advgraph_cupy.footprint import check_plan  # noqa: E402
from advgraph_cupy.backend import HOST_WRITTEN, CupyTrainer  # noqa: E402
from advgraph_cupy.runtime import HostExecutor, Runtime, TwinExecutor  # noqa: E402

SPEC_FILES = sorted(p.name for p in SPECS.glob("*.yaml"))
M_SMALL = 6  # rows per minibatch in the training runs (small: the twins are NumPy)
# Training on the twins: the widest layers narrowed (the same ops and topology; the plans at
# full width: test_every_plan_with_reuse_is_checked), or NumPy's GEMMs would take minutes.
NARROW = {**{s: ["generator.layers[0].units=400", "generator.layers[2].units=400",
                  "discriminator.layers[1].units=50", "discriminator.layers[3].units=50"]
             for s in ("cifar10-fc.yaml", "tfd.yaml")},
          "cifar10-conv.yaml": ["generator.layers[0].units=400", "generator.layers[2].units=800",
                                "generator.layers[4].shape=[8, 10, 10]",
                                "discriminator.layers[0].channels=8",
                                "discriminator.layers[2].channels=8",
                                "discriminator.layers[4].channels=16",
                                "discriminator.layers[7].units=50"],
          # the MNIST nets at 100 units (maxout 20 × 5); every layer and the dropout kept
          **{f"{s}.yaml": ["generator.layers[0].units=100", "generator.layers[2].units=100",
                           "discriminator.layers[1].units=20", "discriminator.layers[3].units=20"]
             for s in ("mnist", "fashion-mnist")},
          "mnist-cgan.yaml": ["generator.graph[1].layers[0].units=100",
                              "generator.graph[2].layers[0].units=100",
                              "discriminator.graph[0].layers[1].units=20",
                              "discriminator.graph[2].layers[1].units=20"],
          # the conv specs at 8-16 channels (every layer, batchnorm, spectral norm, EMA kept)
          "fashion-mnist-conv-hinge-sn.yaml": [
              "generator.layers[0].units=784", "generator.layers[1].shape=[16, 7, 7]",
              "generator.layers[4].channels=8", "generator.layers[7].channels=8",
              *(f"discriminator.layers[{i}].channels={c}"
                for i, c in ((0, 8), (2, 8), (4, 16), (6, 16), (8, 16)))],
          **{f"images-{c}dcgan.yaml": [
              f"generator{g}.layers[0].units=256", f"generator{g}.layers[1].shape=[16, 4, 4]",
              f"generator{g}.layers[4].channels=8", f"generator{g}.layers[7].channels=8",
              *(f"discriminator{g}.layers[{i}].channels={n}" for i, n in ((0, 8), (2, 16),
                                                                            (5, 16)))]
             for c, g in (("", ""), ("c", ".graph[0]"))}}
SLOW = {"cifar10-conv.yaml"}  # the widest net, still (the others narrowed: about a second)


def _program(loaded):
    t = loaded.spec.training
    return compile_loaded(loaded), {g: Schedule(t.optimizer_for(g)).config() for g in "GD"}


def _checked(plan: P.Plan, k: int = 2) -> M.Layout:
    """The plan's layout, verified: check_reuse, and check_plan of the relocated launches
    (every phase, and an iteration of k D-updates)."""
    live = M.liveness(plan, HOST_WRITTEN)
    lay = M.assign(plan, live)
    M.check_reuse(plan, lay, live.carried, HOST_WRITTEN)
    phases = dict(plan.phases)
    if "d_step" in phases:
        phases["iteration"] = plan.iteration(k)
    check_plan(P.Plan(buffers={**plan.buffers, **lay.arenas}),
               phases={p: M.relocate(ls, lay) for p, ls in phases.items()})
    return lay


@pytest.mark.parametrize("spec", SPEC_FILES)
def test_every_plan_with_reuse_is_checked(spec):
    program, optim = _program(load_file(SPECS / spec))
    plan = L.lower(program, 7, optim)
    lay = _checked(plan)
    assert set(lay.slots) == set(M.eligible(plan)) and lay.slots
    for net in ("G", "D"):
        _checked(L.lower_inference(program, net, 5))
    b = M.memory_bytes(plan, HOST_WRITTEN)
    assert b["reused"] < b["scratch"]


def _train(program, optim, data, y, reuse: bool, executor=None) -> dict:
    """Three iterations (deferred D-updates; given noise and labels; a metrics read between),
    then inference; everything the trainer reports."""
    tr = CupyTrainer(program, executor or TwinExecutor(), 5, M_SMALL, optim)
    assert bool(tr.rt.layout.slots) == reuse
    tr.load_state_dict(init_params(program, np.random.default_rng(1), data))
    tr.load_data(data, y)
    tr.set_order(np.arange(len(data)))
    rng = np.random.default_rng(3)
    for it in range(3):
        given = it == 1
        for u in range(2):
            z = rng.standard_normal((M_SMALL, program.prior.dim)).astype(np.float32)
            tr.d_step(u * M_SMALL, 0.01, 0.5, z=z if given else None)
        yg = rng.integers(0, program.classes, M_SMALL) if given and program.classes else None
        z = rng.standard_normal((M_SMALL, program.prior.dim)).astype(np.float32)
        tr.g_step(0.01, 0.5, z=z if given else None, **({"y": yg} if yg is not None else {}))
        if it == 0:
            out = {f"metrics/{k}": np.float64(v) for k, v in tr.read_metrics().items()}
    labels = np.arange(3) % program.classes if program.classes else None
    out["generate"] = tr.generate(rng.uniform(-1, 1, (3, program.prior.dim)).astype(np.float32),
                                  labels)
    out["discriminate"] = tr.discriminate(data[:3], labels)
    out["noise"] = tr.sample_noise(4)
    return {**out, **tr.state_dict()}


def _data(program, n=20):
    rng = np.random.default_rng(0)
    data = rng.random((n, *program.data_shape)).astype(np.float32)
    return data, rng.integers(0, program.classes, n) if program.classes else None


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("spec", [pytest.param(s, marks=[pytest.mark.slow] if s in SLOW else [])
                                  for s in SPEC_FILES])
def test_training_with_reuse_is_bit_identical(spec, monkeypatch):
    program, optim = _program(load_file(SPECS / spec, NARROW.get(spec, [])))
    data, y = _data(program)
    monkeypatch.setenv("ADVGRAPH_CUPY_REUSE", "0")
    without = _train(program, optim, data, y, reuse=False)
    monkeypatch.delenv("ADVGRAPH_CUPY_REUSE")
    _assert_identical(_train(program, optim, data, y, reuse=True), without)


def test_conv_and_batchnorm_training_with_reuse_is_bit_identical(tmp_path, monkeypatch):
    """Every image op, batchnorm (its running statistics in state, its x̂ kept for the
    backward) and a label broadcast to maps, on the twins."""
    program, optim = _program(load_file(write_conv_spec(tmp_path)))
    data, y = _data(program)
    monkeypatch.setenv("ADVGRAPH_CUPY_REUSE", "0")
    without = _train(program, optim, data, y, reuse=False)
    monkeypatch.delenv("ADVGRAPH_CUPY_REUSE")
    _assert_identical(_train(program, optim, data, y, reuse=True), without)
    _checked(L.lower(program, 7, optim))


def test_conv_and_batchnorm_on_the_host_executor_with_reuse_are_bit_identical(tmp_path):
    """The compiled kernels of the image ops, batchnorm and concat-as-maps with reused scratch
    (the default) against a buffer each (guard zones checked after every launch)."""
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(str(available()))
    program, optim = _program(load_file(write_conv_spec(tmp_path)))
    data, y = _data(program)
    _assert_identical(_train(program, optim, data, y, True, HostExecutor()),
                      _train(program, optim, data, y, False, HostExecutor(guard=True)))


def test_host_executor_with_reuse_is_bit_identical():
    """The kernels compiled as C++: reused scratch (the default) against a buffer each (what
    guard zones keep), which also checks every buffer's guards after every launch."""
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(str(available()))
    program, optim = _program(load_file(SPECS / "ring2d-cgan.yaml"))
    data, y = _data(program)
    _assert_identical(_train(program, optim, data, y, True, HostExecutor()),
                      _train(program, optim, data, y, False, HostExecutor(guard=True)))


def test_guard_zones_keep_a_buffer_each_and_uploads_need_host_written():
    assert Runtime(HostExecutor(guard=True, kernels=object())).reuse is False
    assert Runtime(TwinExecutor(), reuse=False).reuse is False
    program, optim = _program(load_file(SPECS / "toy1d.yaml"))
    rt = Runtime(TwinExecutor(), reuse=True)
    rt.ensure(L.lower(program, 4, optim))
    with pytest.raises(AssertionError, match="host_written"):
        rt.upload("z", np.zeros(4 * program.prior.dim, np.float32))


# ---- the scratch does not grow with the number of layers ----------------------------------------

MLP = """
name: mlp{n}
prior: {{type: uniform, dim: 8, low: -1.0, high: 1.0}}
data: {{dataset: toy-gaussian1d, mean: 4.0, std: 0.5, train: 2000, valid: 200, test: 200}}
generator:
  layers:
{g}
    - {{type: dense, name: y, units: 1}}
    - {{type: linear}}
discriminator:
  layers:
{d}
    - {{type: dense, name: y, units: 1}}
    - {{type: sigmoid}}
training:
  batch_size: 256
  stop: {{steps: 10}}
  optimizer: {{type: sgd, lr: 0.01, momentum: 0.5}}
"""


def _mlp(n: int, width: int = 32):
    hidden = "\n".join(f"    - {{type: dense, name: h{i}, units: {width}}}\n    - {{type: relu}}"
                       for i in range(n))
    return _program(load_text(MLP.format(n=n, g=hidden, d=hidden), f"mlp{n}.yaml"))


def test_reused_scratch_does_not_grow_with_the_layers():
    """A forward pass (inference) needs the same scratch at any depth. Training keeps each
    layer's activations for the backward pass and its gradients for the update, so what is
    live at once grows with depth; the reused scratch stays at that peak (plus alignment)
    while one buffer each grows several times faster."""
    got = {}
    for n in (2, 4, 8):
        program, optim = _mlp(n)
        plan = L.lower(program, 256, optim)
        live = M.liveness(plan, HOST_WRITTEN)
        lay = _checked(plan)
        assert lay.bytes() <= M.peak_live(plan, live) + M.ALIGN_BYTES * len(lay.slots)
        infer = L.lower_inference(program, "G", 256)
        got[n] = M.memory_bytes(plan, HOST_WRITTEN), _checked(infer).bytes()
    assert got[2][1] == got[4][1] == got[8][1] == 2 * 256 * 32 * 4  # two layers' activations
    (b4, _), (b8, _) = got[4], got[8]
    assert b8["reused"] - b4["reused"] < (b8["scratch"] - b4["scratch"]) / 4


# ---- the verifier -------------------------------------------------------------------------------


def _toy_plan():
    program, optim = _program(load_file(SPECS / "toy1d.yaml"))
    return L.lower(program, 16, optim)


def test_check_reuse_catches_a_liveness_one_launch_short():
    plan = _toy_plan()
    live = M.liveness(plan, HOST_WRITTEN)
    M.check_reuse(plan, M.assign(plan, live), live.carried, HOST_WRITTEN)
    caught = 0
    for name, phases in live.intervals.items():
        for phase, (first, last) in phases.items():
            if last == first:
                continue
            short = M.Liveness({**live.intervals, name: {**phases, phase: (first, last - 1)}},
                               live.carried)
            try:
                M.check_reuse(plan, M.assign(plan, short), live.carried, HOST_WRITTEN)
            except AssertionError as e:
                assert "both live and share memory" in str(e)
                caught += 1
    assert caught >= 3  # some shortened intervals let a buffer be clobbered; each is caught


def test_check_reuse_catches_shared_memory_of_live_or_carried_buffers():
    plan = _toy_plan()
    live = M.liveness(plan, HOST_WRITTEN)
    lay = M.assign(plan, live)
    a, b = "D.x", "D.logits"  # both live at D's forward
    bad = M.Layout({**lay.slots, b: lay.slots[a]}, lay.sizes, lay.arenas)
    with pytest.raises(AssertionError, match="D.x and D.logits|D.logits and D.x"):
        M.check_reuse(plan, bad, live.carried)
    shared = [n for n in lay.slots if lay.slots[n] == lay.slots["D.logits"] and n != "D.logits"]
    assert shared  # D's logits share memory with a buffer of another time
    with pytest.raises(AssertionError, match="carried buffer"):
        M.check_reuse(plan, lay, {"D.logits"} | live.carried)


def test_read_before_write_is_carried():
    plan = _toy_plan()
    plan.phases["g_step"] = [l for l in plan.g_step if l.kernel != "noise"]
    assert "z" in M.liveness(plan).carried  # g_step reads z without drawing it
    assert "z" not in M.liveness(plan, ("z",)).carried  # unless the host writes it
    acc = [l for l in plan.d_step if l.kernel == "gemm"][0]
    acc = P.Launch(acc.kernel, acc.grid, acc.block, acc.args[:10] + (np.int32(1),) + acc.args[11:])
    plan.phases["d_step"] = [acc] + plan.d_step
    assert acc.args[2].name in M.liveness(plan, ("z",)).carried  # an accumulating GEMM reads C
