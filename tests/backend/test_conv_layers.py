"""Convolutional layers: shape inference against the torch backend's real output shapes, each
op's torch lowering against the NumPy reference, located geometry errors, and a CIFAR-shaped
conv GAN (the paper's geometry) trained end to end through the CLI on small generated data, and
compared by `parity` with cupy's kernels on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from advgraph.backend_protocol import OptimConfig, get_backend  # noqa: E402
from advgraph.compile import compile_spec  # noqa: E402
from advgraph.errors import SpecError  # noqa: E402
from advgraph.ir import DataInfo  # noqa: E402
from tests.programs import compile_loaded  # noqa: E402
from advgraph.params import init_params  # noqa: E402
from advgraph.spec import load_text  # noqa: E402
from tests.helpers import cli  # noqa: E402

# The paper's CIFAR-10 convolutional D geometry, and its "deconvolutional" G (80×10×10 → 3×32×32
# by a 5×5 transposed convolution with stride 3), with fewer channels so it trains in seconds.
CONV_GAN = """\
prior: {{type: gaussian, dim: 16}}
data: {{dataset: npz, path: {path}, valid: 8, test: 8, flatten: false}}
generator:
  layers:
    - {{type: dense, name: h0, units: 64, init: {{type: uniform, range: 0.05}}}}
    - {{type: relu}}
    - {{type: dense, name: h1, units: 800, init: {{type: uniform, range: 0.05}}}}
    - {{type: sigmoid}}
    - {{type: reshape, shape: [8, 10, 10]}}
    - {{type: conv_transpose2d, name: y, channels: 3, kernel: 5, stride: 3, init: {{type: uniform, range: 0.05}}}}
    - {{type: linear}}
discriminator:
  layers:
    - {{type: maxout_conv, name: c0, channels: 4, pieces: 2, kernel: 8, pad: 4}}
    - {{type: max_pool, kernel: 4, stride: 2}}
    - {{type: maxout_conv, name: c1, channels: 4, pieces: 2, kernel: 8, pad: 3}}
    - {{type: max_pool, kernel: 4, stride: 2}}
    - {{type: maxout_conv, name: c2, channels: 6, pieces: 2, kernel: 5, pad: 3}}
    - {{type: max_pool, kernel: 2, stride: 2}}
    - {{type: flatten}}
    - {{type: maxout, name: h3, units: 20, pieces: 5}}
    - {{type: dense, name: y, units: 1}}
    - {{type: sigmoid}}
training:
  batch_size: 8
  optimizer: {{type: sgd, lr: 0.004, momentum: 0.5}}
  stop: {{steps: 3}}
  checkpoint: {{steps: 3}}
  log_every: 1
"""


@pytest.fixture
def conv_spec(tmp_path):
    x = np.random.default_rng(0).random((48, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "cifar_like.npz", x=x)
    spec = tmp_path / "conv.yaml"
    spec.write_text(CONV_GAN.format(path=tmp_path / "cifar_like.npz"))
    return spec


def test_shape_inference_matches_torch(conv_spec):
    from advgraph.spec import load_file

    program = compile_loaded(load_file(conv_spec))
    shapes = {n.name: n.shape for n in program.D.nodes}
    # the paper's D geometry: 33×33 → pool 15 → 14 → pool 6 → 8 → pool 4
    assert [shapes[k] for k in ("D.c0", "D.l1", "D.c1", "D.l3", "D.c2", "D.l5", "D.l6")] == [
        (4, 33, 33), (4, 15, 15), (4, 14, 14), (4, 6, 6), (6, 8, 8), (6, 4, 4), (96,)]
    assert program.G.node("G.y").shape == (3, 32, 32)
    tr = get_backend("torch").build(program, "cpu", 0, 4, {"G": OptimConfig("sgd"),
                                                           "D": OptimConfig("sgd")})
    tr.load_state_dict(init_params(program, np.random.default_rng(0), None))
    from advgraph_torch.lower import Ctx

    for net, x in ((tr.G, torch.randn(4, 16)), (tr.D, torch.rand(4, 3, 32, 32))):
        h = x
        for fn, node in net.steps:
            h = fn(h, node, tr.tensors, Ctx(False, False, None))
            assert tuple(h.shape[1:]) == node.shape, node.name


@pytest.mark.parametrize("layer,message", [
    ("{type: conv2d, channels: 4, kernel: 8}", "kernel 8 larger than input 6×6 after padding 0"),
    ("{type: max_pool, kernel: 2, pad: 2}", "pad 2 is more than half the kernel 2"),
    ("{type: conv_transpose2d, channels: 2, kernel: 3, stride: 2, output_pad: 2}",
     "output_pad (2) must be smaller than stride (2)"),
])
def test_impossible_geometry_is_located(layer, message):
    text = f"""\
prior: {{type: uniform, dim: 4}}
data: {{dataset: toy-ring2d}}
generator:
  layers: [{{type: dense, units: 2}}]
discriminator:
  layers:
    - {{type: dense, units: 36}}
    - {{type: reshape, shape: [1, 6, 6]}}
    - {layer}
    - {{type: flatten}}
    - {{type: dense, units: 1}}
    - {{type: sigmoid}}
training: {{optimizer: {{type: sgd, lr: 0.1}}, stop: {{steps: 1}}}}
"""
    with pytest.raises(SpecError) as e:
        compile_loaded(load_text(text, "x.yaml"))
    assert [str(p) for p in e.value.problems] == [f"x.yaml:9:7: discriminator.layers[2]: {message}"]


def test_dense_after_images_says_to_flatten():
    text = CONV_GAN.format(path="x.npz").replace("    - {type: flatten}\n", "")
    with pytest.raises(SpecError, match=r"discriminator.layers\[6\]: maxout needs a flat input "
                                        r"\(features,\), got \(6, 4, 4\)"):
        compile_spec(load_text(text, "x.yaml"), DataInfo((3, 32, 32), None))


def test_cifar_shaped_conv_gan_trains_end_to_end(conv_spec):
    r = cli("train", conv_spec, "--name", "conv")
    assert r.exit_code == 0, r.stderr
    assert "run conv finished: step 3" in r.stdout
    r = cli("sample", "conv", "--rows", "2", "--cols", "3")
    assert r.exit_code == 0, r.stderr
    img = Image.open(r.stdout.split("wrote ")[1].strip())
    assert img.mode == "RGB" and img.size == ((3 * 32 + 4 * 2) * 2, (2 * 32 + 3 * 2) * 2)


@pytest.mark.slow
def test_cifar_shaped_conv_gan_on_cupy_matches_torch(conv_spec):
    """The paper's conv geometry on cupy's kernels (the host executor) against torch: forward,
    every gradient and one momentum step."""
    import sys

    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(available())
    r = cli("parity", conv_spec, "--backends", "torch,cupy", "--devices", "cpu", "--batch", "2")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout


def test_cupy_lowers_the_conv_ops(conv_spec):
    """Every launch of the cupy plans of a CIFAR-shaped conv spec fits its kernel's signature
    and stays inside its buffers (the numbers are checked against torch by parity, in
    tests/e2e/test_cupy_cli.py)."""
    import sys

    from advgraph.spec import load_file
    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.footprint import check_plan
    from advgraph_cupy.lowering import lower, lower_inference

    program = compile_loaded(load_file(conv_spec))
    plan = lower(program, 8, {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")})
    kernels = {launch.kernel for launch in plan.iteration(2)}
    assert {"im2col", "col2im", "gemm_batched", "channel_bias", "channel_bias_grad"} <= kernels
    check_plan(plan, phases={"iteration": plan.iteration(2)})
    for net in ("G", "D"):
        check_plan(lower_inference(program, net, 3))
