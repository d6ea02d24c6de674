// The numerically stable GAN losses (from logits, never log of a sigmoid) and their
// gradients with respect to the logits, for batches of m logits. Sums for the metrics are
// accumulated into metrics[METRIC_*] (codes.py).
#include "common.cuh"

// D descends softplus(−l_real) + softplus(l_fake) (means over m each).
// Per element in double: 2m values, so the cost is nil, and the gradients are correctly rounded.
// That matters for D's output bias, whose gradient sums m terms near −1/(2m) and m near +1/(2m)
// that cancel to a result ~100× smaller than any of them.
// bce_d and bce_g take `batch` minibatches at once (a sweep's members, each its own metrics):
// blockIdx.y is the member, each pointer `stride_<name>` elements on (batch 1 in a solo plan).
extern "C" __global__ void bce_d(const float* __restrict__ l_real, const float* __restrict__ l_fake,
                                 float* __restrict__ g_real, float* __restrict__ g_fake, int m,
                                 float* __restrict__ metrics, int batch, long long stride_l_real,
                                 long long stride_l_fake, long long stride_g_real,
                                 long long stride_g_fake, long long stride_metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m || (int)blockIdx.y >= batch) return;
    l_real += (size_t)blockIdx.y * stride_l_real;
    l_fake += (size_t)blockIdx.y * stride_l_fake;
    g_real += (size_t)blockIdx.y * stride_g_real;
    g_fake += (size_t)blockIdx.y * stride_g_fake;
    metrics += (size_t)blockIdx.y * stride_metrics;
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
                                 int m, int ns, float* __restrict__ metrics, int batch,
                                 long long stride_l_fake, long long stride_g_fake,
                                 long long stride_metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m || (int)blockIdx.y >= batch) return;
    l_fake += (size_t)blockIdx.y * stride_l_fake;
    g_fake += (size_t)blockIdx.y * stride_g_fake;
    metrics += (size_t)blockIdx.y * stride_metrics;
    double l = l_fake[i], s = sigmoid_d(l), inv = 1.0 / (double)m;
    g_fake[i] = (float)((ns ? (s - 1.0) : -s) * inv);
    atomicAdd(&metrics[METRIC_G_LOSS], (float)((ns ? softplus_d(-l) : -softplus_d(l)) * inv));
}

// The losses on D's raw scores (D ends without a sigmoid), as advgraph.reference.loss_values:
//   least_squares (LOSS_LEAST_SQUARES): D ½(l_r − 1)² + ½l_f²,   G ½(l_f − 1)²;
//   hinge (LOSS_HINGE):                 D relu(1 − l_r) + relu(1 + l_f),   G −l_f;
//   wasserstein (LOSS_WASSERSTEIN):     D l_f − l_r,   G −l_f.
// Means over m each; hinge's gradient at its kink is 0 (as torch's relu). d_real and d_fake
// sum the raw scores. In double, as bce_d (the gradients are correctly rounded).
extern "C" __global__ void score_d(const float* __restrict__ l_real,
                                   const float* __restrict__ l_fake, float* __restrict__ g_real,
                                   float* __restrict__ g_fake, int m, int kind,
                                   float* __restrict__ metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    double lr = l_real[i], lf = l_fake[i], inv = 1.0 / (double)m, gr, gf, loss;
    if (kind == LOSS_LEAST_SQUARES) {
        gr = lr - 1.0;
        gf = lf;
        loss = 0.5 * (lr - 1.0) * (lr - 1.0) + 0.5 * lf * lf;
    } else if (kind == LOSS_HINGE) {
        gr = 1.0 - lr > 0.0 ? -1.0 : 0.0;
        gf = 1.0 + lf > 0.0 ? 1.0 : 0.0;
        loss = fmax(1.0 - lr, 0.0) + fmax(1.0 + lf, 0.0);
    } else {  // LOSS_WASSERSTEIN
        gr = -1.0;
        gf = 1.0;
        loss = lf - lr;
    }
    g_real[i] = (float)(gr * inv);
    g_fake[i] = (float)(gf * inv);
    atomicAdd(&metrics[METRIC_D_LOSS], (float)(loss * inv));
    atomicAdd(&metrics[METRIC_D_REAL], (float)(lr * inv));
    atomicAdd(&metrics[METRIC_D_FAKE], (float)(lf * inv));
}

extern "C" __global__ void score_g(const float* __restrict__ l_fake, float* __restrict__ g_fake,
                                   int m, int kind, float* __restrict__ metrics) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    double l = l_fake[i], inv = 1.0 / (double)m;
    bool ls = kind == LOSS_LEAST_SQUARES;
    g_fake[i] = (float)((ls ? l - 1.0 : -1.0) * inv);
    atomicAdd(&metrics[METRIC_G_LOSS], (float)((ls ? 0.5 * (l - 1.0) * (l - 1.0) : -l) * inv));
}
