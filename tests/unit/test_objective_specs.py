"""The specs of the objectives after 2014 say what their comments cite, and the ring2d ones
stay comparable with ring2d.yaml (same nets, data and step counts) so a benchmark can run them
at equal steps."""

from __future__ import annotations

from advgraph.spec import load_file
from tests.conftest import SPECS
from tests.programs import compile_loaded


def _spec(name):
    return load_file(SPECS / f"{name}.yaml").spec


def test_wgan_gp_is_gulrajani_et_al():
    t = _spec("ring2d-wgan-gp").training
    assert (t.loss, t.k, t.batch_size) == ("wasserstein", 5, 256)
    gp = t.regularizers.gradient_penalty
    assert (gp.weight, gp.target, gp.every) == (10.0, 1.0, 1)
    o = t.optimizer
    assert (o.type, o.lr, o.beta1, o.beta2) == ("adam", 1e-4, 0.5, 0.9)


def test_ring2d_specs_compare_at_equal_steps():
    base = _spec("ring2d")
    for name in ("ring2d-wgan-gp", "ring2d-hinge"):
        s = _spec(name)
        assert s.data == base.data and s.prior == base.prior and s.generator == base.generator
        assert s.training.stop == base.training.stop == base.training.stop.__class__(steps=5000)
        assert s.training.checkpoint == base.training.checkpoint
        assert s.discriminator.layers[:-1] == base.discriminator.layers[:-1]
        assert s.discriminator.layers[-1].type == "linear"  # a raw score, not a probability
    hinge = _spec("ring2d-hinge").training
    assert hinge.loss == "hinge" and hinge.optimizer == base.training.optimizer
    assert hinge.regularizers.names() == []


def test_fashion_mnist_hinge_sn_ema():
    loaded = load_file(SPECS / "fashion-mnist-conv-hinge-sn.yaml")
    t = loaded.spec.training
    assert t.loss == "hinge"
    assert (t.regularizers.ema.decay, t.regularizers.ema.start) == (0.999, 1000)
    program = compile_loaded(loaded)
    sn = [s.tensor for s in program.objective.spectral]
    assert sn == [f"D.{n}.weight" for n in ("c0", "c1", "c2", "c3", "c4", "y")]  # every one of D's
    assert program.data_shape == (1, 28, 28)
