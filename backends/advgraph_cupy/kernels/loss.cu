// The numerically stable GAN losses (from logits, never log of a sigmoid) and their
// gradients with respect to the logits, for batches of m logits. Sums for the metrics are
// accumulated into metrics[METRIC_*] (codes.py).
#include "common.cuh"

// D descends softplus(−l_real) + softplus(l_fake) (means over m each).
// Per element in double: 2m values, so the cost is nil, and the gradients are correctly rounded.
// That matters for D's output bias, whose gradient sums m terms near −1/(2m) and m near +1/(2m)
// that cancel to a result ~100× smaller than any of them.
extern "C" __global__ void bce_d(const float* __restrict__ l_real, const float* __restrict__ l_fake,
                                 float* __restrict__ g_real, float* __restrict__ g_fake, int m,
                                 float* __restrict__ metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    double lr = l_real[i], lf = l_fake[i];
    double sr = sigmoid_d(lr), sf = sigmoid_d(lf);
    double inv = 1.0 / (double)m;
    g_real[i] = (float)((sr - 1.0) * inv);  // d softplus(−l)/dl = −σ(−l) = σ(l) − 1
    g_fake[i] = (float)(sf * inv);          // d softplus(l)/dl = σ(l)
    atomicAdd(&metrics[METRIC_D_LOSS], (float)((softplus_d(-lr) + softplus_d(lf)) * inv));
    atomicAdd(&metrics[METRIC_D_REAL], (float)(sr * inv));
    atomicAdd(&metrics[METRIC_D_FAKE], (float)(sf * inv));
}

// G: non_saturating (ns = 1) descends softplus(−l) = −log D(G(z));
//    minimax (ns = 0) descends −softplus(l) = log(1 − D(G(z))).
extern "C" __global__ void bce_g(const float* __restrict__ l_fake, float* __restrict__ g_fake,
                                 int m, int ns, float* __restrict__ metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    double l = l_fake[i], s = sigmoid_d(l), inv = 1.0 / (double)m;
    g_fake[i] = (float)((ns ? (s - 1.0) : -s) * inv);
    atomicAdd(&metrics[METRIC_G_LOSS], (float)((ns ? softplus_d(-l) : -softplus_d(l)) * inv));
}
