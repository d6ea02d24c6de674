// The numerically stable GAN losses (from logits, never log of a sigmoid) and their
// gradients with respect to the logits, for batches of m logits. Sums for the metrics are
// accumulated into metrics[METRIC_*] (codes.py).
#include "common.cuh"

// D descends softplus(−l_real) + softplus(l_fake) (means over m each).
extern "C" __global__ void bce_d(const float* __restrict__ l_real, const float* __restrict__ l_fake,
                                 float* __restrict__ g_real, float* __restrict__ g_fake, int m,
                                 float* __restrict__ metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    float lr = l_real[i], lf = l_fake[i];
    float sr = sigmoidf_(lr), sf = sigmoidf_(lf);
    float inv = 1.f / (float)m;
    g_real[i] = (sr - 1.f) * inv;  // d softplus(−l)/dl = −σ(−l) = σ(l) − 1
    g_fake[i] = sf * inv;          // d softplus(l)/dl = σ(l)
    atomicAdd(&metrics[METRIC_D_LOSS], (softplusf_(-lr) + softplusf_(lf)) * inv);
    atomicAdd(&metrics[METRIC_D_REAL], sr * inv);
    atomicAdd(&metrics[METRIC_D_FAKE], sf * inv);
}

// G: non_saturating (ns = 1) descends softplus(−l) = −log D(G(z));
//    minimax (ns = 0) descends −softplus(l) = log(1 − D(G(z))).
extern "C" __global__ void bce_g(const float* __restrict__ l_fake, float* __restrict__ g_fake,
                                 int m, int ns, float* __restrict__ metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    float l = l_fake[i], s = sigmoidf_(l), inv = 1.f / (float)m;
    g_fake[i] = (ns ? (s - 1.f) : -s) * inv;
    atomicAdd(&metrics[METRIC_G_LOSS], (ns ? softplusf_(-l) : -softplusf_(l)) * inv);
}
