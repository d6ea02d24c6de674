// Layer normalisation over each example's features: one block of NT threads per row, the row's
// sums reduced in shared memory in a fixed tree (deterministic: no atomics).
//   y = x̂·w + b,  x̂ = (x − μ)·r,  r = 1/√(σ² + eps),  μ and σ² (biased) over the row.
// The forward keeps x̂ and r for the backward:
//   dx = r·(g − mean(g) − x̂·mean(g·x̂)),  g = dy·w;   dw = Σ_rows dy·x̂,  db = Σ_rows dy.
#include "common.cuh"

#define NT 256

// Σ v over the block's NT threads; every thread gets the sum. `red` holds NT floats.
__device__ __forceinline__ float block_sum(float v, float* red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    float total = red[0];
    __syncthreads();  // red is written again by the next sum
    return total;
}

extern "C" __global__ void __launch_bounds__(NT)
layernorm_fwd(const float* __restrict__ x, const float* __restrict__ w,
              const float* __restrict__ b, float* __restrict__ y, float* __restrict__ xhat,
              float* __restrict__ rstd, int rows, int cols, float eps) {
    __shared__ float red[NT];
    const int r = blockIdx.x;
    if (r >= rows) return;  // the whole block leaves together: no barrier is split
    const float* xr = x + (size_t)r * cols;
    float s = 0.f;
    for (int j = threadIdx.x; j < cols; j += NT) s += xr[j];
    const float mean = block_sum(s, red) / cols;
    float q = 0.f;
    for (int j = threadIdx.x; j < cols; j += NT) {
        float d = xr[j] - mean;
        q = fmaf(d, d, q);
    }
    const float inv = 1.f / sqrtf(block_sum(q, red) / cols + eps);
    for (int j = threadIdx.x; j < cols; j += NT) {
        float h = (xr[j] - mean) * inv;
        xhat[(size_t)r * cols + j] = h;
        y[(size_t)r * cols + j] = fmaf(h, w[j], b[j]);
    }
    if (threadIdx.x == 0) rstd[r] = inv;
}

extern "C" __global__ void __launch_bounds__(NT)
layernorm_bwd(const float* __restrict__ dy, const float* __restrict__ xhat,
              const float* __restrict__ rstd, const float* __restrict__ w,
              float* __restrict__ dx, int rows, int cols) {
    __shared__ float red[NT];
    const int r = blockIdx.x;
    if (r >= rows) return;
    const size_t o = (size_t)r * cols;
    float s1 = 0.f, s2 = 0.f;
    for (int j = threadIdx.x; j < cols; j += NT) {
        float g = dy[o + j] * w[j];
        s1 += g;
        s2 = fmaf(g, xhat[o + j], s2);
    }
    const float m1 = block_sum(s1, red) / cols;
    const float m2 = block_sum(s2, red) / cols;
    const float inv = rstd[r];
    for (int j = threadIdx.x; j < cols; j += NT)
        dx[o + j] = inv * (dy[o + j] * w[j] - m1 - xhat[o + j] * m2);
}

// dw[j] = Σ_r dy[r, j]·x̂[r, j], db[j] = Σ_r dy[r, j]: a thread per feature, compensated sums
// (as bias_grad's: the real and fake halves' terms have opposite signs).
extern "C" __global__ void layernorm_param_grad(const float* __restrict__ dy,
                                                const float* __restrict__ xhat,
                                                float* __restrict__ dw, float* __restrict__ db,
                                                int rows, int cols) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float sw = 0.f, cw = 0.f, sb = 0.f, cb = 0.f;
    for (int r = 0; r < rows; ++r) {
        float g = dy[(size_t)r * cols + j];
        float yw = g * xhat[(size_t)r * cols + j] - cw;
        float tw = sw + yw;
        cw = (tw - sw) - yw;
        sw = tw;
        float yb = g - cb;
        float tb = sb + yb;
        cb = (tb - sb) - yb;
        sb = tb;
    }
    dw[j] = sw;
    db[j] = sb;
}

// ---- batch normalisation -------------------------------------------------------------------
// Over the feature axis: channel c's statistics are over every row and every position of the
// channel (P = H·W for images, 1 for flat features); x is (rows, C, P). One block per channel,
// the sums in block_sum's fixed tree (deterministic). The rows are `groups` independent batches
// of rows/groups each with its own statistics (D's real and fake halves: the same values as two
// passes), and the running statistics are updated once per group, in order, when `update`:
//   running_mean ← (1 − momentum)·running_mean + momentum·μ,
//   running_var  ← (1 − momentum)·running_var + momentum·σ²·n/(n − 1)   (unbiased, as torch).
// rstd holds 1/√(σ² + eps) of each (group, channel), at g·C + c.

// Offset of the i-th of channel c's n = (rows/groups)·P elements in group g.
__device__ __forceinline__ size_t bn_at(int g, int i, int per, int c, int C, int P) {
    const int r = g * per + i / P;
    return ((size_t)r * C + c) * P + i % P;
}

extern "C" __global__ void __launch_bounds__(NT)
batchnorm_fwd(const float* __restrict__ x, const float* __restrict__ w,
              const float* __restrict__ b, float* __restrict__ y, float* __restrict__ xhat,
              float* __restrict__ rstd, float* __restrict__ run_mean,
              float* __restrict__ run_var, int rows, int C, int P, int groups, float eps,
              float momentum, int update) {
    __shared__ float red[NT];
    const int c = blockIdx.x;
    if (c >= C) return;  // the whole block leaves together
    const int per = rows / groups, n = per * P;
    for (int g = 0; g < groups; ++g) {
        float s = 0.f;
        for (int i = threadIdx.x; i < n; i += NT) s += x[bn_at(g, i, per, c, C, P)];
        const float mean = block_sum(s, red) / n;
        float q = 0.f;
        for (int i = threadIdx.x; i < n; i += NT) {
            float d = x[bn_at(g, i, per, c, C, P)] - mean;
            q = fmaf(d, d, q);
        }
        const float var = block_sum(q, red) / n;
        const float inv = 1.f / sqrtf(var + eps);
        for (int i = threadIdx.x; i < n; i += NT) {
            const size_t o = bn_at(g, i, per, c, C, P);
            float h = (x[o] - mean) * inv;
            xhat[o] = h;
            y[o] = fmaf(h, w[c], b[c]);
        }
        if (threadIdx.x == 0) {
            rstd[g * C + c] = inv;
            if (update) {
                const float unbiased = n > 1 ? var * ((float)n / (float)(n - 1)) : var;
                run_mean[c] = (1.f - momentum) * run_mean[c] + momentum * mean;
                run_var[c] = (1.f - momentum) * run_var[c] + momentum * unbiased;
            }
        }
    }
}

// Inference: the running statistics, a thread per element.
extern "C" __global__ void batchnorm_infer(const float* __restrict__ x,
                                           const float* __restrict__ w,
                                           const float* __restrict__ b,
                                           const float* __restrict__ run_mean,
                                           const float* __restrict__ run_var,
                                           float* __restrict__ y, int rows, int C, int P,
                                           float eps) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C * P) return;
    const int c = (int)((i / P) % C);
    const float inv = 1.f / sqrtf(run_var[c] + eps);
    y[i] = fmaf((x[i] - run_mean[c]) * inv, w[c], b[c]);
}

// dx = w·r·(dy − mean(dy) − x̂·mean(dy·x̂)), the means over the element's group and channel.
extern "C" __global__ void __launch_bounds__(NT)
batchnorm_bwd(const float* __restrict__ dy, const float* __restrict__ xhat,
              const float* __restrict__ rstd, const float* __restrict__ w,
              float* __restrict__ dx, int rows, int C, int P, int groups) {
    __shared__ float red[NT];
    const int c = blockIdx.x;
    if (c >= C) return;
    const int per = rows / groups, n = per * P;
    for (int g = 0; g < groups; ++g) {
        float s1 = 0.f, s2 = 0.f;
        for (int i = threadIdx.x; i < n; i += NT) {
            const size_t o = bn_at(g, i, per, c, C, P);
            s1 += dy[o];
            s2 = fmaf(dy[o], xhat[o], s2);
        }
        const float m1 = block_sum(s1, red) / n;
        const float m2 = block_sum(s2, red) / n;
        const float k = w[c] * rstd[g * C + c];
        for (int i = threadIdx.x; i < n; i += NT) {
            const size_t o = bn_at(g, i, per, c, C, P);
            dx[o] = k * (dy[o] - m1 - xhat[o] * m2);
        }
    }
}

// dw[c] = Σ dy·x̂, db[c] = Σ dy over every row and position of channel c (both groups: the
// gradient of the sum of the halves' losses).
extern "C" __global__ void __launch_bounds__(NT)
batchnorm_param_grad(const float* __restrict__ dy, const float* __restrict__ xhat,
                     float* __restrict__ dw, float* __restrict__ db, int rows, int C, int P) {
    __shared__ float red[NT];
    const int c = blockIdx.x;
    if (c >= C) return;
    const int n = rows * P;
    float s1 = 0.f, s2 = 0.f;
    for (int i = threadIdx.x; i < n; i += NT) {
        const size_t o = bn_at(0, i, rows, c, C, P);
        s1 += dy[o];
        s2 = fmaf(dy[o], xhat[o], s2);
    }
    const float sb = block_sum(s1, red);
    const float sw = block_sum(s2, red);
    if (threadIdx.x == 0) {
        dw[c] = sw;
        db[c] = sb;
    }
}
