"""Values that used to pass validation and then crash (issue 11, "values that pass validation
but crash"): negative or huge seeds, ±1e308 priors and init ranges, integers with thousands of
digits, floats just outside float32, NaN pixels in data files. Each is now refused where it is
written (a located spec error, exit 2) or named with its file (a data error, exit 1); a spec
that validates never crashes `advgraph check`."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_mnist_dir, write_idx
from tests.helpers import cli

HERE = Path(__file__).parent
VALID = yaml.safe_load((HERE / "valid.yaml").read_text())
LOCATED = re.compile(r"^error: (\S+\.yaml:\d+:\d+: |--set: )\S+: ")
FLOAT32_MAX = float(np.finfo(np.float32).max)
HUGE = "9" * 5000  # beyond Python's int-str conversion limit (4300 digits)


def _numeric_paths(node, prefix=()):
    if isinstance(node, bool):
        return
    if isinstance(node, (int, float)):
        yield prefix
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _numeric_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numeric_paths(v, prefix + (i,))


# The valid spec with every optional numeric field spelled out, so that each gets hit.
FULL = copy.deepcopy(VALID)
FULL["prior"].update(low=-1.5, high=1.5)
FULL["data"].update(seed=3, radius=2.0, std=0.05, modes=8)
FULL["generator"]["layers"][0].update(init={"type": "uniform", "range": 0.05}, bias=0.0)
FULL["generator"]["layers"].insert(2, {"type": "leaky_relu", "slope": 0.2})
FULL["discriminator"]["layers"][0].update(init={"type": "normal", "std": 0.01}, bias=0.0)
FULL["discriminator"]["layers"].insert(0, {"type": "dropout", "keep": 0.8, "scale": 1.25})
FULL["training"].update(seed=0, k=1, log_every=5, keep_checkpoints=2,
                        checkpoint={"steps": 5},
                        optimizer={"type": "sgd", "lr": 0.1, "lr_decay": 1.0001, "min_lr": 1e-6,
                                   "momentum": {"init": 0.5, "final": 0.7, "start": 1,
                                                "saturate": 5}},
                        d_optimizer={"type": "adam", "lr": 2e-4, "beta1": 0.5, "beta2": 0.999,
                                     "eps": 1e-8})
NUMERIC = sorted(_numeric_paths(FULL), key=str)

HOSTILE = st.one_of(
    st.sampled_from([-1, 0, -(2**63), 2**63, 2**64, 2**31, 2**31 - 1, 10**30, -(10**30),
                     1e308, -1e308, 1e-320, 5e-324, 1e30 * 1.0001, FLOAT32_MAX,
                     FLOAT32_MAX * 1.001, -FLOAT32_MAX * 1.001, 1e-39, 1e-46]),
    st.integers(), st.floats(), st.integers(-(10**400), 10**400),
    st.just("HUGE"), st.just("-HUGE"), st.sampled_from([".nan", ".inf", "-.inf", "nan", "inf"]),
)


def _dump(doc, values: dict) -> str:
    """YAML text with raw scalars substituted (a 5000-digit integer, .nan) where asked."""
    text = yaml.safe_dump(doc, sort_keys=False, width=10**6)
    for marker, raw in values.items():
        text = text.replace(f"'{marker}'", raw).replace(marker, raw)
    return text


def _assert_clean(r, spec: Path | None = None) -> None:
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    if r.exit_code != 0:
        assert r.exit_code == 2, out
        lines = r.stderr.strip().splitlines()
        assert lines, out
        for line in lines:
            assert LOCATED.match(line), line


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(NUMERIC), HOSTILE), min_size=1, max_size=3))
def test_hostile_numbers_are_located_or_valid(tmp_path_factory, changes):
    doc = copy.deepcopy(FULL)
    raw = {}
    for i, (path, value) in enumerate(changes):
        node = doc
        for part in path[:-1]:
            node = node[part]
        if isinstance(value, str):
            marker = f"RAW{i}X"
            raw[marker] = {"HUGE": HUGE, "-HUGE": "-" + HUGE}.get(value, value)
            value = marker
        node[path[-1]] = value
    spec = tmp_path_factory.mktemp("hostile") / "h.yaml"
    spec.write_text(_dump(doc, raw))
    r = cli("check", spec)
    _assert_clean(r)
    if r.exit_code == 0:  # it validated: every number is within the range its use needs
        from advgraph.spec import load_file

        s = load_file(spec).spec
        assert 0 <= s.training.seed < 2**63 and 0 <= s.data.seed < 2**63
        assert -1e30 <= s.prior.low < s.prior.high <= 1e30


@pytest.mark.parametrize("setting, message", [
    ("training.seed=-1", "training.seed: Input should be greater than or equal to 0"),
    ("data.seed=-5", "data.seed: Input should be greater than or equal to 0"),
    (f"training.seed={2**63}", "training.seed: Input should be less than or equal to "
                               f"{2**63 - 1}"),
    ("prior.low=-1e308", "prior.low: -1e+308 is out of range"),
    ("generator.layers[0].init={type: uniform, range: 1e308}",
     "generator.layers[0].init.range: 1e+308 is out of range"),
    ("generator.layers[0].init={type: normal, std: 3.5e38}", "init.std: 3.5e+38 is out of range"),
    ("training.optimizer.lr=1e-320", "training.optimizer.lr: 9.99989e-321 is too small"),
    ("generator.layers[0].units=2147483648", "less than or equal to 2147483647"),
    (f"generator.layers[0].units={HUGE}", "generator.layers[0].units: number too large"),
    ("training.batch_size=99999999999999999999", "training.batch_size: Input should be less"),
    ("data.train=99999999999", "data.train: Input should be less than or equal to 10000000"),
])
def test_hostile_values_are_located_spec_errors(setting, message):
    """Each used to be a traceback (seeds, ±1e308) or a silently wrong run (lr rounding to 0)."""
    r = cli("train", HERE / "valid.yaml", "--set", setting)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and message in r.stderr
    assert r.stderr.startswith("error: --set: ")


def test_five_thousand_digit_integer_in_a_file_is_located(tmp_path):
    text = (HERE / "valid.yaml").read_text().replace("units: 16", f"units: {HUGE}")
    spec = tmp_path / "big.yaml"
    spec.write_text(text)
    r = cli("check", spec)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert re.match(rf"^error: {re.escape(str(spec))}:5:38: generator\.layers\[0\]\.units: "
                    r"number too large \(5,000 characters\)", r.stderr), r.stderr


def test_tensor_sizes_are_bounded_where_written(tmp_path):
    """Sizes within their fields' ranges whose products would overflow: refused by the
    compiler at the layer, before the memory check or any backend sees them."""
    r = cli("check", HERE / "valid.yaml", "--set", "generator.layers[0].units=300000000")
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr.endswith("generator.layers[0]: weight (8, 300000000) has 2,400,000,000 "
                             "values, more than 2,147,483,647 (2^31 - 1)\n"), r.stderr


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999999", str(2**63)])
@pytest.mark.parametrize("command", ["sample", "interpolate", "eval"])
def test_command_seed_out_of_range_is_a_usage_error(command, seed):
    r = cli(command, "run1", "--seed", seed)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "--seed" in r.stderr and "Traceback" not in r.stderr


def test_largest_seed_is_accepted():
    r = cli("sample", "nosuchrun", "--seed", str(2**63 - 1))
    assert r.exit_code == 1 and "no run named 'nosuchrun'" in r.stderr  # past the option check


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
@pytest.mark.parametrize("code", [0x0D, 0x0E])
def test_non_finite_idx_pixels_are_a_data_error(tmp_path, bad, code):
    """Float IDX files (type codes 0x0D, 0x0E) are read; NaN/Inf (or beyond float32) pixels
    used to surface as 'training diverged'. Now: a data error naming the file."""
    root = make_mnist_dir(tmp_path / "m", n_train=120, n_test=20)
    imgs = np.random.default_rng(0).random((120, 28, 28)) * 255
    if code == 0x0D and bad == 1e300:
        pytest.skip("float32 cannot hold 1e300")
    imgs[7, 3, 4] = bad
    (root / "train-images-idx3-ubyte.gz").unlink()
    bad_file = write_idx(root / "train-images-idx3-ubyte", imgs, code=code)
    spec = HERE.parents[1] / "specs" / "mnist.yaml"
    r = cli("train", spec, "--data-root", root, "--set", "data.train=100", "--set",
            "data.valid=20", "--set", "training.stop={steps: 1}")
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert str(bad_file) in r.stderr and "diverged" not in r.stderr
    assert "NaN or infinite" in r.stderr or "float32's range" in r.stderr


def test_finite_float_idx_trains(tmp_path):
    root = make_mnist_dir(tmp_path / "m", n_train=120, n_test=20)
    (root / "train-images-idx3-ubyte.gz").unlink()
    write_idx(root / "train-images-idx3-ubyte",
              np.random.default_rng(0).random((120, 28, 28)) * 255, compress=False, code=0x0E)
    from advgraph.data.idx import read_idx

    arr = read_idx(root / "train-images-idx3-ubyte")
    assert arr.dtype == np.dtype(">f8") and arr.shape == (120, 28, 28)


def test_npz_values_beyond_float32_are_a_data_error(tmp_path):
    arr = np.zeros((20, 2))
    arr[3, 1] = 1e300  # finite in float64, inf once float32
    np.savez(tmp_path / "d.npz", x=arr)
    text = (HERE / "valid.yaml").read_text().replace(
        "data: {dataset: toy-ring2d, train: 500, valid: 50, test: 50}",
        f"data: {{dataset: npz, path: {tmp_path / 'd.npz'}}}").replace("batch_size: 50",
                                                                        "batch_size: 10")
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    r = cli("train", spec)
    assert r.exit_code == 1 and "float32's range" in r.stderr and str(tmp_path / "d.npz") in r.stderr
