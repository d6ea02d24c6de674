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

from . import codes

KERNEL_DIR = Path(__file__).parent / "kernels"
HEADERS = ("common.cuh",)  # in KERNEL_DIR; codes.cuh is generated (generated_headers)
ARCHS = ("sm_80", "sm_90")
OPTIONS = ("-std=c++17", "--use_fast_math")


class KernelCompileError(RuntimeError):
    pass


def sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(KERNEL_DIR.glob("*.cu"))}


def generated_headers() -> dict[str, str]:
    """Headers made from Python tables; a compiler finds them beside the kernels' own."""
    return {"codes.cuh": codes.header()}


def header_sources() -> dict[str, str]:
    return {**{h: (KERNEL_DIR / h).read_text() for h in HEADERS}, **generated_headers()}


def expanded_source(name: str) -> str:
    """One kernel file with its #include "…" of our headers inlined (each once): a single
    translation unit for cupy.RawModule, which then needs no include path."""
    heads = header_sources()
    done: set[str] = set()

    def expand(text: str) -> str:
        def sub(m: re.Match) -> str:
            h = m.group(1)
            if h in done:
                return ""
            done.add(h)
            return expand(heads[h].replace("#pragma once", ""))
        return re.sub(r'^\s*#include\s+"([^"]+)"\s*$', sub, text, flags=re.M)

    return expand(sources()[name])


@dataclass(frozen=True)
class Param:
    ctype: str  # e.g. "const float*", "int", "float", "unsigned int"
    name: str

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")


_SIG = re.compile(r'extern\s+"C"\s+__global__\s+(?:void\s+)?(?:__launch_bounds__\([^)]*\)\s*)?'
                  r'(?:void\s+)?(\w+)\s*\(([^)]*)\)', re.S)


def kernels_of(text: str) -> list[tuple[str, list[Param]]]:
    """The kernels one source defines, in order, with their parsed parameters."""
    out = []
    for name, params in _SIG.findall(text):
        plist = []
        for raw in params.split(","):
            raw = " ".join(raw.replace("__restrict__", "").split())
            ctype, pname = raw.rsplit(" ", 1)
            if pname.startswith("*"):
                ctype, pname = ctype + "*", pname[1:]
            plist.append(Param(ctype.replace(" *", "*"), pname))
        out.append((name, plist))
    return out


@lru_cache(maxsize=1)
def signatures() -> dict[str, list[Param]]:
    """Every kernel's parameters, parsed from the sources (the launch plan is checked
    against these; read once per process)."""
    return {name: params for text in sources().values() for name, params in kernels_of(text)}


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
    """Options for cupy.RawModule at run time over expanded_source() (the same flags)."""
    return OPTIONS
