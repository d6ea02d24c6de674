"""The cupy backend's batched sweep engine (members.py, stacking.py) on the host executor:
member i of one stacked plan is, bit for bit, the solo CupyTrainer built with its seed (the
same kernels on the same numbers: gemm_batched's product is gemm's), with dropout, a condition,
every image op, batchnorm and layernorm, spectral norm, the EMA, each loss and per-member lr
and momentum; its state is a solo run's both ways; a frozen member changes no other's
numbers; one captured phase steps every member, each GEMM one launch for all."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from advgraph.backend_protocol import get_backend
from advgraph.ir.objective import LOSSES
from advgraph.spec import load_file, load_text
from advgraph.sweep.engine import build_members
from tests.backend.test_torch_members import (ADAM, ADAM_LR, CONV_LAYERNORM, DECAY, LR, MLP,
                                              MOMENTUM, N, SGD, iterate, ring)
from tests.backend.test_torch_members import setup as torch_setup
from tests.backend.test_torch_objective import program
from tests.conftest import ROOT
from tests.programs import compile_loaded, write_conv_spec
from tests.unit.test_spec import BASE

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy.host import available  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


def setup(prog, optim, x, y=None, m=8, n=N, seed=10, device="cpu"):
    """(solo cupy trainers, the batched members) on the host executor (or `device`)."""
    return torch_setup(prog, optim, x, y, m, n, seed, backend="cupy", device=device)


def assert_identical(solos, members, **tol):
    """Every tensor of member i's state (parameters, optimiser slots, RNG, metrics, u and v,
    the EMA) is solo i's, bit for bit (floats within `tol` when given)."""
    for i, solo in enumerate(solos):
        want, got = solo.state_dict(), members.member(i).state_dict()
        assert sorted(got) == sorted(want)
        for key, w in want.items():
            assert got[key].dtype == w.dtype, key
            if tol and w.dtype.kind == "f":
                np.testing.assert_allclose(got[key], w, err_msg=f"member {i}: {key}", **tol)
            else:
                np.testing.assert_array_equal(got[key], w, err_msg=f"member {i}: {key}")


def assert_metrics_identical(solos, members):
    got = members.read_metrics()
    for i, solo in enumerate(solos):
        assert got[i] == solo.read_metrics(), i


def test_mlp_with_dropout_sgd_momentum_and_per_member_lr():
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    solos, members = setup(prog, SGD, x)
    iterate(solos, members, LR, MOMENTUM, due=())
    assert_identical(solos, members)
    # an epoch ends inside an iteration (40 examples, k = 2): the new orders after the
    # D-updates recorded under the old ones
    iterate(solos, members, LR, MOMENTUM, iters=49, start=16, due=())
    assert_identical(solos, members)
    assert_metrics_identical(solos, members)


def test_one_captured_phase_steps_every_member_each_gemm_one_launch():
    """Each GEMM one gemm_batched over the members; the kernels of independent rows (maxout,
    dropout's backward, the RNG offsets' advance) one launch over every member's rows; the
    `members` kernels (noise, dropout masks, bias gradients, the loss, the optimiser step)
    one launch with a member each along the grid's y; the rest (the gather) per member."""
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    _, members = setup(prog, SGD, x, n=4)
    solo = members.solo.d_step
    stacked = members.plan.phases["d_step"]
    gemms = sum(launch.kernel == "gemm" for launch in solo)
    assert gemms >= 4
    assert sum(launch.kernel == "gemm_batched" for launch in stacked) == gemms
    assert all(launch.grid[2] == 4 for launch in stacked if launch.kernel == "gemm_batched")
    one = {"maxout_fwd", "maxout_bwd", "dropout_bwd", "advance_rng", "noise", "dropout_fwd",
           "bias_grad", "bce_d", "sgd_momentum"}
    merged = sum(launch.kernel in one for launch in solo)
    assert sum(launch.kernel in one for launch in stacked) == merged == 11
    assert all(launch.grid[1] == 4 for launch in stacked if launch.kernel in
               ("noise", "dropout_fwd", "bias_grad", "bce_d", "sgd_momentum"))
    apart = [launch.kernel for launch in solo if launch.kernel not in one | {"gemm"}]
    assert apart == ["gather_rows"]
    assert len(stacked) == gemms + merged + 4 * len(apart)
    iterate([], members, LR + [0.1], MOMENTUM + [0.5], k=1, iters=3, due=())
    assert [k for k in members.rt._captured if k[0] == "iteration"] == [("iteration", 1)]


def test_conditional_conv_net_with_batchnorm_layernorm_pool_and_ema(tmp_path):
    """Every image op, batchnorm (its running statistics per member), layernorm, labels
    drawn in the kernels per member; EMA with a decay per member; inference per member."""
    path = write_conv_spec(tmp_path)
    path.write_text(path.read_text().replace(*CONV_LAYERNORM).replace(
        "training:\n", "training:\n  regularizers:\n    ema: {decay: 0.9}\n"))
    prog = compile_loaded(load_file(path))
    data = np.load(tmp_path / "images.npz")
    x, y = data["x"][:40], data["y"][:40]
    solos, members = setup(prog, SGD, x, y)
    iterate(solos, members, LR, MOMENTUM, decay=DECAY, iters=2, due=())
    assert_identical(solos, members)
    z = np.random.default_rng(7).normal(size=(5, prog.prior.dim)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    for i, solo in enumerate(solos):
        member = members.member(i)
        np.testing.assert_array_equal(member.generate(z, labels), solo.generate(z, labels))
        np.testing.assert_array_equal(member.discriminate(x[:5], labels[:5]),
                                      solo.discriminate(x[:5], labels[:5]))
        np.testing.assert_array_equal(member.sample_noise(4), solo.sample_noise(4))
    iterate(solos, members, LR, MOMENTUM, decay=DECAY, iters=2, start=32, due=())
    assert_identical(solos, members)
    assert_metrics_identical(solos, members)


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_with_spectral_norm_on_both_nets(loss):
    """Spectral norm is batched on cupy: each member's power iteration on its own u, v."""
    prog = program(loss, "spectral_norm: {nets: [G, D]}")
    x, _ = ring()
    solos, members = setup(prog, SGD, x)
    iterate(solos, members, LR, MOMENTUM, iters=2, due=())
    assert_identical(solos, members)


def test_conditional_mlp_with_adam():
    prog = program("non_saturating", cond=True)
    x, y = ring(classes=8)
    solos, members = setup(prog, ADAM, x, y)
    iterate(solos, members, ADAM_LR, [0.0] * N, iters=3, due=())
    assert_identical(solos, members)


def test_member_checkpoint_round_trips_into_a_solo_trainer():
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    solos, members = setup(prog, SGD, x)
    iterate(solos, members, LR, MOMENTUM, due=())
    fresh = get_backend("cupy").build(prog, "cpu", 0, 8, SGD)
    fresh.load_state_dict(members.member(1).state_dict())
    fresh.load_data(x)
    order = np.random.default_rng(1).permutation(len(x))
    fresh.set_order(order)
    members.member(2).load_state_dict(solos[1].state_dict())
    members.set_order(2, order)
    solos[2] = fresh
    iterate(solos, members, [LR[0], LR[1], LR[1]], [MOMENTUM[0], MOMENTUM[1], MOMENTUM[1]],
            due=())
    assert_identical(solos, members)
    a, b = members.member(1).state_dict(), members.member(2).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_frozen_member_never_changes_the_others():
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    _, clean = setup(prog, SGD, x)
    _, broken = setup(prog, SGD, x)
    state = broken.member(1).state_dict()
    broken.member(1).load_state_dict({k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v
                                      for k, v in state.items()})
    broken.freeze(1)
    clean.freeze(1)
    for members in (clean, broken):
        iterate([], members, LR, MOMENTUM, iters=3, due=())
    got, want = broken.read_metrics(), clean.read_metrics()
    assert got[1] == {"finite": 0.0}
    for i in (0, 2):
        assert got[i] == want[i] and got[i]["finite"] == 1.0
        a, b = broken.member(i).state_dict(), clean.member(i).state_dict()
        assert all(np.array_equal(a[k], b[k]) for k in a), i
    assert not np.isfinite(broken.member(1).state_dict()["D.h0.weight"]).any()


def test_members_that_cannot_share_a_program_fall_back_to_the_loop():
    backend = get_backend("cupy")
    base = compile_loaded(load_text(BASE, "x.yaml"))
    wider = compile_loaded(load_text(BASE.replace("units: 16", "units: 12"), "x.yaml"))
    seeds = [0, 1]
    assert backend.build_members([base, wider], "cpu", seeds, 8, [SGD, SGD]) is None
    assert backend.build_members([base, base], "cpu", seeds, 8, [SGD, ADAM]) is None
    assert build_members(backend, [base, wider], "cpu", seeds, 8, [SGD, SGD]).engine == "loop"
    assert build_members(backend, [base, base], "cpu", seeds, 8, [SGD, SGD]).engine == "batched"


def test_guard_zones_see_no_write_outside_a_stacked_buffer():
    """Every launch checked against its views (the footprints: a member's copy never spills
    into the next's) and, with guard zones around each buffer, no kernel writes past one."""
    from advgraph_cupy.members import CupyMembers
    from advgraph_cupy.runtime import HostExecutor

    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    solos, plain = setup(prog, SGD, x)
    guarded = CupyMembers(prog, HostExecutor(guard=True), [10 + i for i in range(N)], 8, SGD)
    guarded.load_data(x)
    for i in range(N):
        guarded.member(i).load_state_dict(plain.member(i).state_dict())
        guarded.set_order(i, np.random.default_rng(i).permutation(len(x)))
    assert not guarded.rt.reuse
    iterate(solos, guarded, LR, MOMENTUM, iters=2, due=())
    assert_identical(solos, guarded)


def test_a_rows_kernel_too_large_to_merge_stays_one_launch_per_member():
    """Merged, its row count or threads would overflow the kernels' int index: each member
    keeps its own launch (no OverflowError)."""
    from advgraph_cupy.plan import Launch, Plan, ew_grid, f32, i32
    from advgraph_cupy.stacking import Stacking

    n = 2**30
    solo = Plan()
    x = solo.buffer("x", "float32", n)
    g, b = ew_grid(n)
    solo.phases["p"] = [Launch("fill", g, b, (x, i32(n), f32(1.0)), "ones")]
    big = Stacking(solo, 3).launches(solo.phases["p"])
    assert [l.args[0].offset for l in big] == [0, n, 2 * n]
    small = Stacking(solo, 1).launches(solo.phases["p"])
    assert len(small) == 1
    solo.buffers["x"] = solo.buffers["x"].__class__("x", "float32", 1000, "scratch")
    solo.phases["p"] = [Launch("fill", *ew_grid(1000), (solo.view("x"), i32(1000), f32(1.0)),
                               "ones")]
    merged = Stacking(solo, 3).launches(solo.phases["p"])
    assert len(merged) == 1 and merged[0].args[1] == 3000 and merged[0].args[0].extent == 3000


def test_a_member_is_trained_only_with_the_others():
    prog = compile_loaded(load_text(MLP, "x.yaml"))
    x, _ = ring()
    _, members = setup(prog, SGD, x)
    from advgraph.errors import BackendError

    with pytest.raises(BackendError, match="trains with the others"):
        members.member(1).d_step(0, 0.1, 0.5)
    with pytest.raises(BackendError, match="trains with the others"):
        members.member(1).g_step(0.1, 0.5)


def test_interleaved_member_copies_are_not_an_overlap_but_a_shared_element_is():
    """check_plan's __restrict__ check on a `members` launch: D's logits' real and fake halves
    of 3 members interleave in one buffer without sharing an element; a copy shifted onto the
    next member's does share one."""
    from advgraph_cupy.footprint import _overlap

    m = 8  # real half [0, 8), fake half [8, 16) of each member's 16
    assert not _overlap(0, m, 2 * m, m, m, 2 * m, 3)
    assert _overlap(0, m, 2 * m, 2 * m, m, 2 * m, 3)  # member i's real half is i + 1's
    assert _overlap(0, m + 1, 2 * m, m, m, 2 * m, 3)  # one element too many
    assert not _overlap(0, m, 2 * m, 6 * m, m, 2 * m, 3)  # past the last copy
    assert _overlap(0, 4, 0, 2, 4, 0, 1) and not _overlap(0, 4, 0, 4, 4, 0, 1)


def test_the_members_scratch_layout_is_checked(tmp_path):
    """The stacked plan's scratch reuse (its phases, with launches for every member at once)
    passes memory.check_reuse: no two buffers live at one launch share memory."""
    from advgraph_cupy import memory as M
    from advgraph_cupy.trainer import HOST_WRITTEN

    path = write_conv_spec(tmp_path)
    for prog in (compile_loaded(load_text(MLP, "x.yaml")), compile_loaded(load_file(path))):
        data = np.load(tmp_path / "images.npz")
        x, y = (ring()[0], None) if prog.data_shape == (2,) else (data["x"][:40], data["y"][:40])
        _, members = setup(prog, SGD, x, y, n=3)
        plan = members.st.plan()  # stacked after the data: the launches as they run
        live = M.liveness(plan, HOST_WRITTEN)
        lay = M.assign(plan, live)
        M.check_reuse(plan, lay, live.carried, HOST_WRITTEN)
        assert lay.bytes() < M.memory_bytes(plan, HOST_WRITTEN)["scratch"]
