"""`--backend cupy --device cpu` as a user runs it: our CUDA kernels, compiled as C++ by the host
executor, train through the CLI to the same equilibrium as torch, resume bit-exactly, and their
checkpoints sample and resume on torch (and the other way round); `parity` passes."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph.ir import Op  # noqa: E402
from advgraph.run.directory import RunDir  # noqa: E402
from advgraph.run.restore import restore_run  # noqa: E402
from tests.conftest import ROOT, SPECS  # noqa: E402
from tests.helpers import cli, runs_root  # noqa: E402

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy.host import available  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
CUPY = ["--backend", "cupy", "--device", "cpu"]
SMALL = ["--set", "data.train=2000", "--set", "data.valid=100", "--set", "data.test=100",
         "--set", "training.log_every=10", "--set", "training.checkpoint={steps: 20}"]


def _tensors(name: str) -> dict[str, np.ndarray]:
    return RunDir(runs_root() / name).latest_checkpoint()[1]


@pytest.mark.slow
def test_toy1d_trains_to_the_equilibrium_on_the_host_executor():
    # Half the shipped 3000 steps: G's std is within the bound from about step 750 on, and is
    # no safer at 3000 (on torch, 8 of 8 seeds pass at 1500, 6 of 8 at 3000).
    r = cli("train", SPECS / "toy1d.yaml", *CUPY, "--set", "training.stop.steps=1500")
    assert r.exit_code == 0, r.stderr
    assert "run toy1d-001 finished: step 1500" in r.stdout
    state = json.loads(sorted((runs_root() / "toy1d-001" / "checkpoints").glob("*.json"))[-1]
                       .read_text())
    assert state["backend"] == "cupy"
    for backend in ("cupy", "torch"):  # the checkpoint is backend-neutral
        loaded = restore_run(RunDir(runs_root() / "toy1d-001"), backend=backend)
        z = np.random.default_rng(0).uniform(-1, 1, (20_000, 4)).astype(np.float32)
        x = loaded.trainer.generate(z)[:, 0]
        assert abs(x.mean() - 4.0) < 0.1 * 4.0 and abs(x.std() - 0.5) < 0.1 * 0.5, backend
        d = loaded.trainer.discriminate(loaded.splits.test)
        assert abs(d.mean() - 0.5) < 0.1, backend


@pytest.mark.slow
def test_resume_on_the_host_executor_is_bit_exact():
    for name, steps in (("whole", 40), ("part", 20)):
        r = cli("train", SPECS / "ring2d.yaml", "--name", name, *CUPY, *SMALL,
                "--set", f"training.stop.steps={steps}")
        assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "part", "--set", "training.stop.steps=40")
    assert r.exit_code == 0, r.stderr
    a, b = _tensors("whole"), _tensors("part")
    assert set(a) == set(b) and "rng/cupy" in a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rows = [json.loads(line) for line in (runs_root() / "part" / "metrics.jsonl").read_text()
            .splitlines()]
    assert [row["step"] for row in rows] == [10, 20, 30, 40]


@pytest.mark.slow
def test_checkpoints_cross_backends():
    """A cupy run samples on torch; a torch run resumes on cupy and a cupy run on torch."""
    r = cli("train", SPECS / "ring2d-cgan.yaml", "--name", "c", *CUPY, *SMALL,
            "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr
    for backend in ("torch", "cupy"):
        r = cli("sample", "c", "--backend", backend, "--npz", f"s-{backend}.npz", "--n", "64",
                "--label", "3")
        assert r.exit_code == 0, r.stderr
    a, b = np.load("s-torch.npz")["samples"], np.load("s-cupy.npz")["samples"]
    np.testing.assert_allclose(a, b, atol=1e-4)  # same G, same z, two backends
    r = cli("train", "--resume", "c", "--backend", "torch", "--set", "training.stop.steps=30")
    assert r.exit_code == 0, r.stderr
    assert "resuming a cupy checkpoint on torch" in r.stderr  # noise streams start afresh
    info = RunDir(runs_root() / "c").info()
    assert info["backend"] == "torch" and "torch" in info["versions"]
    r = cli("train", SPECS / "ring2d.yaml", "--name", "t", *SMALL, "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "t", *CUPY, "--set", "training.stop.steps=30")
    assert r.exit_code == 0, r.stderr
    assert RunDir(runs_root() / "t").info()["backend"] == "cupy"


@pytest.mark.parametrize("spec,extra", [
    ("mnist.yaml", []),  # SGD with momentum
    ("mnist-cgan.yaml", []),  # conditional, graph form
    ("ring2d-cgan.yaml", []),  # conditional, Adam
    ("toy1d.yaml", ["--set", "training.k=2"]),  # Adam, k = 2
])
@pytest.mark.slow
def test_parity_torch_vs_cupy_on_the_host(spec, extra):
    r = cli("parity", SPECS / spec, "--backends", "torch,cupy", "--devices", "cpu", *extra)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout


def _parity_gradients(spec) -> set[str]:
    """`parity` torch vs cupy on the host: every row passes; the tensors whose gradients it
    compared."""
    r = cli("parity", spec, "--backends", "torch,cupy", "--devices", "cpu", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)
    assert rows and all(row["ok"] for row in rows)
    return {row["tensor"] for row in rows if row["stage"] == "gradient"}


FAN_OUT = """
prior: {type: uniform, dim: 4}
data: {dataset: toy-ring2d, train: 200, valid: 20, test: 20}
generator:
  graph:
    - {name: h, inputs: z, layers: [{type: dense, units: 12}, {type: relu}]}
    - {name: a, inputs: h, layers: [{type: dense, units: 3}]}
    - {name: b, inputs: h, layers: [{type: dense, units: 5}, {type: tanh}]}
    - {name: out, inputs: [a, b], layers: [{type: dense, units: 2}]}
discriminator:
  graph:
    - {name: h, inputs: x, layers: [{type: dense, units: 12}, {type: leaky_relu, slope: 0.2}]}
    - {name: a, inputs: h, layers: [{type: maxout, units: 4, pieces: 2}]}
    - {name: b, inputs: h, layers: [{type: dense, units: 6}]}
    - {name: c, inputs: h, layers: [{type: dense, units: 2}, {type: relu}]}
    - {name: out, inputs: [a, b, c], layers: [{type: dense, units: 1}, {type: sigmoid}]}
training:
  batch_size: 16
  optimizer: {type: sgd, lr: 0.1, momentum: 0.5}
  stop: {steps: 10}
"""


def test_a_value_read_by_several_gemms_sums_their_gradients_in_place(tmp_path):
    """h feeds two or three GEMMs: the first writes h's gradient, the others add to it
    (accumulating GEMMs, no scratch copy), and every gradient still equals torch's."""
    from advgraph.backend_protocol import OptimConfig
    from advgraph.spec import load_file
    from advgraph_cupy.lowering import lower
    from tests.programs import compile_loaded

    spec = tmp_path / "fan-out.yaml"
    spec.write_text(FAN_OUT)
    plan = lower(compile_loaded(load_file(spec)), 16, {"G": OptimConfig("sgd"),
                                                      "D": OptimConfig("sgd")})
    summed = [l.note for l in plan.g_step if l.kernel == "gemm" and l.note.endswith("(Σ)")]
    assert summed == ["d D.b.l0.input (Σ)", "d D.a.l0.input (Σ)", "d G.a.l0.input (Σ)"]
    assert not any(l.kernel == "copy2d" and l.note.startswith("Σ") for l in plan.g_step)
    r = cli("parity", spec, "--backends", "torch,cupy", "--devices", "cpu")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout


POOLED = """
prior: {type: uniform, dim: 4}
data: {dataset: toy-ring2d, train: 200, valid: 20, test: 20}
generator:
  layers:
    - {type: dense, units: 80}
    - {type: reshape, shape: [5, 4, 4]}
    - {type: max_pool, kernel: 2, stride: 1, pad: 1}
    - {type: flatten}
    - {type: dense, units: 2}
discriminator:
  layers:
    - {type: dense, units: 3}
    - {type: leaky_relu, slope: 0.2}
    - {type: dense, units: 126}
    - {type: reshape, shape: [2, 7, 9]}
    - {type: max_pool, kernel: 3, stride: 2, pad: 1}
    - {type: flatten}
    - {type: dense, units: 1}
    - {type: sigmoid}
training:
  batch_size: 16
  optimizer: {type: sgd, lr: 0.1, momentum: 0.5}
  stop: {steps: 10}
"""


def test_max_pool_on_cupy_matches_torch(tmp_path):
    """Overlapping windows with padding on a non-square plane, in G (its input gradient flows
    back to the dense layer) and in D: forward, every gradient and one step as torch's."""
    spec = tmp_path / "pooled.yaml"
    spec.write_text(POOLED)
    assert {"G.l0.weight", "D.l2.weight"} <= _parity_gradients(spec)


CONV = """
prior: {type: gaussian, dim: 6}
data: {dataset: npz, path: images.npz, flatten: false}
generator:
  layers:
    - {type: dense, units: 48}
    - {type: relu}
    - {type: reshape, shape: [3, 4, 4]}
    - {type: conv_transpose2d, channels: 4, kernel: 3, stride: 2, pad: 1, output_pad: 1}
    - {type: relu}
    - {type: conv_transpose2d, channels: 2, kernel: 2, stride: 1, pad: 0}
    - {type: sigmoid}
discriminator:
  layers:
    - {type: conv2d, channels: 5, kernel: 3, stride: 2, pad: 1}
    - {type: leaky_relu, slope: 0.2}
    - {type: conv2d, channels: 3, kernel: 2, stride: 1, pad: 0}
    - {type: maxout_conv, channels: 2, pieces: 3, kernel: 3, pad: 2}
    - {type: flatten}
    - {type: dense, units: 1}
    - {type: sigmoid}
training:
  batch_size: 8
  optimizer: {type: sgd, lr: 0.1, momentum: 0.5}
  stop: {steps: 6}
  checkpoint: {steps: 6}
  log_every: 3
"""


def test_convolutions_on_cupy_match_torch_and_train(tmp_path):
    """conv_transpose2d in G (overlapping windows, output_pad), conv2d and maxout_conv in D on
    2 × 9 × 9 images: forward, every gradient and one step as torch's; a short cupy run resumes
    on torch."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", x=rng.random((40, 2, 9, 9)).astype(np.float32))
    spec = tmp_path / "conv.yaml"
    spec.write_text(CONV)
    grads = _parity_gradients(spec)
    assert {"G.l3.weight", "G.l5.bias", "D.l0.weight", "D.l2.bias", "D.l3.weight"} <= grads
    r = cli("train", spec, "--name", "cv", "--backend", "cupy", "--device", "cpu")
    assert r.exit_code == 0, r.stderr
    on_cupy = _tensors("cv")
    r = cli("train", "--resume", "cv", "--backend", "torch", "--set", "training.stop.steps=9")
    assert r.exit_code == 0, r.stderr
    assert "run cv finished: step 9" in r.stdout
    assert "resuming a cupy checkpoint on torch" in r.stderr
    ckpt, on_torch, _ = RunDir(runs_root() / "cv").latest_checkpoint()
    assert ckpt.step == 9 and set(on_torch) - {"rng/cupy", "rng/torch/cpu"} == \
        set(on_cupy) - {"rng/cupy", "rng/torch/cpu"}
    for key in ("G.l3.weight", "D.l3.weight"):  # trained on from cupy's parameters
        assert np.isfinite(on_torch[key]).all() and not np.array_equal(on_torch[key],
                                                                         on_cupy[key])
        assert np.abs(on_torch[key] - on_cupy[key]).max() < 0.5 * np.abs(on_cupy[key]).max()


def test_parity_works_out_of_the_box():
    """No options: torch against cupy on the CPU, and every row passes."""
    r = cli("parity", SPECS / "ring2d.yaml")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "parity torch (cpu) vs cupy (cpu)" in r.stdout
    passed = re.search(r"(\d+) passed, 0 failed", r.stdout)
    # G(z) and D(x); the gradient of each of the 12 parameters, each after the step
    assert passed and int(passed.group(1)) >= 2 + 12 + 12


def test_errors_are_located_and_clean(tmp_path, monkeypatch):
    r = cli("train", SPECS / "toy1d.yaml", "--backend", "cupy", "--device", "cuda")
    assert r.exit_code != 0 and "no CUDA device is available" in r.stderr
    r = cli("train", SPECS / "toy1d.yaml", "--backend", "cupy", "--device", "tpu")
    assert r.exit_code != 0 and "not supported (use cpu, cuda or cuda:N)" in r.stderr
    r = cli("train", SPECS / "toy1d.yaml", "--backend", "cupy", "--device", "cuda:")
    assert r.exit_code != 0 and "bad device 'cuda:'" in r.stderr
    # every op lowers today: an op without emitters (as a new one) is refused by name
    import advgraph_cupy.lowering as lowering
    from advgraph_cupy.lowering import lowerer

    for where in (lowering, lowerer):  # what the backend's check reads, and the lowering's own
        monkeypatch.setattr(where, "SUPPORTED", lowerer.SUPPORTED - {Op.BATCHNORM})
    monkeypatch.setitem(lowerer.UNSUPPORTED, Op.BATCHNORM, "it couples the examples of a batch")
    bn = tmp_path / "bn.yaml"
    bn.write_text((SPECS / "ring2d.yaml").read_text().replace(
        "    - {type: relu}\n", "    - {type: batchnorm, name: bn}\n", 1))
    for args in (("train", bn, *CUPY), ("check", bn, "--backend", "cupy")):
        r = cli(*args)
        assert r.exit_code != 0 and "node 'G.bn': op 'batchnorm' is not supported by " \
                                    "backend 'cupy': it couples the examples of a batch" in r.stderr
    assert not (runs_root()).exists() or not any(runs_root().iterdir())
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("ADVGRAPH_CACHE", str(blocker))
    r = cli("train", SPECS / "toy1d.yaml", *CUPY)
    assert r.exit_code == 1 and "cannot build its kernels under" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_cupy_run_that_cannot_build_here_suggests_torch(tmp_path, monkeypatch):
    """sample/eval read a run on the backend that trained it; where its kernels cannot be
    built (here: no compiler, nothing cached) the error says --backend torch reads it."""
    r = cli("train", SPECS / "ring2d.yaml", "--name", "k", *SMALL,
            "--set", "training.stop.steps=20")
    assert r.exit_code == 0, r.stderr
    info = runs_root() / "k" / "run.json"  # as if cupy had trained it (checkpoints are alike)
    info.write_text(json.dumps({**json.loads(info.read_text()), "backend": "cupy"}))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    monkeypatch.setenv("ADVGRAPH_CACHE", str(tmp_path / "cache"))
    r = cli("sample", "k", "--npz", tmp_path / "s.npz")
    assert r.exit_code == 1 and "--backend torch reads it with torch" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = cli("sample", "k", "--npz", tmp_path / "s.npz", "--backend", "torch")
    assert r.exit_code == 0, r.stderr


# cifar10-conv with G's two dense layers narrowed (8000 → 400 and 800 units, so 8 maps of
# 10 × 10 into its conv_transpose2d instead of 80) and D's widest two (c2's 192 maps → 16, h3's
# 500 units → 50): every layer's op, kernel size, stride, padding and pieces as the paper's
# (c0 and c1, the 8 × 8 kernels on 32 × 32 images, unchanged), in seconds on the host executor.
CIFAR_NARROW = ["generator.layers[0].units=400", "generator.layers[2].units=800",
                "generator.layers[4].shape=[8, 10, 10]", "discriminator.layers[4].channels=16",
                "discriminator.layers[7].units=50"]
CIFAR_SMALL = ["--set", "training.batch_size=4", "--set", "data.train=16",
               "--set", "training.log_every=1", "--set", "training.checkpoint={steps: 1}",
               *(a for o in CIFAR_NARROW for a in ("--set", o))]


class _Lockstep:
    """An executor that runs every launch on the host executor and on the twins, from the same
    inputs: before each launch the host's copies of the buffers it touches are set to the
    twins', after it they must agree (integers exactly, floats to `rtol` of the buffer's largest
    magnitude). Each kernel is so checked on the real plan's data, without the two runs
    drifting apart (a maxout or max-pooling near-tie resolved differently would send later
    gradients elsewhere)."""

    name = "lockstep"

    def __init__(self, rtol: float = 1e-4):
        from advgraph_cupy.runtime import HostExecutor, TwinExecutor

        self.host, self.twins, self.rtol = HostExecutor(), TwinExecutor(), rtol
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.launched: dict[str, int] = {}

    def alloc(self, dtype, size):
        pair = (self.host.alloc(dtype, size), self.twins.alloc(dtype, size))
        self.pairs.append(pair)
        return pair

    def view(self, pair, buf):
        return _Views(self.host.view(pair[0], buf), self.twins.view(pair[1], buf), pair)

    def upload(self, pair, host, offset=0):
        for ex, arr in zip((self.host, self.twins), pair):
            ex.upload(arr, host, offset)

    def download(self, pair, offset, size):
        return self.twins.download(pair[1], offset, size)

    def launch(self, kernel, grid, block, args):
        touched = {id(a.pair): a.pair for a in args if isinstance(a, _Views)}.values()
        for h, t in touched:
            h[...] = t
        self.host.launch(kernel, grid, block, [a.host if isinstance(a, _Views) else a
                                               for a in args])
        self.twins.launch(kernel, grid, block, [a.twin if isinstance(a, _Views) else a
                                                for a in args])
        for h, t in touched:
            if t.dtype.kind != "f":
                assert np.array_equal(h, t), kernel
            elif t.size:
                err = float(np.abs(h.astype(np.float64) - t).max())
                assert err <= self.rtol * float(np.abs(t).max()), f"{kernel}: {err:.3g}"
        self.launched[kernel] = self.launched.get(kernel, 0) + 1

    def capture(self, bound):
        return list(bound)

    def replay(self, captured):
        for launch in captured:
            self.launch(*launch)


class _Views:
    def __init__(self, host, twin, pair):
        self.host, self.twin, self.pair = host, twin, pair


@pytest.mark.slow
def test_cifar10_conv_on_the_host_executor_equals_the_twins(monkeypatch):
    """The paper's CIFAR-10 conv nets (D's maxout_conv and max_pool layers as the spec has
    them, G and D's widest layers narrowed: CIFAR_NARROW), two iterations of Algorithm 1 at batch 4, in lock step:
    every launch of the .cu kernels compiled for the CPU gives what its NumPy twin gives from
    the same inputs, noise included (in-kernel Philox on both)."""
    from advgraph.params import init_params
    from advgraph.spec import load_file
    from advgraph.run.schedule import Schedule
    from advgraph_cupy.backend import CupyTrainer
    from tests.programs import compile_loaded

    loaded = load_file(SPECS / "cifar10-conv.yaml", ["training.batch_size=4", *CIFAR_NARROW])
    program = compile_loaded(loaded)
    sched = {g: Schedule(loaded.spec.training.optimizer_for(g)) for g in ("G", "D")}
    rng = np.random.default_rng(0)
    data = rng.standard_normal((12, *program.data_shape)).astype(np.float32)
    params = init_params(program, np.random.default_rng(1), data)
    monkeypatch.setenv("ADVGRAPH_CUPY_REUSE", "0")  # a buffer each: each launch touches its own
    ex = _Lockstep()
    tr = CupyTrainer(program, ex, 5, 4, {g: s.config() for g, s in sched.items()})
    tr.load_state_dict(params)
    tr.load_data(data)
    tr.set_order(np.arange(12))
    for it in range(2):
        tr.d_step(4 * it, sched["D"].lr(it), sched["D"].momentum(0))
        tr.g_step(sched["G"].lr(it), sched["G"].momentum(0))
    assert tr.read_metrics()["finite"] == 1.0
    assert {"im2col", "col2im", "gemm_batched", "maxout_fwd", "maxpool_bwd", "noise",
            "sgd_momentum"} <= set(ex.launched)
    assert np.abs(params["D.c0.weight"] - tr.state_dict()["D.c0.weight"]).max() > 0  # trained


@pytest.mark.slow
def test_cifar10_conv_resumes_bit_exactly_on_the_host_executor(tmp_path):
    """Two steps of cifar10-conv (narrowed: CIFAR_NARROW) on small generated CIFAR-10
    batches, straight through and as one step resumed: every tensor, the RNG and the optimiser
    state bit-identical."""
    from tests.unit.test_cifar import make_cifar_dir

    root = make_cifar_dir(tmp_path / "cifar", per_batch=4)
    for name, steps in (("whole", 2), ("part", 1)):
        r = cli("train", SPECS / "cifar10-conv.yaml", "--name", name, *CUPY, "--data-root",
                root, *CIFAR_SMALL, "--set", f"training.stop={{steps: {steps}}}")
        assert r.exit_code == 0, r.stderr
    r = cli("train", "--resume", "part", "--set", "training.stop={steps: 2}")
    assert r.exit_code == 0, r.stderr
    a, b = _tensors("whole"), _tensors("part")
    assert set(a) == set(b) and "rng/cupy" in a and "optim/G/velocity/G.h1.weight" in a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_batchnorm_and_image_concat_on_cupy_match_torch_and_resume_across(tmp_path):
    """batchnorm on features and on images in G and D (D's real and fake halves with their own
    statistics in cupy's one pass, as torch's two passes), a label concatenated to images as
    maps: forward, every gradient, one Adam step and the running statistics as torch's. A cupy
    run resumes on torch and a torch run on cupy, running statistics included, and inference
    uses them alike on both."""
    from tests.programs import write_conv_spec

    spec = write_conv_spec(tmp_path)
    grads = _parity_gradients(spec)
    assert {"G.h.l1.weight", "G.joint.l1.bias", "D.joint.l1.weight"} <= grads
    for first, then in (("cupy", "torch"), ("torch", "cupy")):
        name = f"bn-{first}"
        r = cli("train", spec, "--name", name, "--backend", first, "--device", "cpu",
                "--set", "training.checkpoint={steps: 3}")
        assert r.exit_code == 0, r.stderr
        saved = _tensors(name)
        stats = saved["D.joint.l1.running_var"]
        assert stats.shape == (5,) and np.all(stats > 0) and not np.allclose(stats, 1.0)
        # read by the other backend as written, and used by inference alike on both
        runs = {b: restore_run(RunDir(runs_root() / name), backend=b) for b in (first, then)}
        state = runs[then].trainer.state_dict()
        for key in [k for k in saved if "running" in k]:
            np.testing.assert_array_equal(state[key], saved[key], err_msg=key)
        z = np.random.default_rng(0).standard_normal((6, 6)).astype(np.float32)
        y = np.arange(6) % 3
        np.testing.assert_allclose(runs[then].trainer.generate(z, y),
                                   runs[first].trainer.generate(z, y), rtol=1e-4, atol=1e-5)
        r = cli("train", "--resume", name, "--backend", then, "--device", "cpu",
                "--set", "training.stop={steps: 5}")
        assert r.exit_code == 0, r.stderr
        assert not np.array_equal(_tensors(name)["D.joint.l1.running_var"], stats)
