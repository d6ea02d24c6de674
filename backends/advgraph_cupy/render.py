"""Kernel sources, their C signatures, and NVRTC compilation.

`compile_ptx` uses CuPy's low-level `cupy.cuda.nvrtc` bindings, which need only the NVRTC
library (the `nvidia-cuda-nvrtc-cu12` wheel) and no GPU: that is what lets every machine check
that every kernel compiles for the architectures we ship for.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

KERNEL_DIR = Path(__file__).parent / "kernels"
HEADERS = ("common.cuh",)
ARCHS = ("sm_80", "sm_90")
OPTIONS = ("-std=c++17", "--use_fast_math")

# Epilogue / activation codes: the #defines of common.cuh.
EPILOGUES = {"none": 0, "bias": 1, "relu": 2, "sigmoid": 3, "tanh": 4, "leaky_relu": 5}


class KernelCompileError(RuntimeError):
    pass


def sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(KERNEL_DIR.glob("*.cu"))}


def header_sources() -> dict[str, str]:
    return {h: (KERNEL_DIR / h).read_text() for h in HEADERS}


@dataclass(frozen=True)
class Param:
    ctype: str  # e.g. "const float*", "int", "float", "unsigned int"
    name: str

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")


_SIG = re.compile(r'extern\s+"C"\s+__global__\s+(?:void\s+)?(?:__launch_bounds__\([^)]*\)\s*)?'
                  r'(?:void\s+)?(\w+)\s*\(([^)]*)\)', re.S)


def signatures() -> dict[str, list[Param]]:
    """Every kernel's parameters, parsed from the sources (the launch plan is checked
    against these)."""
    out: dict[str, list[Param]] = {}
    for text in sources().values():
        for name, params in _SIG.findall(text):
            plist = []
            for raw in params.split(","):
                raw = " ".join(raw.replace("__restrict__", "").split())
                ctype, pname = raw.rsplit(" ", 1)
                if pname.startswith("*"):
                    ctype, pname = ctype + "*", pname[1:]
                plist.append(Param(ctype.replace(" *", "*"), pname))
            out[name] = plist
    return out


@lru_cache(maxsize=1)
def _load_nvrtc():
    """Make the NVRTC shared library findable for CuPy: the pip wheel's copy when present."""
    try:
        import nvidia.cuda_nvrtc as wheel  # type: ignore[import-not-found]

        libdir = os.path.join(list(wheel.__path__)[0], "lib")
        for so in sorted(glob.glob(os.path.join(libdir, "libnvrtc*.so*"))):
            ctypes.CDLL(so, mode=ctypes.RTLD_GLOBAL)
    except ImportError:
        pass  # a CUDA toolkit on the library path will do
    from cupy.cuda import nvrtc

    return nvrtc


def compile_ptx(name: str, arch: str) -> str:
    """PTX for one kernel file, through NVRTC; KernelCompileError with the log on failure."""
    nvrtc = _load_nvrtc()
    src = sources()[name]
    headers = header_sources()
    prog = nvrtc.createProgram(src, name, [h.encode() for h in headers.values()],
                               [k.encode() for k in headers])
    try:
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", *OPTIONS])
        except Exception as e:  # NVRTCError: the log says why
            raise KernelCompileError(f"{name} ({arch}): {e}\n{nvrtc.getProgramLog(prog)}") from None
        ptx = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


def module_options() -> tuple[str, ...]:
    """Options for cupy.RawModule at run time (same flags, headers from KERNEL_DIR)."""
    return (*OPTIONS, f"-I{KERNEL_DIR}")
