"""Every kernel's registers, spills and shared memory for sm_90 from `ptxas -v` (no GPU needed):
no kernel may spill, and the occupancy arithmetic matches hand-worked cases."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "backends"))
from advgraph_cupy import kernel_sources, resources  # noqa: E402


def _reason() -> str | None:
    if resources.ptxas() is None:
        return "ptxas not found (CUDA toolkit)"
    try:
        kernel_sources._load_nvrtc().getVersion()
    except Exception as e:
        return f"NVRTC not available here ({type(e).__name__}); install .[kernels]"
    return None


@pytest.mark.skipif(_reason() is not None, reason=str(_reason()))
def test_no_kernel_spills_on_sm90():
    rows = resources.measure("sm_90")
    assert {r.kernel for r in rows} == set(kernel_sources.signatures())
    spilling = [(r.kernel, r.spill_stores, r.spill_loads) for r in rows
                if r.spill_stores or r.spill_loads]
    assert not spilling, spilling
    gemm = next(r for r in rows if r.kernel == "gemm")
    assert gemm.smem == 2 * 16 * 68 * 4  # As and Bs tiles, padded rows
    assert gemm.occupancy >= 0.25  # at least 2 blocks of 256 threads per SM


def test_occupancy_arithmetic():
    # 74 registers → 80 per thread → 2,560 per warp, 8 warps: 20,480 a block → 3 blocks/SM
    assert resources.occupancy("sm_90", 74, 8704, 256) == (3 * 256 / 2048, "registers")
    assert resources.occupancy("sm_90", 32, 0, 256) == (1.0, "threads")
    # 100 KiB of shared memory (+ 1 KiB reserved) a block: two fit in 228 KiB
    assert resources.occupancy("sm_90", 16, 100 * 1024, 128) == (2 * 128 / 2048, "shared memory")
