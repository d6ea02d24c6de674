"""Per-kernel registers, spills, shared memory and theoretical occupancy, without a GPU.

Every kernel file is compiled to PTX by NVRTC (kernel_sources.compile_ptx) and assembled by
`ptxas -v` (CUDA's assembler; no GPU needed), whose report gives each kernel's registers, spill
bytes and static shared memory. Occupancy follows the CUDA occupancy calculator for the architecture's
limits, at the block size the launch plans use.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import kernel_sources

# Per-SM limits (CUDA C Programming Guide, "Compute capabilities"; the occupancy calculator).
LIMITS = {
    "sm_80": dict(threads=2048, blocks=32, regs=65536, smem=167936, smem_block=166912),
    "sm_90": dict(threads=2048, blocks=32, regs=65536, smem=233472, smem_block=232448),
}
REG_UNIT = 256  # registers are allocated per warp in units of 256
SMEM_UNIT = 128
SMEM_RESERVED = 1024  # per block, taken by the system on sm_80 and later
BLOCK = {"gemm": 256, "gemm_batched": 256, "layernorm_fwd": 256, "layernorm_bwd": 256}  # threads per block by kernel; elementwise kernels use plan.BLOCK


@dataclass(frozen=True)
class KernelResources:
    kernel: str
    file: str
    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    smem: int
    block: int
    occupancy: float  # resident warps / the SM's maximum, by the limiting resource
    limiter: str


_FUNC = re.compile(r"Compiling entry function '(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def ptxas() -> str | None:
    return shutil.which("ptxas")


def occupancy(arch: str, registers: int, smem: int, block: int) -> tuple[float, str]:
    lim = LIMITS[arch]
    warps = -(-block // 32)
    per_warp = -(-max(registers, 1) * 32 // REG_UNIT) * REG_UNIT
    by = {
        "threads": lim["threads"] // (warps * 32),
        "blocks": lim["blocks"],
        "registers": lim["regs"] // (per_warp * warps),
    }
    if smem:
        by["shared memory"] = lim["smem"] // (-(-(smem + SMEM_RESERVED) // SMEM_UNIT) * SMEM_UNIT)
    limiter = min(by, key=lambda k: by[k])
    return min(by[limiter] * warps * 32, lim["threads"]) / lim["threads"], limiter


def measure(arch: str = "sm_90") -> list[KernelResources]:
    """ptxas -v over every kernel file; RuntimeError if ptxas is missing or fails."""
    from .plan import BLOCK as EW_BLOCK

    exe = ptxas()
    if exe is None:
        raise RuntimeError("ptxas not found (it comes with the CUDA toolkit)")
    out: list[KernelResources] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(kernel_sources.sources()):
            ptx = Path(tmp) / f"{name}.ptx"
            ptx.write_text(kernel_sources.compile_ptx(name, arch))
            res = subprocess.run([exe, "-v", f"-arch={arch}", str(ptx), "-o",
                                  str(Path(tmp) / f"{name}.cubin")], capture_output=True, text=True)
            if res.returncode:
                raise RuntimeError(f"ptxas failed on {name}: {res.stderr.strip()}")
            kernel, frame = None, None
            for line in res.stderr.splitlines():
                if m := _FUNC.search(line):
                    kernel = m.group(1)
                elif (m := _FRAME.search(line)) and kernel:
                    frame = tuple(int(v) for v in m.groups())
                elif (m := _USED.search(line)) and kernel and frame is not None:
                    regs, smem = int(m.group(1)), int(m.group(2) or 0)
                    block = BLOCK.get(kernel, EW_BLOCK)
                    occ, limiter = occupancy(arch, regs, smem, block)
                    out.append(KernelResources(kernel, name, regs, frame[1], frame[2], frame[0],
                                               smem, block, occ, limiter))
                    kernel, frame = None, None
    return out


def table(rows: list[KernelResources], arch: str) -> str:
    """A Markdown table of the measurements."""
    lines = [f"| kernel ({arch}) | file | registers | spill st/ld (B) | stack (B) | smem (B) | "
             "block | occupancy | limited by |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.file, r.kernel)):
        lines.append(f"| {r.kernel} | {r.file} | {r.registers} | {r.spill_stores}/{r.spill_loads}"
                     f" | {r.stack} | {r.smem} | {r.block} | {r.occupancy:.0%} | {r.limiter} |")
    return "\n".join(lines)
