"""The op registry is complete: every op of the IR is defined once, reaches the spec, and every
backend either lowers it or says why not. Adding an op without one of its entries fails here."""

from __future__ import annotations

import os
import subprocess
import sys
import typing

import numpy as np
import pytest

from advgraph.errors import GraphError
from advgraph.ir import Graph, Node, Op
from advgraph.ops import ARITY, FAMILIES, LAYER_MODELS, OPS, OpDef, base
from advgraph.spec.layers import Layer


def test_every_op_has_one_definition():
    assert set(OPS) == set(Op)
    assert sum(len(f.DEFS) for f in FAMILIES) == len(OPS), "an op is defined twice"
    for op, d in OPS.items():
        assert isinstance(d, OpDef) and d.op is op and d.doc.strip(), op


@pytest.mark.parametrize("d", [d for d in OPS.values() if d.layer is not None],
                         ids=lambda d: d.op.value)
def test_every_layer_reaches_the_spec_with_examples(d):
    union = typing.get_args(typing.get_args(Layer)[0])
    assert d.layer in union
    assert typing.get_args(d.layer.model_fields["type"].annotation) == (d.op.value,)
    assert d.examples, f"{d.op.value}: give an example for the backend tests"


@pytest.mark.parametrize("op,shape,attrs",
                         [(d.op, s, a) for d in OPS.values() for s, a in d.examples])
def test_examples_have_shapes_parameters_and_flops(op, shape, attrs):
    d = OPS[op]
    out = d.infer(shape, attrs)
    assert all(isinstance(n, int) and n > 0 for n in out)
    for name, pshape in d.param_shapes(shape, attrs).items():
        assert pshape and all(isinstance(n, int) and n > 0 for n in pshape), (op, name)
    flops = d.flops(shape, out, attrs)
    assert isinstance(flops, int) and (flops > 0 or d.flops is base.free), op


def test_layer_models_are_distinct_types():
    tags = [typing.get_args(m.model_fields["type"].annotation)[0] for m in LAYER_MODELS]
    assert len(tags) == len(set(tags))


def test_torch_lowers_every_op_or_says_why_not():
    pytest.importorskip("torch")
    from advgraph_torch.lower import LOWERINGS, UNSUPPORTED

    assert set(LOWERINGS) | set(UNSUPPORTED) == set(Op)
    assert not set(LOWERINGS) & set(UNSUPPORTED)


def test_cupy_lowers_every_op_or_says_why_not():
    from advgraph_cupy.lowering import SUPPORTED, UNSUPPORTED

    assert set(SUPPORTED) | set(UNSUPPORTED) == set(Op)
    assert not set(SUPPORTED) & set(UNSUPPORTED)
    assert all(why.strip() for why in UNSUPPORTED.values())


@pytest.mark.parametrize("op,shape,attrs",
                         [(d.op, s, a) for d in OPS.values() for s, a in d.examples
                          if d.layer is not None and "init" in d.layer.model_fields])
def test_xavier_fans_come_from_the_op(op, shape, attrs):
    """Glorot's fan-in + fan-out is the op's knowledge (its weight layout), not a guess from
    the tensor's rank: dense (in, out) → in + out; conv (out, in, k, k) → (in + out)·k²."""
    d = OPS[op]
    layer = d.layer.model_validate({"type": op.value, **_layer_fields(d, attrs)})
    w = d.param_shapes(shape, attrs)["weight"]
    init = d.params["weight"].init(layer, w)
    assert init.kind == "xavier"
    want = (w[0] + w[1]) * (w[2] * w[3] if len(w) == 4 else 1)
    assert init.args["fans"] == want


def _layer_fields(d, attrs):
    """The layer model's own fields among the node attributes."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.items()
            if k in d.layer.model_fields}


# ---- traits: each one an op declares holds of its reference ------------------------------------

EXAMPLES = [(d.op, s, a) for d in OPS.values() for s, a in d.examples]


def _reference(op, shape, attrs, train):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *shape))
    d = OPS[op]
    p = lambda local: rng.normal(size=d.param_shapes(shape, attrs)[local])  # noqa: E731
    return x, d.reference(x, p, attrs, train, np.random.default_rng(1))


@pytest.mark.parametrize("op,shape,attrs", EXAMPLES,
                         ids=[f"{op.value}-{shape}" for op, shape, _ in EXAMPLES])
def test_traits_hold_of_the_reference(op, shape, attrs):
    """What the backends, parity and the compiler take from a trait instead of the op's name
    is true of the oracle: an alias keeps its input's values in order, an op that acts only in
    training or is switched off passes its input on, an activation is elementwise and without
    parameters, a probability is σ of its input."""
    d = OPS[op]
    x, y = _reference(op, shape, attrs, train=True)
    if d.alias:
        assert np.array_equal(y.reshape(-1), x.reshape(-1))
    if d.training_only:
        assert np.array_equal(_reference(op, shape, attrs, train=False)[1], x)
    if d.switch_off is not None:
        off = {**attrs, **d.switch_off}
        assert d.is_identity(off, train=True) and not d.is_identity(attrs, train=True)
        assert np.array_equal(_reference(op, shape, off, train=True)[1], x)
    if d.activation or d.probability:
        assert not d.params and y.shape == x.shape
        assert np.array_equal(d.reference(x[:1], None, attrs, True, None), y[:1])
    if d.probability:
        assert np.allclose(y, 1 / (1 + np.exp(-x)))
    if d.epilogue or d.gemm:
        assert set(d.params) == {"weight", "bias"} and len(shape) == 1


def test_cupy_has_a_kernel_code_for_every_activation():
    from advgraph_cupy.codes import EPILOGUES
    from advgraph_cupy.kernels.elementwise import ACT

    assert {op for op, d in OPS.items() if d.activation} == set(ACT)
    assert all(code in EPILOGUES for code in ACT.values())


# ---- the graph rules: errors that name the node, never asserts ---------------------------------

def _graph(*nodes, output="G.b"):
    return Graph("G", [Node(name, op, inputs, (3,)) for name, op, inputs in nodes], output)


MALFORMED = {
    "duplicate node G.a": _graph(("G.x", Op.INPUT, ()), ("G.a", Op.RELU, ("G.x",)),
                                 ("G.a", Op.TANH, ("G.x",)), ("G.b", Op.TANH, ("G.a",))),
    "G.a: 2 input": _graph(("G.x", Op.INPUT, ()), ("G.a", Op.RELU, ("G.x", "G.x")),
                           ("G.b", Op.TANH, ("G.a",))),
    "G.b: 1 input.*two or more": _graph(("G.x", Op.INPUT, ()), ("G.b", Op.CONCAT, ("G.x",))),
    "G.x: 0 input.*reads one": _graph(("G.x", Op.RELU, ()), ("G.b", Op.TANH, ("G.x",))),
    "G.a uses G.b before": _graph(("G.x", Op.INPUT, ()), ("G.a", Op.RELU, ("G.b",)),
                                  ("G.b", Op.TANH, ("G.a",))),
    "reach no output: G.a": _graph(("G.x", Op.INPUT, ()), ("G.a", Op.RELU, ("G.x",)),
                                   ("G.b", Op.TANH, ("G.x",))),
    "output G.c is not a node": _graph(("G.x", Op.INPUT, ()), output="G.c"),
}


@pytest.mark.parametrize("message", MALFORMED)
def test_a_malformed_graph_is_refused_by_name(message):
    with pytest.raises(GraphError, match=message) as err:
        MALFORMED[message].verify(ARITY)
    assert not isinstance(err.value, AssertionError)


def test_graph_rules_hold_under_python_O():
    """`python -O` strips asserts: the rules must be checks of their own."""
    code = ("import sys; from advgraph.errors import GraphError; from advgraph.ir import Graph, "
            "Node, Op; from advgraph.ops import ARITY\n"
            "g = Graph('G', [Node('G.x', Op.INPUT, (), (3,)), Node('G.b', Op.CONCAT, ('G.x',), "
            "(3,))], 'G.b')\n"
            "try:\n    g.verify(ARITY)\nexcept GraphError as e:\n    print('refused:', e)\n"
            "    sys.exit(0)\nsys.exit(3)")
    done = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused: G.b: 1 input(s), but concat reads two or more" in done.stdout


def test_compiled_graphs_keep_the_rules():
    from advgraph.spec import load_file
    from tests.conftest import SPECS
    from tests.programs import compile_loaded

    program = compile_loaded(load_file(SPECS / "mnist-cgan.yaml"))
    for g in (program.G, program.D):
        g.verify(ARITY)
