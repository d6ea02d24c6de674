// Max pooling over k×k windows moved by s, padding counting as −∞ (pad ≤ k/2, so every window
// holds a real element). The forward keeps, per output, the index h·W + w in its plane of the
// first maximum (scan order, as torch's); the backward is a gather: each input element sums the
// gradients of the outputs that chose it, in a fixed order (deterministic, no atomics).
#include "common.cuh"

extern "C" __global__ void maxpool_fwd(const float* __restrict__ x, float* __restrict__ y,
                                       int* __restrict__ arg, int planes, int H, int W, int OH,
                                       int OW, int k, int s, int p) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)planes * OH * OW) return;
    const int ow = i % OW, oh = (i / OW) % OH;
    const float* xp = x + (i / ((size_t)OH * OW)) * H * W;  // the (example, channel) plane
    float best = 0.f;
    int which = -1;
    for (int kh = 0; kh < k; ++kh) {
        int h = oh * s - p + kh;
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < k; ++kw) {
            int w = ow * s - p + kw;
            if (w < 0 || w >= W) continue;
            float v = xp[h * W + w];
            if (which < 0 || v > best) { best = v; which = h * W + w; }
        }
    }
    y[i] = best;
    arg[i] = which;
}

// The first window position (output row or column) whose window covers input position `h`.
__device__ __forceinline__ int first_window(int h, int k, int s, int p) {
    int num = h + p - k + 1;
    return num <= 0 ? 0 : (num + s - 1) / s;
}

extern "C" __global__ void maxpool_bwd(const float* __restrict__ dy, const int* __restrict__ arg,
                                       float* __restrict__ dx, int planes, int H, int W, int OH,
                                       int OW, int k, int s, int p) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)planes * H * W) return;
    const int w = i % W, h = (i / W) % H, me = h * W + w;
    const size_t plane = (i / ((size_t)H * W)) * OH * OW;
    const int oh1 = min(OH - 1, (h + p) / s), ow1 = min(OW - 1, (w + p) / s);
    float acc = 0.f;
    for (int oh = first_window(h, k, s, p); oh <= oh1; ++oh)
        for (int ow = first_window(w, k, s, p); ow <= ow1; ++ow) {
            size_t o = plane + (size_t)oh * OW + ow;
            if (arg[o] == me) acc += dy[o];
        }
    dx[i] = acc;
}
