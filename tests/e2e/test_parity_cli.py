"""`advgraph parity`: torch against cupy's kernels on the CPU (the host executor), and the
comparison machinery shown to catch a backend that computes something else."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from advgraph import parity  # noqa: E402
from advgraph.backend_protocol import get_backend  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.helpers import cli  # noqa: E402


def test_torch_and_cupy_agree_row_by_row():
    """Every row within its bound: forward, each gradient, the step with momentum's velocity;
    and the rows show two implementations (not one compared with itself)."""
    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(available())
    r = cli("parity", SPECS / "ring2d.yaml", "--backends", "torch,cupy", "--devices", "cpu",
            "--batch", "16", "--set", "training.optimizer={type: sgd, lr: 0.1, momentum: 0.5}",
            "--json")
    assert r.exit_code == 0, [row for row in json.loads(r.stdout or "[]") if not row["ok"]] \
        or r.stderr
    rows = json.loads(r.stdout)
    stages = {row["stage"] for row in rows}
    assert stages == {"forward", "gradient", "step"}
    assert {row["tensor"] for row in rows if row["stage"] == "gradient"} >= {"D.h0.weight", "G.y.bias"}
    assert any(row["tensor"] == "optim/D/velocity/D.h0.weight" for row in rows)
    assert all(row["ok"] for row in rows)
    assert any(row["max_abs"] > 0 for row in rows if row["stage"] == "gradient")


class _Skewed:
    """The torch backend with one step of its trainers skewed (`skew` wraps the trainer's
    method `step`): what a buggy kernel would do."""

    distributed = False

    def __init__(self, name, step, skew):
        self.name, self._step, self._skew = name, step, skew
        self.inner = get_backend("torch")

    def available(self):
        return True, ""

    def unsupported(self, op):
        return self.inner.unsupported(op)

    def unsupported_feature(self, feature):
        return self.inner.unsupported_feature(feature)

    def build(self, *a, **kw):
        tr = self.inner.build(*a, **kw)
        setattr(tr, self._step, self._skew(getattr(tr, self._step)))
        return tr


def _skewed_d_step():
    """D's gradient step scaled."""
    return _Skewed("skewed", "d_step",
                   lambda d_step: lambda pos, lr, mom, z=None: d_step(pos, lr * 1.01, mom, z))


def test_a_wrong_backend_fails(monkeypatch):
    real = parity.get_backend
    monkeypatch.setattr(parity, "get_backend",
                        lambda name: _skewed_d_step() if name == "skewed" else real(name))
    from tests.programs import compile_loaded
    from advgraph.spec import load_file

    loaded = load_file(SPECS / "ring2d.yaml")
    rows = parity.compare(compile_loaded(loaded), loaded.spec.training, ("torch", "skewed"),
                          ("cpu", "cpu"), 32, 1e-4)
    bad = {(r.stage, r.tensor) for r in rows if not r.ok}
    assert {t.name for t in compile_loaded(loaded).D.params()} == \
        {t for s, t in bad if s == "gradient"}  # every D gradient is off by 1 %, and only those
    assert all(r.ok for r in rows if r.stage == "forward")
    d = next(r for r in rows if r.stage == "gradient" and r.tensor == "D.y.weight")
    assert np.isclose(d.max_rel, 0.01 / 1.01, rtol=1e-2)


def test_the_table_shows_what_the_verdict_is_made_of(monkeypatch):
    """Each row prints max |a − b| beside the bound the pass rule holds it to, so the numbers
    shown and the verdict agree: ok exactly where the first is within the second."""
    real = parity.get_backend
    monkeypatch.setattr(parity, "get_backend",
                        lambda name: _skewed_d_step() if name == "skewed" else real(name))
    r = cli("parity", SPECS / "ring2d.yaml", "--backends", "torch,skewed", "--batch", "32")
    assert r.exit_code == 1
    assert "ok when max |a − b| ≤ allowed = 0.0001 × the tensor's max |a|, |b|" in r.stdout
    verdicts = []
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells[0] in ("forward", "gradient", "step"):
            diff, allowed, verdict = float(cells[-3]), float(cells[-2]), cells[-1]
            assert (diff <= allowed) == (verdict == "ok"), line
            verdicts.append(verdict)
    assert "ok" in verdicts and "FAIL" in verdicts


def test_parity_argument_errors():
    r = cli("parity", SPECS / "ring2d.yaml", "--backends", "torch,tensorflow")
    assert r.exit_code == 1 and "unknown backend 'tensorflow'; installed: cupy" in r.stderr
    r = cli("parity", SPECS / "ring2d.yaml", "--backends", "torch")
    assert r.exit_code == 2 and "two names" in r.stderr
    for tol in ("0", "-1", "nan", "inf"):  # inf would pass every row
        r = cli("parity", SPECS / "ring2d.yaml", "--tol", tol)
        assert r.exit_code == 2 and "--tol must be positive and finite" in r.stderr, tol


class _NoisySigns:
    """The torch backend whose D step, like any backend's Adam, moves each weight whose
    gradient is rounding noise (below parity's ADAM_FLOOR of the tensor's largest) by ±lr,
    with signs of its own: a correct backend, whose stepped D differs from another's there."""

    name = "noisy-signs"
    distributed = False

    def __init__(self, everywhere: bool = False):
        self.inner, self.everywhere = get_backend("torch"), everywhere

    def available(self):
        return True, ""

    def unsupported(self, op):
        return self.inner.unsupported(op)

    def build(self, program, *a, **kw):
        tr = self.inner.build(program, *a, **kw)
        d_step, rng = tr.d_step, np.random.default_rng(7)

        def noisy(pos, lr, mom, z=None):
            d_step(pos, lr, mom, z)
            state = tr.state_dict()
            for t in program.D.params():
                m = state.get(f"optim/D/m/{t.name}")
                if m is None:
                    return  # SGD: the gradient step is the whole story
                tiny = self.everywhere | (np.abs(m) <= parity.ADAM_FLOOR * np.abs(m).max())
                state[t.name] = state[t.name] + tiny * lr * rng.choice([-1.0, 1.0], m.shape)
            tr.load_state_dict(state)

        tr.d_step = noisy
        return tr


def test_g_s_step_is_compared_through_the_same_d(monkeypatch):
    """With Adam, two correct backends' stepped Ds differ by ±lr wherever D's gradient is
    rounding noise; G's step is compared from one D, so that difference (which G's gradients
    would carry far beyond their measured rounding) is not blamed on G. A D moved so
    everywhere still fails."""
    real = parity.get_backend
    everywhere = []
    monkeypatch.setattr(parity, "get_backend", lambda name: _NoisySigns(bool(everywhere))
                        if name == "noisy-signs" else real(name))
    from tests.programs import compile_loaded
    from advgraph.spec import load_file

    loaded = load_file(SPECS / "ring2d.yaml", overrides=["training.optimizer={type: adam, "
                                                         "lr: 0.05}"])
    program = compile_loaded(loaded)

    def failing() -> set[str]:
        rows = parity.compare(program, loaded.spec.training, ("torch", "noisy-signs"),
                              ("cpu", "cpu"), 64, 1e-4)
        return {r.tensor for r in rows if not r.ok}

    assert failing() == set()
    everywhere.append(True)
    assert {t.name for t in program.D.params()} <= failing()


def test_adam_moment_floors_carry_the_gradient_s_rounding():
    """A gradient g known to ±δ gives Adam's first moments m = (1 − β1)·g and v = (1 − β2)·g²
    known to (1 − β1)·δ and (1 − β2)·((g + δ)² − g²): the floors are those, in closed form."""
    from advgraph.backend_protocol import OptimConfig

    cfg = OptimConfig("adam", beta1=0.5, beta2=0.999)
    g, delta = np.array([[0.3, -2.0]], np.float32), 1e-3
    state = {"optim/D/m/D.w": (1 - cfg.beta1) * g}
    floor = lambda slot: parity._step_floor(f"optim/D/{slot}/D.w", {"D": cfg},  # noqa: E731
                                            {"D.w": delta}, {"D": 0.1}, state)
    assert floor("m") == pytest.approx((1 - cfg.beta1) * delta)
    assert floor("v") == pytest.approx((1 - cfg.beta2) * ((2.0 + delta) ** 2 - 2.0 ** 2))


# ---- the losses and regularisers after 2014 (issue 23): every combination cupy supports -------

SN_D, SN_G = "{spectral_norm: {nets: [D]}}", "{spectral_norm: {nets: [G]}}"
SN_EMA = "{spectral_norm: {nets: [G, D], iterations: 2}, ema: {decay: 0.9}}"
OBJECTIVES = [(loss, regs, False) for loss in ("minimax", "non_saturating", "least_squares",
                                               "hinge")
              for regs in ("{ema: {decay: 0.999}}", SN_D, SN_G, SN_EMA)] + [
    ("wasserstein", SN_D, False), ("wasserstein", SN_EMA, False),
    ("hinge", SN_EMA, True), ("non_saturating", SN_G, True), ("wasserstein", SN_D, True),
    ("least_squares", "{ema: {decay: 0.5, start: 1}}", True)]


REG_IDS = {SN_D: "snD", SN_G: "snG", SN_EMA: "snGD2+ema"}


def _objective_program(loss: str, regs: str, conv: bool):
    """The small dense or conv GAN of tests/backend/test_cupy_objective.py with this loss and
    these regularisers, and its spec's training section."""
    from advgraph.spec import load_text
    from tests.backend.test_cupy_objective import CONV, DENSE, program_for

    program = program_for(loss, regs, conv)
    end = "linear" if program.objective.raw_score else "sigmoid"
    training = load_text((CONV if conv else DENSE).format(end=end, m=16, loss=loss, regs=regs),
                         "x.yaml").spec.training
    return program, training


def _host_or_skip():
    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "backends"))
    from advgraph_cupy.host import available

    if available() is not None:
        pytest.skip(available())


@pytest.mark.parametrize("loss,regs,conv", OBJECTIVES,
                         ids=[f"{lo}-{REG_IDS.get(r, 'ema')}-{'conv' if c else 'dense'}"
                              for lo, r, c in OBJECTIVES])
def test_torch_and_cupy_agree_on_each_loss_and_regulariser(loss, regs, conv):
    """Forward (W / σ from the stored vectors), gradients (through W / σ to W), one step, and
    the regularisers' state after it: each net's u and v, G's EMA after one EMA step."""
    _host_or_skip()
    program, training = _objective_program(loss, regs, conv)
    rows = parity.compare(program, training, ("torch", "cupy"), ("cpu", "cpu"), 16, 1e-4)
    assert [(r.stage, r.tensor, r.max_abs, r.allowed) for r in rows if not r.ok] == []
    keys = {r.tensor for r in rows if r.stage == "step"}
    for s in program.objective.spectral:
        assert {f"spectral/{s.tensor}/u", f"spectral/{s.tensor}/v"} <= keys
    if program.objective.ema is not None:
        assert {f"ema/{t.name}" for t in program.G.params()} <= keys


def _skewed_ema():
    """An EMA step of another decay: a wrong EMA."""
    return _Skewed("skewed-ema", "ema_step",
                   lambda ema_step: lambda decay: ema_step(decay * 0.5))


def test_a_wrong_ema_fails_and_only_the_ema(monkeypatch):
    real = parity.get_backend
    monkeypatch.setattr(parity, "get_backend",
                        lambda name: _skewed_ema() if name == "skewed-ema" else real(name))
    program, training = _objective_program("hinge", SN_EMA, False)
    rows = parity.compare(program, training, ("torch", "skewed-ema"), ("cpu", "cpu"), 16, 1e-4)
    assert {r.tensor for r in rows if not r.ok} == {f"ema/{t.name}" for t in program.G.params()}


def test_parity_cli_with_hinge_spectral_norm_and_ema(tmp_path):
    """Through the command line, from a spec file: rows for u, v and the EMA, all ok."""
    _host_or_skip()
    from tests.backend.test_cupy_objective import DENSE

    spec = tmp_path / "sn.yaml"
    spec.write_text(DENSE.format(end="linear", m=16, loss="hinge", regs=SN_EMA))
    r = cli("parity", spec, "--backends", "torch,cupy", "--devices", "cpu", "--batch", "16",
            "--json")
    assert r.exit_code == 0, r.stdout[-3000:] + r.stderr
    tensors = {row["tensor"] for row in json.loads(r.stdout) if row["ok"]}
    assert {"spectral/D.h0.weight/u", "spectral/G.y.weight/v", "ema/G.h0.weight"} <= tensors


def test_parity_refuses_a_penalty_cupy_lacks(tmp_path):
    from tests.backend.test_cupy_objective import DENSE

    spec = tmp_path / "gp.yaml"
    spec.write_text(DENSE.format(end="linear", m=16, loss="wasserstein",
                                 regs="{gradient_penalty: {weight: 10}}"))
    r = cli("parity", spec, "--backends", "torch,cupy", "--devices", "cpu", "--batch", "16")
    assert r.exit_code == 1
    assert "training.regularizers.gradient_penalty: gradient_penalty is not supported by " \
           "backend 'cupy': it needs gradients of gradients" in r.stderr
