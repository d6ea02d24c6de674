"""Whole launch plans on the host executor: the toy1d and ring2d plans, and a conv plan (every
image op: conv2d, maxout_conv, conv_transpose2d, max_pool, batchnorm on images and on features,
a label concatenated to images as maps), run clean under ASan+UBSan and TSan; training is
independent of thread and block order; guard zones catch a kernel that writes past its
buffer."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.programs import write_conv_spec

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import kernel_sources  # noqa: E402
from advgraph_cupy.host import HostKernels, available, variant_env  # noqa: E402
from advgraph_cupy.host.build import sanitizer_runtime  # noqa: E402
from advgraph_cupy.runtime import GuardViolation, HostExecutor  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

# A few iterations of a spec's plan, then inference, on a given executor (argv: spec, variant,
# order). Printed last: a digest of the trained parameters.
PLAN = r"""
import sys, hashlib
import numpy as np
sys.path.insert(0, "backends")
from advgraph.compile import compile_spec
from advgraph.data import data_info
from advgraph.spec import load_file
from advgraph.params import init_params
from advgraph.run.schedule import Schedule
from advgraph_cupy.backend import CupyTrainer
from advgraph_cupy.runtime import HostExecutor

spec, variant, order = sys.argv[1:4]
# a shipped spec at batch 40; a spec file of the test's own (the conv plan) at its own batch
own = spec.endswith(".yaml")
loaded = load_file(spec if own else f"specs/{spec}.yaml",
                   ["training.k=2"] + ([] if own else ["training.batch_size=40"]))
m = loaded.spec.training.batch_size
program = compile_spec(loaded, data_info(loaded))
sched = {g: Schedule(loaded.spec.training.optimizer_for(g)) for g in ("G", "D")}
rng = np.random.default_rng(0)
data = rng.normal(size=(130, *program.data_shape)).astype(np.float32)
tr = CupyTrainer(program, HostExecutor(variant, order=order, seed=5, guard=True), 7, m,
                 {g: s.config() for g, s in sched.items()})
tr.load_state_dict(init_params(program, np.random.default_rng(1), data))
labels = rng.integers(0, program.classes, 130) if program.conditional else None
tr.load_data(data, labels)
tr.set_order(rng.permutation(130))
b = 0
for it in range(2):  # every launch; the 4th D-update (b = 3) starts an epoch
    for _ in range(2):
        if b and b % 3 == 0:
            tr.set_order(rng.permutation(130))  # an epoch ends inside an iteration
        tr.d_step((b % 3) * m, sched["D"].lr(b), 0.5)
        b += 1
    tr.g_step(sched["G"].lr(it), 0.5)
    if program.objective.ema is not None:
        tr.ema_step(0.9)
metrics = tr.read_metrics()
assert metrics["finite"] == 1.0, metrics
y70 = labels[:70] if program.conditional else None
tr.generate(rng.uniform(-1, 1, (70, program.prior.dim)).astype(np.float32), y70)
tr.discriminate(data[:70], y70)
state = tr.state_dict()
h = hashlib.sha256(b"".join(state[k].tobytes() for k in sorted(state) if "rng" not in k))
print("plan ran clean", h.hexdigest())
"""


def _run(variant: str, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **variant_env(variant),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", PLAN, *argv, variant], cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=600)


def _spec_arg(spec: str, tmp_path) -> str:
    """A shipped spec's name, or the conv spec's file (conv-sn: with spectral norm on both
    nets and an EMA)."""
    if not spec.startswith("conv"):
        return spec
    path = write_conv_spec(tmp_path)
    if spec == "conv-sn":
        path.write_text(path.read_text().replace("training:\n", "training:\n  regularizers: "
                        "{spectral_norm: {nets: [G, D]}, ema: {decay: 0.9}}\n", 1))
    return str(path)


# conv-sn is the conv plan with spectral norm and an EMA added: it launches every kernel the
# conv plan launches, on the same shapes (test_the_sn_plan_launches_every_conv_plan_kernel), so
# the conv plan alone is not run under the sanitizers again (about 35 s on 2 cores).
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["asan", "tsan"])
@pytest.mark.parametrize("spec", ["toy1d", "ring2d", "conv-sn"])
def test_plans_run_clean_under_sanitizers(spec, variant, tmp_path):
    if sanitizer_runtime(variant) is None:
        pytest.skip(f"g++ has no lib{variant}.so")
    p = _run(variant, _spec_arg(spec, tmp_path), variant, "shuffled")
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr[-6000:]}"
    assert "plan ran clean" in p.stdout
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr[-6000:]


def _launches(spec: str, tmp_path) -> set[tuple]:
    """(kernel, block, scalar arguments) of every launch of a spec's plans as PLAN runs them:
    training (an iteration of k = 2 D-updates, EMA included) and both nets' inference."""
    from advgraph.compile import compile_spec
    from advgraph.data import data_info
    from advgraph.run.schedule import Schedule
    from advgraph.spec import load_file
    from advgraph_cupy.lowering import lower, lower_inference

    loaded = load_file(_spec_arg(spec, tmp_path), ["training.k=2"])
    program = compile_spec(loaded, data_info(loaded))
    t = loaded.spec.training
    plan = lower(program, t.batch_size, {g: Schedule(t.optimizer_for(g)).config() for g in "GD"})
    plans = [plan, lower_inference(program, "G", 70), lower_inference(program, "D", 70)]
    return {(l.kernel, l.grid, l.block, tuple(a.item() for a in l.args if isinstance(a, np.generic)))
            for p in plans for ls in p.phases.values() for l in ls}


def test_the_sn_plan_launches_every_conv_plan_kernel(tmp_path):
    """Why conv-sn under the sanitizers covers conv: each of the conv plan's launches, the same
    kernel with the same block and scalar arguments (the shapes), is in the conv-sn plan."""
    (tmp_path / "sn").mkdir()
    conv, sn = _launches("conv", tmp_path), _launches("conv-sn", tmp_path / "sn")
    assert conv <= sn and {k for k, *_ in sn} > {k for k, *_ in conv}


@pytest.mark.slow
def test_training_does_not_depend_on_thread_or_block_order():
    digests = set()
    for order in ("natural", "reversed", "shuffled"):
        p = _run("release", "ring2d", "release", order)
        assert p.returncode == 0, p.stderr[-3000:]
        digests.add(p.stdout.split()[-1])
    assert len(digests) == 1


def test_guard_zones_catch_a_write_past_a_buffer():
    src = kernel_sources.sources()
    src["elementwise.cu"] = src["elementwise.cu"].replace(
        "if (i < n) y[i] = apply_act(x[i], mode, slope);",
        "if (i <= n) y[i] = apply_act(x[i], mode, slope);", 1)
    ex = HostExecutor(guard=True, kernels=HostKernels("release", sources=src))
    x, y = ex.alloc("float32", 100), ex.alloc("float32", 100)
    ex.name_buffer(y, "y")
    args = (ex.view(x, _buf(100)), ex.view(y, _buf(100)), np.int32(100), np.int32(2),
            np.float32(0))
    with pytest.raises(GuardViolation, match="act_fwd: wrote outside y \\(after its 100"):
        ex.launch("act_fwd", (1, 1, 1), (256, 1, 1), args)


def _buf(n: int):
    from advgraph_cupy.plan import Buf

    return Buf("b", 0, n)
