"""The op set of the intermediate graph.

Semantics, for an input batch x of shape (B, *in_shape); parameters are stored in the layouts
given here, which are also the checkpoint layouts (backend-neutral):

- INPUT       an input of the network; attrs: source = "z" (G's noise), "x" (D's data) or "y"
              (the condition: a one-hot label of shape (classes,), the same y for G and D).
- DENSE       y = x @ W + b.  W: (in, units), b: (units,).  attrs: units.
- MAXOUT      a = x @ W + b with W: (in, units·pieces), b: (units·pieces,); the pieces of unit u
              are the consecutive columns u·pieces … u·pieces+pieces−1 (Pylearn2's layout);
              y[:, u] = max_p a[:, u·pieces + p].  attrs: units, pieces.
- RELU        y = max(x, 0).
- LEAKY_RELU  y = x if x > 0 else slope·x.  attrs: slope.
- TANH        y = tanh(x).
- SIGMOID     y = 1 / (1 + exp(−x)). When it ends D, the trainers take its *input* as the
              logit so that losses are computed stably (softplus), never log(sigmoid(·)).
- LINEAR      y = x (an explicit linear output).
- DROPOUT     training: y = x · m · scale with m ~ Bernoulli(keep) drawn per element;
              otherwise (sampling, evaluation) y = x.  attrs: keep, scale.
- RESHAPE     y = x.reshape(B, *shape).  attrs: shape.
- BATCHNORM   over the feature axis (axis 1): training uses the batch mean and biased variance
              and updates running_mean/running_var (unbiased) with `momentum`; otherwise uses
              the running statistics.  y = (x − μ)/√(σ² + eps)·weight + bias.
              weight, bias, running_mean, running_var: (C,).  attrs: eps, momentum.
- CONV2D      x: (B, C, H, W) → (B, channels, H', W'), H' = ⌊(H + 2·pad − kernel)/stride⌋ + 1;
              cross-correlation with zero padding.  weight: (channels, C, k, k), bias: (channels,).
              attrs: channels, kernel, stride, pad.
- CONV_T2D    the transpose (gradient) of CONV2D: H' = (H − 1)·stride − 2·pad + kernel +
              output_pad.  weight: (C, channels, k, k), bias: (channels,).
              attrs: channels, kernel, stride, pad, output_pad.
- MAXOUT_CONV CONV2D to channels·pieces maps; map c·pieces + p is piece p of channel c;
              y[:, c] = max_p.  weight: (channels·pieces, C, k, k).  attrs: as CONV2D + pieces.
- MAX_POOL    max over kernel × kernel windows moved by stride, padding counts as −∞.
              attrs: kernel, stride, pad.
- FLATTEN     y = x.reshape(B, −1).
- CONCAT      the only op with several inputs: concatenation along axis 1 (the features of flat
              inputs, the channels of images), in the order of `inputs`. When images
              (C, H, W) meet flat vectors (F,), each vector is broadcast to F constant H × W
              maps first (how a label enters a convolutional net).
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
    CONV2D = "conv2d"
    CONV_T2D = "conv_transpose2d"
    MAXOUT_CONV = "maxout_conv"
    MAX_POOL = "max_pool"
    FLATTEN = "flatten"
    CONCAT = "concat"

    def __str__(self) -> str:
        return self.value


ELEMENTWISE = {Op.RELU, Op.LEAKY_RELU, Op.TANH, Op.SIGMOID, Op.LINEAR, Op.DROPOUT}
# Ops whose output for one example depends on the other examples of the batch in training.
BATCH_COUPLED = {Op.BATCHNORM}
