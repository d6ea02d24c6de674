"""The kernels' semantics in NumPy: the CuPy backend's oracle.

Every kernel in kernels/*.cu has a NumPy twin here with the same arguments (views for pointers),
so a launch plan runs on the CPU through runtime.TwinExecutor. That checks the lowering (buffer
wiring, transposes, leading dimensions, offsets) against the torch backend on any machine, and
each kernel, on the host executor or a GPU, against its twin.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .codes import EPILOGUES as EP

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c: np.ndarray, k0: int, k1: int) -> np.ndarray:
    """Philox4x32-10 on an (N, 4) uint32 array of counters."""
    c = c.astype(np.uint64)
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for _ in range(10):
        p0 = np.uint64(M0) * c[:, 0]
        p1 = np.uint64(M1) * c[:, 2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK32
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK32
        c = np.stack([hi1 ^ c[:, 1] ^ k0, lo1, hi0 ^ c[:, 3] ^ k1, lo0], axis=1)
        k0 = (k0 + np.uint64(W0)) & MASK32
        k1 = (k1 + np.uint64(W1)) & MASK32
    return c.astype(np.uint32)


def draw4(rng: np.ndarray, stream: int, count: int) -> np.ndarray:
    """The four uint32 of threads 0..count-1 (the device's draw4), flattened in thread order."""
    i = np.arange(count, dtype=np.uint64)
    c = np.stack([i, np.full_like(i, stream), np.full_like(i, rng[2]), np.full_like(i, rng[3])], 1)
    return philox4x32_10(c, int(rng[0]), int(rng[1])).reshape(-1)


def u01(v: np.ndarray) -> np.ndarray:
    return (((v >> np.uint32(8)).astype(np.float32) + 1.0) * np.float32(1.0 / 16777216.0))


def _act(x: np.ndarray, mode: int, slope: float) -> np.ndarray:
    if mode == EP["relu"]:
        return np.maximum(x, 0)
    if mode == EP["sigmoid"]:
        return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    if mode == EP["tanh"]:
        return np.tanh(x)
    if mode == EP["leaky_relu"]:
        return np.where(x > 0, x, slope * x).astype(np.float32)
    return x


def _act_grad(y: np.ndarray, dy: np.ndarray, mode: int, slope: float) -> np.ndarray:
    if mode == EP["relu"]:
        return np.where(y > 0, dy, 0).astype(np.float32)
    if mode == EP["sigmoid"]:
        return dy * y * (1 - y)
    if mode == EP["tanh"]:
        return dy * (1 - y * y)
    if mode == EP["leaky_relu"]:
        return np.where(y > 0, dy, slope * dy).astype(np.float32)
    return dy


def _softplus(x):
    return np.logaddexp(0, x.astype(np.float64))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def k_gemm_batched(A, B, C, bias, M, N, K, lda, ldb, ldc, batch, sA, sB, sC, acc, transA,
                   transB, ep, slope):
    for i in range(batch):
        a0, b0, c0 = A[i * sA:], B[i * sB:], C[i * sC:]
        a = a0[: K * lda].reshape(K, lda)[:, :M].T if transA else a0[: M * lda].reshape(M, lda)[:, :K]
        b = b0[: N * ldb].reshape(N, ldb)[:, :K].T if transB else b0[: K * ldb].reshape(K, ldb)[:, :N]
        v = a.astype(np.float64) @ b.astype(np.float64)
        if ep != EP["none"]:
            v = v + bias[:N]
        v = _act(v.astype(np.float32), ep, slope)
        out = c0[: M * ldc].reshape(M, ldc)[:, :N]
        out[...] = out + v if acc else v


def k_gemm(A, B, C, bias, M, N, K, lda, ldb, ldc, acc, transA, transB, ep, slope):
    k_gemm_batched(A, B, C, bias, M, N, K, lda, ldb, ldc, 1, 0, 0, 0, acc, transA, transB, ep,
                   slope)


def k_bias_grad(dY, db, M, N):
    db[:N] = dY[: M * N].reshape(M, N).astype(np.float64).sum(0)


def k_layernorm_fwd(x, w, b, y, xhat, rstd, rows, cols, eps):
    v = x[: rows * cols].reshape(rows, cols).astype(np.float64)
    mean = v.mean(1, keepdims=True)
    inv = 1.0 / np.sqrt(((v - mean) ** 2).mean(1, keepdims=True) + np.float32(eps))
    h = (v - mean) * inv
    xhat[: rows * cols] = h.ravel()
    y[: rows * cols] = (h * w[:cols] + b[:cols]).ravel()
    rstd[:rows] = inv.ravel()


def k_layernorm_bwd(dy, xhat, rstd, w, dx, rows, cols):
    g = dy[: rows * cols].reshape(rows, cols).astype(np.float64) * w[:cols]
    h = xhat[: rows * cols].reshape(rows, cols).astype(np.float64)
    d = rstd[:rows, None] * (g - g.mean(1, keepdims=True) - h * (g * h).mean(1, keepdims=True))
    dx[: rows * cols] = d.ravel()


def k_layernorm_param_grad(dy, xhat, dw, db, rows, cols):
    g = dy[: rows * cols].reshape(rows, cols).astype(np.float64)
    dw[:cols] = (g * xhat[: rows * cols].reshape(rows, cols)).sum(0)
    db[:cols] = g.sum(0)


def _bn_groups(a, rows, C, P, groups):
    """x (rows, C, P) as (groups, rows/groups, C, P), in float64."""
    return a[: rows * C * P].reshape(groups, rows // groups, C, P).astype(np.float64)


def k_batchnorm_fwd(x, w, b, y, xhat, rstd, run_mean, run_var, rows, C, P, groups, eps,
                    momentum, update):
    v = _bn_groups(x, rows, C, P, groups)
    mean = v.mean((1, 3), keepdims=True)  # (groups, 1, C, 1)
    var = ((v - mean) ** 2).mean((1, 3), keepdims=True)
    inv = 1.0 / np.sqrt(var + np.float32(eps))
    h = (v - mean) * inv
    xhat[: rows * C * P] = h.ravel()
    y[: rows * C * P] = (h * w[:C].reshape(1, 1, C, 1) + b[:C].reshape(1, 1, C, 1)).ravel()
    rstd[: groups * C] = inv.ravel()
    if update:
        n = rows // groups * P
        for g in range(groups):  # in order: the real half's statistics, then the fake half's
            unbiased = var[g].ravel() * (n / (n - 1) if n > 1 else 1.0)
            run_mean[:C] = (1 - momentum) * run_mean[:C] + momentum * mean[g].ravel()
            run_var[:C] = (1 - momentum) * run_var[:C] + momentum * unbiased


def k_batchnorm_infer(x, w, b, run_mean, run_var, y, rows, C, P, eps):
    v = x[: rows * C * P].reshape(rows, C, P).astype(np.float64)
    inv = 1.0 / np.sqrt(run_var[:C].astype(np.float64) + np.float32(eps))
    h = (v - run_mean[:C].reshape(1, C, 1)) * inv.reshape(1, C, 1)
    y[: rows * C * P] = (h * w[:C].reshape(1, C, 1) + b[:C].reshape(1, C, 1)).ravel()


def k_batchnorm_bwd(dy, xhat, rstd, w, dx, rows, C, P, groups):
    g = _bn_groups(dy, rows, C, P, groups)
    h = _bn_groups(xhat, rows, C, P, groups)
    k = w[:C].reshape(1, 1, C, 1) * rstd[: groups * C].reshape(groups, 1, C, 1)
    d = k * (g - g.mean((1, 3), keepdims=True) - h * (g * h).mean((1, 3), keepdims=True))
    dx[: rows * C * P] = d.ravel()


def k_batchnorm_param_grad(dy, xhat, dw, db, rows, C, P):
    g = dy[: rows * C * P].reshape(rows, C, P).astype(np.float64)
    dw[:C] = (g * xhat[: rows * C * P].reshape(rows, C, P)).sum((0, 2))
    db[:C] = g.sum((0, 2))


def _pool_windows(planes, H, W, OH, OW, k, s, p):
    """For every output, the flat input index (h·W + w) of each window position in scan
    order, or -1 where the position is padding: (planes·OH·OW, k·k) per plane-relative index."""
    oh, ow = np.meshgrid(np.arange(OH), np.arange(OW), indexing="ij")
    kh, kw = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    h = (oh.reshape(-1, 1) * s - p + kh.reshape(1, -1))
    w = (ow.reshape(-1, 1) * s - p + kw.reshape(1, -1))
    return np.where((h >= 0) & (h < H) & (w >= 0) & (w < W), h * W + w, -1)


def k_maxpool_fwd(x, y, arg, planes, H, W, OH, OW, k, s, p):
    idx = _pool_windows(planes, H, W, OH, OW, k, s, p)  # (OH·OW, k·k)
    xs = x[: planes * H * W].reshape(planes, H * W)
    vals = np.where(idx >= 0, xs[:, np.maximum(idx, 0)], -np.inf)  # (planes, OH·OW, k·k)
    first = vals.argmax(2)  # the first maximum in scan order
    y[: planes * OH * OW] = np.take_along_axis(vals, first[..., None], 2).ravel()
    arg[: planes * OH * OW] = idx[np.arange(OH * OW)[None, :], first].ravel()


def k_maxpool_bwd(dy, arg, dx, planes, H, W, OH, OW, k, s, p):
    out = np.zeros((planes, H * W))
    a = arg[: planes * OH * OW].reshape(planes, OH * OW)
    np.add.at(out, (np.arange(planes)[:, None], a), dy[: planes * OH * OW].reshape(planes, -1))
    dx[: planes * H * W] = out.ravel()


def _window_index(C, H, W, OH, OW, k, s, p):
    """For cols[(c, kh, kw), (oh, ow)] of one example, the flat image index c·H·W + h·W + w it
    reads, or -1 in the padding: an array of shape (C·k·k, OH·OW)."""
    c, kh, kw, oh, ow = np.meshgrid(np.arange(C), np.arange(k), np.arange(k), np.arange(OH),
                                    np.arange(OW), indexing="ij")
    h, w = oh * s - p + kh, ow * s - p + kw
    idx = np.where((h >= 0) & (h < H) & (w >= 0) & (w < W), (c * H + h) * W + w, -1)
    return idx.reshape(C * k * k, OH * OW)


def k_im2col(x, cols, rows, C, H, W, OH, OW, k, s, p):
    idx = _window_index(C, H, W, OH, OW, k, s, p)
    xs = x[: rows * C * H * W].reshape(rows, C * H * W)
    cols[: rows * idx.size] = np.where(idx >= 0, xs[:, np.maximum(idx, 0)], 0).ravel()


def k_col2im(cols, x, rows, C, H, W, OH, OW, k, s, p):
    idx = _window_index(C, H, W, OH, OW, k, s, p).ravel()
    keep = idx >= 0
    out = np.zeros((rows, C * H * W))
    cs = cols[: rows * idx.size].reshape(rows, idx.size).astype(np.float64)
    for b in range(rows):
        np.add.at(out[b], idx[keep], cs[b, keep])
    x[: rows * C * H * W] = out.ravel()


def k_channel_bias(y, bias, rows, C, P):
    v = y[: rows * C * P].reshape(rows, C, P)
    v += bias[:C].reshape(1, C, 1)


def k_channel_bias_grad(dy, db, rows, C, P):
    db[:C] = dy[: rows * C * P].reshape(rows, C, P).astype(np.float64).sum((0, 2))


def k_act_fwd(x, y, n, mode, slope):
    y[:n] = _act(x[:n], mode, slope)


def k_act_bwd(y, dy, dx, n, mode, slope):
    dx[:n] = _act_grad(y[:n], dy[:n], mode, slope)


def k_maxout_fwd(a, y, arg, rows, units, pieces, inner):
    v = a[: rows * units * pieces * inner].reshape(rows * units, pieces, inner)
    arg[: rows * units * inner] = v.argmax(1).ravel()
    y[: rows * units * inner] = v.max(1).ravel()


def k_maxout_bwd(dy, arg, da, rows, units, pieces, inner):
    out = np.zeros((rows * units, pieces, inner), np.float32)
    win = arg[: rows * units * inner].reshape(rows * units, 1, inner)
    g = dy[: rows * units * inner].reshape(rows * units, 1, inner)
    np.put_along_axis(out, win, g, 1)
    da[: rows * units * pieces * inner] = out.reshape(-1)


def k_dropout_fwd(x, y, mask, n, keep, scale, rng, stream):
    u = u01(draw4(rng, int(stream), -(-n // 4)))[:n]
    m = (u <= keep).astype(np.uint8)
    mask[:n] = m
    y[:n] = np.where(m, x[:n] * scale, 0).astype(np.float32)


def k_dropout_bwd(dy, mask, dx, n, scale):
    dx[:n] = np.where(mask[:n] != 0, dy[:n] * scale, 0).astype(np.float32)


def _minibatch(order, pos, rows, n):
    """order[pos[0] + r] for r < rows, or -1 where the position or the index is out of range."""
    p = int(pos[0]) + np.arange(rows)
    ok = (p >= 0) & (p < n)
    src = np.full(rows, -1, np.int64)
    src[ok] = order[p[ok]]
    src[(src < 0) | (src >= n)] = -1
    return src


def k_gather_rows(data, order, pos, out, rows, cols, n):
    src = _minibatch(order, pos, rows, n)
    v = np.full((rows, cols), np.nan, np.float32)
    v[src >= 0] = data[: n * cols].reshape(n, cols)[src[src >= 0]]
    out[: rows * cols] = v.reshape(-1)


def _one_hot(y, classes):
    return (np.asarray(y)[:, None] == np.arange(classes)[None, :]).astype(np.float32)


def k_gather_onehot(labels, order, pos, out, rows, classes, n):
    src = _minibatch(order, pos, rows, n)
    v = np.full((rows, classes), np.nan, np.float32)
    v[src >= 0] = _one_hot(labels[src[src >= 0]], classes)
    out[: rows * classes] = v.reshape(-1)


def k_draw_onehot(labels, n, out, rows, classes, rng, stream):
    d = draw4(rng, int(stream), rows).reshape(-1, 4)[:, 0].astype(np.uint64)
    j = (d * np.uint64(n)) >> np.uint64(32)
    out[: rows * classes] = _one_hot(labels[j.astype(np.int64)], classes).reshape(-1)


def k_copy2d(src, dst, rows, cols, ld_src, ld_dst, accumulate):
    if rows == 0 or cols == 0:
        return
    s = np.lib.stride_tricks.as_strided(src, (rows, cols), (ld_src * 4, 4))
    d = np.lib.stride_tricks.as_strided(dst, (rows, cols), (ld_dst * 4, 4))
    if accumulate:
        d += s
    else:
        d[...] = s


def k_count_nonfinite(x, n, count):
    count[0] += np.float32((~np.isfinite(x[:n])).sum())


def k_advance_rng(rng):
    off = (int(rng[3]) << 32 | int(rng[2])) + 1
    rng[2], rng[3] = off & 0xFFFFFFFF, (off >> 32) & 0xFFFFFFFF


def k_fill(x, n, v):
    x[:n] = v


def k_noise(z, n, gaussian, a, b, rng, stream):
    r = draw4(rng, int(stream), -(-n // 4)).reshape(-1, 4)
    if gaussian:
        r1 = np.sqrt(np.maximum(-2 * np.log(u01(r[:, 0])), 0))
        t1 = np.float32(np.pi) * (2 * u01(r[:, 1]) - 1)
        r2 = np.sqrt(np.maximum(-2 * np.log(u01(r[:, 2])), 0))
        t2 = np.float32(np.pi) * (2 * u01(r[:, 3]) - 1)
        v = np.stack([r1 * np.cos(t1), r1 * np.sin(t1), r2 * np.cos(t2), r2 * np.sin(t2)], 1)
        v = a + b * v
    else:
        v = a + (b - a) * u01(r)
    z[:n] = v.reshape(-1)[:n].astype(np.float32)


def k_bce_d(l_real, l_fake, g_real, g_fake, m, metrics):
    lr, lf = l_real[:m], l_fake[:m]
    g_real[:m] = (_sigmoid(lr) - 1) / m
    g_fake[:m] = _sigmoid(lf) / m
    metrics[0] += (_softplus(-lr) + _softplus(lf)).mean()
    metrics[1] += _sigmoid(lr).mean()
    metrics[2] += _sigmoid(lf).mean()


def k_bce_g(l_fake, g_fake, m, ns, metrics):
    lf = l_fake[:m]
    s = _sigmoid(lf)
    g_fake[:m] = ((s - 1) if ns else -s) / m
    metrics[3] += (_softplus(-lf) if ns else -_softplus(lf)).mean()


def k_sgd_momentum(p, v, g, n, hp):
    v[:n] = hp[1] * v[:n] - hp[0] * g[:n]
    p[:n] += v[:n]


def k_adam(p, m, v, g, n, beta1, beta2, hp):
    m[:n] = beta1 * m[:n] + (1 - beta1) * g[:n]
    v[:n] = beta2 * v[:n] + (1 - beta2) * g[:n] * g[:n]
    p[:n] -= hp[1] * m[:n] / (np.sqrt(v[:n]) + hp[2])


KERNELS: dict[str, Callable[..., None]] = {
    name[2:]: fn for name, fn in globals().items() if name.startswith("k_") and callable(fn)}
