// One fused update over a network's flat parameter buffer. The per-step hyperparameters live
// in device memory (hp), written by the host before each graph replay, so the captured graph
// never changes: hp[0] = lr, hp[1] = momentum (SGD) or bias-corrected step size (Adam).
// Both update `batch` networks at once (a sweep's members, each with its own hp slot):
// blockIdx.y is the network, each pointer `stride_<name>` elements on (batch 1 in a solo plan).
#include "common.cuh"

// The original Pylearn2 rule: v ← μ·v − lr·g; θ ← θ + v.
extern "C" __global__ void sgd_momentum(float* __restrict__ p, float* __restrict__ v,
                                        const float* __restrict__ g, int n,
                                        const float* __restrict__ hp, int batch,
                                        long long stride_p, long long stride_v,
                                        long long stride_g, long long stride_hp) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || (int)blockIdx.y >= batch) return;
    p += (size_t)blockIdx.y * stride_p;
    v += (size_t)blockIdx.y * stride_v;
    g += (size_t)blockIdx.y * stride_g;
    hp += (size_t)blockIdx.y * stride_hp;
    float vi = hp[1] * v[i] - hp[0] * g[i];
    v[i] = vi;
    p[i] += vi;
}

// Adam: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; θ ← θ − α_t·m / (√v + ε·√(1−β2^t)),
// with α_t = lr·√(1−β2^t)/(1−β1^t) in hp[1] and ε·√(1−β2^t) in hp[2] (the same update as
// m̂ / (√v̂ + ε) with the bias corrections folded into scalars).
extern "C" __global__ void adam(float* __restrict__ p, float* __restrict__ m, float* __restrict__ v,
                                const float* __restrict__ g, int n, float beta1, float beta2,
                                const float* __restrict__ hp, int batch, long long stride_p,
                                long long stride_m, long long stride_v, long long stride_g,
                                long long stride_hp) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || (int)blockIdx.y >= batch) return;
    p += (size_t)blockIdx.y * stride_p;
    m += (size_t)blockIdx.y * stride_m;
    v += (size_t)blockIdx.y * stride_v;
    g += (size_t)blockIdx.y * stride_g;
    hp += (size_t)blockIdx.y * stride_hp;
    float gi = g[i];
    float mi = beta1 * m[i] + (1.f - beta1) * gi;
    float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= hp[1] * mi / (sqrtf(vi) + hp[2]);
}

// G's exponential moving average (a phase of its own, after a G update): ema ← d·ema + (1−d)·θ
// with d = decay[0], written by the host before the replay (it is 0 until the EMA's start
// step: then ema ← θ exactly).
extern "C" __global__ void ema_update(float* __restrict__ ema, const float* __restrict__ p, int n,
                                      const float* __restrict__ decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float d = decay[0];
    ema[i] = d == 0.f ? p[i] : d * ema[i] + (1.f - d) * p[i];
}
