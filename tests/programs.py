"""Programs for tests: a loaded spec compiled against its own data, as the CLI does; one op
alone; a small conv spec with every image op."""

from __future__ import annotations

from pathlib import Path

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
    return Program(g, d, Prior.gaussian(int(np.prod(in_shape)), 0.0, 1.0), data_shape=out)


# Every image op, batchnorm on features and on images, a label concatenated to images as maps;
# small images, so its plan runs in seconds even under TSan.
CONV_SPEC = """
condition: {type: label, classes: 3}
prior: {type: gaussian, dim: 6}
data: {dataset: npz, path: images.npz, key: x, labels: y, flatten: false}
generator:
  graph:
    - name: h
      inputs: z
      layers:
        - {type: dense, units: 48}
        - {type: batchnorm}
        - {type: relu}
        - {type: reshape, shape: [3, 4, 4]}
    - name: joint
      inputs: [h, y]
      layers:
        - {type: conv_transpose2d, channels: 4, kernel: 3, stride: 2, pad: 1, output_pad: 1}
        - {type: batchnorm}
        - {type: relu}
        - {type: conv_transpose2d, channels: 2, kernel: 2, stride: 1, pad: 0}
        - {type: sigmoid}
discriminator:
  graph:
    - name: joint
      inputs: [x, y]
      layers:
        - {type: conv2d, channels: 5, kernel: 3, stride: 2, pad: 1}
        - {type: batchnorm}
        - {type: leaky_relu, slope: 0.2}
        - {type: maxout_conv, channels: 2, pieces: 2, kernel: 2, pad: 1}
        - {type: max_pool, kernel: 2, stride: 2}
        - {type: flatten}
        - {type: dense, units: 1}
        - {type: sigmoid}
training:
  batch_size: 8
  optimizer: {type: adam, lr: 0.001}
  stop: {steps: 3}
"""


def write_conv_spec(root: Path) -> Path:
    """CONV_SPEC and its data (130 labelled 2 × 9 × 9 images) in directory root."""
    rng = np.random.default_rng(0)
    np.savez(root / "images.npz", x=rng.random((130, 2, 9, 9)).astype(np.float32),
             y=rng.integers(0, 3, 130))
    (root / "conv.yaml").write_text(CONV_SPEC)
    return root / "conv.yaml"
