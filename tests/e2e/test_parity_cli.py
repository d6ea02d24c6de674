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
    """The torch backend with D's gradient step scaled: what a buggy kernel would do."""

    name = "skewed"
    distributed = False

    def __init__(self):
        self.inner = get_backend("torch")

    def available(self):
        return True, ""

    def unsupported(self, op):
        return self.inner.unsupported(op)

    def build(self, *a, **kw):
        tr = self.inner.build(*a, **kw)
        d_step = tr.d_step
        tr.d_step = lambda pos, lr, mom, z=None: d_step(pos, lr * 1.01, mom, z)
        return tr


def test_a_wrong_backend_fails(monkeypatch):
    real = parity.get_backend
    monkeypatch.setattr(parity, "get_backend",
                        lambda name: _Skewed() if name == "skewed" else real(name))
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
                        lambda name: _Skewed() if name == "skewed" else real(name))
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
