"""Registers, spills, shared memory and theoretical occupancy of every CuPy-backend kernel,
from NVRTC's PTX and `ptxas -v` (no GPU needed).

    python bench/kernel_resources.py [--arch sm_90]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))
from advgraph_cupy import resources  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sm_90", choices=sorted(resources.LIMITS))
    args = ap.parse_args()
    rows = resources.measure(args.arch)
    print(resources.table(rows, args.arch))
    spills = [r.kernel for r in rows if r.spill_stores or r.spill_loads]
    print(f"\n{len(rows)} kernels, {len(spills)} spilling" + (f": {', '.join(spills)}" if spills
                                                             else ""))


if __name__ == "__main__":
    main()
