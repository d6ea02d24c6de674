// Activations' backward, maxout, dropout, row and label gathering, strided copies and small
// utilities.
#include "common.cuh"

// y = f(x) for an activation that follows something other than a dense layer (after a dense
// layer it is fused into the GEMM's epilogue).
extern "C" __global__ void act_fwd(const float* __restrict__ x, float* __restrict__ y, int n,
                                   int mode, float slope) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = apply_act(x[i], mode, slope);
}

// dX = dY · f'(x), written in terms of the forward output y (what the forward kept).
extern "C" __global__ void act_bwd(const float* __restrict__ y, const float* __restrict__ dy,
                                   float* __restrict__ dx, int n, int mode, float slope) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = dy[i], v = y[i];
    switch (mode) {
        case EP_BIAS_RELU: g = v > 0.f ? g : 0.f; break;
        case EP_BIAS_SIGMOID: g = g * v * (1.f - v); break;
        case EP_BIAS_TANH: g = g * (1.f - v * v); break;
        case EP_BIAS_LEAKY: g = v > 0.f ? g : slope * g; break;
        default: break;
    }
    dx[i] = g;
}

// y[m, u, j] = max_p a[m, u·P + p, j] over `inner` positions j (1 for a dense maxout; a
// maxout_conv's plane: its channel's pieces are consecutive maps); arg keeps the winning p.
extern "C" __global__ void maxout_fwd(const float* __restrict__ a, float* __restrict__ y,
                                      int* __restrict__ arg, int rows, int units, int pieces,
                                      int inner) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * units * inner) return;
    const float* p = a + (i / inner) * pieces * inner + i % inner;
    float best = p[0];
    int which = 0;
    for (int k = 1; k < pieces; ++k)
        if (p[(size_t)k * inner] > best) { best = p[(size_t)k * inner]; which = k; }
    y[i] = best;
    arg[i] = which;
}

// da[m, u·P + p, j] = dy[m, u, j] if p is the winner, else 0.
extern "C" __global__ void maxout_bwd(const float* __restrict__ dy, const int* __restrict__ arg,
                                      float* __restrict__ da, int rows, int units, int pieces,
                                      int inner) {
    size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= (size_t)rows * units * pieces * inner) return;
    size_t t = j / inner;
    int p = t % pieces;
    size_t i = (t / pieces) * inner + j % inner;
    da[j] = (arg[i] == p) ? dy[i] : 0.f;
}

// Training-mode dropout: y = x · m · scale with m ~ Bernoulli(keep), m kept for the backward.
// `batch` copies at once (a sweep's members, each with its own RNG state): blockIdx.y is the
// copy, its pointers `stride_<name>` elements on (batch 1, strides 0 in a solo plan).
extern "C" __global__ void dropout_fwd(const float* __restrict__ x, float* __restrict__ y,
                                       unsigned char* __restrict__ mask, int n, float keep,
                                       float scale, const unsigned int* __restrict__ rng,
                                       unsigned int stream, int batch, long long stride_x,
                                       long long stride_y, long long stride_mask,
                                       long long stride_rng) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int base = i * 4;
    if (base >= n || (int)blockIdx.y >= batch) return;
    x += (size_t)blockIdx.y * stride_x;
    y += (size_t)blockIdx.y * stride_y;
    mask += (size_t)blockIdx.y * stride_mask;
    rng += (size_t)blockIdx.y * stride_rng;
    u4 r = draw4(rng, stream, (unsigned int)i);
    unsigned int v[4] = {r.x, r.y, r.z, r.w};
    #pragma unroll
    for (int k = 0; k < 4; ++k) {
        int j = base + k;
        if (j < n) {
            unsigned char m = u01(v[k]) <= keep;
            mask[j] = m;
            y[j] = m ? x[j] * scale : 0.f;
        }
    }
}

extern "C" __global__ void dropout_bwd(const float* __restrict__ dy,
                                       const unsigned char* __restrict__ mask,
                                       float* __restrict__ dx, int n, float scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dx[i] = mask[i] ? dy[i] * scale : 0.f;
}

// order[pos[0] + r]: the r-th example of the minibatch, or -1 where the position or the index
// lies outside the n examples.
__device__ __forceinline__ long long example_of(const long long* order, const int* pos, int r,
                                                int n) {
    long long p = (long long)pos[0] + r;
    long long src = (p >= 0 && p < n) ? order[p] : -1;
    return (src >= 0 && src < n) ? src : -1;
}

// out[r, :] = data[order[pos[0] + r], :] for the r-th example of the minibatch. The host writes
// the position of each D-update into its own pos slot before the replay; an index outside the
// n examples (a broken contract) gives NaN rows instead of a read out of bounds.
extern "C" __global__ void gather_rows(const float* __restrict__ data, const long long* __restrict__ order,
                                       const int* __restrict__ pos, float* __restrict__ out,
                                       int rows, int cols, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    int r = i / cols, c = i % cols;
    long long src = example_of(order, pos, r, n);
    out[i] = src >= 0 ? data[src * cols + c] : __int_as_float(0x7fc00000);
}

// out[r, :] = one_hot(labels[order[pos[0] + r]]): the conditions of the real minibatch.
extern "C" __global__ void gather_onehot(const long long* __restrict__ labels,
                                         const long long* __restrict__ order,
                                         const int* __restrict__ pos, float* __restrict__ out,
                                         int rows, int classes, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * classes) return;
    int r = i / classes, c = i % classes;
    long long src = example_of(order, pos, r, n);
    out[i] = src >= 0 ? (labels[src] == c ? 1.f : 0.f) : __int_as_float(0x7fc00000);
}

// out[r, :] = one_hot(labels[j]) with j uniform over the n training examples: y ~ p_data(y)
// for a G-step. j = ⌊u·n / 2^32⌋ from one 32-bit Philox draw per row.
extern "C" __global__ void draw_onehot(const long long* __restrict__ labels, int n,
                                       float* __restrict__ out, int rows, int classes,
                                       const unsigned int* __restrict__ rng, unsigned int stream) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    u4 d = draw4(rng, stream, (unsigned int)r);
    long long j = (long long)(((unsigned long long)d.x * (unsigned long long)n) >> 32);
    long long y = labels[j];
    for (int c = 0; c < classes; ++c) out[(size_t)r * classes + c] = (y == c) ? 1.f : 0.f;
}

// dst[r, c] = src[r, c] (or += with accumulate) for a rows × cols block of two row-major
// matrices with leading dimensions ld_src, ld_dst: concat's forward (into a column range of
// its output), its backward (out of one), and the sum of a gradient over several readers.
extern "C" __global__ void copy2d(const float* __restrict__ src, float* __restrict__ dst,
                                  int rows, int cols, int ld_src, int ld_dst, int accumulate) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    int r = i / cols, c = i % cols;
    float v = src[(size_t)r * ld_src + c];
    float* d = dst + (size_t)r * ld_dst + c;
    *d = accumulate ? *d + v : v;
}

// count[0] += the number of non-finite values among x[0..n): the `finite` metric.
extern "C" __global__ void count_nonfinite(const float* __restrict__ x, int n,
                                           float* __restrict__ count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && !isfinite(x[i])) atomicAdd(count, 1.f);
}

// The 64-bit RNG offset in rng[2..3] += 1 of each of `n` consecutive RNG states (1 for a
// solo run; a sweep's members, one state each): once per phase (D-update or G-update), in-graph.
extern "C" __global__ void advance_rng(unsigned int* __restrict__ rng, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int* r = rng + 4 * (size_t)i;
    unsigned long long off = ((unsigned long long)r[3] << 32) | r[2];
    off += 1;
    r[2] = (unsigned int)off;
    r[3] = (unsigned int)(off >> 32);
}

extern "C" __global__ void fill(float* __restrict__ x, int n, float v) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = v;
}
