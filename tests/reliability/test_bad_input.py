"""Malformed specs (a corpus and property-based fuzzing), damaged data: every one ends with a
clear message and a non-zero exit, never a traceback, never a hang, never a half-created run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.programs import compile_loaded
from advgraph.errors import SpecError
from advgraph.spec import load_text
from tests.helpers import cli

HERE = Path(__file__).parent
BROKEN = sorted((HERE / "broken").glob("*.yaml"))
LOCATED = re.compile(r"^error: (\S+\.yaml(:\d+:\d+)?: |--set: )")
# Refused after validation, naming the spec path or the estimate instead of a line.
UNLOCATED = {"batch_larger_than_data": "training.batch_size = 50 is larger than the training set",
             "huge_size": "need at least"}


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_spec_corpus(path):
    r = cli("train", path)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    if path.stem in UNLOCATED:
        assert UNLOCATED[path.stem] in r.stderr
    else:
        for line in r.stderr.strip().splitlines():
            assert LOCATED.match(line), line
    runs = Path(os.environ["ADVGRAPH_RUNS"])
    assert not runs.exists() or not any(runs.iterdir())  # nothing created


def test_corpus_covers_the_cases():
    names = {p.stem for p in BROKEN}
    assert {"tab_indent", "wrong_type", "missing_training", "unknown_layer", "impossible_reshape",
            "negative_size", "huge_size", "binary", "duplicate_key"} <= names


VALID = yaml.safe_load((HERE / "valid.yaml").read_text())
VALID_GRAPH = yaml.safe_load((HERE / "valid_graph.yaml").read_text())  # conditional, branches
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.lists(st.integers(-3, 3), max_size=3))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_specs(draw, base=VALID):
    import copy

    doc = copy.deepcopy(base)
    all_paths = [p for p in _paths(base) if p]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(all_paths))
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
        except (KeyError, IndexError, TypeError):
            continue
        op = draw(st.sampled_from(["set", "delete", "extra", "layers"]))
        try:
            if op == "set":
                parent[path[-1]] = draw(SCALARS)
            elif op == "delete":
                del parent[path[-1]]
            elif op == "extra" and isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(SCALARS)
            elif op == "layers":
                layers = doc["generator"]["layers"] if draw(st.booleans()) else \
                    doc["discriminator"]["layers"]
                layers.insert(draw(st.integers(0, len(layers))), {
                    "type": draw(st.sampled_from(["dense", "maxout", "relu", "reshape",
                                                  "dropout", "batchnorm", "sigmoid", "nope"])),
                    "units": draw(st.integers(-2, 40)), "pieces": draw(st.integers(0, 4)),
                    "shape": draw(st.lists(st.integers(-1, 20), max_size=5)),
                    "keep": draw(st.floats(-1, 2))})
        except (KeyError, IndexError, TypeError, AttributeError):
            continue  # the mutation did not apply to what earlier mutations left
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(mutated_specs(), mutated_specs(VALID_GRAPH)))
def test_fuzzed_specs_validate_or_fail_cleanly(doc):
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        compile_loaded(load_text(text, "fuzz.yaml"))
    except SpecError as e:
        assert e.problems and all(str(p) for p in e.problems)
        for p in e.problems:
            assert p.source == "fuzz.yaml"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=300))
def test_fuzzed_text_fails_cleanly(text):
    try:
        compile_loaded(load_text(text, "fuzz.yaml"))
    except SpecError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.text(min_size=1, max_size=30), max_size=3))
def test_fuzzed_overrides_fail_cleanly(overrides):
    try:
        compile_loaded(load_text((HERE / "valid.yaml").read_text(), "v.yaml", overrides))
    except SpecError as e:
        assert all(p.source in ("`overrides`", "v.yaml") for p in e.problems)


BATCHNORM_FLAT = """
prior: {type: gaussian, dim: 4}
data: {dataset: toy-ring2d, train: 200, valid: 20, test: 20}
generator:
  layers:
    - {type: dense, units: 8}
    - {type: batchnorm, name: bn}
    - {type: relu}
    - {type: dense, units: 2}
discriminator:
  layers: [{type: dense, units: 8}, {type: leaky_relu}, {type: dense, units: 1}, {type: sigmoid}]
training: {batch_size: 1, optimizer: {type: sgd, lr: 0.1}, stop: {steps: 3}}
"""


def test_batchnorm_with_one_value_per_channel_is_a_located_error(tmp_path):
    """A minibatch of 1 gives batchnorm on flat features one value per channel: torch raised
    a ValueError from inside the step (a traceback) and cupy normalised everything to the
    bias. Now the spec is refused at batch_size, and parity's --batch likewise; images (many
    positions per channel) train at batch 1."""
    spec = tmp_path / "bn.yaml"
    spec.write_text(BATCHNORM_FLAT)
    for backend in ("torch", "cupy"):
        r = cli("train", spec, "--backend", backend, "--device", "cpu")
        assert r.exit_code == 2 and "Traceback" not in r.stderr, r.stderr
        assert re.search(r"bn\.yaml:\d+:\d+: training\.batch_size: G\.bn \(batchnorm\) takes "
                         r"its statistics over each minibatch: 1 example\(s\) give it fewer "
                         r"than 2 values per channel; use batch_size ≥ 2", r.stderr), r.stderr
    spec.write_text(BATCHNORM_FLAT.replace("batch_size: 1", "batch_size: 4"))
    r = cli("parity", spec, "--batch", "1")
    assert r.exit_code == 2 and "--batch 1: G.bn (batchnorm) needs at least 2 values per " \
                                "channel in a minibatch; use --batch ≥ 2" in r.stderr, r.stderr
    images = BATCHNORM_FLAT.replace("{type: dense, units: 8}\n    - {type: batchnorm",
                                    "{type: dense, units: 8}\n    - {type: reshape, shape: [2, 2, 2]}"
                                    "\n    - {type: batchnorm").replace(
        "    - {type: relu}\n", "    - {type: relu}\n    - {type: flatten}\n")
    compile_loaded(load_text(images, "img.yaml"))  # 4 positions per channel: enough


@pytest.mark.parametrize("command", [["sample", "nope"], ["eval", "nope", "--parzen"],
                                     ["train", str(Path(__file__).resolve().parents[2] / "specs" / "toy1d.yaml")]])
def test_a_bad_distributed_environment_is_an_error_line(command, monkeypatch):
    """RANK/WORLD_SIZE set to nonsense (a broken launcher): an error line, not a traceback
    (sample and eval asked for their rank before their error handling began)."""
    monkeypatch.setenv("RANK", "x")
    r = cli(*command)
    assert r.exit_code == 2, r.output
    assert r.stderr == "error: RANK, WORLD_SIZE and LOCAL_RANK must be integers\n"


@pytest.mark.parametrize("command", [["sample", "nope"],
                                     ["train", str(Path(__file__).resolve().parents[2] / "specs" / "toy1d.yaml")]])
def test_a_rank_without_its_rendezvous_is_an_error_line(command, monkeypatch):
    """WORLD_SIZE > 1 without MASTER_ADDR/MASTER_PORT (not launched by --nproc or torchrun):
    an error line, not torch's ValueError traceback."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    r = cli(*command)
    assert r.exit_code == 2, r.output
    assert r.stderr == ("error: WORLD_SIZE=2 makes this rank 0 of a distributed run, but "
                        "MASTER_ADDR and MASTER_PORT are not set (start ranks with --nproc N or "
                        "torchrun)\n")
