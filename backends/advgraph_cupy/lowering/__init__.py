"""Lowering: a Program → launch plans on our kernels (a training iteration, inference).

Forward ops lower to GEMMs with fused epilogues (dense followed by an activation that is its
only reader is one kernel), maxout to a GEMM plus a max over pieces that keeps its argmax,
dropout to a counter-based-RNG kernel that keeps its mask, concat to strided copies, layernorm
and batchnorm to a block per example or channel (batchnorm's statistics per group of rows:
D's real and fake halves apart), the convolutions to im2col / col2im around a GEMM per example.

The modules, along its seams:
- `grouping`: which nodes a pass launches, which fuse, which are aliases;
- `lowerer`: the parameter layout, RNG streams and the pass drivers (`Lowering`);
- `regularizers`: spectral norm's buffers and launches (W / σ before each pass, the power
  iteration in the owning net's step, the gradient through W / σ) and the EMA phase;
- `iteration`: the Algorithm-1 iteration and inference plans built from those, with the
  loss kernel of the program's loss (loss.cu: bce_* on logits, score_* on raw scores).
The ops' emitters are not here: each sits in the module of the kernel family it is built on,
kernels/<family>.py beside kernels/<family>.cu, with those kernels' NumPy twins and footprints
and the op's tape entry type (dense and maxout in `gemm`; activations, dropout, concat and the
aliases in `elementwise`; layernorm and batchnorm in `norm`; max_pool in `pool`; the convolutions in `conv`).
`kernels.EMITTERS` (keyed by `Op`) merges them, and `SUPPORTED` follows from it.
Adding an op with a kernel of its own: its kernels in kernels/<family>.cu, and in
kernels/<family>.py the kernels' twins and footprints (`@FAMILY.kernel`) and the op's emitter
pair (`FAMILY.op`); CONTRIBUTING.md lists the five files.
"""

from .grouping import group_forward
from .iteration import inference_plan, lower, lower_inference, training_plan
from .lowerer import SUPPORTED, UNSUPPORTED, Lowering, unsupported

__all__ = ["SUPPORTED", "UNSUPPORTED", "Lowering", "group_forward", "inference_plan", "lower",
           "lower_inference", "training_plan", "unsupported"]
