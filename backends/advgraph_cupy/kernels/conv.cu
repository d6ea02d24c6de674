// The convolutions' data movement around the GEMM (conv2d: im2col, then a GEMM per example;
// its input gradient and conv_transpose2d's forward: a GEMM per example, then col2im), and the
// per-channel bias. Geometry: an image of C × H × W, windows of k × k at OH × OW positions
// moved by s, padding p (zeros).
//   cols[b][(c·k + kh)·k + kw][oh·OW + ow] = x[b][c][oh·s − p + kh][ow·s − p + kw]
#include "common.cuh"

extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ cols,
                                  int rows, int C, int H, int W, int OH, int OW, int k, int s,
                                  int p) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C * k * k * OH * OW) return;
    size_t t = i;
    const int ow = t % OW; t /= OW;
    const int oh = t % OH; t /= OH;
    const int kw = t % k; t /= k;
    const int kh = t % k; t /= k;  // t = b·C + c
    const int h = oh * s - p + kh, w = ow * s - p + kw;
    cols[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[(t * H + h) * W + w] : 0.f;
}

// The transpose of im2col as a gather: each image element sums the window entries that read it,
// in a fixed order (deterministic, no atomics).
extern "C" __global__ void col2im(const float* __restrict__ cols, float* __restrict__ x,
                                  int rows, int C, int H, int W, int OH, int OW, int k, int s,
                                  int p) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C * H * W) return;
    const int w = i % W, h = (i / W) % H;
    const size_t bc = i / ((size_t)H * W);  // b·C + c
    float acc = 0.f;
    for (int kh = 0; kh < k; ++kh) {
        int th = h + p - kh;
        if (th < 0 || th % s != 0 || th / s >= OH) continue;
        for (int kw = 0; kw < k; ++kw) {
            int tw = w + p - kw;
            if (tw < 0 || tw % s != 0 || tw / s >= OW) continue;
            acc += cols[((bc * k + kh) * k + kw) * OH * OW + (size_t)(th / s) * OW + tw / s];
        }
    }
    x[i] = acc;
}

// y[b][c][·] += bias[c], over rows × C planes of P elements each.
extern "C" __global__ void channel_bias(float* __restrict__ y, const float* __restrict__ bias,
                                        int rows, int C, int P) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C * P) return;
    y[i] += bias[(i / P) % C];
}

// db[c] = Σ_b Σ_j dy[b][c][j]: a thread per channel, compensated sums (as bias_grad's).
extern "C" __global__ void channel_bias_grad(const float* __restrict__ dy, float* __restrict__ db,
                                             int rows, int C, int P) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sum = 0.f, comp = 0.f;
    for (int b = 0; b < rows; ++b) {
        const float* d = dy + ((size_t)b * C + c) * P;
        for (int j = 0; j < P; ++j) {
            float y = d[j] - comp;
            float t = sum + y;
            comp = (t - sum) - y;
            sum = t;
        }
    }
    db[c] = sum;
}
