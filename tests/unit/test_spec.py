"""Spec validation: every problem located as file:line:col plus its dotted path."""

from __future__ import annotations

import pytest

from tests.programs import compile_loaded
from advgraph.errors import SpecError
from advgraph.spec import load_file, load_text
from tests.conftest import SPECS
from tests.helpers import cli

BASE = """\
prior: {type: uniform, dim: 8}
data: {dataset: toy-ring2d, train: 500, valid: 50, test: 50}
generator:
  layers:
    - {type: dense, name: h0, units: 16}
    - {type: relu}
    - {type: dense, name: y, units: 2}
    - {type: linear}
discriminator:
  layers:
    - {type: maxout, name: h0, units: 8, pieces: 2}
    - {type: dense, name: y, units: 1}
    - {type: sigmoid}
training:
  batch_size: 50
  optimizer: {type: sgd, lr: 0.1}
  stop: {steps: 10}
"""


def problems(text: str, overrides=None) -> list[str]:
    with pytest.raises(SpecError) as e:
        compile_loaded(load_text(text, "x.yaml", overrides))
    return [str(p) for p in e.value.problems]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "toy1d", "ring2d", "cifar10-fc",
                                  "cifar10-conv"])
def test_shipped_specs_compile(name):
    program = compile_loaded(load_file(SPECS / f"{name}.yaml"))
    assert program.D.logits is not None


def test_mnist_parameter_counts_match_the_paper():
    program = compile_loaded(load_file(SPECS / "mnist.yaml"))
    assert program.G.num_params() == 2_503_984
    assert program.D.num_params() == 1_231_441
    assert program.data_shape == (784,)
    assert [t.name for t in program.G.params()][:2] == ["G.h0.weight", "G.h0.bias"]


def test_mnist_spec_carries_the_papers_numbers():
    s = load_file(SPECS / "mnist.yaml").spec
    opt = s.training.optimizer
    assert (opt.lr, opt.lr_decay, opt.min_lr) == (0.1, 1.000004, 1e-6)
    assert (opt.momentum.init, opt.momentum.final, opt.momentum.start,
            opt.momentum.saturate) == (0.5, 0.7, 1, 250)
    assert s.training.batch_size == 100 and s.training.k == 1
    assert (s.data.train, s.data.valid) == (50_000, 10_000)
    assert s.prior.dim == 100 and abs(s.prior.high - 3 ** 0.5) < 1e-12
    drop = [layer for layer in s.discriminator.layers if layer.type == "dropout"]
    assert [(d.keep, d.effective_scale) for d in drop] == [(0.8, 1.25), (0.5, 2.0), (0.5, 2.0)]


def test_valid_base_compiles():
    assert compile_loaded(load_text(BASE, "x.yaml")).G.num_params() == 8 * 16 + 16 + 16 * 2 + 2


def test_unknown_key_has_location_and_suggestion():
    text = BASE.replace("  batch_size: 50", "  batch_sise: 50")
    assert problems(text) == [
        "x.yaml:15:3: training.batch_sise: unknown key 'batch_sise'; did you mean 'batch_size'?"]


def test_unknown_key_inside_a_layer():
    text = BASE.replace("{type: dense, name: h0, units: 16}", "{type: dense, name: h0, unit: 16}")
    out = problems(text)
    assert "x.yaml:5:7: generator.layers[0].units: required key is missing" in out
    assert any(p.startswith("x.yaml:5:31: generator.layers[0].unit: unknown key 'unit'; "
                            "did you mean 'units'?") for p in out)


def test_unknown_layer_type_suggests():
    out = problems(BASE.replace("- {type: relu}", "- {type: rleu}"))
    assert len(out) == 1
    assert out[0].startswith("x.yaml:6:14: generator.layers[1].type: unknown type 'rleu'; "
                             "did you mean 'relu'?")


def test_a_missing_tag_lists_the_choices():
    """A layer, prior, dataset or optimiser without its tag says which values it may take."""
    layer = problems(BASE.replace("- {type: relu}", "- {slope: 1}"))
    assert len(layer) == 1 and layer[0].startswith(
        "x.yaml:6:7: generator.layers[1]: missing 'type' (one of: dense, maxout, relu, ")
    assert all(t in layer[0] for t in ("leaky_relu", "dropout", "conv2d", "layernorm"))
    for old, new, where, choices in [
            ("{type: uniform, dim: 8}", "{dim: 8}", "prior", "uniform, gaussian"),
            ("{type: sgd, lr: 0.1}", "{lr: 0.1}", "training.optimizer", "sgd, adam"),
            ("{dataset: toy-ring2d,", "{", "data", "mnist, fashion-mnist, cifar10, tfd, "
             "toy-gaussian1d, toy-ring2d, npz, images")]:
        out = problems(BASE.replace(old, new))
        assert any(p.endswith(f"{where}: missing '{'dataset' if where == 'data' else 'type'}' "
                              f"(one of: {choices})") for p in out), out


@pytest.mark.parametrize("name", ["../etc", "my run", "é", "-x", "x" * 97])
def test_a_name_that_cannot_name_runs_is_refused(name):
    """The spec's name numbers its runs (<name>-001): one that is no run name is refused where
    it is written, not replaced by run-NNN."""
    out = problems(f"name: '{name}'\n" + BASE)
    assert out == [f"x.yaml:1:7: name: {name!r} cannot name runs (<name>-001, …): use letters, "
                   "digits, '.', '_' or '-', starting with a letter or digit, at most 96 "
                   "characters"]


def test_a_runs_own_spec_keeps_a_name_made_before_the_rule():
    """Runs made before names were checked (their spec.yaml says `name: my run`) still load
    for sample, eval and resume: the rule applies to specs a user gives, not to stored ones."""
    assert load_text("name: 'my run'\n" + BASE, "spec.yaml", stored=True).spec.name == "my run"


def test_a_name_of_96_characters_names_runs(tmp_path):
    assert load_text(f"name: {'a.' * 48}\n" + BASE, "x.yaml").spec.name == "a." * 48


def test_bad_values_are_each_reported():
    text = BASE.replace("units: 16", "units: -16").replace("lr: 0.1", "lr: fast")
    out = problems(text)
    assert "x.yaml:5:38: generator.layers[0].units: Input should be greater than 0" in out
    assert any(p.startswith("x.yaml:16:30: training.optimizer.lr: Input should be a valid number")
               for p in out)


def test_missing_section():
    text = BASE.split("training:")[0]
    assert problems(text) == ["x.yaml:1:1: training: required key is missing"]


def test_yaml_syntax_error_is_located():
    out = problems(BASE.replace("dim: 8}", "dim: 8"))
    assert len(out) == 1 and out[0].startswith("x.yaml:2:") and "invalid YAML" in out[0]


def test_duplicate_key_is_an_error():
    out = problems(BASE + "training: {}\n")
    assert out == ["x.yaml:18:1: training: duplicate key"]


def test_top_level_must_be_a_mapping():
    assert problems("- 1\n- 2\n") == [
        "x.yaml:1:1: a spec must be a mapping (key: value) at the top level"]


def test_overrides_apply_and_are_validated():
    loaded = load_text(BASE, "x.yaml", ["training.optimizer.lr=0.05",
                                        "generator.layers[0].units=32"])
    assert loaded.spec.training.optimizer.lr == 0.05
    assert loaded.spec.generator.layers[0].units == 32
    assert problems(BASE, ["training.k=0"]) == ["`overrides`: training.k: Input should be greater than 0"]
    assert problems(BASE, ["generator.layers[9].units=3"]) == [
        "`overrides`: generator.layers[9]: no such list item"]
    assert problems(BASE, ["training.lr"]) == [
        "`overrides`: training.lr: expected PATH=VALUE, e.g. training.optimizer.lr=0.05"]
    assert problems(BASE, ["training..lr=1"])[0].startswith("`overrides`: training..lr: not a dotted path")


def test_setting_an_intervals_steps_replaces_its_epochs():
    """`--set training.stop.steps=N` on an epoch-based spec (the README's resume example)."""
    spec = load_file(SPECS / "mnist.yaml").spec  # stop: {epochs: 250}
    assert spec.training.stop.epochs == 250 and spec.training.stop.steps is None
    switched = load_file(SPECS / "mnist.yaml", ["training.stop.steps=7",
                                                "training.checkpoint.steps=5"]).spec.training
    assert (switched.stop.steps, switched.stop.epochs) == (7, None)
    assert (switched.checkpoint.steps, switched.checkpoint.epochs) == (5, None)
    back = load_file(SPECS / "ring2d.yaml", ["training.stop.epochs=3"]).spec  # stop: {steps: 5000}
    assert (back.training.stop.epochs, back.training.stop.steps) == (3, None)
    # both on the command line: still refused, with the way out
    for both, message in (
            (["training.stop.steps=7", "training.stop.epochs=2"],
             "`overrides`: training.stop: both 'steps' and 'epochs' are set; an interval takes one"),
            (["training.stop={epochs: 5}", "training.stop.steps=100"],
             "`overrides`: training.stop: both 'epochs' and 'steps' are set; an interval takes one")):
        with pytest.raises(SpecError) as e:
            load_file(SPECS / "mnist.yaml", both)
        assert str(e.value).startswith(message), str(e.value)
    # null unsets: the spec's epochs stay
    assert load_file(SPECS / "mnist.yaml", ["training.stop.steps=null"]).spec.training.stop.epochs == 250


def test_generator_output_must_match_data():
    out = problems(BASE.replace("name: y, units: 2}", "name: y, units: 3}"))
    assert out == ["x.yaml:8:7: generator.layers[3]: G's output (3,) does not match the data's "
                   "shape (2,)"]


def test_discriminator_must_end_in_one_sigmoid():
    out = problems(BASE.replace("    - {type: sigmoid}\ntraining", "    - {type: tanh}\ntraining"))
    assert out == ["x.yaml:13:7: discriminator.layers[2]: D ends in 'tanh': the non_saturating "
                   "loss reads D's output as a probability: end D in a sigmoid (or use a loss on "
                   "raw scores: least_squares, hinge, wasserstein)"]
    out = problems(BASE.replace("{type: dense, name: y, units: 1}", "{type: dense, name: y, units: 4}"))
    assert out == ["x.yaml:13:7: discriminator.layers[2]: D must output one probability per "
                   "example, got (4,)"]


def test_impossible_reshape_is_located():
    text = BASE.replace("    - {type: relu}\n", "    - {type: reshape, shape: [3, 5]}\n", 1)
    out = problems(text)
    assert out == ["x.yaml:6:7: generator.layers[1]: cannot reshape (16,) (16 values) to (3, 5) "
                   "(15 values)"]


def test_duplicate_layer_names():
    out = problems(BASE.replace("name: y, units: 2", "name: h0, units: 2"))
    assert out == ["x.yaml:7:27: generator.layers[2].name: layer name 'h0' is already used by "
                   "layers[0]"]


def test_marginal_bias_only_on_gs_output():
    text = BASE.replace("{type: dense, name: h0, units: 16}",
                        "{type: dense, name: h0, units: 16, bias: marginals}")
    out = problems(text)
    assert out[0].startswith("x.yaml:5:48: generator.layers[0].bias: bias 'marginals'")


def test_cli_check_reports_every_problem_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("units: 16", "units: 0").replace("k: 1", "").replace(
        "batch_size: 50", "batch_size: 50\n  kk: 1"))
    r = cli("check", bad)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"error: {bad}:5:38: generator.layers[0].units: Input should be greater than 0"
    assert lines[1] == f"error: {bad}:16:3: training.kk: unknown key 'kk'; did you mean 'k'?"
    assert "Traceback" not in r.stderr


def test_cli_check_missing_file():
    r = cli("check", "nope.yaml")
    assert r.exit_code == 2
    assert r.stderr.strip() == "error: nope.yaml: no such spec file"


def test_alias_bombs_and_deep_nesting_are_refused_quickly():
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcde", "bcdef"))
    out = problems(bomb)
    assert len(out) == 1 and "expands to more than 100,000 values" in out[0]
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    assert problems(deep) == ["x.yaml: invalid YAML: nested too deeply"]
