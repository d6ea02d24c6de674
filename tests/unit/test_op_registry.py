"""The op registry is complete: every op of the IR is defined once, reaches the spec, and every
backend either lowers it or says why not. Adding an op without one of its entries fails here."""

from __future__ import annotations

import typing

import pytest

from advgraph.ir import Op
from advgraph.ops import FAMILIES, LAYER_MODELS, OPS, OpDef, base
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
