"""The graph form of a network and the condition: what compiles, and every mistake reported
at its place in the spec."""

from __future__ import annotations

import pytest

from advgraph.compile import compile_spec
from advgraph.ir import DataInfo
from tests.programs import compile_loaded
from advgraph.ir import Op
from advgraph.ops import ShapeError
from advgraph.ops.structure import infer_concat
from advgraph.spec import load_file, load_text
from tests.conftest import SPECS
from tests.unit.test_spec import BASE, problems

COND = "condition: {type: label, classes: 8}\n" + BASE

G_GRAPH = """\
generator:
  graph:
    - {name: a, inputs: z, layers: [{type: dense, units: 16}, {type: relu}]}
    - {name: b, inputs: y, layers: [{type: dense, units: 4}, {type: relu}]}
    - {name: out, inputs: [a, b], layers: [{type: dense, units: 2}, {type: linear}]}
"""


def with_g(text: str, g: str) -> str:
    start = text.index("generator:")
    end = text.index("discriminator:")
    return text[:start] + g + text[end:]


def test_chain_form_concatenates_the_label_to_each_input():
    p = compile_loaded(load_text(COND, "x.yaml"))
    assert p.classes == 8
    for g, main, width in ((p.G, "G.input", 8 + 8), (p.D, "D.input", 2 + 8)):
        cat = g.node(f"{g.name}.concat")
        assert cat.inputs == (main, f"{g.name}.label") and cat.shape == (width,)
    # parameter names of a chain are those of the unconditional spec
    plain = compile_loaded(load_text(BASE, "x.yaml"))
    assert [t.name for t in p.tensors()] == [t.name for t in plain.tensors()]


def test_the_shipped_mnist_cgan_has_mirza_and_osinderos_nets():
    p = compile_spec(load_file(SPECS / "mnist-cgan.yaml"), DataInfo((784,), 10))
    # G: 100→200, 10→1000, 1200→1200, 1200→784; D: 784→240×5, 10→50×5, 290→240×4, 240→1
    assert p.G.num_params() == (100 * 200 + 200) + (10 * 1000 + 1000) + (1200 * 1200 + 1200) \
        + (1200 * 784 + 784) == 2_413_984
    assert p.D.num_params() == (784 * 1200 + 1200) + (10 * 250 + 250) + (290 * 960 + 960) \
        + (240 + 1) == 1_224_351
    assert p.G.node("G.joint.out").tensors["bias"].init.kind == "marginals"


def test_infer_concat():
    assert infer_concat([(3,), (4,)]) == (7,)
    assert infer_concat([(2, 5, 5), (10,), (1, 5, 5)]) == (13, 5, 5)
    with pytest.raises(ShapeError, match="share height and width"):
        infer_concat([(2, 5, 5), (1, 4, 4)])
    with pytest.raises(ShapeError, match="flat inputs"):
        infer_concat([(3, 4), (2,)])


@pytest.mark.parametrize("text,where,what", [
    # a label without a condition
    (with_g(BASE, G_GRAPH), "x.yaml:6:25: generator.graph[1].inputs", "y is the condition, and this spec has none"),
    # condition on data without labels
    (COND.replace("dataset: toy-ring2d,", "dataset: toy-gaussian1d,")
     .replace("units: 2}", "units: 1}"), "condition", "no labels to condition on"),
    # wrong class count for the dataset
    (COND.replace("classes: 8", "classes: 10"), "condition.classes", "has 8 classes, not 10"),
    # an unknown input name, with a suggestion
    (with_g(COND, G_GRAPH.replace("inputs: [a, b]", "inputs: [a, bb]")),
     "generator.graph[2].inputs[1]", "unknown input 'bb' (did you mean 'b'?)"),
    # a branch that never reaches the output
    (with_g(COND, G_GRAPH.replace("inputs: [a, b]", "inputs: [a, y]")),
     "generator.graph[1].name", "block 'b' is not used by the output"),
    # the condition never enters G
    (with_g(COND, G_GRAPH.replace("inputs: y,", "inputs: z,")), "generator.graph",
     "the condition y never enters G"),
    # block names are unique and are not input names
    (with_g(COND, G_GRAPH.replace("name: b,", "name: z,").replace("[a, b]", "[a, z]")),
     "generator.graph[1].name", "block name 'z' is already an input's name"),
    # a block reads only earlier blocks (so there are no cycles)
    (with_g(COND, G_GRAPH.replace("inputs: z,", "inputs: out,")),
     "generator.graph[0].inputs", "unknown input 'out'"),
    # a block without layers must concatenate
    (with_g(COND, G_GRAPH.replace("layers: [{type: dense, units: 4}, {type: relu}]", "layers: []")),
     "generator.graph[1]", "needs layers, or several inputs"),
    # images of different sizes cannot be concatenated
    (with_g(COND, """\
generator:
  graph:
    - {name: a, inputs: z, layers: [{type: dense, units: 16}, {type: reshape, shape: [1, 4, 4]}]}
    - {name: b, inputs: y, layers: [{type: dense, units: 9}, {type: reshape, shape: [1, 3, 3]}]}
    - {name: out, inputs: [a, b], layers: [{type: flatten}, {type: dense, units: 2}]}
"""), "generator.graph[2].inputs", "must share height and width"),
    # a layer name that would shadow a node
    (COND.replace("name: h0, units: 16", "name: concat, units: 16"), "generator.layers[0].name",
     "reserved"),
])
def test_graph_mistakes_are_located(text, where, what):
    found = problems(text)
    assert any(where in p and what in p for p in found), found


def test_exactly_one_form():
    both = BASE.replace("generator:\n  layers:", "generator:\n  graph: [{name: a, inputs: z}]\n  layers:")
    assert any("exactly one of 'layers'" in p for p in problems(both))
    neither = with_g(BASE, "generator: {}\n")
    assert any("exactly one of 'layers'" in p for p in problems(neither))


def test_d_must_end_in_a_sigmoid_in_graph_form():
    d = """\
discriminator:
  graph:
    - {name: a, inputs: x, layers: [{type: dense, units: 4}]}
    - {name: out, inputs: [a, y]}
training:"""
    text = COND[:COND.index("discriminator:")] + d + COND.split("training:", 1)[1]
    assert any("discriminator.graph" in p and "end D in a sigmoid" in p
               for p in problems(text))


def test_npz_labels_are_required_for_a_condition(tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.zeros((10, 2), np.float32), y=np.arange(10) % 8)
    text = COND.replace("{dataset: toy-ring2d, train: 500, valid: 50, test: 50}",
                        f"{{dataset: npz, path: {tmp_path / 'd.npz'}, key: x}}")
    assert any("name the labels array with data.labels" in p for p in problems(text))
    ok = text.replace("key: x}", "key: x, labels: y}")
    p = compile_loaded(load_text(ok, "x.yaml"))
    assert p.classes == 8 and p.G.has_op(Op.CONCAT)
