"""The torch backend's batched sweep engine (advgraph_torch/members.py) against its oracle: N
solo TorchTrainers, each built and initialised as a run is (init_params with the member's own
NumPy generator, the member's seed, its own data order), stepped with the member's lr and
momentum. Member i's state_dict must be solo trainer i's, key for key and shape for shape."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from advgraph.backend_protocol import OptimConfig, get_backend  # noqa: E402
from advgraph.ir import Op  # noqa: E402
from advgraph.ir.objective import LOSSES  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.spec import load_file, load_text  # noqa: E402
from advgraph.sweep.engine import build_members  # noqa: E402
from advgraph_torch.lower import LOWERINGS  # noqa: E402
from advgraph_torch.members_lower import MEMBER_LOWERINGS  # noqa: E402
from tests.backend.test_torch_objective import program  # noqa: E402
from tests.programs import compile_loaded, write_conv_spec  # noqa: E402
from tests.unit.test_spec import BASE  # noqa: E402

# Tiny nets: more threads only add OpenMP's waits (10x slower on a busy machine).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 3
SGD = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}
ADAM = {"G": OptimConfig("adam", beta1=0.5), "D": OptimConfig("adam", beta1=0.5)}
LR, MOMENTUM = [0.1, 0.05, 0.02], [0.5, 0.0, 0.9]
ADAM_LR = [1e-3, 3e-3, 2e-4]
DECAY = [0.0, 0.9, 0.5]
# The paper's MLP: dropout on D's input and after its maxout layer.
MLP = BASE.replace(
    "    - {type: maxout, name: h0, units: 8, pieces: 2}\n",
    "    - {type: dropout, keep: 0.8, scale: 1.25}\n"
    "    - {type: maxout, name: h0, units: 8, pieces: 2}\n"
    "    - {type: dropout, keep: 0.5, scale: 2.0}\n")
FLOAT_TOL = dict(rtol=1e-5, atol=1e-7)  # float32 rounding after one iteration


def setup(prog, optim, x, y=None, m=8, n=N, seed=10, backend="torch", device="cpu"):
    """(solo trainers, the batched members) of `backend`, alike: same init, seeds and
    orders."""
    backend = get_backend(backend)
    seeds = [seed + i for i in range(n)]
    solos = [backend.build(prog, device, s, m, optim) for s in seeds]
    members = backend.build_members([prog] * n, device, seeds, m, [optim] * n)
    assert members is not None and members.engine == "batched"
    members.load_data(x, y)
    for i, solo in enumerate(solos):
        state = init_params(prog, np.random.default_rng(100 + i), x)
        solo.load_state_dict(state)
        members.member(i).load_state_dict(state)
        order = np.random.default_rng(i).permutation(len(x))
        solo.load_data(x, y)
        solo.set_order(order)
        members.set_order(i, order)
    return solos, members


def iterate(solos, members, lr, momentum, decay=None, k=2, iters=1, m=8, start=0, examples=40,
            due=None):
    """`iters` iterations of Algorithm 1 (k D-steps, a G-step, the EMA) on both sides (the
    solo trainers may be none); `due`: the penalties applied (None: all)."""
    pos = start
    for _ in range(iters):
        for _ in range(k):
            pos = pos % (examples - m + 1)
            for i, solo in enumerate(solos):
                solo.d_step(pos, lr[i], momentum[i], penalties=due)
            members.d_step(pos, lr, momentum, [due] * members.n)
            pos += m
        for i, solo in enumerate(solos):
            solo.g_step(lr[i], momentum[i])
        members.g_step(lr, momentum)
        if decay is not None:
            for i, solo in enumerate(solos):
                solo.ema_step(decay[i])
            members.ema_step(decay)


def assert_states_equal(solos, members, **tol):
    """Every tensor of member i's state is solo i's (integers and RNG state bit for bit)."""
    worst = 0.0
    for i, solo in enumerate(solos):
        want, got = solo.state_dict(), members.member(i).state_dict()
        assert sorted(got) == sorted(want)
        for key, w in want.items():
            g = got[key]
            assert g.shape == w.shape and g.dtype == w.dtype, key
            if w.dtype.kind != "f":
                np.testing.assert_array_equal(g, w, err_msg=key)
                continue
            np.testing.assert_allclose(g, w, err_msg=f"member {i}: {key}", **(tol or FLOAT_TOL))
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - w), initial=0)))
    return worst


def ring(n=40, seed=0, classes=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    return x, (rng.integers(0, classes, n) if classes else None)


def test_every_op_has_a_member_lowering():
    assert set(MEMBER_LOWERINGS) == set(LOWERINGS)


def test_mlp_with_dropout_sgd_momentum_and_per_member_lr():
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    solos, members = setup(prog, SGD, x)
    iterate(solos, members, LR, MOMENTUM)
    worst = assert_states_equal(solos, members)
    # On this CPU the MLP is bit-identical, for 50 iterations too (members_lower._gemm); the
    # tolerance is for BLAS builds that round the batched products otherwise.
    assert worst <= 1e-7
    iterate(solos, members, LR, MOMENTUM, iters=49, start=16)
    got = members.read_metrics()
    for i, solo in enumerate(solos):
        want = solo.read_metrics()
        assert got[i].keys() == want.keys()
        for k, v in want.items():
            assert got[i][k] == pytest.approx(v, rel=1e-4, abs=1e-5), (i, k)


CONV_LAYERNORM = ("        - {type: leaky_relu, slope: 0.2}\n",
                  "        - {type: leaky_relu, slope: 0.2}\n        - {type: layernorm}\n")


def test_conditional_conv_net_with_batchnorm_layernorm_and_pool(tmp_path):
    """Every image op (conv2d, maxout_conv, conv_transpose2d, max_pool, batchnorm on features
    and images), layernorm, labels concatenated as maps; EMA. Grouped convolutions round
    otherwise than one per member (~1 ulp). SGD, not Adam: the bias of a layer before a
    batchnorm has a gradient of pure rounding noise (~1e-10, the batchnorm takes the mean
    out), which Adam scales up to lr-sized steps, so no two roundings agree there."""
    path = write_conv_spec(tmp_path)
    path.write_text(path.read_text().replace(*CONV_LAYERNORM).replace(
        "training:\n", "training:\n  regularizers:\n    ema: {decay: 0.9}\n"))
    prog = compile_loaded(load_file(path))
    assert prog.conditional and prog.G.has_op(Op.CONV_T2D) and prog.D.has_op(Op.LAYERNORM)
    data = np.load(tmp_path / "images.npz")
    x, y = data["x"][:40], data["y"][:40]
    solos, members = setup(prog, SGD, x, y)
    iterate(solos, members, LR, MOMENTUM, decay=DECAY, iters=2)
    assert_states_equal(solos, members, rtol=1e-4, atol=1e-6)
    z = np.random.default_rng(7).normal(size=(5, prog.prior.dim)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    for i, solo in enumerate(solos):
        member = members.member(i)
        np.testing.assert_allclose(member.generate(z, labels), solo.generate(z, labels),
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(member.discriminate(x[:5], labels[:5]),
                                   solo.discriminate(x[:5], labels[:5]), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(member.sample_noise(4), solo.sample_noise(4))
    # 50 iterations on: the ~1-ulp differences of the grouped convolutions grow (0.8% in the
    # metrics here), as any two roundings of a GAN's training drift apart
    iterate(solos, members, LR, MOMENTUM, decay=DECAY, iters=48, start=32)
    got = members.read_metrics()
    for i, solo in enumerate(solos):
        assert got[i] == pytest.approx(solo.read_metrics(), rel=0.05, abs=1e-3)


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_with_ema(loss):
    # (wasserstein needs a Lipschitz D declared: its penalty is not applied here)
    prog = program(loss, "ema: {decay: 0.8}" + ("\ngradient_penalty: {}" if loss == "wasserstein"
                                                 else ""))
    x, _ = ring()
    solos, members = setup(prog, SGD, x)
    iterate(solos, members, LR, MOMENTUM, decay=DECAY, iters=2, due=())
    assert_states_equal(solos, members)


@pytest.mark.parametrize("loss", ["non_saturating", "hinge"])
def test_spectral_norm_on_both_nets_per_member(loss):
    """Each member's power iteration on its own u, v and its W / σ, bit for bit the solo
    run's over 20 iterations; member i's inference uses its W / σ."""
    prog = program(loss, "spectral_norm: {nets: [G, D], iterations: 2}\nema: {decay: 0.8}")
    x, _ = ring()
    solos, members = setup(prog, ADAM, x)
    iterate(solos, members, ADAM_LR, [0.0] * N, decay=DECAY, iters=20, due=())
    assert assert_states_equal(solos, members) == 0.0
    assert "spectral/D.h0.weight/u" in members.member(0).state_dict()
    z = np.random.default_rng(7).normal(size=(5, prog.prior.dim)).astype(np.float32)
    for i, solo in enumerate(solos):
        np.testing.assert_allclose(members.member(i).generate(z), solo.generate(z),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(members.member(i).discriminate(x[:5]),
                                   solo.discriminate(x[:5]), rtol=1e-5, atol=1e-6)


def test_gradient_penalty_and_r1_per_member():
    """Both penalties on a maxout D (ε drawn per member), lazily: each only when due."""
    prog = program("wasserstein", "gradient_penalty: {weight: 10, target: 0.5, every: 2}\n"
                                  "r1: {weight: 2, every: 3}")
    x, _ = ring()
    solos, members = setup(prog, SGD, x)
    for due in [("gradient_penalty", "r1"), (), ("r1",), ("gradient_penalty",)]:
        iterate(solos, members, LR, MOMENTUM, due=due)
    # the double backward's small products round a few ulps apart (of weights ~0.2)
    assert_states_equal(solos, members, rtol=1e-5, atol=1e-5)
    got = members.read_metrics()
    for i, solo in enumerate(solos):
        want = solo.read_metrics()
        assert got[i].keys() == want.keys() and "gradient_penalty" in want
        assert got[i] == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_conditional_mlp_draws_labels_per_member():
    prog = program("non_saturating", cond=True)
    x, y = ring(classes=8)
    solos, members = setup(prog, ADAM, x, y)
    iterate(solos, members, ADAM_LR, [0.0] * N, iters=2)
    assert_states_equal(solos, members)


def test_member_checkpoint_round_trips_into_a_solo_trainer():
    """A member's state is a solo run's: loaded into a fresh solo trainer (and a solo state
    into a member), training goes on alike."""
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    solos, members = setup(prog, SGD, x)
    iterate(solos, members, LR, MOMENTUM)
    fresh = get_backend("torch").build(prog, "cpu", 0, 8, SGD)
    fresh.load_state_dict(members.member(1).state_dict())
    fresh.load_data(x)
    fresh.set_order(solos[1].order.numpy())
    members.member(2).load_state_dict(solos[1].state_dict())
    members.set_order(2, solos[1].order.numpy())
    solos[2] = fresh
    iterate(solos, members, [LR[0], LR[1], LR[1]], [MOMENTUM[0], MOMENTUM[1], MOMENTUM[1]])
    assert_states_equal(solos, members)
    a, b = members.member(1).state_dict(), members.member(2).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_frozen_member_never_changes_the_others():
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    _, clean = setup(prog, SGD, x)
    _, broken = setup(prog, SGD, x)
    with torch.no_grad():
        for t in broken.tensors.values():
            t[1].fill_(float("nan"))
    broken.freeze(1)
    clean.freeze(1)
    for members in (clean, broken):
        iterate([], members, LR, MOMENTUM, iters=3)
    got, want = broken.read_metrics(), clean.read_metrics()
    assert got[1] == {"finite": 0.0}
    for i in (0, 2):
        assert got[i] == want[i] and got[i]["finite"] == 1.0
        a, b = broken.member(i).state_dict(), clean.member(i).state_dict()
        assert all(np.array_equal(a[k], b[k]) for k in a), i


def test_members_that_cannot_share_a_program_fall_back_to_the_loop():
    backend = get_backend("torch")
    base = compile_loaded(load_text(BASE, "x.yaml"))
    wider = compile_loaded(load_text(BASE.replace("units: 16", "units: 12"), "x.yaml"))
    other_init = compile_loaded(load_text(BASE.replace(
        "{type: dense, name: h0, units: 16}", "{type: dense, name: h0, units: 16, "
        "init: {type: xavier}}"), "x.yaml"))
    seeds = [0, 1]
    assert backend.build_members([base, wider], "cpu", seeds, 8, [SGD, SGD]) is None
    assert backend.build_members([base, base], "cpu", seeds, 8, [SGD, ADAM]) is None
    assert backend.build_members([base, other_init], "cpu", seeds, 8, [SGD, SGD]) is not None
    sn = program("hinge", "spectral_norm: {nets: [D]}")
    assert build_members(backend, [sn, sn], "cpu", seeds, 8, [SGD, SGD]).engine == "batched"
    assert build_members(backend, [base, wider], "cpu", seeds, 8, [SGD, SGD]).engine == "loop"
    assert build_members(backend, [base, base], "cpu", seeds, 8, [SGD, SGD]).engine == "batched"
