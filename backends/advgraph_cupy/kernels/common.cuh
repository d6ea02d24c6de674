// Shared device helpers. Included by every kernel file (NVRTC include path: this folder).
#pragma once
// EP_* epilogue/activation codes and METRIC_* slots: generated from codes.py.
#include "codes.cuh"

// Philox4x32-10 (Salmon et al., 2011): a counter-based RNG, so no curand headers are needed
// and every (key, counter) gives the same numbers on every replay of a captured graph.
struct u4 { unsigned int x, y, z, w; };

__device__ __forceinline__ unsigned int mulhilo(unsigned int a, unsigned int b, unsigned int* hi) {
    unsigned long long p = (unsigned long long)a * (unsigned long long)b;
    *hi = (unsigned int)(p >> 32);
    return (unsigned int)p;
}

__device__ __forceinline__ u4 philox4x32_10(u4 c, unsigned int k0, unsigned int k1) {
    const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    #pragma unroll
    for (int r = 0; r < 10; ++r) {
        unsigned int hi0, hi1;
        unsigned int lo0 = mulhilo(M0, c.x, &hi0);
        unsigned int lo1 = mulhilo(M1, c.z, &hi1);
        u4 n = {hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0};
        c = n;
        k0 += W0; k1 += W1;
    }
    return c;
}

// Uniform in (0, 1]: never 0, so log() is safe for Box-Muller.
__device__ __forceinline__ float u01(unsigned int v) {
    return ((float)(v >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

// rng[0..1]: the 64-bit seed; rng[2..3]: the 64-bit offset, advanced after every update (each
// D-update and the G-update, in the graph, by advance_rng). `stream` separates the draws of
// different launches in one update.
__device__ __forceinline__ u4 draw4(const unsigned int* rng, unsigned int stream, unsigned int i) {
    u4 c = {i, stream, rng[2], rng[3]};
    return philox4x32_10(c, rng[0], rng[1]);
}

__device__ __forceinline__ float sigmoidf_(float x) {
    return x >= 0.f ? 1.f / (1.f + __expf(-x)) : __expf(x) / (1.f + __expf(x));
}

// σ and softplus(x) = log(1 + e^x), stable on both tails, in double: for the per-example losses
// (few values, whose gradients must be correctly rounded).
__device__ __forceinline__ double sigmoid_d(double x) {
    return x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

__device__ __forceinline__ double softplus_d(double x) {
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

// The activation of an epilogue / activation code (EP_NONE and EP_BIAS: identity).
__device__ __forceinline__ float apply_act(float v, int mode, float slope) {
    switch (mode) {
        case EP_BIAS_RELU: return fmaxf(v, 0.f);
        case EP_BIAS_SIGMOID: return sigmoidf_(v);
        case EP_BIAS_TANH: return tanhf(v);
        case EP_BIAS_LEAKY: return v > 0.f ? v : slope * v;
        default: return v;
    }
}
