"""The host executor: the exact kernels/*.cu sources compiled as C++ by g++ and run on the CPU.

Every CUDA thread of a block is a fiber (scheduler.cpp); `__syncthreads()` is a real barrier
between them, a divergent barrier is an error naming kernel and block, and blocks and threads
can run in natural, reversed or shuffled order, so order dependence shows. Variants: "release"
(FMA contraction, close to NVRTC), "exact" (no contraction: bit-identical to the float32 NumPy
twins where those are exact), "asan" (ASan + UBSan) and "tsan" (each CUDA thread a TSan fiber;
the only happens-before edges are CUDA's). The sanitizer variants need their runtime preloaded
into the interpreter: run a subprocess with `variant_env(variant)`.

    hk = HostKernels("exact", order="shuffled", seed=3)
    hk.launch("fill", (4, 1, 1), (256, 1, 1), [x.ctypes.data, np.int32(n), np.float32(1.5)])

Pointer parameters take a Python int (a raw address, e.g. `arr.ctypes.data + off * arr.itemsize`),
scalar parameters a NumPy scalar of the declared type (np.int32, np.uint32, np.float32).
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from advgraph.errors import BackendError

from .. import kernel_sources
from .build import (VARIANTS, HostBuildError, build_library, compiler_version,
                    sanitizer_runtime)

__all__ = ["HostKernels", "HostKernelError", "HostBuildError", "build_library", "variant_env",
           "available", "VARIANTS", "ORDERS"]

ORDERS = {"natural": 0, "reversed": 1, "shuffled": 2}
_SANITIZER = {"asan": 1, "tsan": 2}

# C scalar type -> (the NumPy scalar type a launch takes, its struct code in an 8-byte slot).
_SCALARS: dict[str, tuple[type, str]] = {
    "int": (np.int32, "i4x"), "unsigned int": (np.uint32, "I4x"), "unsigned": (np.uint32, "I4x"),
    "float": (np.float32, "f4x"), "long long": (np.int64, "q"),
    "unsigned long long": (np.uint64, "Q"), "double": (np.float64, "d"),
}


class HostKernelError(BackendError):
    """A launch the scheduler refused or could not finish (e.g. a divergent barrier)."""


def available() -> str | None:
    """None when the host executor can be built here, else why not."""
    if compiler_version() is None:
        return "no g++ on PATH: the host executor compiles the kernels with g++"
    if os.uname().machine not in ("x86_64", "amd64"):
        return f"the host executor's fiber switch is x86-64 only (this is {os.uname().machine})"
    return None


def variant_env(variant: str) -> dict[str, str]:
    """Environment additions for a subprocess that loads the `variant` library into the real
    interpreter: the sanitizer runtime preloaded, reports fatal (non-zero exit). Empty for
    release/exact."""
    if variant in ("release", "exact"):
        return {}
    threads = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if variant == "asan":
        asan = sanitizer_runtime("asan")
        if asan is None:
            raise HostBuildError("g++ has no libasan.so")
        ubsan = sanitizer_runtime("ubsan")
        return {**threads, "LD_PRELOAD": ":".join(p for p in (asan, ubsan) if p),
                "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:"
                                "detect_odr_violation=0:allocator_may_return_null=0:"
                                "strict_init_order=0",
                "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87"}
    if variant == "tsan":
        tsan = sanitizer_runtime("tsan")
        if tsan is None:
            raise HostBuildError("g++ has no libtsan.so")
        # ignore_noninstrumented_modules: accesses that Python/NumPy make through intercepted
        # functions (memcpy...) are not ours; every access from our instrumented kernels is.
        return {**threads, "LD_PRELOAD": tsan,
                "TSAN_OPTIONS": "halt_on_error=1:exitcode=88:report_signal_unsafe=0:"
                                "ignore_noninstrumented_modules=1:report_thread_leaks=0:"
                                "report_destroy_locked=0"}
    raise ValueError(f"unknown host variant {variant!r} (one of {', '.join(VARIANTS)})")


@dataclass
class _Kernel:
    name: str
    params: list
    types: tuple            # per parameter: int (a pointer) or a NumPy scalar type
    fmt: str                # struct format of grid3, block3, then one 8-byte slot per argument
    buf: ctypes.Array       # the packed grid, block and argument values
    grid: int               # address of grid3 in buf
    block: int              # address of block3 in buf
    argv: ctypes.Array      # args[i] -> the i-th slot
    fn: object              # adv_launch_<name>


_LIBS: dict[str, ctypes.CDLL] = {}
_LIB_ORDER: dict[str, tuple] = {}   # library path -> (order, seed) it was last set to
_LOCK = threading.Lock()


def _load(path: Path, variant: str) -> ctypes.CDLL:
    key = str(path)
    with _LOCK:
        if key not in _LIBS:
            if variant in _SANITIZER:
                runtime = "__asan_init" if variant == "asan" else "__tsan_init"
                if not hasattr(ctypes.CDLL(None), runtime):
                    raise HostKernelError(
                        f"the {variant} host kernels need the {variant} runtime preloaded into "
                        f"the interpreter: run it in a subprocess with variant_env({variant!r})")
            try:  # (build_library verified the file: this is a library the loader refuses)
                _LIBS[key] = ctypes.CDLL(key)
            except OSError as e:
                raise HostBuildError(f"cupy host executor: cannot load {key}: {e}; delete "
                                     f"{path.parent} to have it built again") from None
        return _LIBS[key]


class HostKernels:
    """The kernels, compiled for the CPU (built on first use, cached), ready to launch."""

    def __init__(self, variant: str = "release", order: str = "natural", seed: int = 0, *,
                 sources: dict[str, str] | None = None, extra_sources: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None, cache_dir: str | Path | None = None):
        """sources: the kernel files (default kernels/*.cu); extra_sources: more files added to
        them (test kernels); headers: the included headers (default common.cuh + codes.cuh)."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        why = available()
        if why:
            raise HostBuildError(why)
        srcs = dict(kernel_sources.sources() if sources is None else sources)
        srcs.update(extra_sources or {})
        self.variant = variant
        self.path = build_library(variant, srcs, headers, cache_dir)
        self._key = str(self.path)
        self.lib = _load(self.path, variant)
        self.lib.adv_last_error.restype = ctypes.c_char_p
        self.lib.adv_last_error.argtypes = []
        self.lib.adv_set_order.argtypes = [ctypes.c_int, ctypes.c_ulonglong]
        self.lib.adv_set_order.restype = None
        if self.lib.adv_sanitizer() != _SANITIZER.get(variant, 0):
            raise HostKernelError(f"{self.path} was not built for {variant}")
        self.order, self.seed = order, int(seed)
        self._lock = threading.Lock()
        self._kernels: dict[str, _Kernel] = {}
        for text in srcs.values():
            for name, params in kernel_sources.kernels_of(text):
                self._kernels[name] = self._prepare(name, params)
        self.set_order(order, seed)

    def _prepare(self, name: str, params: list) -> _Kernel:
        fn = getattr(self.lib, f"adv_launch_{name}")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        fn.restype = ctypes.c_int
        nparams = getattr(self.lib, f"adv_nparams_{name}")()
        if nparams != len(params):
            raise HostKernelError(f"{name}: the library has {nparams} parameters, the parsed "
                                  f"signature {len(params)}")
        types, fmt = [], "=3I3I"
        for p in params:
            if p.is_pointer:
                types.append(int)
                fmt += "Q"
            elif p.ctype in _SCALARS:
                t, code = _SCALARS[p.ctype]
                types.append(t)
                fmt += code
            else:
                raise HostKernelError(f"{name}: no host launch for a {p.ctype!r} parameter")
        size = struct.calcsize(fmt)
        buf = (ctypes.c_char * max(size, 8))()
        base = ctypes.addressof(buf)
        argv = (ctypes.c_void_p * max(len(params), 1))(*[base + 24 + 8 * i for i in range(len(params))])
        return _Kernel(name, params, tuple(types), fmt, buf, base, base + 12, argv, fn)

    @property
    def kernels(self) -> dict[str, list]:
        return {k: v.params for k, v in self._kernels.items()}

    def set_order(self, order: str, seed: int = 0) -> None:
        """Block and thread order of the next launches: natural, reversed or shuffled(seed)."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        self.order, self.seed = order, int(seed)
        self.lib.adv_set_order(ORDERS[order], self.seed & 0xFFFFFFFFFFFFFFFF)
        _LIB_ORDER[self._key] = (id(self), order, self.seed)

    def launch(self, kernel: str, grid: Sequence[int], block: Sequence[int], args: Sequence) -> None:
        """Run one launch to completion: grid and block are (x, y, z); args as in the module doc."""
        k = self._kernels.get(kernel)
        if k is None:
            raise HostKernelError(f"unknown kernel {kernel!r}")
        if len(args) != len(k.types):
            raise HostKernelError(f"{kernel} takes {len(k.types)} arguments "
                                  f"({', '.join(p.name for p in k.params)}), got {len(args)}")
        for i, (a, t) in enumerate(zip(args, k.types)):
            if type(a) is not t:
                p = k.params[i]
                want = "a Python int (an address)" if t is int else f"np.{t.__name__}"
                raise HostKernelError(f"{kernel}: argument {i} ({p.ctype} {p.name}) must be {want}, "
                                      f"not {type(a).__name__}")
        with self._lock:
            if _LIB_ORDER.get(self._key, (None,))[0] != id(self):
                self.set_order(self.order, self.seed)
            try:
                struct.pack_into(k.fmt, k.buf, 0, *grid, *block, *args)
            except struct.error as e:
                raise HostKernelError(f"{kernel}: grid {tuple(grid)}, block {tuple(block)}: {e}") from None
            rc = k.fn(k.grid, k.block, k.argv)
            if rc:
                raise HostKernelError(self.lib.adv_last_error().decode(errors="replace"))
