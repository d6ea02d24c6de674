"""The kernel suite of the host executor: every kernel in kernels/*.cu, run by the g++-compiled
kernels (advgraph_cupy.host) and by its NumPy twin (advgraph_cupy.twins) on shapes that are
not tile multiples, compared exactly where the twin is exact. Shared by test_host_executor.py and
the sanitizer subprocesses of test_host_sanitizers.py (`python -m tests.backend.host_cases VARIANT`).

Buffers are exact-size NumPy allocations, so ASan sees one element past the end."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "backends") not in sys.path:
    sys.path.insert(0, str(ROOT / "backends"))

from advgraph_cupy import twins  # noqa: E402
from advgraph_cupy.codes import EPILOGUES, METRICS, SCORE_LOSSES  # noqa: E402

i32, u32, f32, i64 = np.int32, np.uint32, np.float32, np.int64
ONE_COPY2 = (i32(1), i64(0), i64(0))  # a `members` kernel's batch and strides, one copy
ONE_COPY4 = ONE_COPY2 + (i64(0), i64(0))
BLOCK = (256, 1, 1)


def ptr(a: np.ndarray, offset: int = 0) -> int:
    return a.ctypes.data + offset * a.itemsize


def grid1(threads: int, block: int = 256) -> tuple[int, int, int]:
    return (max(1, -(-threads // block)), 1, 1)


def same(a, b, what=""):
    assert a.dtype == b.dtype, what
    ok = np.array_equal(a.view(np.uint8), b.view(np.uint8)) if a.dtype.kind == "f" else np.array_equal(a, b)
    if not ok:
        bad = np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b)))) if a.dtype.kind == "f" else np.flatnonzero(a != b)
        raise AssertionError(f"{what}: {len(bad)} of {a.size} differ, first at {bad[:5]}: "
                             f"{a.reshape(-1)[bad[:5]]} vs {b.reshape(-1)[bad[:5]]}")


def close(a, b, rtol, what="", atol=0.0, scale=None):
    """|a - b| <= rtol × max(1, max|b|) (or × scale: e.g. the size of an activation's input)."""
    if scale is None:
        scale = max(1.0, float(np.nanmax(np.abs(b)))) if b.size else 1.0
    err = float(np.nanmax(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaNs differ"
    assert err <= rtol * scale + atol, f"{what}: max error {err:.3g} > {rtol:.1g} × {scale:.3g}"


def both(hk, kernel, grid, block, bufs: dict, scalars: list, order: list, exact: bool, rtol=1e-6):
    """Run `kernel` on copies of bufs through the host and through the twin; compare every buffer.
    order: the argument list as names of bufs or indices into scalars."""
    mine = {k: v.copy() for k, v in bufs.items()}
    twin = {k: v.copy() for k, v in bufs.items()}
    hk.launch(kernel, grid, block, [ptr(mine[a]) if isinstance(a, str) else scalars[a] for a in order])
    twins.KERNELS[kernel](*[twin[a] if isinstance(a, str) else scalars[a].item() for a in order])
    for k in bufs:
        if exact:
            same(mine[k], twin[k], f"{kernel}.{k}")
        else:
            close(mine[k], twin[k], rtol, f"{kernel}.{k}")
    return mine


# ---- the cases --------------------------------------------------------------------------------

# (100, 70, 784): the MNIST nets' batch and input width, so the longest accumulation (49 K-tiles)
# is held to the twin's tolerance; N at 70 (two column tiles, one partial) rather than the first
# layer's 1200 units, which cost 17 times as much in the exact variant and tiled no differently.
GEMM_SHAPES = [(100, 70, 784), (37, 5, 3), (65, 129, 17), (1, 1, 1)]
GEMM_SMALL = [(37, 5, 3), (65, 129, 17), (1, 1, 1)]


def case_gemm(hk, rng, exact, small=False, shapes=None, epilogues=None):
    """Every shape, transposition and epilogue as one product; then each shape and
    transposition as a batch of 3 that accumulates into C, B shared (stride 0) as a
    convolution's weights are, the other operands `pad` elements apart."""
    for M, N, K in shapes or (GEMM_SMALL if small else GEMM_SHAPES):
        for tA in (0, 1):
            for tB in (0, 1):
                rows_a, cols_a = (K, M) if tA else (M, K)
                rows_b, cols_b = (N, K) if tB else (K, N)
                lda, ldb, ldc = cols_a + 3, cols_b + 1, N + 2  # padded leading dimensions
                A = rng.standard_normal(3 * rows_a * lda + 10).astype(f32)
                B = rng.standard_normal(rows_b * ldb).astype(f32)
                bias = rng.standard_normal(N).astype(f32)
                pre = np.zeros(M * ldc, f32)  # the activations' input sets the error's scale
                twins.KERNELS["gemm"](A, B, pre, bias, M, N, K, lda, ldb, ldc, 0, tA, tB,
                                         EPILOGUES["bias"], 0.0)
                scale = max(1.0, float(np.abs(pre).max()))
                runs = [(1, 0, 0, 0, 0, ep) for ep in (epilogues or EPILOGUES.values())]
                runs.append((1, 0, 0, 0, 1, EPILOGUES["relu"]))
                runs.append((3, rows_a * lda + 5, 0, M * ldc + 7, 1, EPILOGUES["none"]))
                # a sweep's members: each its own B and bias, the biases N + 3 apart
                runs.append((3, rows_a * lda + 5, 0, M * ldc + 7, 0, EPILOGUES["relu"]))
                biases = np.concatenate([bias, np.zeros(3, f32), bias * 0.5, np.zeros(3, f32),
                                         -bias])
                for batch, sA, sB, sC, acc, ep in runs:
                    sBias = N + 3 if batch > 1 and ep != EPILOGUES["none"] else 0
                    C0 = rng.standard_normal(batch * (M * ldc + 7)).astype(f32)  # padding survives
                    shape = [i32(v) for v in (M, N, K, lda, ldb, ldc)]
                    rest = [i32(v) for v in (acc, tA, tB, ep)] + [f32(0.1)]
                    kernel, s = "gemm", shape + rest
                    if batch > 1:
                        kernel = "gemm_batched"
                        s = shape + [i32(batch)] + [np.int64(v) for v in (sA, sB, sC, sBias)] + rest
                    mine = C0.copy()
                    b = biases if sBias else bias
                    hk.launch(kernel, (-(-N // 64), -(-M // 64), batch), BLOCK,
                              [ptr(A), ptr(B), ptr(mine), ptr(b)] + s)
                    twin = C0.copy()
                    twins.KERNELS[kernel](A, B, twin, b, *[v.item() for v in s])
                    close(mine, twin, 1e-5, f"{kernel} {M}x{N}x{K} tA={tA} tB={tB} ep={ep} "
                          f"batch={batch} acc={acc}", scale=scale + (3 if acc else 0))


def case_bias_grad(hk, rng, exact, small=False):
    M, N = 37, 300
    dY = rng.standard_normal(M * N).astype(f32)
    both(hk, "bias_grad", grid1(N), BLOCK, {"dY": dY, "db": np.zeros(N, f32)},
         [i32(M), i32(N), *ONE_COPY2], ["dY", "db", 0, 1, 2, 3, 4], False, 1e-5)
    # a sweep's members: 3 sums at once, each copy of dY and db a stride apart (gaps between)
    dY3 = rng.standard_normal(3 * (M * N + 11)).astype(f32)
    db3 = rng.standard_normal(3 * (N + 5)).astype(f32)  # the gaps must survive
    both(hk, "bias_grad", (grid1(N)[0], 3, 1), BLOCK, {"dY": dY3, "db": db3},
         [i32(M), i32(N), i32(3), i64(M * N + 11), i64(N + 5)], ["dY", "db", 0, 1, 2, 3, 4],
         False, 1e-5)


def case_layernorm(hk, rng, exact, small=False):
    """A row wider than the block (300 > 256, not a multiple) and one narrower (5); rows whose
    mean is far from 0, as the GEMM before a layernorm gives."""
    for rows, cols in ((37, 300), (9, 5)):
        x = (rng.standard_normal(rows * cols) * 2 + 3).astype(f32)
        w = rng.standard_normal(cols).astype(f32)
        b = rng.standard_normal(cols).astype(f32)
        n = rows * cols
        out = both(hk, "layernorm_fwd", (rows, 1, 1), BLOCK,
                   {"x": x, "w": w, "b": b, "y": np.zeros(n, f32), "xhat": np.zeros(n, f32),
                    "rstd": np.zeros(rows, f32)}, [i32(rows), i32(cols), f32(1e-5)],
                   ["x", "w", "b", "y", "xhat", "rstd", 0, 1, 2], False, 1e-5)
        dy = rng.standard_normal(n).astype(f32)
        both(hk, "layernorm_bwd", (rows, 1, 1), BLOCK,
             {"dy": dy, "xhat": out["xhat"], "rstd": out["rstd"], "w": w, "dx": np.zeros(n, f32)},
             [i32(rows), i32(cols)], ["dy", "xhat", "rstd", "w", "dx", 0, 1], False, 1e-5)
        both(hk, "layernorm_param_grad", grid1(cols), BLOCK,
             {"dy": dy, "xhat": out["xhat"], "dw": np.zeros(cols, f32), "db": np.zeros(cols, f32)},
             [i32(rows), i32(cols)], ["dy", "xhat", "dw", "db", 0, 1], False, 1e-5)


def case_batchnorm(hk, rng, exact, small=False):
    """Channels of images (P = 35 positions) and of flat features (P = 1), in one group and in
    two (D's real and fake halves, each with its own statistics and its own update of the
    running statistics); a channel with more elements than the block (rows·P > 256); means far
    from 0."""
    for rows, C, P, groups in ((10, 3, 35, 2), (9, 5, 1, 1), (300, 2, 1, 2)):
        n = rows * C * P
        x = (rng.standard_normal(n) * 2 + 3).astype(f32)
        w, b = rng.standard_normal(C).astype(f32), rng.standard_normal(C).astype(f32)
        mean, var = rng.standard_normal(C).astype(f32), (rng.random(C) + 0.5).astype(f32)
        shape = [i32(rows), i32(C), i32(P)]
        out = both(hk, "batchnorm_fwd", (C, 1, 1), BLOCK,
                   {"x": x, "w": w, "b": b, "y": np.zeros(n, f32), "xhat": np.zeros(n, f32),
                    "rstd": np.zeros(groups * C, f32), "run_mean": mean, "run_var": var},
                   [*shape, i32(groups), f32(1e-5), f32(0.1), i32(1)],
                   ["x", "w", "b", "y", "xhat", "rstd", "run_mean", "run_var", 0, 1, 2, 3, 4, 5,
                    6], False, 1e-5)
        both(hk, "batchnorm_infer", grid1(n), BLOCK,
             {"x": x, "w": w, "b": b, "run_mean": mean, "run_var": var, "y": np.zeros(n, f32)},
             [*shape, f32(1e-3)], ["x", "w", "b", "run_mean", "run_var", "y", 0, 1, 2, 3],
             False, 1e-5)
        dy = rng.standard_normal(n).astype(f32)
        both(hk, "batchnorm_bwd", (C, 1, 1), BLOCK,
             {"dy": dy, "xhat": out["xhat"], "rstd": out["rstd"], "w": w, "dx": np.zeros(n, f32)},
             [*shape, i32(groups)], ["dy", "xhat", "rstd", "w", "dx", 0, 1, 2, 3], False, 1e-5)
        both(hk, "batchnorm_param_grad", (C, 1, 1), BLOCK,
             {"dy": dy, "xhat": out["xhat"], "dw": np.zeros(C, f32), "db": np.zeros(C, f32)},
             shape, ["dy", "xhat", "dw", "db", 0, 1, 2], False, 1e-5)


def case_maxpool(hk, rng, exact, small=False):
    """Overlapping windows (stride < kernel), padding, a non-square plane; integer inputs, so
    windows tie and the first maximum (scan order) must win on both sides."""
    for planes, H, W, k, s, p in ((6, 9, 9, 4, 2, 0), (4, 7, 7, 3, 2, 1), (3, 5, 8, 2, 1, 1)):
        OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        x = rng.integers(-3, 4, planes * H * W).astype(f32)
        n_out = planes * OH * OW
        geometry = [i32(v) for v in (planes, H, W, OH, OW, k, s, p)]
        out = both(hk, "maxpool_fwd", grid1(n_out), BLOCK,
                   {"x": x, "y": np.zeros(n_out, f32), "arg": np.zeros(n_out, np.int32)},
                   geometry, ["x", "y", "arg", *range(8)], True)
        dy = rng.standard_normal(n_out).astype(f32)
        both(hk, "maxpool_bwd", grid1(planes * H * W), BLOCK,
             {"dy": dy, "arg": out["arg"], "dx": np.zeros(planes * H * W, f32)},
             geometry, ["dy", "arg", "dx", *range(8)], False, 1e-6)


def case_conv(hk, rng, exact, small=False):
    """The convolutions' window kernels on a non-square image with padding, with windows that
    overlap (s < k) and that skip pixels (s > k), and the per-channel bias and its gradient."""
    for rows, C, H, W, k, s, p in ((3, 2, 5, 7, 3, 2, 1), (2, 3, 6, 4, 2, 3, 0),
                                   (1, 1, 4, 4, 4, 1, 2)):
        OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        geometry = [i32(v) for v in (rows, C, H, W, OH, OW, k, s, p)]
        n_img, n_cols = rows * C * H * W, rows * C * k * k * OH * OW
        x = rng.standard_normal(n_img).astype(f32)
        both(hk, "im2col", grid1(n_cols), BLOCK, {"x": x, "cols": np.full(n_cols, 7, f32)},
             geometry, ["x", "cols", *range(9)], True)
        cols = rng.standard_normal(n_cols).astype(f32)
        both(hk, "col2im", grid1(n_img), BLOCK, {"cols": cols, "x": np.full(n_img, 7, f32)},
             geometry, ["cols", "x", *range(9)], False, 1e-6)
        P = OH * OW
        bias = rng.standard_normal(C).astype(f32)
        shape = [i32(rows), i32(C), i32(P)]
        y = rng.standard_normal(rows * C * P).astype(f32)
        both(hk, "channel_bias", grid1(rows * C * P), BLOCK, {"y": y, "bias": bias}, shape,
             ["y", "bias", 0, 1, 2], True)
        both(hk, "channel_bias_grad", grid1(C), BLOCK, {"dy": y, "db": np.zeros(C, f32)}, shape,
             ["dy", "db", 0, 1, 2], False, 1e-5)


def case_act(hk, rng, exact, small=False):
    n = 1000
    x = (rng.standard_normal(n) * 3).astype(f32)
    for mode in EPILOGUES.values():
        ex = exact and mode not in (EPILOGUES["sigmoid"], EPILOGUES["tanh"])
        y = both(hk, "act_fwd", grid1(n), BLOCK, {"x": x, "y": np.zeros(n, f32)},
                 [i32(n), i32(mode), f32(0.2)], ["x", "y", 0, 1, 2], ex)["y"]
        dy = rng.standard_normal(n).astype(f32)
        both(hk, "act_bwd", grid1(n), BLOCK, {"y": y, "dy": dy, "dx": np.zeros(n, f32)},
             [i32(n), i32(mode), f32(0.2)], ["y", "dy", "dx", 0, 1, 2], exact)


def case_maxout(hk, rng, exact, small=False):
    """Dense maxout (a unit's pieces adjacent, inner = 1) and maxout_conv's (a channel's pieces
    are consecutive maps of `inner` positions)."""
    for rows, units, pieces, inner in ((37, 13, 5, 1), (3, 4, 3, 10)):
        n = rows * units * inner
        a = rng.standard_normal(n * pieces).astype(f32)
        s = [i32(rows), i32(units), i32(pieces), i32(inner)]
        out = both(hk, "maxout_fwd", grid1(n), BLOCK,
                   {"a": a, "y": np.zeros(n, f32), "arg": np.zeros(n, np.int32)},
                   s, ["a", "y", "arg", 0, 1, 2, 3], True)
        dy = rng.standard_normal(n).astype(f32)
        both(hk, "maxout_bwd", grid1(n * pieces), BLOCK,
             {"dy": dy, "arg": out["arg"], "da": np.full(n * pieces, 7, f32)},
             s, ["dy", "arg", "da", 0, 1, 2, 3], True)


def _rng_state(seed=(12345, 678, 3, 0)):
    return np.array(seed, np.uint32)


def case_dropout(hk, rng, exact, small=False):
    n = 1001
    x = rng.standard_normal(n).astype(f32)
    s = [i32(n), f32(0.8), f32(1.25), u32(7)]
    out = both(hk, "dropout_fwd", grid1(-(-n // 4)), BLOCK,
               {"x": x, "y": np.zeros(n, f32), "mask": np.zeros(n, np.uint8), "rng": _rng_state()},
               s + list(ONE_COPY4), ["x", "y", "mask", 0, 1, 2, "rng", 3, 4, 5, 6, 7, 8], True)
    assert 0.7 < out["mask"].mean() < 0.9
    # 3 copies at once, each its own RNG state (members' masks differ), strides with gaps
    pad = n + 9
    rngs = np.concatenate([_rng_state((12345 + b, 678, 3, b)) for b in range(3)])
    many = both(hk, "dropout_fwd", (grid1(-(-n // 4))[0], 3, 1), BLOCK,
                {"x": rng.standard_normal(3 * pad).astype(f32), "y": np.ones(3 * pad, f32),
                 "mask": np.full(3 * pad, 7, np.uint8), "rng": rngs},
                s + [i32(3), i64(pad), i64(pad), i64(pad), i64(4)],
                ["x", "y", "mask", 0, 1, 2, "rng", 3, 4, 5, 6, 7, 8], True)
    masks = many["mask"].reshape(3, pad)
    assert (masks[:, n:] == 7).all() and not np.array_equal(masks[0, :n], masks[1, :n])
    dy = rng.standard_normal(n).astype(f32)
    both(hk, "dropout_bwd", grid1(n), BLOCK, {"dy": dy, "mask": out["mask"], "dx": np.zeros(n, f32)},
         [i32(n), f32(1.25)], ["dy", "mask", "dx", 0, 1], True)


def case_noise(hk, rng, exact, small=False):
    n = 1003
    for gaussian, a, b in ((0, -1.0, 1.0), (1, 0.5, 2.0)):
        s = [i32(n), i32(gaussian), f32(a), f32(b), u32(3)]
        z = both(hk, "noise", grid1(-(-n // 4)), BLOCK, {"z": np.zeros(n, f32), "rng": _rng_state()},
                 s + list(ONE_COPY2), ["z", 0, 1, 2, 3, "rng", 4, 5, 6, 7],
                 exact and not gaussian, 2e-6)["z"]
        assert np.isfinite(z).all() and abs(z.mean() - (0.5 if gaussian else 0.0)) < 0.3
        rngs = np.concatenate([_rng_state((12345, 678 + b, 3, 0)) for b in range(3)])
        z3 = both(hk, "noise", (grid1(-(-n // 4))[0], 3, 1), BLOCK,
                  {"z": np.full(3 * (n + 2), 9, f32), "rng": rngs},
                  s + [i32(3), i64(n + 2), i64(4)], ["z", 0, 1, 2, 3, "rng", 4, 5, 6, 7],
                  exact and not gaussian, 2e-6)["z"].reshape(3, n + 2)
        assert (z3[:, n:] == 9).all() and not np.array_equal(z3[0, :n], z3[1, :n])


def case_gathers(hk, rng, exact, small=False):
    n, cols, rows, classes = 50, 7, 13, 10
    data = rng.standard_normal(n * cols).astype(f32)
    labels = rng.integers(0, classes, n).astype(np.int64)
    order = rng.permutation(n).astype(np.int64)
    order[3] = n + 5  # a broken contract: NaN rows, no read out of bounds
    for p in (0, 40, -2):  # rows past the end / before the start: NaN
        pos = np.array([p], np.int32)
        both(hk, "gather_rows", grid1(rows * cols), BLOCK,
             {"data": data, "order": order, "pos": pos, "out": np.zeros(rows * cols, f32)},
             [i32(rows), i32(cols), i32(n)], ["data", "order", "pos", "out", 0, 1, 2], True)
        both(hk, "gather_onehot", grid1(rows * classes), BLOCK,
             {"labels": labels, "order": order, "pos": pos, "out": np.zeros(rows * classes, f32)},
             [i32(rows), i32(classes), i32(n)], ["labels", "order", "pos", "out", 0, 1, 2], True)
    both(hk, "draw_onehot", grid1(rows), BLOCK,
         {"labels": labels, "out": np.zeros(rows * classes, f32), "rng": _rng_state()},
         [i32(n), i32(rows), i32(classes), u32(5)], ["labels", 0, "out", 1, 2, "rng", 3], True)


def case_copy2d(hk, rng, exact, small=False):
    rows, cols, ld_src, ld_dst = 19, 33, 40, 50
    src = rng.standard_normal((rows - 1) * ld_src + cols).astype(f32)  # exactly what is read
    dst = rng.standard_normal((rows - 1) * ld_dst + cols).astype(f32)
    for acc in (0, 1):
        both(hk, "copy2d", grid1(rows * cols), BLOCK, {"src": src, "dst": dst},
             [i32(rows), i32(cols), i32(ld_src), i32(ld_dst), i32(acc)],
             ["src", "dst", 0, 1, 2, 3, 4], True)


def case_count_nonfinite(hk, rng, exact, small=False):
    n = 1500
    x = rng.standard_normal(n).astype(f32)
    x[rng.choice(n, 40, replace=False)] = np.nan
    x[rng.choice(n, 30, replace=False)] = np.inf
    x[5] = -np.inf
    out = both(hk, "count_nonfinite", grid1(n), BLOCK, {"x": x, "count": np.array([2.0], f32)},
               [i32(n)], ["x", 0, "count"], True)
    assert out["count"][0] == 2 + int((~np.isfinite(x)).sum())


def case_bce(hk, rng, exact, small=False):
    m = 600
    lr = (rng.standard_normal(m) * 4).astype(f32)
    lf = (rng.standard_normal(m) * 4).astype(f32)
    metrics = rng.standard_normal(len(METRICS)).astype(f32)
    d_args = ["l_real", "l_fake", "g_real", "g_fake", 0, "metrics", 1, 2, 3, 4, 5, 6]
    both(hk, "bce_d", grid1(m), BLOCK,
         {"l_real": lr, "l_fake": lf, "g_real": np.zeros(m, f32), "g_fake": np.zeros(m, f32),
          "metrics": metrics}, [i32(m), *ONE_COPY4, i64(0)], d_args, False, 1e-5)
    for ns in (0, 1):
        both(hk, "bce_g", grid1(m), BLOCK, {"l_fake": lf, "g_fake": np.zeros(m, f32), "metrics": metrics},
             [i32(m), i32(ns), *ONE_COPY2, i64(0)], ["l_fake", "g_fake", 0, 1, "metrics", 2, 3, 4, 5],
             False, 1e-5)
    # a sweep's members: 3 minibatches at once, each its own metrics, copies a stride apart
    w, k = m + 3, len(METRICS) + 2
    three = {"l_real": (rng.standard_normal(3 * w) * 4).astype(f32),
             "l_fake": (rng.standard_normal(3 * w) * 4).astype(f32),
             "g_real": np.full(3 * w, 5, f32), "g_fake": np.full(3 * w, 5, f32),
             "metrics": rng.standard_normal(3 * k).astype(f32)}
    out = both(hk, "bce_d", (grid1(m)[0], 3, 1), BLOCK, three,
               [i32(m), i32(3), *(i64(w),) * 4, i64(k)], d_args, False, 1e-5)
    assert (out["g_real"].reshape(3, w)[:, m:] == 5).all()
    both(hk, "bce_g", (grid1(m)[0], 3, 1), BLOCK,
         {"l_fake": three["l_fake"], "g_fake": three["g_fake"], "metrics": three["metrics"]},
         [i32(m), i32(1), i32(3), i64(w), i64(w), i64(k)],
         ["l_fake", "g_fake", 0, 1, "metrics", 2, 3, 4, 5], False, 1e-5)


def case_score_losses(hk, rng, exact, small=False):
    """least_squares, hinge, wasserstein; some scores exactly at hinge's kinks (±1)."""
    m = 600
    lr = (rng.standard_normal(m) * 2).astype(f32)
    lf = (rng.standard_normal(m) * 2).astype(f32)
    lr[:5], lf[:5] = 1.0, -1.0
    metrics = rng.standard_normal(len(METRICS)).astype(f32)
    for kind in SCORE_LOSSES.values():
        both(hk, "score_d", grid1(m), BLOCK,
             {"l_real": lr, "l_fake": lf, "g_real": np.zeros(m, f32), "g_fake": np.zeros(m, f32),
              "metrics": metrics}, [i32(m), i32(kind)],
             ["l_real", "l_fake", "g_real", "g_fake", 0, 1, "metrics"], False, 1e-5)
        both(hk, "score_g", grid1(m), BLOCK, {"l_fake": lf, "g_fake": np.zeros(m, f32),
                                              "metrics": metrics},
             [i32(m), i32(kind)], ["l_fake", "g_fake", 0, 1, "metrics"], False, 1e-5)


def case_spectral(hk, rng, exact, small=False):
    """A weight around each kind of axis (dense's (in, out), conv's first, deconv's middle),
    one with more columns than the block has threads: both products, the normalisation, σ,
    W / σ, and ⟨G, W⟩'s block sums (n beyond one round of 3 blocks) and the gradient."""
    for outer, rows, inner in ((300, 7, 1), (1, 5, 27), (3, 4, 9), (1, 1, 1)):
        n, cols = outer * rows * inner, outer * inner
        w = rng.standard_normal(n).astype(f32)
        u = rng.standard_normal(rows).astype(f32)
        v = rng.standard_normal(cols).astype(f32)
        for trans, x, m in ((1, u, cols), (0, v, rows)):
            both(hk, "sn_mv", (m, 1, 1), BLOCK, {"w": w, "x": x, "y": np.zeros(m, f32)},
                 [i32(outer), i32(rows), i32(inner), i32(trans)],
                 ["w", "x", "y", 0, 1, 2, 3], False, 1e-5)
        both(hk, "sn_normalize", (1, 1, 1), BLOCK, {"raw": v, "out": np.zeros(cols, f32)},
             [i32(cols)], ["raw", "out", 0], False, 1e-6)
        sigma = both(hk, "sn_sigma", (1, 1, 1), BLOCK, {"u": u, "mv": u[::-1].copy(),
                                                        "sigma": np.zeros(1, f32)},
                     [i32(rows)], ["u", "mv", "sigma", 0], False, 1e-6)["sigma"]
        both(hk, "sn_scale", grid1(n), BLOCK, {"w": w, "sigma": sigma, "wn": np.zeros(n, f32)},
             [i32(n)], ["w", "sigma", "wn", 0], exact)
        g = rng.standard_normal(n).astype(f32)
        parts = both(hk, "sn_dot_parts", (3, 1, 1), BLOCK,
                     {"g": g, "w": w, "parts": np.zeros(6, f32)}, [i32(n), i32(3)],
                     ["g", "w", "parts", 0, 1], False, 1e-6)["parts"]
        both(hk, "sn_grad", grid1(n), BLOCK,
             {"g": g, "u": u, "v": v, "sigma": np.abs(sigma) + 1, "parts": parts},
             [i32(3), i32(outer), i32(rows), i32(inner)],
             ["g", "u", "v", "sigma", "parts", 0, 1, 2, 3], False, 1e-5)


def case_optim(hk, rng, exact, small=False):
    n = 1234
    p, v, g = (rng.standard_normal(n).astype(f32) for _ in range(3))
    hp = np.array([0.1, 0.9, 1e-8], f32)
    both(hk, "sgd_momentum", grid1(n), BLOCK, {"p": p, "v": v, "g": g, "hp": hp},
         [i32(n), *ONE_COPY4], ["p", "v", "g", 0, "hp", 1, 2, 3, 4, 5], exact)
    m, v2 = rng.standard_normal(n).astype(f32), np.abs(rng.standard_normal(n)).astype(f32)
    both(hk, "adam", grid1(n), BLOCK, {"p": p, "m": m, "v": v2, "g": g, "hp": hp},
         [i32(n), f32(0.5), f32(0.999), *ONE_COPY4, i64(0)],
         ["p", "m", "v", "g", 0, 1, 2, "hp", 3, 4, 5, 6, 7, 8], False, 1e-6)
    # a sweep's members: 3 networks at once, each its own hp slot (k = 2 slots apart)
    w = n + 7
    p3, v3, g3, m3 = (rng.standard_normal(3 * w).astype(f32) for _ in range(4))
    hp3 = np.array([0.1, 0.9, 1e-8, 0, 9, 9, 9, 9, 0.05, 0.5, 1e-7, 0, 9, 9, 9, 9,
                    0.2, 0.0, 1e-6, 0, 9, 9, 9, 9], f32)
    out = both(hk, "sgd_momentum", (grid1(n)[0], 3, 1), BLOCK,
               {"p": p3, "v": v3, "g": g3, "hp": hp3}, [i32(n), i32(3), *(i64(w),) * 3, i64(8)],
               ["p", "v", "g", 0, "hp", 1, 2, 3, 4, 5], exact)
    assert np.array_equal(out["p"].reshape(3, w)[:, n:], p3.reshape(3, w)[:, n:])
    both(hk, "adam", (grid1(n)[0], 3, 1), BLOCK,
         {"p": p3, "m": m3, "v": np.abs(v3), "g": g3, "hp": hp3},
         [i32(n), f32(0.5), f32(0.999), i32(3), *(i64(w),) * 4, i64(8)],
         ["p", "m", "v", "g", 0, 1, 2, "hp", 3, 4, 5, 6, 7, 8], False, 1e-6)
    ema = rng.standard_normal(n).astype(f32)
    for decay in (0.0, 0.999):
        both(hk, "ema_update", grid1(n), BLOCK, {"ema": ema, "p": p,
                                                 "decay": np.array([decay], f32)},
             [i32(n)], ["ema", "p", 0, "decay"], decay == 0.0 or exact, 1e-6)


def case_small_utils(hk, rng, exact, small=False):
    for seed in ((1, 2, 5, 9), (1, 2, 0xFFFFFFFF, 9), (1, 2, 0xFFFFFFFF, 0xFFFFFFFF)):
        both(hk, "advance_rng", (3, 1, 1), (64, 1, 1), {"rng": _rng_state(seed)}, [i32(1)],
             ["rng", 0], True)
    # a sweep's members: 70 states, one thread each over two blocks, each carry on its own
    states = np.concatenate([_rng_state((1, 2, 0xFFFFFFFF if i % 3 else i, i % 2 * 0xFFFFFFFF))
                             for i in range(70)])
    both(hk, "advance_rng", (2, 1, 1), (64, 1, 1), {"rng": states}, [i32(70)], ["rng", 0], True)
    n = 777
    both(hk, "fill", grid1(n), BLOCK, {"x": rng.standard_normal(n).astype(f32)}, [i32(n), f32(-2.5)],
         ["x", 0, 1], True)


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}
# What the reversed/shuffled order runs: a barrier kernel, atomics, and gathers.
ORDER_SUBSET = ("gemm", "bce", "count_nonfinite", "maxout", "gathers", "spectral")


def run_suite(hk, exact=False, small=False, names=None, seed=0):
    for name in names or CASES:
        kwargs = {"small": small}
        CASES[name](hk, np.random.default_rng(seed), exact, **kwargs)


if __name__ == "__main__":  # python -m tests.backend.host_cases VARIANT [CACHE_DIR]
    from advgraph_cupy.host import HostKernels

    variant = sys.argv[1]
    cache = sys.argv[2] if len(sys.argv) > 2 else None
    # One order: ASan checks each access against shadow memory and TSan each pair of accesses
    # against happens-before (barriers, atomics), whichever fiber runs first, so a second order
    # repeated the same checks (the injected faults of test_host_sanitizers.py are caught in
    # this natural order); that results do not depend on the order is
    # test_kernels_do_not_depend_on_block_or_thread_order's.
    hk = HostKernels(variant, order="natural", seed=1, cache_dir=cache)
    run_suite(hk, exact=variant in ("exact", "asan", "tsan"), small=True)
    print(f"host kernel suite passed under {variant}")
