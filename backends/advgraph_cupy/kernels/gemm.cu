// C[M,N] = epilogue(op(A)[M,K] · op(B)[K,N]) with op = identity or transpose, row-major; with
// `accumulate`, C += that instead (a second reader's part of a gradient, without a scratch copy).
// gemm_batched: `batch` independent products, the b-th at A + b·strideA, B + b·strideB,
// C + b·strideC and bias + b·strideBias (a stride of 0 shares the operand, e.g. a convolution's
// weights and bias; a sweep's members each have their own); blockIdx.z is the product. Two kernels from one body:
// the batch offsets cost the plain GEMM 18 registers (98, 2 blocks per SM, instead of 80, 3).
// Our own tiled SGEMM (CuPy cannot capture cuBLAS in a CUDA graph): 64×64 tiles, BK = 16,
// 256 threads each computing a 4×4 micro-tile; any M, N, K (edges are zero-filled).
// Dense forward:      C = X·W (+bias, activation)       transA=0, transB=0
// Input gradient:     dX = dY·Wᵀ                        transA=0, transB=1
// Weight gradient:    dW = Xᵀ·dY                        transA=1, transB=0
#include "common.cuh"

#define TM 64
#define TN 64
#define TK 16

// The kernels own the shared tiles (a __shared__ static in an inline function would be a COMDAT
// object, outside the section the host executor's TSan build remaps for each block).
__device__ __forceinline__ void gemm_body(
        float (*As)[TM + 4], float (*Bs)[TN + 4], bool batched,
        const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
        const float* __restrict__ bias, int M, int N, int K, int lda, int ldb, int ldc,
        long long strideA, long long strideB, long long strideC, long long strideBias,
        int accumulate, int transA, int transB, int epilogue, float slope) {
    if (batched) {
        A += (size_t)blockIdx.z * strideA;
        B += (size_t)blockIdx.z * strideB;
        C += (size_t)blockIdx.z * strideC;
        if (epilogue != EP_NONE) bias += (size_t)blockIdx.z * strideBias;
    }
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int row0 = blockIdx.y * TM, col0 = blockIdx.x * TN;
    float acc[4][4] = {{0.f}};

    for (int k0 = 0; k0 < K; k0 += TK) {
        // 64×16 tile of op(A) and 16×64 tile of op(B): 1024 values each, 4 per thread.
        #pragma unroll
        for (int l = 0; l < 4; ++l) {
            int e = tid + l * 256;
            int m = e / TK, k = e % TK;              // A tile element (m, k)
            int gm = row0 + m, gk = k0 + k;
            float a = 0.f;
            if (gm < M && gk < K) a = transA ? A[(size_t)gk * lda + gm] : A[(size_t)gm * lda + gk];
            As[k][m] = a;
            int kb = e / TN, n = e % TN;             // B tile element (kb, n)
            int gkb = k0 + kb, gn = col0 + n;
            float b = 0.f;
            if (gkb < K && gn < N) b = transB ? B[(size_t)gn * ldb + gkb] : B[(size_t)gkb * ldb + gn];
            Bs[kb][n] = b;
        }
        __syncthreads();
        #pragma unroll
        for (int k = 0; k < TK; ++k) {
            float a[4], b[4];
            #pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[k][ty * 4 + i];
            #pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[k][tx * 4 + j];
            #pragma unroll
            for (int i = 0; i < 4; ++i)
                #pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

    #pragma unroll
    for (int i = 0; i < 4; ++i) {
        int r = row0 + ty * 4 + i;
        if (r >= M) continue;
        #pragma unroll
        for (int j = 0; j < 4; ++j) {
            int c = col0 + tx * 4 + j;
            if (c >= N) continue;
            float v = acc[i][j];
            if (epilogue != EP_NONE) v += bias[c];
            v = apply_act(v, epilogue, slope);
            float* out = C + (size_t)r * ldc + c;
            *out = accumulate ? *out + v : v;
        }
    }
}

extern "C" __global__ void __launch_bounds__(256)
gemm(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
     const float* __restrict__ bias, int M, int N, int K, int lda, int ldb, int ldc,
     int accumulate, int transA, int transB, int epilogue, float slope) {
    __shared__ float As[TK][TM + 4];
    __shared__ float Bs[TK][TN + 4];
    gemm_body(As, Bs, false, A, B, C, bias, M, N, K, lda, ldb, ldc, 0, 0, 0, 0, accumulate,
              transA, transB, epilogue, slope);
}

extern "C" __global__ void __launch_bounds__(256)
gemm_batched(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
             const float* __restrict__ bias, int M, int N, int K, int lda, int ldb, int ldc,
             int batch, long long strideA, long long strideB, long long strideC,
             long long strideBias, int accumulate, int transA, int transB, int epilogue,
             float slope) {
    __shared__ float As[TK][TM + 4];
    __shared__ float Bs[TK][TN + 4];
    if ((int)blockIdx.z >= batch) return;
    gemm_body(As, Bs, true, A, B, C, bias, M, N, K, lda, ldb, ldc, strideA, strideB, strideC,
              strideBias, accumulate, transA, transB, epilogue, slope);
}

// db[n] = Σ_m dY[m, n]: the bias gradient (threads along n, coalesced reads). Compensated
// (Kahan) summation: D's output bias sums the real half's negative and the fake half's positive
// terms, whose running sum swings far from the small result; a plain float sum lost ~1e-3 of it.
// `batch` sums at once (a sweep's members), the b-th at dY + b·stride_dY into db + b·stride_db:
// blockIdx.y is b (batch 1, strides 0 in a solo plan).
extern "C" __global__ void bias_grad(const float* __restrict__ dY, float* __restrict__ db,
                                     int M, int N, int batch, long long stride_dY,
                                     long long stride_db) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N || (int)blockIdx.y >= batch) return;
    dY += (size_t)blockIdx.y * stride_dY;
    db += (size_t)blockIdx.y * stride_db;
    float s = 0.f, c = 0.f;
    for (int m = 0; m < M; ++m) {
        float y = dY[(size_t)m * N + n] - c;
        float t = s + y;
        c = (t - s) - y;
        s = t;
    }
    db[n] = s;
}
