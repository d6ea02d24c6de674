// Spectral normalisation (Miyato et al. 2018, as torch.nn.utils.spectral_norm): a weight W used
// as W / σ, σ = uᵀMv its largest singular value estimated by power iteration, M the (rows, cols)
// matrix of W with its axis `rows` moved first: W seen as (outer, rows, inner) and
//   M[r, c] = W[(a·rows + r)·inner + b],  c = a·inner + b,  cols = outer·inner
// (dense W (in, out): outer = in, rows = out, inner = 1; conv (out, in, kh, kw): outer = 1;
// deconv (in, out, kh, kw): outer = in, inner = kh·kw).
// One power iteration is sn_mv (Mᵀu), sn_normalize (→ v), sn_mv (Mv), sn_normalize (→ u); then
// sn_sigma (σ = u·Mv) and sn_scale (W / σ). Every sum is a block's, reduced in a fixed tree in
// double (no atomics), so the results never depend on scheduling and a resume repeats them.
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

// A block per output: y[o] = Σ_c M[o, c]·x[c] (trans 0: Mv, o a row) or Σ_r M[r, o]·x[r]
// (trans 1: Mᵀu, o a column).
extern "C" __global__ void __launch_bounds__(NT)
sn_mv(const float* __restrict__ w, const float* __restrict__ x, float* __restrict__ y,
      int outer, int rows, int inner, int trans) {
    __shared__ double red[NT];
    const int o = blockIdx.x, cols = outer * inner;
    if (o >= (trans ? cols : rows)) return;  // the whole block leaves together
    const int n = trans ? rows : cols;
    double s = 0.0;
    for (int k = threadIdx.x; k < n; k += NT)
        s += (double)w[trans ? sn_at(k, o, rows, inner) : sn_at(o, k, rows, inner)] * x[k];
    const double total = sn_block_sum(s, red);
    if (threadIdx.x == 0) y[o] = (float)total;
}

// out = raw / max(‖raw‖, 1e-12) (torch's normalize). One block.
extern "C" __global__ void __launch_bounds__(NT)
sn_normalize(const float* __restrict__ raw, float* __restrict__ out, int n) {
    __shared__ double red[NT];
    double q = 0.0;
    for (int i = threadIdx.x; i < n; i += NT) q += (double)raw[i] * raw[i];
    const double inv = 1.0 / fmax(sqrt(sn_block_sum(q, red)), 1e-12);
    for (int i = threadIdx.x; i < n; i += NT) out[i] = (float)(raw[i] * inv);
}

// sigma[0] = u·mv, mv = Mv: σ = uᵀMv. One block.
extern "C" __global__ void __launch_bounds__(NT)
sn_sigma(const float* __restrict__ u, const float* __restrict__ mv, float* __restrict__ sigma,
         int rows) {
    __shared__ double red[NT];
    double s = 0.0;
    for (int r = threadIdx.x; r < rows; r += NT) s += (double)u[r] * mv[r];
    const double total = sn_block_sum(s, red);
    if (threadIdx.x == 0) sigma[0] = (float)total;
}

// wn = W / σ: the weight the forward and the input gradients read.
extern "C" __global__ void sn_scale(const float* __restrict__ w, const float* __restrict__ sigma,
                                    float* __restrict__ wn, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    wn[i] = w[i] / sigma[0];
}

// ⟨G, W⟩ in `nparts` blocks, block b summing elements b·NT + t + j·nparts·NT; each part kept
// as a pair of floats (hi, the rest: about 48 bits), for sn_grad to add up in order.
extern "C" __global__ void __launch_bounds__(NT)
sn_dot_parts(const float* __restrict__ g, const float* __restrict__ w, float* __restrict__ parts,
             int n, int nparts) {
    __shared__ double red[NT];
    if ((int)blockIdx.x >= nparts) return;
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * NT + threadIdx.x; i < (size_t)n; i += (size_t)nparts * NT)
        s += (double)g[i] * w[i];
    const double total = sn_block_sum(s, red);
    if (threadIdx.x == 0) {
        const float hi = (float)total;
        parts[2 * blockIdx.x] = hi;
        parts[2 * blockIdx.x + 1] = (float)(total - hi);
    }
}

// From G, the gradient with respect to W / σ, to the gradient with respect to W (u, v held
// constant), in place: G/σ − (⟨G, W⟩/σ²)·u_r·v_c at W's element of M[r, c].
extern "C" __global__ void sn_grad(float* __restrict__ g, const float* __restrict__ u,
                                   const float* __restrict__ v, const float* __restrict__ sigma,
                                   const float* __restrict__ parts, int nparts, int outer,
                                   int rows, int inner) {
    __shared__ double k;
    if (threadIdx.x == 0) {
        double dot = 0.0;
        for (int p = 0; p < nparts; ++p) dot += (double)parts[2 * p] + (double)parts[2 * p + 1];
        k = dot / ((double)sigma[0] * sigma[0]);
    }
    __syncthreads();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)outer * rows * inner) return;
    const int b = (int)(i % inner), r = (int)(i / inner % rows), a = (int)(i / inner / rows);
    g[i] = (float)(g[i] / (double)sigma[0] - k * u[r] * v[a * inner + b]);
}
