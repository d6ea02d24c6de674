"""The CuPy backend's lowering and runtime without a GPU: every kernel compiles through NVRTC for
sm_80 and sm_90; the launch plans are typed and stay inside their views; and the plans, run by
the NumPy twins of the kernels (runtime.TwinExecutor), train exactly like the torch backend —
k > 1, Adam over many updates, epoch boundaries, conditional nets and inference included — and
so do they on the .cu kernels themselves, compiled for the CPU (the host executor)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from advgraph.backend_protocol import OptimConfig, get_backend
from tests.programs import compile_loaded
from advgraph.errors import BackendError, LoweringError
from advgraph.ir import Op
from advgraph.params import init_params
from advgraph.parity import without_dropout
from advgraph.spec import load_file, load_text
from advgraph.run.schedule import Schedule
from tests.conftest import ROOT, SPECS

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import codes, footprint, kernel_sources, kernels, twins  # noqa: E402
from advgraph_cupy.kernels.common import Family  # noqa: E402
from advgraph_cupy import lowering as L  # noqa: E402
from advgraph_cupy import plan as P  # noqa: E402
from advgraph_cupy.footprint import check_plan  # noqa: E402
from advgraph_cupy.backend import CupyTrainer  # noqa: E402
from advgraph_cupy.host import available as host_reason  # noqa: E402
from advgraph_cupy.runtime import TwinExecutor  # noqa: E402

SGD = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}
ADAM = {"G": OptimConfig("adam", 0.5, 0.999, 1e-8), "D": OptimConfig("adam", 0.5, 0.999, 1e-8)}
ALL_SPECS = ["mnist", "fashion-mnist", "toy1d", "ring2d", "mnist-cgan", "ring2d-cgan",
             "cifar10-conv"]


def _nvrtc_reason() -> str | None:
    try:
        kernel_sources._load_nvrtc().getVersion()
    except Exception as e:  # no cupy, or no NVRTC library
        return f"NVRTC not available here ({type(e).__name__}: {e}); install .[kernels]"
    return None


@pytest.mark.skipif(_nvrtc_reason() is not None, reason=str(_nvrtc_reason()))
@pytest.mark.parametrize("arch", kernel_sources.ARCHS)
@pytest.mark.parametrize("name", sorted(kernel_sources.sources()))
def test_every_kernel_compiles_through_nvrtc(name, arch):
    ptx = kernel_sources.compile_ptx(name, arch)
    entries = {line.split()[-1].rstrip("(") for line in ptx.splitlines() if ".entry" in line}
    declared = {k for k, _ in kernel_sources.kernels_of(kernel_sources.sources()[name])}
    assert declared and declared <= entries
    assert f".target {arch}" in ptx


def test_signatures_are_parsed():
    sig = kernel_sources.signatures()
    assert [p.ctype for p in sig["gemm"]][:4] == ["const float*", "const float*", "float*",
                                                  "const float*"]
    assert [p.name for p in sig["gemm"]][-4:] == ["transA", "transB", "epilogue", "slope"]
    assert next(p for p in sig["dropout_fwd"] if p.name == "stream").ctype == "unsigned int"
    assert [p.name for p in sig["dropout_fwd"]][-5:] == ["batch", "stride_x", "stride_y",
                                                         "stride_mask", "stride_rng"]


def test_every_kernel_has_a_twin_and_a_footprint():
    """A kernel added without its NumPy twin or its footprint fails here."""
    sigs = kernel_sources.signatures()
    assert set(sigs) == set(twins.KERNELS) == set(footprint.FOOTPRINTS)
    for name, params in sigs.items():
        scalars = {p.name: 3 for p in params if not p.is_pointer}
        touched = footprint.FOOTPRINTS[name](scalars)
        assert set(touched) == {p.name for p in params if p.is_pointer}, name


def test_each_family_module_declares_its_sources_kernels():
    """kernels/<family>.py beside every kernels/<family>.cu, declaring the twins and footprints
    of exactly that file's kernels."""
    sources = kernel_sources.sources()
    assert {f"{m.FAMILY.name}.cu" for m in kernels.FAMILIES} == set(sources)
    for module in kernels.FAMILIES:
        family = module.FAMILY
        assert module.__name__.rsplit(".", 1)[1] == family.name
        declared = {k for k, _ in kernel_sources.kernels_of(sources[f"{family.name}.cu"])}
        assert set(family.twins) == set(family.footprints) == declared, family.name


def test_a_kernel_or_op_declared_twice_is_refused():
    one, other = Family("one"), Family("other")
    one.kernel("k", footprint=lambda s: {})(lambda: None)
    with pytest.raises(ValueError, match="one.cu: kernel k declared twice"):
        one.kernel("k", footprint=lambda s: {})(lambda: None)
    other.kernel("k", footprint=lambda s: {})(lambda: None)
    with pytest.raises(ValueError, match="twin k declared by both one and other"):
        kernels.merge((one, other), "twins")
    one.op(Op.DENSE, None, None)
    with pytest.raises(ValueError, match="one: op dense declared twice"):
        one.op([Op.RELU, Op.DENSE], None, None)
    other.op(Op.DENSE, None, None)
    with pytest.raises(ValueError, match="emitter dense declared by both one and other"):
        kernels.merge((one, other), "emitters")


def test_batched_accumulating_gemm_twin_against_numpy():
    """The GEMM twin (the host and CUDA kernels' oracle) with a batch, strides (B shared, as a
    convolution's weights) and accumulation, against plain NumPy products."""
    rng = np.random.default_rng(3)
    M, N, K, batch = 5, 7, 4, 3
    A = rng.standard_normal(batch * 30).astype(np.float32)  # products 30 elements apart
    B = rng.standard_normal(N * K).astype(np.float32)  # (N, K), used transposed
    C = rng.standard_normal(batch * 40).astype(np.float32)
    want = C.astype(np.float64).copy()
    for b in range(batch):
        a = A[b * 30: b * 30 + M * K].reshape(M, K).astype(np.float64)
        want[b * 40: b * 40 + M * N] += (a @ B.reshape(N, K).T.astype(np.float64)).ravel()
    plan = P.Plan()
    launch = P.gemm(plan.buffer("A", "float32", A.size), plan.buffer("B", "float32", B.size),
                    plan.buffer("C", "float32", C.size), P.Buf("A", 0, 0), M, N, K, False, True,
                    "none", 0.0, "", accumulate=True, batch=batch, strides=(30, 0, 40))
    check_plan(plan, phases={"x": [launch]})
    assert launch.grid[2] == batch
    assert launch.kernel == "gemm_batched"
    twins.KERNELS["gemm_batched"](A, B, C, None, *[a.item() for a in launch.args[4:]])
    np.testing.assert_allclose(C, want, rtol=1e-6, atol=1e-6)


def test_codes_come_from_one_table():
    header = kernel_sources.generated_headers()["codes.cuh"]
    for name, value in codes.EPILOGUES.items():
        assert f" {value}\n" in header
    assert "#define EP_" not in (kernel_sources.KERNEL_DIR / "common.cuh").read_text()
    assert "#define METRIC_FINITE 4" in header


def test_mnist_launch_plan():
    program = compile_loaded(load_file(SPECS / "mnist.yaml"))
    plan = L.lower(program, 100, SGD)
    names = [launch.kernel for launch in plan.d_step]
    assert names == (["noise"] + ["gemm"] * 3 + ["gather_rows"]
                     + ["dropout_fwd", "gemm", "maxout_fwd"] * 2 + ["dropout_fwd", "gemm", "bce_d"]
                     + ["gemm", "bias_grad", "gemm"]
                     + ["dropout_bwd", "maxout_bwd", "gemm", "bias_grad", "gemm"]
                     + ["dropout_bwd", "maxout_bwd", "gemm", "bias_grad"]  # no gradient for x
                     + ["sgd_momentum", "advance_rng"])
    notes = [launch.note for launch in plan.d_step[1:4]]
    assert notes == ["G.h0 + relu", "G.h1 + relu", "G.y + sigmoid"]  # fused epilogues
    g = [launch.kernel for launch in plan.g_step]
    assert g.count("gemm") == 3 + 3 + 3 + (3 + 2)  # G fwd, D fwd, D input grads, G bwd
    assert g[-2:] == ["sgd_momentum", "advance_rng"]
    assert len(plan.iteration(2)) == 2 * len(plan.d_step) + len(plan.g_step)
    # D's real and fake halves share one 2m-row pass: G writes into D.x's second half.
    assert plan.d_step[3].args[2] == P.Buf("D.x", 100 * 784, 100 * 784)
    assert plan.buffers["G.params"].size == 2_503_984 and plan.buffers["D.params"].size == 1_231_441
    # each D-update of an iteration has its own hyperparameter and position slots
    second = plan.iteration(2)[len(plan.d_step):2 * len(plan.d_step)]
    assert P.Buf("D.hp", 4, 4) in second[-2].args and P.Buf("pos", 1, 1) in second[4].args
    assert plan.buffers["D.hp"].size == 8 and plan.buffers["pos"].size == 2
    roles = {b.name: b.role for b in plan.buffers.values()}
    assert roles["G.params"] == "state" and roles["pos"] == "host_in"
    assert roles["metrics"] == "host_out" and roles["D.x"] == "scratch"


@pytest.mark.parametrize("optim", [SGD, ADAM], ids=["sgd", "adam"])
@pytest.mark.parametrize("name", ALL_SPECS)
def test_plan_arguments_match_the_kernel_signatures(name, optim):
    program = compile_loaded(load_file(SPECS / f"{name}.yaml"))
    plan = L.lower(program, 100, optim)
    check_plan(plan, phases={"iteration": plan.iteration(3)})
    check_plan(plan, {"data": 1000 * int(np.prod(program.data_shape)), "order": 1000,
               "labels": 1000})
    for net in ("G", "D"):
        check_plan(L.lower_inference(program, net, 37))


def test_check_sees_views_outside_buffers_and_overlapping_restrict_pointers():
    program = compile_loaded(load_file(SPECS / "toy1d.yaml"))
    plan = L.lower(program, 10, SGD)
    bad = plan.d_step[0]  # noise into z: give it a view one element short
    n = plan.buffers["z"].size
    short = P.Launch(bad.kernel, bad.grid, bad.block, (P.Buf("z", 0, n - 1),) + bad.args[1:])
    with pytest.raises(AssertionError, match=f"z touches {n} elements of a view of {n - 1}"):
        check_plan(plan, phases={"x": [short]})
    outside = P.Launch(bad.kernel, bad.grid, bad.block, (P.Buf("z", 5, n),) + bad.args[1:])
    with pytest.raises(AssertionError, match=rf"view \[5, {n + 5}\) outside z \({n}\)"):
        check_plan(plan, phases={"x": [outside]})
    copy = P.copy_rows(P.Buf("D.x", 5, 10), P.Buf("D.x", 10, 10), 1, 10, 10, 10, False, "")
    with pytest.raises(AssertionError, match="src and dst overlap in D.x"):
        check_plan(plan, phases={"x": [copy]})
    with pytest.raises(AssertionError, match="declared as float32/scratch and as int32"):
        plan.buffer("D.x", "int32", 4)


def test_unsupported_op_is_a_lowering_error(monkeypatch):
    """Every op lowers today; an op the table lacks (as a new op would before its emitters)
    is refused by name, with the reason UNSUPPORTED gives."""
    import advgraph_cupy.lowering as lowering
    from advgraph_cupy.lowering import lowerer

    for where in (lowering, lowerer):  # what the backend's check reads, and the lowering's own
        monkeypatch.setattr(where, "SUPPORTED", lowerer.SUPPORTED - {Op.BATCHNORM})
    monkeypatch.setitem(lowerer.UNSUPPORTED, Op.BATCHNORM, "not yet")
    text = (SPECS / "ring2d.yaml").read_text().replace(
        "    - {type: relu}\n", "    - {type: batchnorm, name: bn}\n", 1)
    program = compile_loaded(load_text(text, "x.yaml"))
    with pytest.raises(LoweringError, match="node 'G.bn': op 'batchnorm' is not supported by "
                                            "backend 'cupy'"):
        L.lower(program, 64, SGD)


def test_philox_known_answers():
    """Random123's known-answer vectors for Philox4x32-10."""
    cases = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
             ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
             ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
              (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for c, k, want in cases:
        got = twins.philox4x32_10(np.array([c], np.uint64), *k)[0]
        assert tuple(int(v) for v in got) == want


def test_noise_and_dropout_kernels_statistics():
    rng = np.array([123, 456, 7, 0], np.uint32)
    z = np.zeros(40_001, np.float32)
    twins.KERNELS["noise"](z, 40_001, 1, 1.0, 2.0, rng, 3, 1, 0, 0)
    assert np.isfinite(z).all()
    assert abs(z.mean() - 1.0) < 0.03 and abs(z.std() - 2.0) < 0.03
    twins.KERNELS["noise"](z, 40_001, 0, -3 ** 0.5, 3 ** 0.5, rng, 4, 1, 0, 0)
    assert z.min() >= -3 ** 0.5 and z.max() <= 3 ** 0.5 and abs(z.var() - 1) < 0.03
    x, y = np.ones(10_000, np.float32), np.zeros(10_000, np.float32)
    mask = np.zeros(10_000, np.uint8)
    twins.KERNELS["dropout_fwd"](x, y, mask, 10_000, 0.8, 1.25, rng, 5, 1, 0, 0, 0, 0)
    assert abs(mask.mean() - 0.8) < 0.015 and set(np.unique(y)) == {0.0, 1.25}
    other = mask.copy()
    # another stream: new masks
    twins.KERNELS["dropout_fwd"](x, y, mask, 10_000, 0.8, 1.25, rng, 6, 1, 0, 0, 0, 0)
    assert (other != mask).mean() > 0.2


def test_label_draws_follow_the_training_labels():
    labels = np.array([0] * 900 + [3] * 100, np.int64)
    out = np.zeros(20_000 * 4, np.float32)
    twins.KERNELS["draw_onehot"](labels, 1000, out, 20_000, 4,
                                    np.array([1, 2, 3, 0], np.uint32), 9)
    freq = out.reshape(-1, 4).mean(0)
    assert abs(freq[0] - 0.9) < 0.01 and abs(freq[3] - 0.1) < 0.01 and freq[1] == freq[2] == 0


# ---- the plans against the torch backend --------------------------------------------------------


def _setup(spec, overrides=(), m=16, n_batches=5, seed=0):
    loaded = load_file(SPECS / spec, list(overrides))
    program = without_dropout(compile_loaded(loaded))
    sched = {g: Schedule(loaded.spec.training.optimizer_for(g)) for g in ("G", "D")}
    optim = {g: s.config() for g, s in sched.items()}
    rng = np.random.default_rng(seed)
    n = n_batches * m + 3  # a partial batch at the epoch's end
    data = rng.random((n, *program.data_shape)).astype(np.float32)
    y = rng.integers(0, program.classes, n) if program.conditional else None
    params = init_params(program, np.random.default_rng(seed + 1), data)
    return program, sched, optim, data, y, params


def _trainers(program, optim, data, y, params, m, executor=None):
    ours = CupyTrainer(program, executor or TwinExecutor(), 123, m, optim)
    torch_tr = get_backend("torch").build(program, "cpu", 0, m, optim)
    for tr in (ours, torch_tr):
        tr.load_state_dict(params)
        tr.load_data(data, y)
        tr.set_order(np.arange(len(data)))
    return ours, torch_tr


def _assert_close(ours, theirs, names, rtol=2e-4):
    for n in names:
        a, b = ours[n], theirs[n]
        scale = max(float(np.abs(b).max()), 1e-6)
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale, err_msg=n)


def _train_both(spec, overrides=(), iters=3, m=16, executor=None):
    """Both backends, the same noise and labels given explicitly, over several iterations with
    the spec's own schedules (lr per update) and a new order at each epoch's end. `executor`:
    what runs cupy's plans (the NumPy twins unless given)."""
    program, sched, optim, data, y, params = _setup(spec, overrides, m)
    ours, theirs = _trainers(program, optim, data, y, params, m, executor)
    k = load_file(SPECS / spec, list(overrides)).spec.training.k
    rng = np.random.default_rng(7)
    per_epoch, b = len(data) // m, 0
    for it in range(iters):
        for _ in range(k):
            if b and b % per_epoch == 0:
                order = rng.permutation(len(data))
                ours.set_order(order)
                theirs.set_order(order)
            z = rng.standard_normal((m, program.prior.dim)).astype(np.float32)
            for tr in (ours, theirs):
                tr.d_step((b % per_epoch) * m, sched["D"].lr(b), sched["D"].momentum(0), z=z)
            b += 1
        z = rng.standard_normal((m, program.prior.dim)).astype(np.float32)
        yg = rng.integers(0, program.classes, m) if program.conditional else None
        for tr in (ours, theirs):
            kw = {"y": yg} if yg is not None else {}
            tr.g_step(sched["G"].lr(it), sched["G"].momentum(0), z=z, **kw)
    a, t = ours.state_dict(), theirs.state_dict()
    keys = [k for k in t if not k.startswith("rng/")]
    assert set(keys) <= set(a), set(keys) - set(a)  # checkpoints are backend-neutral
    return program, ours, theirs, a, t, keys


@pytest.mark.parametrize("spec,overrides", [
    ("mnist.yaml", ()),
    ("mnist.yaml", ("training.optimizer={type: adam, lr: 0.0002, beta1: 0.5}",)),
    ("ring2d.yaml", ("training.g_loss=minimax",)),
    ("toy1d.yaml", ("training.k=2",)),
    ("mnist-cgan.yaml", ()),
    ("ring2d-cgan.yaml", ("training.k=2",)),
], ids=["mnist-sgd", "mnist-adam", "ring2d-minimax", "toy1d-k2", "mnist-cgan", "ring2d-cgan-k2"])
def test_plans_train_like_torch(spec, overrides):
    program, ours, theirs, a, t, keys = _train_both(spec, overrides, iters=3)
    _assert_close(a, t, [k for k in keys if t[k].dtype.kind == "f" and "/v/" not in k
                         and "/m/" not in k], rtol=5e-4)
    assert a["optim/D/t"][0] == t["optim/D/t"][0]
    got, want = ours.read_metrics(), theirs.read_metrics()
    for key in ("d_loss", "d_real", "d_fake", "g_loss", "finite"):
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key


def test_adam_over_many_updates_matches_torch():
    """Adam's bias correction changes with every update: 40 iterations of k = 2."""
    program, ours, theirs, a, t, keys = _train_both(
        "toy1d.yaml", ("training.k=2",), iters=40)
    _assert_close(a, t, [k for k in keys if t[k].dtype.kind == "f"], rtol=2e-3)
    assert a["optim/D/t"][0] == 80 and a["optim/G/t"][0] == 40


@pytest.mark.skipif(host_reason() is not None, reason=str(host_reason()))
@pytest.mark.parametrize("overrides", [
    ("training.optimizer={type: sgd, lr: 0.05, momentum: 0.5}",),
    # eps 1e-3: with 1e-8, a gradient that rounds to ±1e-9 moves θ by ±lr (m/√v is its sign)
    ("training.k=2", "training.optimizer={type: adam, lr: 0.001, beta1: 0.5, eps: 0.001}"),
], ids=["sgd-momentum", "adam"])
def test_plans_on_the_compiled_kernels_train_like_torch(overrides):
    """The whole plan on the .cu kernels compiled for the CPU (the host executor), not their
    twins, against torch: every parameter and optimiser slot after a few updates (Adam's bias
    correction differs at each), at float32 tolerance."""
    from advgraph_cupy.runtime import HostExecutor

    program, ours, theirs, a, t, keys = _train_both("ring2d.yaml", overrides, iters=3,
                                                    executor=HostExecutor())
    per = {"sgd": 1, "adam": 2}  # velocity; m and v
    slots = [k for k in keys if k.startswith("optim/") and not k.endswith("/t")]
    assert len(slots) == sum(len(net.params()) * per[ours.optim[net.name].kind]
                             for net in (program.G, program.D))
    _assert_close(a, t, [k for k in keys if t[k].dtype.kind == "f"], rtol=5e-4)


def test_deferred_iterations_equal_single_phases_across_epochs():
    """An iteration replayed as one (k recorded D-updates + the G-update) equals the same
    updates executed one phase at a time, bit for bit, across epoch boundaries."""
    program, sched, optim, data, y, params = _setup("ring2d-cgan.yaml", ("training.k=3",))
    m = 16

    def run(each: bool):
        tr = CupyTrainer(program, TwinExecutor(), 99, m, optim)
        tr.load_state_dict(params)
        tr.load_data(data, y)
        tr.set_order(np.arange(len(data)))
        rng, b, per = np.random.default_rng(1), 0, len(data) // m
        for it in range(5):
            for _ in range(3):
                if b and b % per == 0:
                    tr.set_order(rng.permutation(len(data)))
                tr.d_step((b % per) * m, sched["D"].lr(b), 0.5)
                b += 1
                if each:
                    tr.flush()
            tr.g_step(sched["G"].lr(it), 0.5)
        return tr.state_dict(), tr.read_metrics()

    (a, ma), (b, mb) = run(False), run(True)
    assert ma == mb
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("rows", [1, 70, 1500])
def test_inference_any_batch_size(rows):
    program, sched, optim, data, y, params = _setup("mnist-cgan.yaml")
    ours, theirs = _trainers(compile_loaded(load_file(SPECS / "mnist-cgan.yaml")), optim, data, y,
                             params, 16)
    rng = np.random.default_rng(2)
    z = rng.uniform(-1, 1, (rows, program.prior.dim)).astype(np.float32)
    labels = rng.integers(0, 10, rows)
    np.testing.assert_allclose(ours.generate(z, labels), theirs.generate(z, labels), atol=2e-5)
    x = rng.random((rows, 784)).astype(np.float32)
    np.testing.assert_allclose(ours.discriminate(x, labels), theirs.discriminate(x, labels),
                               atol=2e-5)
    with pytest.raises(BackendError, match="conditional on 10 classes"):
        ours.generate(z)


def test_metrics_report_non_finite_parameters_and_reset():
    program, sched, optim, data, y, params = _setup("toy1d.yaml")
    tr = CupyTrainer(program, TwinExecutor(), 1, 16, optim)
    tr.load_state_dict(params)
    tr.load_data(data)
    tr.set_order(np.arange(len(data)))
    tr.d_step(0, 0.01, 0.5)
    tr.g_step(0.01, 0.5)
    first = tr.read_metrics()
    assert first["finite"] == 1.0 and 0 < first["d_real"] < 1
    assert tr.read_metrics()["d_loss"] == 0.0  # the sums were reset by the read
    bad = dict(params)
    bad["G.h0.weight"] = params["G.h0.weight"].copy()
    bad["G.h0.weight"][0, 0] = np.nan
    tr.load_state_dict(bad)
    assert tr.read_metrics()["finite"] == 0.0


def test_bad_inputs_and_state_are_refused():
    program, sched, optim, data, y, params = _setup("toy1d.yaml")
    tr = CupyTrainer(program, TwinExecutor(), 1, 16, optim)
    tr.load_state_dict(params)
    with pytest.raises(BackendError, match=r"G takes rows of 4 values; got an array of shape "
                                           r"\(3, 5\)"):
        tr.generate(np.zeros((3, 5), np.float32))
    with pytest.raises(BackendError, match="D takes rows of 1 values"):
        tr.discriminate(np.zeros((4, 3), np.float32))
    bad = {**tr.state_dict(), "rng/cupy": np.array([1.5, 2, 3, 4], np.float32)}
    with pytest.raises(BackendError, match="four uint32"):
        tr.load_state_dict(bad)
    bad = {**tr.state_dict(), "optim/D/m/D.y.bias": np.zeros(5, np.float32)}
    with pytest.raises(BackendError, match=r"optim/D/m/D.y.bias: shape \(5,\)"):
        tr.load_state_dict(bad)
    t_before = tr.t["G"]
    with pytest.raises(BackendError, match="noise of shape"):
        tr.g_step(0.1, 0.5, z=np.zeros((2, 4), np.float32))
    assert tr.t["G"] == t_before  # a refused step changes nothing
    cond = _setup("ring2d-cgan.yaml")
    tc = CupyTrainer(cond[0], TwinExecutor(), 1, 16, cond[2])
    with pytest.raises(BackendError, match="labels must be integers"):
        tc.generate(np.zeros((3, 16), np.float32), np.array([0.5, 1.7, 2.2]))


def test_minibatch_positions_outside_the_data_are_refused():
    program, sched, optim, data, y, params = _setup("toy1d.yaml")
    tr = CupyTrainer(program, TwinExecutor(), 1, 16, optim)
    tr.load_state_dict(params)
    tr.load_data(data)
    with pytest.raises(BackendError, match="minibatch position 80 outside 0..67"):
        tr.d_step(80, 0.1, 0.5)
    with pytest.raises(BackendError, match="an order of 3 indices for 83 examples"):
        tr.set_order(np.arange(3))
