// The noise prior: uniform(a, b) or gaussian(mean a, std b) (Box-Muller), from Philox.
#include "common.cuh"

extern "C" __global__ void noise(float* __restrict__ z, int n, int gaussian, float a, float b,
                                 const unsigned int* __restrict__ rng, unsigned int stream,
                                 int batch, long long stride_z, long long stride_rng) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int base = i * 4;
    if (base >= n || (int)blockIdx.y >= batch) return;
    z += (size_t)blockIdx.y * stride_z;  // `batch` draws (a sweep's members): blockIdx.y each
    rng += (size_t)blockIdx.y * stride_rng;
    u4 r = draw4(rng, stream, (unsigned int)i);
    float v[4];
    if (gaussian) {
        // Under --use_fast_math, -2·log(u) for u near 1 can round below 0: clamp before the
        // root. The angle lies in (−π, π], where the fast sin/cos are accurate.
        float r1 = sqrtf(fmaxf(-2.f * logf(u01(r.x)), 0.f));
        float t1 = 3.14159265358979f * (2.f * u01(r.y) - 1.f);
        float r2 = sqrtf(fmaxf(-2.f * logf(u01(r.z)), 0.f));
        float t2 = 3.14159265358979f * (2.f * u01(r.w) - 1.f);
        v[0] = r1 * cosf(t1); v[1] = r1 * sinf(t1); v[2] = r2 * cosf(t2); v[3] = r2 * sinf(t2);
        #pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = a + b * v[k];
    } else {
        unsigned int u[4] = {r.x, r.y, r.z, r.w};
        #pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = a + (b - a) * u01(u[k]);
    }
    #pragma unroll
    for (int k = 0; k < 4; ++k)
        if (base + k < n) z[base + k] = v[k];
}
