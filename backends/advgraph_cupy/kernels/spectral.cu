// Spectral normalisation (Miyato et al. 2018, as torch.nn.utils.spectral_norm): a weight W used
// as W / σ, σ = uᵀMv its largest singular value estimated by power iteration, M the (rows, cols)
// matrix of W with its axis `rows` moved first: W seen as (outer, rows, inner) and
//   M[r, c] = W[(a·rows + r)·inner + b],  c = a·inner + b,  cols = outer·inner
// (dense W (in, out): outer = in, rows = out, inner = 1; conv (out, in, kh, kw): outer = 1;
// deconv (in, out, kh, kw): outer = in, inner = kh·kw).
// sn_power and sn_grad are one block of NT threads over the whole weight: its sums are reduced
// in a fixed tree in double (deterministic, no atomics), so a resumed run repeats them exactly.
#include "common.cuh"

#define NT 256

// Σ v over the block's NT threads; every thread gets the sum. `red` holds NT doubles.
static __device__ __forceinline__ double sn_block_sum(double v, double* red) {
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    double total = red[0];
    __syncthreads();  // red is written again by the next sum
    return total;
}

static __device__ __forceinline__ size_t sn_at(int r, int c, int rows, int inner) {
    return ((size_t)(c / inner) * rows + r) * inner + c % inner;
}

// `iterations` times: v ← normalize(Mᵀu), u ← normalize(Mv) (normalize: x / max(‖x‖, 1e-12)),
// u and v updated in place; then sigma[0] = uᵀMv. With iterations 0, σ from the stored u, v
// (the other net's step, inference). One block.
extern "C" __global__ void __launch_bounds__(NT)
sn_power(const float* __restrict__ w, float* __restrict__ u, float* __restrict__ v,
         float* __restrict__ sigma, int outer, int rows, int inner, int iterations) {
    __shared__ double red[NT];
    const int cols = outer * inner;
    for (int it = 0; it < iterations; ++it) {
        double q = 0.0;
        for (int c = threadIdx.x; c < cols; c += NT) {
            double s = 0.0;
            for (int r = 0; r < rows; ++r) s += (double)w[sn_at(r, c, rows, inner)] * u[r];
            v[c] = (float)s;
            q += s * s;
        }
        double inv = 1.0 / fmax(sqrt(sn_block_sum(q, red)), 1e-12);
        for (int c = threadIdx.x; c < cols; c += NT) v[c] = (float)(v[c] * inv);
        __syncthreads();  // u's products read all of v
        q = 0.0;
        for (int r = threadIdx.x; r < rows; r += NT) {
            double s = 0.0;
            for (int c = 0; c < cols; ++c) s += (double)w[sn_at(r, c, rows, inner)] * v[c];
            u[r] = (float)s;
            q += s * s;
        }
        inv = 1.0 / fmax(sqrt(sn_block_sum(q, red)), 1e-12);
        for (int r = threadIdx.x; r < rows; r += NT) u[r] = (float)(u[r] * inv);
        __syncthreads();  // the next v (or σ) reads all of u
    }
    double part = 0.0;
    for (int r = threadIdx.x; r < rows; r += NT) {
        double s = 0.0;
        for (int c = 0; c < cols; ++c) s += (double)w[sn_at(r, c, rows, inner)] * v[c];
        part += s * u[r];
    }
    double total = sn_block_sum(part, red);
    if (threadIdx.x == 0) sigma[0] = (float)total;
}

// wn = W / σ: the weight the forward and the input gradients read.
extern "C" __global__ void sn_scale(const float* __restrict__ w, const float* __restrict__ sigma,
                                    float* __restrict__ wn, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    wn[i] = w[i] / sigma[0];
}

// From G, the gradient with respect to W / σ, to the gradient with respect to W (u, v held
// constant): G/σ − (⟨G, W⟩/σ²)·M⁻¹(u vᵀ), in place. One block.
extern "C" __global__ void __launch_bounds__(NT)
sn_grad(float* __restrict__ g, const float* __restrict__ w, const float* __restrict__ u,
        const float* __restrict__ v, const float* __restrict__ sigma, int outer, int rows,
        int inner) {
    __shared__ double red[NT];
    const size_t n = (size_t)outer * rows * inner;
    double part = 0.0;
    for (size_t i = threadIdx.x; i < n; i += NT) part += (double)g[i] * w[i];
    const double s = sigma[0];
    const double k = sn_block_sum(part, red) / (s * s);
    for (size_t i = threadIdx.x; i < n; i += NT) {
        int b = (int)(i % inner), r = (int)(i / inner % rows), a = (int)(i / inner / rows);
        g[i] = (float)(g[i] / s - k * u[r] * v[a * inner + b]);
    }
}
