"""Compile a loaded spec against its own data, as the CLI does."""

from __future__ import annotations

import numpy as np

from advgraph.compile import compile_spec
from advgraph.data import data_info
from advgraph.ir import Graph, Init, Node, Op, Prior, Program, Tensor
from advgraph.ops import OPS
from advgraph.spec.load import LoadedSpec


def compile_loaded(loaded: LoadedSpec) -> Program:
    return compile_spec(loaded, data_info(loaded))


def one_op_program(op: Op, in_shape, attrs, source: str = "z") -> Program:
    """G = input → op, its parameters shaped as the registry says; D = a trivial dense →
    sigmoid over G's output. `source`: what G's input is fed from ("x" makes the lowering of
    the cupy backend give its gradient, as it does D's)."""
    op_def = OPS[op]
    out = op_def.infer(in_shape, attrs)
    tensors = {k: Tensor(f"G.n.{k}", s, Init("normal", {"std": 1.0}), op_def.params[k].trainable)
               for k, s in op_def.param_shapes(in_shape, attrs).items()}
    g = Graph("G", [Node("G.input", Op.INPUT, (), in_shape, {"source": source}),
                    Node("G.n", op, ("G.input",), out, attrs, tensors)], output="G.n")
    flat = int(np.prod(out))
    d = Graph("D", [Node("D.input", Op.INPUT, (), out),
                    Node("D.r", Op.RESHAPE, ("D.input",), (flat,), {"shape": (flat,)}),
                    Node("D.y", Op.DENSE, ("D.r",), (1,), {"units": 1},
                         {"weight": Tensor("D.y.weight", (flat, 1), Init("normal", {"std": 1.0})),
                          "bias": Tensor("D.y.bias", (1,), Init("const", {"value": 0.0}))}),
                    Node("D.s", Op.SIGMOID, ("D.y",), (1,))], output="D.s", logits="D.y")
    return Program(g, d, Prior.gaussian(int(np.prod(in_shape)), 0.0, 1.0), "non_saturating", out)
