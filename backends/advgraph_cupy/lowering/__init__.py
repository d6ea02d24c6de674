"""Lowering: a Program → launch plans on our kernels (a training iteration, inference).

Forward ops lower to GEMMs with fused epilogues (dense followed by an activation that is its
only reader is one kernel), maxout to a GEMM plus a max over pieces that keeps its argmax,
dropout to a counter-based-RNG kernel that keeps its mask, concat to strided copies, layernorm
and batchnorm to a block per example or channel (batchnorm's statistics per group of rows:
D's real and fake halves apart), the convolutions to im2col / col2im around a GEMM per example.

The modules, along its seams:
- `grouping`: which nodes a pass launches, which fuse, which are aliases;
- `tape`: the state of a forward/backward pass and the typed entries the forward keeps;
- `emitters`: one forward and one backward emitter per op (`EMITTERS`, keyed by `Op`), the
  image ops' (max_pool, the convolutions) in `spatial`;
- `lowerer`: the parameter layout, RNG streams and the pass drivers (`Lowering`);
- `iteration`: the Algorithm-1 iteration and inference plans built from those.
Adding an op: its emitter pair in `emitters.EMITTERS` (its kernels in kernels/*.cu, their twins
in simulate.py, their footprints in footprint.py); `SUPPORTED` follows from the table.
"""

from .grouping import group_forward
from .iteration import inference_plan, lower, lower_inference, training_plan
from .lowerer import SUPPORTED, UNSUPPORTED, Lowering

__all__ = ["SUPPORTED", "UNSUPPORTED", "Lowering", "group_forward", "inference_plan", "lower",
           "lower_inference", "training_plan"]
