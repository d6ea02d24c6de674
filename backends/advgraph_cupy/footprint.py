"""How many elements each kernel touches through each pointer parameter, from its scalar
arguments: what lets a launch plan be checked to stay inside its buffer views (a sanitizer cannot
see an overflow from one view into its neighbour inside one buffer), and `__restrict__`
arguments to be checked not to overlap.

A footprint is the highest element index touched, plus one; a test fails when a kernel lacks one.
"""

from __future__ import annotations

from typing import Callable

from .codes import EPILOGUES, METRICS


def _strided(rows: int, cols: int, ld: int) -> int:
    """Elements spanned by a rows × cols block of a row-major matrix with leading dimension ld."""
    return 0 if rows <= 0 or cols <= 0 else (rows - 1) * ld + cols


def _batched(batch: int, stride: int, one: int) -> int:
    """Elements spanned by `batch` operands of `one` elements each, `stride` apart."""
    return 0 if batch <= 0 or one <= 0 else (batch - 1) * stride + one


def _gemm_batched(s):
    M, N, K, bt = s["M"], s["N"], s["K"], s["batch"]
    a = _strided(K, M, s["lda"]) if s["transA"] else _strided(M, K, s["lda"])
    b = _strided(N, K, s["ldb"]) if s["transB"] else _strided(K, N, s["ldb"])
    return {"A": _batched(bt, s["strideA"], a), "B": _batched(bt, s["strideB"], b),
            "C": _batched(bt, s["strideC"], _strided(M, N, s["ldc"])),
            "bias": 0 if s["epilogue"] == EPILOGUES["none"] else N}


def _gemm(s):
    return _gemm_batched({**s, "batch": 1, "strideA": 0, "strideB": 0, "strideC": 0})


_M = len(METRICS)
FOOTPRINTS: dict[str, Callable[[dict[str, int]], dict[str, int]]] = {
    "gemm": _gemm,
    "gemm_batched": _gemm_batched,
    "bias_grad": lambda s: {"dY": s["M"] * s["N"], "db": s["N"]},
    "layernorm_fwd": lambda s: {**dict.fromkeys(("x", "y", "xhat"), s["rows"] * s["cols"]),
                                "w": s["cols"], "b": s["cols"], "rstd": s["rows"]},
    "layernorm_bwd": lambda s: {**dict.fromkeys(("dy", "xhat", "dx"), s["rows"] * s["cols"]),
                                "rstd": s["rows"], "w": s["cols"]},
    "layernorm_param_grad": lambda s: {"dy": s["rows"] * s["cols"], "xhat": s["rows"] * s["cols"],
                                       "dw": s["cols"], "db": s["cols"]},
    "batchnorm_fwd": lambda s: {**dict.fromkeys(("x", "y", "xhat"), s["rows"] * s["C"] * s["P"]),
                                **dict.fromkeys(("w", "b", "run_mean", "run_var"), s["C"]),
                                "rstd": s["groups"] * s["C"]},
    "batchnorm_infer": lambda s: {"x": s["rows"] * s["C"] * s["P"], "y": s["rows"] * s["C"] * s["P"],
                                  **dict.fromkeys(("w", "b", "run_mean", "run_var"), s["C"])},
    "batchnorm_bwd": lambda s: {**dict.fromkeys(("dy", "xhat", "dx"), s["rows"] * s["C"] * s["P"]),
                                "rstd": s["groups"] * s["C"], "w": s["C"]},
    "batchnorm_param_grad": lambda s: {"dy": s["rows"] * s["C"] * s["P"],
                                       "xhat": s["rows"] * s["C"] * s["P"],
                                       "dw": s["C"], "db": s["C"]},
    "maxpool_fwd": lambda s: {"x": s["planes"] * s["H"] * s["W"],
                              "y": s["planes"] * s["OH"] * s["OW"],
                              "arg": s["planes"] * s["OH"] * s["OW"]},
    "maxpool_bwd": lambda s: {"dy": s["planes"] * s["OH"] * s["OW"],
                              "arg": s["planes"] * s["OH"] * s["OW"],
                              "dx": s["planes"] * s["H"] * s["W"]},
    "im2col": lambda s: {"x": s["rows"] * s["C"] * s["H"] * s["W"],
                         "cols": s["rows"] * s["C"] * s["k"] ** 2 * s["OH"] * s["OW"]},
    "col2im": lambda s: {"x": s["rows"] * s["C"] * s["H"] * s["W"],
                         "cols": s["rows"] * s["C"] * s["k"] ** 2 * s["OH"] * s["OW"]},
    "channel_bias": lambda s: {"y": s["rows"] * s["C"] * s["P"], "bias": s["C"]},
    "channel_bias_grad": lambda s: {"dy": s["rows"] * s["C"] * s["P"], "db": s["C"]},
    "act_fwd": lambda s: {"x": s["n"], "y": s["n"]},
    "act_bwd": lambda s: {"y": s["n"], "dy": s["n"], "dx": s["n"]},
    "maxout_fwd": lambda s: {"a": s["rows"] * s["units"] * s["pieces"] * s["inner"],
                             "y": s["rows"] * s["units"] * s["inner"],
                             "arg": s["rows"] * s["units"] * s["inner"]},
    "maxout_bwd": lambda s: {"dy": s["rows"] * s["units"] * s["inner"],
                             "arg": s["rows"] * s["units"] * s["inner"],
                             "da": s["rows"] * s["units"] * s["pieces"] * s["inner"]},
    "dropout_fwd": lambda s: {"x": s["n"], "y": s["n"], "mask": s["n"], "rng": 4},
    "dropout_bwd": lambda s: {"dy": s["n"], "mask": s["n"], "dx": s["n"]},
    "gather_rows": lambda s: {"data": s["n"] * s["cols"], "order": s["n"], "pos": 1,
                              "out": s["rows"] * s["cols"]},
    "gather_onehot": lambda s: {"labels": s["n"], "order": s["n"], "pos": 1,
                                "out": s["rows"] * s["classes"]},
    "draw_onehot": lambda s: {"labels": s["n"], "out": s["rows"] * s["classes"], "rng": 4},
    "copy2d": lambda s: {"src": _strided(s["rows"], s["cols"], s["ld_src"]),
                         "dst": _strided(s["rows"], s["cols"], s["ld_dst"])},
    "count_nonfinite": lambda s: {"x": s["n"], "count": 1},
    "advance_rng": lambda s: {"rng": 4},
    "fill": lambda s: {"x": s["n"]},
    "noise": lambda s: {"z": s["n"], "rng": 4},
    "bce_d": lambda s: {"l_real": s["m"], "l_fake": s["m"], "g_real": s["m"], "g_fake": s["m"],
                        "metrics": _M},
    "bce_g": lambda s: {"l_fake": s["m"], "g_fake": s["m"], "metrics": _M},
    "sgd_momentum": lambda s: {"p": s["n"], "v": s["n"], "g": s["n"], "hp": 4},
    "adam": lambda s: {"p": s["n"], "m": s["n"], "v": s["n"], "g": s["n"], "hp": 4},
}
