"""Every example of every op of the registry on the cupy backend's kernels, on the host executor
(the .cu files compiled as C++) and on the twins (their NumPy semantics), as
test_torch_backend runs them on torch: the inference forward against the NumPy reference; the
training forward, the input gradient and every parameter gradient against torch autograd, with
dropout's mask as the kernel drew it and batchnorm on batch statistics (two groups of rows
where the op couples a batch: D's real and fake halves), its running statistics updated as
torch updates them. A new op is covered here without a new test."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from advgraph import reference as R  # noqa: E402
from advgraph.backend_protocol import OptimConfig  # noqa: E402
from advgraph.ir import Op  # noqa: E402
from advgraph.ops import OPS  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.programs import one_op_program  # noqa: E402

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy.lowering import Lowering  # noqa: E402
from advgraph_cupy.kernels.common import width  # noqa: E402
from advgraph_cupy.runtime import HostExecutor, Runtime, TwinExecutor  # noqa: E402
from advgraph_torch.lower import LOWERINGS, Ctx  # noqa: E402

SGD = {"G": OptimConfig("sgd"), "D": OptimConfig("sgd")}
EXAMPLES = [(d.op, shape, attrs) for d in OPS.values() for shape, attrs in d.examples]
IDS = [f"{op.value}-{shape}" for op, shape, _ in EXAMPLES]
ROWS = 12


def _executor(kind: str):
    if kind == "twins":
        return TwinExecutor()
    from advgraph_cupy.host import available

    why = available()
    if why is not None:
        pytest.skip(str(why))
    return HostExecutor(guard=True)


def _params(program, rng):
    """Normal parameters; running variances positive, as the statistics of data are."""
    out = {}
    for t in program.G.tensors():
        v = rng.normal(size=t.shape).astype(np.float32)
        out[t.name] = np.abs(v) + 0.5 if t.name.endswith("running_var") else v
    return out


def _plan(program, train: bool, groups: int):
    """G.n forward on ROWS rows of x (into y), and in training its backward from dy: the input
    gradient into dx, the parameter gradients into G.grads."""
    lw = Lowering(program, ROWS, SGD)
    plan = lw.plan
    plan.buffer("rng", "uint32", 4, "state")
    plan.buffer("metrics", "float32", 8, "host_out")  # a GEMM without bias points at it
    io = {k: plan.buffer(k, "float32", ROWS * width(program.G.node(n)), role)
          for k, n, role in (("x", "G.input", "host_in"), ("y", "G.n", "host_out"),
                             ("dy", "G.n", "host_in"), ("dx", "G.input", "host_out"))}
    out: list = []
    tape = lw.forward(program.G, ROWS, {"x": io["x"]}, out, train=train, tag=".t",
                      final=io["y"], to_logits=False, groups=groups, update_stats=True)
    if train:
        lw.backward(tape, ROWS, io["dy"], out, weights=True, input_grad=io["dx"], tag=".t")
    plan.phases["op"] = out
    return plan


def _run(kind, program, params, x, dy, train, groups):
    plan = _plan(program, train, groups)
    # a buffer each: the gradients are read here after the phase, where a training plan's
    # update reads them inside it (scratch reuse would give their memory to later launches)
    rt = Runtime(_executor(kind), reuse=False)
    rt.ensure(plan)
    for name, spec in plan.buffers.items():
        if name.startswith("G.") and spec.role == "state":
            flat = np.zeros(spec.size, np.float32)
            for t, (buf, off, n) in plan.param_offsets.items():
                if buf == name:
                    flat[off:off + n] = params[t].reshape(-1)
            rt.upload(name, flat)
    rt.upload("rng", np.array([7, 0, 0, 0], np.uint32))
    rt.upload("x", x)
    rt.upload("dy", dy)
    rt.run("op", plan, lambda: plan.phases["op"])

    def read(t: str, grads: bool = False) -> np.ndarray:
        buf, off, n = plan.param_offsets[t]
        return rt.download(buf.replace("params", "grads") if grads else buf, off, n)

    got = {"y": rt.download("y"), "dx": rt.download("dx") if train else None,
           "mask": rt.download("G.n.t.mask") if "G.n.t.mask" in plan.buffers else None}
    got.update({t: read(t, grads=True) for t in params if not t.endswith(("_mean", "_var"))}
               if train else {})
    got.update({t: read(t) for t in params if t.endswith(("_mean", "_var"))})
    return got


def _torch_training(program, params, x, dy, groups, mask):
    """y, dx, the parameter gradients and the running statistics after one training pass, by
    torch autograd on the torch backend's lowering: one pass per group of rows."""
    node = program.G.node("G.n")
    p = {k: torch.tensor(v, requires_grad=not k.endswith(("_mean", "_var")))
         for k, v in params.items()}
    xt = torch.tensor(x.reshape(ROWS, *node_in(program)), requires_grad=True)
    if node.op is Op.DROPOUT:  # the kernel's mask: the draws cannot match torch's generator
        y = xt * torch.tensor(mask.reshape(xt.shape).astype(np.float32)) * node.attrs["scale"]
    else:
        ctx = Ctx(train=True, update_stats=True, gen=torch.Generator().manual_seed(0))
        y = torch.cat([LOWERINGS[node.op](part, node, p, ctx)
                       for part in xt.chunk(groups)])
    y.backward(torch.tensor(dy.reshape(y.shape)))
    out = {"y": y.detach().numpy().reshape(-1), "dx": xt.grad.numpy().reshape(-1)}
    out.update({k: (v.grad if v.requires_grad else v.detach()).numpy().reshape(-1)
                for k, v in p.items()})
    return out


def node_in(program):
    return program.G.node("G.input").shape


def _close(got, want, what, rtol=1e-4):
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    err = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    assert err <= rtol * scale, f"{what}: max |cupy − oracle| = {err:.3g} > {rtol * scale:.3g}"


@pytest.mark.parametrize("kind", ["host", "twins"])
@pytest.mark.parametrize("op,in_shape,attrs", EXAMPLES, ids=IDS)
def test_each_op_matches_the_reference_and_autograd(kind, op, in_shape, attrs):
    program = one_op_program(op, in_shape, attrs, source="x")
    rng = np.random.default_rng(1)
    params = _params(program, rng)
    x = rng.normal(size=(ROWS, *in_shape)).astype(np.float32)
    want = R.forward(program.G, params, x)
    if OPS[op].is_identity(attrs, train=False):  # in inference nothing to launch: the value
        assert np.array_equal(want.reshape(ROWS, -1), x.reshape(ROWS, -1))  # is its input's
    else:
        got = _run(kind, program, params, x, np.zeros((ROWS, 1), np.float32), False, 1)
        _close(got["y"], want.reshape(-1), "inference forward")
    if OPS[op].alias:
        return

    groups = 2 if OPS[op].batch_coupled else 1
    dy = rng.normal(size=(ROWS, *program.G.out_shape)).astype(np.float32)
    got = _run(kind, program, params, x, dy, True, groups)
    want = _torch_training(program, params, x, dy, groups, got["mask"])
    for key in want:
        _close(got[key], want[key], f"training {key}")
    if op is Op.DROPOUT:  # about `keep` of the units kept (6σ of a binomial)
        n, keep = got["mask"].size, attrs["keep"]
        assert abs(got["mask"].mean() - keep) < 6 * np.sqrt(keep * (1 - keep) / n)
