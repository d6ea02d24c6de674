"""The kernel suite under ASan+UBSan and under TSan (each CUDA thread a TSan fiber), in
subprocesses with the sanitizer runtime preloaded (variant_env), failing on any report; and a
self-test that those checks still see: modified copies of the kernels with a removed
__syncthreads, an off-by-one bound, an out-of-bounds shared index and a plain += for atomicAdd
must each be reported."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import kernel_sources  # noqa: E402
from advgraph_cupy.host import available, build_library, variant_env  # noqa: E402
from advgraph_cupy.host.build import sanitizer_runtime  # noqa: E402


def _reason() -> str | None:
    why = available()
    if why:
        return why
    for rt in ("asan", "ubsan", "tsan"):
        if sanitizer_runtime(rt) is None:
            return f"g++ has no lib{rt}.so"
    return None


pytestmark = pytest.mark.skipif(_reason() is not None, reason=str(_reason()))


@pytest.fixture(scope="session")
def host_cache(host_kernel_cache):
    """The session's host-kernel cache (tests/conftest.py)."""
    return host_kernel_cache


def _run(variant: str, code: str, *argv: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, **variant_env(variant), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "backends"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


SUITE = "import runpy, sys; sys.argv = ['host_cases', *sys.argv[1:]]; " \
        "runpy.run_module('tests.backend.host_cases', run_name='__main__')"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["asan", "tsan"])
def test_kernel_suite_is_clean_under_sanitizers(variant, host_cache):
    build_library(variant, cache_dir=host_cache)  # (built here: a failure shows its log)
    p = _run(variant, SUITE, variant, str(host_cache))
    assert p.returncode == 0, f"{variant} run failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-6000:]}"
    assert f"passed under {variant}" in p.stdout
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr[-6000:]


# One launch of a modified kernel file: argv = variant, cache, file, old, new, case, kwargs.
FAULT = r"""
import json, sys
import numpy as np
from advgraph_cupy import kernel_sources
from advgraph_cupy.host import HostKernels
from tests.backend import host_cases as HC
variant, cache, name, old, new, case, kwargs = sys.argv[1:8]
src = kernel_sources.sources()
assert src[name].count(old) >= 1, (name, old)
src[name] = src[name].replace(old, new, 1)
hk = HostKernels(variant, sources=src, cache_dir=cache)
try:
    HC.CASES[case](hk, np.random.default_rng(0), variant != "release", **json.loads(kwargs))
except AssertionError as e:  # wrong numbers are not what these checks are about
    print("numbers differ:", str(e)[:200])
print("NOT DETECTED")
"""

FAULTS = {
    # (a) the barrier between a tile's use and the next tile's load, removed
    "removed_syncthreads": ("tsan", "gemm.cu", "        __syncthreads();\n    }\n\n", "    }\n\n",
                            "gemm", {"shapes": [[37, 70, 40]], "epilogues": [0]},
                            "ThreadSanitizer: data race"),
    # (b) off by one in an elementwise kernel
    "off_by_one": ("asan", "elementwise.cu", "if (i < n) y[i] = apply_act", "if (i <= n) y[i] = apply_act",
                   "act", {}, "heap-buffer-overflow"),
    # (c) an out-of-bounds shared-memory index in gemm
    "shared_oob": ("asan", "gemm.cu", "Bs[kb][n] = b;", "Bs[kb + 1][n] = b;",
                   "gemm", {"shapes": [[37, 70, 40]], "epilogues": [0]},
                   # ASan's report, or UBSan's object-size check, which sees it first now
                   # that the kernels pass their tiles to the GEMM body as pointers
                   "(global-buffer-overflow|out of bounds|insufficient space for an object)"),
    # (d) an off-by-one bound in im2col: one thread past the columns writes past their buffer
    # (d') the barrier after a block reduction's result is read, removed: the next reduction
    # overwrites the shared sums while other threads still read the total
    "norm_reduction_without_barrier": ("tsan", "norm.cu",
                                       "    __syncthreads();  // red is written again by the next sum\n",
                                       "", "batchnorm", {}, "ThreadSanitizer: data race"),
    "im2col_off_by_one": ("asan", "conv.cu", "if (i >= (size_t)rows * C * k * k * OH * OW) return;",
                          "if (i > (size_t)rows * C * k * k * OH * OW) return;", "conv", {},
                          "heap-buffer-overflow"),
    # (e) a plain += for atomicAdd in bce_d
    "non_atomic_accumulate": ("tsan", "loss.cu", "atomicAdd(&metrics[METRIC_D_LOSS], ",
                              "metrics[METRIC_D_LOSS] += (", "bce", {}, "ThreadSanitizer: data race"),
}


@pytest.mark.parametrize("fault", [pytest.param(f, marks=[] if f == "off_by_one" else [pytest.mark.slow])
                                   for f in sorted(FAULTS)])  # one in the fast tier
def test_sanitizers_catch_injected_faults(fault, host_cache):
    variant, name, old, new, case, kwargs, report = FAULTS[fault]
    assert old in kernel_sources.sources()[name]
    p = _run(variant, FAULT, variant, str(host_cache), name, old, new, case, json.dumps(kwargs))
    assert "NOT DETECTED" not in p.stdout, f"{fault} went unnoticed under {variant}:\n{p.stdout}\n{p.stderr[-3000:]}"
    assert p.returncode != 0
    assert re.search(report, p.stderr), p.stderr[-3000:]
