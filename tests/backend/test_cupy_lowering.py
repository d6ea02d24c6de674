"""The CuPy backend without a GPU: every kernel compiles through NVRTC for sm_80 and sm_90, the
lowering produces the expected launch plan with correctly typed arguments, and that plan, run by
the NumPy twins of the kernels, trains exactly like the torch backend."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from advgraph.backend import OptimConfig, get_backend
from advgraph.compile import compile_spec
from advgraph.errors import LoweringError
from advgraph.params import init_params
from advgraph.spec import load_file, load_text
from tests.conftest import ROOT, SPECS

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import plan as P  # noqa: E402
from advgraph_cupy import render, simulate  # noqa: E402

SGD = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}
ADAM = {"G": OptimConfig("adam", 0.5, 0.999, 1e-8), "D": OptimConfig("adam", 0.5, 0.999, 1e-8)}


def _nvrtc_reason() -> str | None:
    try:
        render._load_nvrtc().getVersion()
    except Exception as e:  # no cupy, or no NVRTC library
        return f"NVRTC not available here ({type(e).__name__}: {e}); install .[kernels]"
    return None


@pytest.mark.skipif(_nvrtc_reason() is not None, reason=str(_nvrtc_reason()))
@pytest.mark.parametrize("arch", render.ARCHS)
@pytest.mark.parametrize("name", sorted(render.sources()))
def test_every_kernel_compiles_through_nvrtc(name, arch):
    ptx = render.compile_ptx(name, arch)
    entries = {line.split()[-1].rstrip("(") for line in ptx.splitlines() if ".entry" in line}
    declared = {k for k in render.signatures() if f"void {k}(" in render.sources()[name]
                or f") {k}(" in render.sources()[name] or f"\n{k}(" in render.sources()[name]}
    assert declared and declared <= entries
    assert f".target {arch}" in ptx


def test_signatures_are_parsed():
    sig = render.signatures()
    assert [p.ctype for p in sig["gemm"]][:4] == ["const float*", "const float*", "float*",
                                                  "const float*"]
    assert [p.name for p in sig["gemm"]][-4:] == ["transA", "transB", "epilogue", "slope"]
    assert sig["dropout_fwd"][-1].ctype == "unsigned int"


def test_mnist_launch_plan():
    program = compile_spec(load_file(SPECS / "mnist.yaml"))
    plan = P.lower(program, 100, SGD)
    names = [launch.kernel for launch in plan.d_step]
    assert names == (["noise"] + ["gemm"] * 3 + ["gather_rows", "advance_pos"]
                     + ["dropout_fwd", "gemm", "maxout_fwd"] * 2 + ["dropout_fwd", "gemm", "bce_d"]
                     + ["gemm", "bias_grad", "gemm"]
                     + ["dropout_bwd", "maxout_bwd", "gemm", "bias_grad", "gemm"] * 2
                     + ["sgd_momentum", "advance_rng"])
    notes = [launch.note for launch in plan.d_step[1:4]]
    assert notes == ["G.h0 + relu", "G.h1 + relu", "G.y + sigmoid"]  # fused epilogues
    g = [launch.kernel for launch in plan.g_step]
    assert g.count("gemm") == 3 + 3 + 3 + (3 + 2)  # G fwd, D fwd, D input grads, G bwd
    assert g[-2:] == ["sgd_momentum", "advance_rng"]
    assert len(plan.iteration(1)) == 64 and len(plan.iteration(2)) == 64 + len(plan.d_step)
    # D's real and fake halves share one 2m-row pass: G writes into D.x's second half.
    assert plan.d_step[3].args[2] == P.Buf("D.x", 100 * 784)
    assert plan.buffers["G.params"].size == 2_503_984 and plan.buffers["D.params"].size == 1_231_441


@pytest.mark.parametrize("optim", [SGD, ADAM], ids=["sgd", "adam"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "toy1d", "ring2d"])
def test_plan_arguments_match_the_kernel_signatures(name, optim):
    program = compile_spec(load_file(SPECS / f"{name}.yaml"))
    P.check(P.lower(program, 100, optim))


def test_unsupported_op_is_a_lowering_error():
    text = (SPECS / "ring2d.yaml").read_text().replace(
        "    - {type: relu}\n", "    - {type: batchnorm, name: bn}\n", 1)
    program = compile_spec(load_text(text, "x.yaml"))
    with pytest.raises(LoweringError, match="node 'G.bn': op 'batchnorm' is not supported by "
                                            "backend 'cupy'"):
        P.lower(program, 64, SGD)


def test_conditional_programs_are_a_lowering_error():
    """The CuPy plan has no CONCAT kernel yet: a conditional GAN is refused at compile time."""
    program = compile_spec(load_file(SPECS / "ring2d-cgan.yaml"))
    with pytest.raises(LoweringError, match="node 'G.concat': op 'concat' is not supported by "
                                            "backend 'cupy'"):
        P.lower(program, 64, SGD)


def test_philox_known_answers():
    """Random123's known-answer vectors for Philox4x32-10."""
    cases = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
             ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
             ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
              (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for c, k, want in cases:
        got = simulate.philox4x32_10(np.array([c], np.uint64), *k)[0]
        assert tuple(int(v) for v in got) == want


def test_noise_and_dropout_kernels_statistics():
    rng = np.array([123, 456, 7, 0], np.uint32)
    z = np.zeros(40_001, np.float32)
    simulate.k_noise(z, 40_001, 1, 1.0, 2.0, rng, 3)
    assert abs(z.mean() - 1.0) < 0.03 and abs(z.std() - 2.0) < 0.03
    simulate.k_noise(z, 40_001, 0, -3 ** 0.5, 3 ** 0.5, rng, 4)
    assert z.min() >= -3 ** 0.5 and z.max() <= 3 ** 0.5 and abs(z.var() - 1) < 0.03
    x, y = np.ones(10_000, np.float32), np.zeros(10_000, np.float32)
    mask = np.zeros(10_000, np.uint8)
    simulate.k_dropout_fwd(x, y, mask, 10_000, 0.8, 1.25, rng, 5)
    assert abs(mask.mean() - 0.8) < 0.015 and set(np.unique(y)) == {0.0, 1.25}
    other = mask.copy()
    simulate.k_dropout_fwd(x, y, mask, 10_000, 0.8, 1.25, rng, 6)  # another stream: new masks
    assert (other != mask).mean() > 0.2


def _against_torch(spec, overrides, optim, m=20, lr=0.05, momentum=0.5):
    pytest.importorskip("torch")
    loaded = load_file(SPECS / spec, overrides)
    program = compile_spec(loaded)
    rng = np.random.default_rng(0)
    data = rng.random((4 * m, *program.data_shape)).astype(np.float32)
    params = init_params(program, np.random.default_rng(1), data)
    order = rng.permutation(len(data))
    plan = P.lower(program, m, optim)
    P.check(plan)
    bufs = simulate.allocate(plan, {"data": data.size, "order": len(order)})
    bufs["data"][:] = data.reshape(-1)
    bufs["order"][:] = order
    for name, (buf, off, size) in plan.param_offsets.items():
        bufs[buf][off:off + size] = params[name].reshape(-1)
    bufs["rng"][:] = [11, 22, 0, 0]
    for net in ("G", "D"):
        bufs[f"{net}.hp"][:] = P.hparams(optim[net], lr, momentum, 1)

    tr = get_backend("torch").build(program, "cpu", 0, m, optim)
    tr.load_state_dict(params)
    tr.load_data(data)
    tr.set_order(order)

    def compare(names):
        state = tr.state_dict()
        for n in names:
            buf, off, size = plan.param_offsets[n]
            net = n[0]
            ours = bufs[buf][off:off + size].reshape(state[n].shape)
            if optim[net].kind == "adam":
                # The moments are linear in the gradient: compare them everywhere. Adam's first
                # step is ≈ lr·sign(g), so where g is rounding noise the parameters may differ.
                for slot in ("m", "v"):
                    np.testing.assert_allclose(
                        bufs[f"{net}.{slot}"][off:off + size].reshape(state[n].shape),
                        state[f"optim/{net}/{slot}/{n}"], rtol=2e-4, atol=1e-7, err_msg=n)
                m1 = np.abs(state[f"optim/{net}/m/{n}"])
                keep = m1 > 1e-3 * max(m1.max(), 1e-30)
                np.testing.assert_allclose(ours[keep], state[n][keep], rtol=2e-4, atol=2e-6,
                                           err_msg=n)
            else:
                np.testing.assert_allclose(ours, state[n], rtol=2e-4, atol=2e-6, err_msg=n)

    dz = program.prior.dim
    simulate.run(plan.d_step, bufs)
    tr.d_step(0, lr, momentum, z=bufs["z"][: m * dz].reshape(m, dz).copy())
    compare([t.name for t in program.D.params()])
    simulate.run(plan.g_step, bufs)
    tr.g_step(lr, momentum, z=bufs["z"][: m * dz].reshape(m, dz).copy())
    compare([t.name for t in program.tensors()])
    got = tr.read_metrics()
    np.testing.assert_allclose(bufs["metrics"], [got["d_loss"], got["d_real"], got["d_fake"],
                                                 got["g_loss"]], rtol=1e-4, atol=1e-6)
    assert bufs["pos"][0] == m and bufs["rng"][2] == 2  # advanced in-plan


NO_DROPOUT = [f"discriminator.layers[{i}].keep=1.0" for i in (0, 2, 4)]


@pytest.mark.parametrize("optim", [SGD, ADAM], ids=["sgd", "adam"])
def test_plan_trains_like_torch_on_the_mnist_nets(optim):
    _against_torch("mnist.yaml", NO_DROPOUT, optim)


def test_plan_trains_like_torch_with_minimax_and_linear_output():
    _against_torch("ring2d.yaml", ["training.g_loss=minimax"], SGD)
    _against_torch("toy1d.yaml", [], ADAM)
