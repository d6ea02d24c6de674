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
