// cuda_host.h: just enough of CUDA for the unchanged kernels/*.cu to compile as C++17 with g++
// and run on the CPU under the fiber scheduler (scheduler.cpp). Force-included (-include) before
// every kernel file by the host executor (advgraph_cupy/host/__init__.py).
//
// Model: each CUDA thread is a fiber; blocks of a launch run one after another, so a block's
// __shared__ memory can be a plain static (one block at a time uses it).
#pragma once

#include <math.h>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

// ---- qualifiers -------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// g++ understands __restrict__ as it is.

// Under TSan the shared arrays go into one section of whole pages, which the scheduler maps
// afresh before each block: TSan then forgets the previous block's accesses to the same static
// storage (blocks run one after another, with no happens-before between them otherwise).
// Not under ASan: GCC puts no redzones around globals in a user section, and ASan should see
// the shared arrays' bounds.
#ifdef ADV_TSAN
#define __shared__ static __attribute__((section("adv_shared"), aligned(4096)))
#else
#define __shared__ static
#endif

// ---- built-in vector types and indices --------------------------------------------------------
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Written by the scheduler before it switches into a fiber (thread_idx) or starts a block
// (the rest). initial-exec: a plain %fs-relative load (the default model calls
// __tls_get_addr, which cost ~40% of the per-thread overhead).
struct AdvCtx {
    uint3 thread_idx;
    uint3 block_idx;
    uint3 block_dim;
    uint3 grid_dim;
};
extern "C" {
extern __thread AdvCtx adv_ctx __attribute__((tls_model("initial-exec")));
}
#define threadIdx (adv_ctx.thread_idx)
#define blockIdx (adv_ctx.block_idx)
#define blockDim (adv_ctx.block_dim)
#define gridDim (adv_ctx.grid_dim)
#define warpSize 32

// ---- barrier ----------------------------------------------------------------------------------
// Out of line, into the scheduler: the compiler must assume it reads and writes all memory (as
// the real barrier's fence does). The call site (file, line) identifies the barrier, robust to
// the compiler duplicating the call (unrolling, unswitching), unlike a return address.
extern "C" void adv_syncthreads(const char* file, int line);
#define __syncthreads() adv_syncthreads(__FILE__, __LINE__)
#define __threadfence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define __threadfence_block() __atomic_thread_fence(__ATOMIC_SEQ_CST)

// ---- atomics ----------------------------------------------------------------------------------
// Real atomics (relaxed, like CUDA's): TSan sees them as atomic, and they give no
// happens-before edge that could hide a race on other data.
__forceinline__ float atomicAdd(float* addr, float v) {
    unsigned int* p = reinterpret_cast<unsigned int*>(addr);
    unsigned int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    for (;;) {
        float f;
        std::memcpy(&f, &old, 4);
        f += v;
        unsigned int nw;
        std::memcpy(&nw, &f, 4);
        if (__atomic_compare_exchange_n(p, &old, nw, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            std::memcpy(&f, &old, 4);
            return f;
        }
    }
}
__forceinline__ int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
__forceinline__ unsigned int atomicAdd(unsigned int* p, unsigned int v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
__forceinline__ unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
__forceinline__ int atomicMax(int* p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED,
                                                  __ATOMIC_RELAXED)) {}
    return old;
}
__forceinline__ int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
__forceinline__ int atomicCAS(int* p, int cmp, int v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}

// ---- bit casts --------------------------------------------------------------------------------
__forceinline__ float adv_int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
__forceinline__ int adv_float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
__forceinline__ float adv_uint_as_float(unsigned int i) { float f; std::memcpy(&f, &i, 4); return f; }
__forceinline__ unsigned int adv_float_as_uint(float f) { unsigned int i; std::memcpy(&i, &f, 4); return i; }

// ---- fast-math intrinsics: MACROS (glibc declares functions with some of these names) ---------
// The exact libm functions: the host results are at least as accurate as the device's.
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __powf(x, y) powf((x), (y))
#define __exp10f(x) exp10f(x)
#define __fdividef(x, y) ((x) / (y))
#define __frcp_rn(x) (1.0f / (x))
#define __fsqrt_rn(x) sqrtf(x)
#define __saturatef(x) fminf(fmaxf((x), 0.0f), 1.0f)
#define __fadd_rn(x, y) ((x) + (y))
#define __fmul_rn(x, y) ((x) * (y))
#define __fmaf_rn(x, y, z) fmaf((x), (y), (z))
#define __int_as_float(i) adv_int_as_float(i)
#define __float_as_int(f) adv_float_as_int(f)
#define __uint_as_float(i) adv_uint_as_float(i)
#define __float_as_uint(f) adv_float_as_uint(f)
#define rsqrtf(x) (1.0f / sqrtf(x))
#define __ldg(p) (*(p))

__forceinline__ int __popc(unsigned int x) { return __builtin_popcount(x); }
__forceinline__ int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
__forceinline__ int __ffs(int x) { return __builtin_ffs(x); }
__forceinline__ unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
__forceinline__ int min(int a, int b) { return a < b ? a : b; }
__forceinline__ int max(int a, int b) { return a > b ? a : b; }
__forceinline__ unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
__forceinline__ unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }

// isfinite, fmaf, fmaxf, fminf, fabsf, sqrtf, logf, log1pf, expf, tanhf, sinf, cosf: from
// <math.h>/<cmath> (in the global namespace under libstdc++).
using std::isfinite;
using std::isinf;
using std::isnan;

// ---- what the generated launch entries need ---------------------------------------------------
struct AdvKernel {
    const char* name;
    int nparams;
    void (*thunk)(void** args);
};
extern "C" int adv_run(const AdvKernel* k, const unsigned* grid3, const unsigned* block3,
                       void** args);
template <class... A>
constexpr int adv_arity(void (*)(A...)) { return (int)sizeof...(A); }
#define ADV_EXPORT extern "C" __attribute__((visibility("default")))
