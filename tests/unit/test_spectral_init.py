"""Spectral norm's starting vectors: σ = uᵀMv must already be the weight's largest singular
value before the first update, or a net used before its own power iteration (G inside D's first
update) is divided by a random projection of its weight."""

import numpy as np
import pytest

from advgraph.compile import compile_spec
from advgraph.data import data_info
from advgraph.objective import init_state, spectral_matrix
from advgraph.params import init_params
from advgraph.spec.load import load_file

from tests.conftest import SPECS


@pytest.mark.parametrize("spec", ["ring2d-hinge.yaml", "fashion-mnist-conv-hinge-sn.yaml"])
def test_initial_sigma_is_the_largest_singular_value(spec):
    loaded = load_file(SPECS / spec, ["training.regularizers.spectral_norm={nets: [G, D]}"])
    program = compile_spec(loaded, data_info(loaded))
    params = init_params(program, np.random.default_rng(0))
    assert program.objective.spectral_of("G") and program.objective.spectral_of("D")
    for s in program.objective.spectral:
        m = spectral_matrix(params[s.tensor], s.axis).astype(np.float64)
        u = params[f"spectral/{s.tensor}/u"].astype(np.float64)
        v = params[f"spectral/{s.tensor}/v"].astype(np.float64)
        top = np.linalg.svd(m, compute_uv=False)[0]
        assert float(u @ m @ v) == pytest.approx(top, rel=0.05), s.tensor  # 15 iterations


def test_state_is_drawn_after_the_parameters():
    """The same seed gives the same parameters with or without regularisers."""
    loaded = load_file(SPECS / "ring2d-hinge.yaml")
    plain = compile_spec(loaded, data_info(loaded))
    with_sn = load_file(SPECS / "ring2d-hinge.yaml",
                        ["training.regularizers.spectral_norm={nets: [G, D]}"])
    program = compile_spec(with_sn, data_info(with_sn))
    a = init_params(plain, np.random.default_rng(0))
    b = init_params(program, np.random.default_rng(0))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert set(b) - set(a) == set(init_state(program, np.random.default_rng(0), b))
