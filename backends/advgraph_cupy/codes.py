"""The integer codes the kernels and the Python side share: one table, from which the kernels'
`#define`s (the generated header codes.cuh), the launch plan and the NumPy twins all read."""

from __future__ import annotations

from advgraph.backend_protocol import METRIC_SUMS

# Epilogue of a GEMM, or the activation of act_fwd/act_bwd. NONE: C = A·B; BIAS: + bias;
# the others: + bias, then the activation.
EPILOGUES: dict[str, int] = {"none": 0, "bias": 1, "relu": 2, "sigmoid": 3, "tanh": 4,
                             "leaky_relu": 5}
_MACROS = {"none": "EP_NONE", "bias": "EP_BIAS", "relu": "EP_BIAS_RELU",
           "sigmoid": "EP_BIAS_SIGMOID", "tanh": "EP_BIAS_TANH", "leaky_relu": "EP_BIAS_LEAKY"}

# The losses on raw scores (score_d/score_g's `kind`; the probability losses are bce_d/bce_g's).
SCORE_LOSSES: dict[str, int] = {"least_squares": 0, "hinge": 1, "wasserstein": 2}

# metrics[] slots written by the loss kernels and read by the trainer: the running sums every
# trainer keeps (the first slots, its state's "metrics/sums"), then the non-finite count.
METRICS = (*METRIC_SUMS, "finite")


def header() -> str:
    """codes.cuh: the #defines of the table above (never edited by hand)."""
    lines = ["// Generated from advgraph_cupy/codes.py: do not edit.", "#pragma once"]
    lines += [f"#define {_MACROS[k]} {v}" for k, v in EPILOGUES.items()]
    lines += [f"#define LOSS_{k.upper()} {v}" for k, v in SCORE_LOSSES.items()]
    lines += [f"#define METRIC_{k.upper()} {i}" for i, k in enumerate(METRICS)]
    lines.append(f"#define METRIC_COUNT {len(METRICS)}")
    return "\n".join(lines) + "\n"
