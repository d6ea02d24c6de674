"""The host executor: the kernels/*.cu sources compiled by g++ and run on the CPU (each CUDA
thread a fiber, real barriers), checked against their NumPy twins, under natural, reversed and
shuffled block/thread order; divergent barriers are reported, not hung or crashed on."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import kernel_sources  # noqa: E402
from advgraph_cupy.host import (HostKernelError, HostKernels, available, build_library,  # noqa: E402
                                variant_env)
from tests.backend import host_cases as HC  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="session")
def host_cache(host_kernel_cache):
    """The session's host-kernel cache (tests/conftest.py)."""
    return host_kernel_cache


@pytest.fixture(scope="module")
def exact(host_cache):
    return HostKernels("exact", cache_dir=host_cache)


@pytest.fixture(scope="module")
def release(host_cache):
    return HostKernels("release", cache_dir=host_cache)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(HC.CASES))
def test_every_kernel_matches_its_twin_exact_variant(exact, case):
    """Bit-identical where the twin is exact (Philox noise and dropout, maxout, gathers, copies,
    advance_rng, fill, sgd_momentum, non-transcendental activations); tolerances elsewhere."""
    HC.run_suite(exact, exact=True, names=[case])


@pytest.mark.parametrize("case", sorted(HC.CASES))
def test_every_kernel_matches_its_twin_release_variant(release, case):
    HC.run_suite(release, exact=False, names=[case], small=case == "gemm")


def test_every_kernel_is_covered():
    kernels = set(kernel_sources.signatures())
    text = open(HC.__file__).read()
    covered = {k for k in kernels if f'"{k}"' in text}
    assert covered == kernels, f"kernels without a host case: {sorted(kernels - covered)}"


@pytest.mark.parametrize("order,seed", [("reversed", 0), ("shuffled", 1), ("shuffled", 2)])
def test_kernels_do_not_depend_on_block_or_thread_order(host_cache, order, seed):
    hk = HostKernels("release", order=order, seed=seed, cache_dir=host_cache)
    HC.run_suite(hk, exact=False, names=list(HC.ORDER_SUBSET), small=True, seed=seed)


TEST_KERNELS = r'''
#include "common.cuh"
// Reverses x within each block through shared memory: needs its barrier.
extern "C" __global__ void block_reverse(float* __restrict__ x) {
    __shared__ float s[1024];
    int t = threadIdx.x, n = blockDim.x;
    float* p = x + (size_t)blockIdx.x * n;
    s[t] = p[t];
    __syncthreads();
    p[t] = s[n - 1 - t];
}
// The same without the barrier: order dependent.
extern "C" __global__ void block_reverse_racy(float* __restrict__ x) {
    __shared__ float s[1024];
    int t = threadIdx.x, n = blockDim.x;
    float* p = x + (size_t)blockIdx.x * n;
    s[t] = p[t];
    p[t] = s[n - 1 - t];
}
// Threads past n return before a barrier the others wait at.
extern "C" __global__ void diverge_exit(float* __restrict__ x, int n) {
    int i = threadIdx.x;
    if (i >= n) return;
    x[i] = 1.f;
    __syncthreads();
    x[i] += 1.f;
}
// Odd and even threads wait at different barriers.
extern "C" __global__ void diverge_site(float* __restrict__ x, int bad_block) {
    if ((int)blockIdx.x == bad_block && (threadIdx.x & 1)) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    x[blockIdx.x * blockDim.x + threadIdx.x] = 2.f;
}
// Every thread of a block leaves early, in a uniform branch: fine.
extern "C" __global__ void uniform_exit(float* __restrict__ x, int n) {
    if ((int)blockIdx.x >= n) return;
    x[(blockIdx.x * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x] = (float)(threadIdx.x + 10 * threadIdx.y);
    __syncthreads();
}
'''


@pytest.fixture(scope="module")
def testk(host_cache):
    return {o: HostKernels("release", order=o, seed=3, extra_sources={"testk.cu": TEST_KERNELS},
                           cache_dir=host_cache) for o in ("natural", "reversed", "shuffled")}


@pytest.mark.parametrize("order", ["natural", "reversed", "shuffled"])
def test_barriers_order_shared_memory(testk, order):
    hk = testk[order]
    x = np.arange(3 * 200, dtype=np.float32)
    hk.launch("block_reverse", (3, 1, 1), (200, 1, 1), [HC.ptr(x)])
    assert np.array_equal(x, np.arange(600, dtype=np.float32).reshape(3, 200)[:, ::-1].reshape(-1))
    y = np.zeros((4, 8), np.float32)
    hk.launch("uniform_exit", (4, 1, 1), (4, 2, 1), [HC.ptr(y), np.int32(2)])
    assert y[:2].tolist() == [[0, 1, 2, 3, 10, 11, 12, 13]] * 2
    assert not y[2:].any()


def test_a_missing_barrier_shows_under_reordering(testk):
    ref = np.arange(256, dtype=np.float32)[::-1]
    results = []
    for order in ("natural", "reversed"):
        x = np.arange(256, dtype=np.float32)
        testk[order].launch("block_reverse_racy", (1, 1, 1), (256, 1, 1), [HC.ptr(x)])
        results.append(np.array_equal(x, ref))
    assert not all(results)


def test_divergent_barrier_after_an_early_return_is_an_error(testk):
    x = np.zeros(64, np.float32)
    with pytest.raises(HostKernelError, match=r"kernel diverge_exit, block \(0,0,0\).*divergent "
                                              r"__syncthreads.*returned.*testk\.cu:\d+"):
        testk["natural"].launch("diverge_exit", (1, 1, 1), (64, 1, 1), [HC.ptr(x), np.int32(40)])
    # The executor is usable afterwards, and a uniform launch of the same kernel is fine.
    testk["natural"].launch("diverge_exit", (1, 1, 1), (64, 1, 1), [HC.ptr(x), np.int32(64)])
    assert (x == 2).all()


@pytest.mark.parametrize("order", ["natural", "shuffled"])
def test_threads_at_different_barriers_is_an_error(testk, order):
    x = np.zeros(4 * 32, np.float32)
    with pytest.raises(HostKernelError, match=r"kernel diverge_site, block \(2,0,0\).*different barriers"):
        testk[order].launch("diverge_site", (4, 1, 1), (32, 1, 1), [HC.ptr(x), np.int32(2)])
    testk[order].launch("diverge_site", (4, 1, 1), (32, 1, 1), [HC.ptr(x), np.int32(-1)])
    assert (x == 2).all()


def test_launch_checks_arguments(release):
    x = np.zeros(8, np.float32)
    with pytest.raises(HostKernelError, match="fill takes 3 arguments"):
        release.launch("fill", (1, 1, 1), (8, 1, 1), [HC.ptr(x), np.int32(8)])
    with pytest.raises(HostKernelError, match=r"argument 1 \(int n\) must be np.int32, not int"):
        release.launch("fill", (1, 1, 1), (8, 1, 1), [HC.ptr(x), 8, np.float32(1)])
    with pytest.raises(HostKernelError, match=r"argument 2 \(float v\) must be np.float32"):
        release.launch("fill", (1, 1, 1), (8, 1, 1), [HC.ptr(x), np.int32(8), np.float64(1)])
    with pytest.raises(HostKernelError, match=r"argument 0 .* must be a Python int"):
        release.launch("fill", (1, 1, 1), (8, 1, 1), [x, np.int32(8), np.float32(1)])
    with pytest.raises(HostKernelError, match="unknown kernel"):
        release.launch("nope", (1, 1, 1), (8, 1, 1), [])
    with pytest.raises(HostKernelError, match="invalid launch configuration"):
        release.launch("fill", (1, 1, 1), (2048, 1, 1), [HC.ptr(x), np.int32(8), np.float32(1)])
    with pytest.raises(HostKernelError, match="invalid launch configuration"):
        release.launch("fill", (0, 1, 1), (8, 1, 1), [HC.ptr(x), np.int32(8), np.float32(1)])
    assert not x.any()


def test_parameter_counts_match_the_parsed_signatures(release):
    for name, params in kernel_sources.signatures().items():
        assert getattr(release.lib, f"adv_nparams_{name}")() == len(params)


def test_a_removed_barrier_in_gemm_gives_wrong_numbers(host_cache):
    src = kernel_sources.sources()
    gemm = src["gemm.cu"]
    i = gemm.rindex("__syncthreads();")
    src["gemm.cu"] = gemm[:i] + gemm[i + len("__syncthreads();"):]
    hk = HostKernels("release", sources=src, cache_dir=host_cache)
    with pytest.raises(AssertionError, match="gemm"):
        HC.case_gemm(hk, np.random.default_rng(0), False, shapes=[(65, 129, 40)], epilogues=[0])


def test_release_build_keeps_denormals(release):
    """No -ffast-math: loading the library must not set flush-to-zero for the process."""
    tiny = np.float32(1e-38)
    assert tiny / np.float32(100) != 0


@pytest.mark.slow
def test_sanitizer_variants_need_their_runtime(host_cache):
    assert variant_env("release") == {} and variant_env("exact") == {}
    env = variant_env("asan")
    assert "libasan" in env["LD_PRELOAD"] and "detect_leaks=0" in env["ASAN_OPTIONS"]
    assert "libtsan" in variant_env("tsan")["LD_PRELOAD"]
    import ctypes
    if not hasattr(ctypes.CDLL(None), "__asan_init"):
        with pytest.raises(HostKernelError, match="preloaded"):
            HostKernels("asan", cache_dir=host_cache)


@pytest.mark.slow
def test_library_is_cached_and_keyed_by_sources(host_cache, tmp_path):
    a = build_library("release", cache_dir=host_cache)
    assert build_library("release", cache_dir=host_cache) == a
    src = kernel_sources.sources()
    src["loss.cu"] += "\n// a comment\n"
    b = build_library("release", sources=src, cache_dir=host_cache)
    assert b != a and b.exists()
    assert not [p for p in b.parent.parent.iterdir() if p.name.startswith(".build-")]


# ---- a damaged library cache -----------------------------------------------------------------
# The cached library is loaded only when it matches the size and SHA-256 recorded at build time;
# anything else is built again and put in its place (dlopen of a damaged file kills the process).

TINY = {"tiny.cu": r'''
#include "common.cuh"
extern "C" __global__ void twice(float* __restrict__ x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= 2.f;
}
'''}
# in a fresh interpreter, so that a library that kills its loader fails the test, not pytest
TWICE = f'''
import sys
import numpy as np
from advgraph_cupy.host import HostKernels
hk = HostKernels("release", sources={TINY!r}, cache_dir=sys.argv[1])
x = np.arange(10, dtype=np.float32)
hk.launch("twice", (1, 1, 1), (16, 1, 1), [x.ctypes.data, np.int32(10)])
print(*x.astype(int))
'''


def _damage_dir(lib):
    lib.unlink()
    lib.mkdir()
    (lib / "x").write_text("")


DAMAGE = {
    "truncated": lambda lib: lib.write_bytes(lib.read_bytes()[: lib.stat().st_size // 2]),
    "empty": lambda lib: lib.write_bytes(b""),
    "random bytes": lambda lib: lib.write_bytes(
        np.random.default_rng(0).bytes(lib.stat().st_size)),  # the size of the record
    "a directory": _damage_dir,
    "a link to /dev/null": lambda lib: (lib.unlink(), lib.symlink_to("/dev/null")),
    "a dangling link": lambda lib: (lib.unlink(), lib.symlink_to(lib.parent / "gone.so")),
    "a file where its directory was": lambda lib: (
        __import__("shutil").rmtree(lib.parent), lib.parent.write_text("not a directory")),
    "no record": lambda lib: (lib.parent / "libadvhost.json").unlink(),
    # a FIFO blocks whoever opens it to read: reading it would hang the command for ever
    "a FIFO for its record": lambda lib: ((lib.parent / "libadvhost.json").unlink(),
                                          __import__("os").mkfifo(lib.parent / "libadvhost.json")),
    "a FIFO for the library": lambda lib: (lib.unlink(), __import__("os").mkfifo(lib)),
}


@pytest.fixture(scope="module")
def tiny_build(host_cache):
    """A built library of one small kernel: copied into a fresh cache, then damaged."""
    return build_library("release", sources=TINY, cache_dir=host_cache).parent


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_cached_library_is_rebuilt(tiny_build, tmp_path, how):
    import os
    import shutil
    import subprocess

    cache = tmp_path / "kernels"
    final = cache / "host-kernels" / tiny_build.name
    shutil.copytree(tiny_build, final)
    DAMAGE[how](final / "libadvhost.so")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "backends"), str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", TWICE, str(cache)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.split() == [str(2 * i) for i in range(10)]
    lib = final / "libadvhost.so"
    assert lib.is_file() and not lib.is_symlink()
    assert build_library("release", sources=TINY, cache_dir=cache) == lib  # verified: kept
    assert sorted(p.name for p in final.parent.iterdir()) == [tiny_build.name]  # nothing left


def test_an_unusable_cache_directory_is_one_line_saying_what_to_do(tmp_path):
    from advgraph_cupy.host import HostBuildError

    cache = tmp_path / "kernels"
    cache.mkdir()
    (cache / "host-kernels").write_text("a file where the directory should be")
    with pytest.raises(HostBuildError) as e:
        build_library("release", sources=TINY, cache_dir=cache)
    msg = str(e.value)
    assert "\n" not in msg and str(cache / "host-kernels") in msg
    assert "writable directory" in msg and "ADVGRAPH_CACHE" in msg
