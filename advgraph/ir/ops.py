"""The op set of the intermediate graph: the names of the ops.

What each op means (its attributes, shape rule, parameter layouts, which are also the
checkpoint layouts, and its reference forward) is defined once, in the op registry
(advgraph/ops, one module per family); a node's shapes are per example (the batch axis is
symbolic). Adding an op: see CONTRIBUTING.md.
"""

from __future__ import annotations

from enum import Enum


class Op(str, Enum):
    INPUT = "input"
    DENSE = "dense"
    MAXOUT = "maxout"
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    LINEAR = "linear"
    DROPOUT = "dropout"
    RESHAPE = "reshape"
    BATCHNORM = "batchnorm"
    LAYERNORM = "layernorm"
    CONV2D = "conv2d"
    CONV_T2D = "conv_transpose2d"
    MAXOUT_CONV = "maxout_conv"
    MAX_POOL = "max_pool"
    FLATTEN = "flatten"
    CONCAT = "concat"

    def __str__(self) -> str:
        return self.value

