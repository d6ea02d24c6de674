"""One runtime, three executors of the same launch plans.

An executor knows how to allocate a buffer, hand a kernel a view of it, copy to and from the
host, launch a kernel, and capture a list of launches for replay:
- CudaExecutor: NVRTC-compiled kernels through cupy.RawModule, cupy arrays, a phase captured as
  a CUDA graph and replayed with one launch.
- HostExecutor: the same .cu files compiled as C++ (host/), run on the CPU; "capture" records
  the bound launches. Optional guard zones (a signalling-NaN pattern around every buffer) catch
  writes outside a buffer without a sanitizer.
- TwinExecutor: the kernels' NumPy twins (twins.py), the oracle for the other two.

The Runtime owns the named buffers of one or more plans and the captured phases; everything
else (which phase to run when, what to upload) is the trainer's. A plan's scratch buffers are
views into one arena per dtype, laid out by liveness (memory.py): the launches are relocated
into the arenas when a phase is checked and bound, the plans themselves stay as lowered.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from advgraph.errors import BackendError

from .footprint import check_plan
from .memory import Layout, eligible, layout, relocate
from .plan import Buf, Launch, Plan, bind_scalars


class Executor(Protocol):
    name: str

    def alloc(self, dtype: str, size: int) -> Any: ...

    def view(self, array: Any, buf: Buf) -> Any:
        """The kernel argument for the view `buf` of `array`."""

    def upload(self, array: Any, host: np.ndarray, offset: int = 0) -> None: ...

    def download(self, array: Any, offset: int, size: int) -> np.ndarray: ...

    def launch(self, kernel: str, grid: tuple[int, int, int], block: tuple[int, int, int],
               args: Sequence[Any]) -> None: ...

    def capture(self, bound: list[tuple[str, tuple, tuple, tuple]]) -> Any: ...

    def replay(self, captured: Any) -> None: ...


class _HostMemory:
    """Buffers in this process's memory (NumPy arrays); "capture" records the bound launches."""

    def upload(self, array: np.ndarray, host: np.ndarray, offset: int = 0) -> None:
        flat = np.ascontiguousarray(host, dtype=array.dtype).reshape(-1)
        array[offset: offset + flat.size] = flat

    def download(self, array: np.ndarray, offset: int, size: int) -> np.ndarray:
        return array[offset: offset + size].copy()

    def capture(self, bound):
        return list(bound)

    def replay(self, captured) -> None:
        for launch in captured:
            self.launch(*launch)  # type: ignore[attr-defined]


# ---- NumPy twins -------------------------------------------------------------------------------


class TwinExecutor(_HostMemory):
    name = "twins"

    def __init__(self) -> None:
        from .twins import KERNELS

        self.kernels = KERNELS

    def alloc(self, dtype: str, size: int) -> np.ndarray:
        return np.zeros(size, dtype)

    def view(self, array: np.ndarray, buf: Buf) -> np.ndarray:
        return array[buf.offset: buf.offset + buf.extent] if buf.extent else array[buf.offset:]

    def launch(self, kernel, grid, block, args) -> None:
        self.kernels[kernel](*[a.item() if isinstance(a, np.generic) else a for a in args])



# ---- the host executor -------------------------------------------------------------------------

# Guard zones: this many elements on each side of every buffer, filled with a pattern no kernel
# writes (a signalling NaN for floats, and its bytes for the other types).
GUARD = 64
_GUARD_BYTE = np.frombuffer(np.array([0x7FA5A5A5], np.uint32).tobytes(), np.uint8)


class GuardViolation(BackendError):
    """A kernel wrote outside its buffer (seen in a guard zone)."""


class HostExecutor(_HostMemory):
    """`variant`: release | exact | asan | tsan (host/ builds); `order`: natural | reversed |
    shuffled thread and block order; `guard`: check the guard zones after every launch."""

    name = "host"

    def __init__(self, variant: str = "release", order: str = "natural", seed: int = 0,
                 guard: bool = False, kernels=None):
        from .host import HostKernels

        # `kernels`: a HostKernels of one's own (e.g. built from modified sources, in tests)
        self.kernels = kernels or HostKernels(variant=variant, order=order, seed=seed)
        self.guard = guard
        self._owners: list[tuple[np.ndarray, np.ndarray]] = []  # (whole allocation, view)
        self._names: dict[int, str] = {}

    def alloc(self, dtype: str, size: int) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        if not self.guard:
            return np.zeros(max(size, 1), dtype)[:size]
        raw = np.empty((size + 2 * GUARD) * itemsize, np.uint8)
        raw[:] = np.resize(_GUARD_BYTE, raw.size)
        whole = raw.view(dtype)
        view = whole[GUARD: GUARD + size]
        view[...] = 0
        self._owners.append((whole, view))
        return view

    def name_buffer(self, array: np.ndarray, name: str) -> None:
        self._names[array.__array_interface__["data"][0]] = name

    def view(self, array: np.ndarray, buf: Buf) -> int:
        return array.__array_interface__["data"][0] + buf.offset * array.itemsize

    def launch(self, kernel, grid, block, args) -> None:
        self.kernels.launch(kernel, grid, block, args)
        if self.guard:
            self.check_guards(kernel)


    def check_guards(self, after: str = "") -> None:
        for whole, view in self._owners:
            raw = whole.view(np.uint8)
            g = GUARD * whole.itemsize
            pattern = np.resize(_GUARD_BYTE, g)
            for side, zone in (("before", raw[:g]), ("after", raw[raw.size - g:])):
                if not np.array_equal(zone, pattern):
                    name = self._names.get(view.__array_interface__["data"][0], "a buffer")
                    raise GuardViolation(f"{after}: wrote outside {name} ({side} its "
                                         f"{view.size} elements)")


# ---- CUDA --------------------------------------------------------------------------------------


class CudaExecutor:
    """`graphs=False` launches a phase's kernels one by one instead of replaying its CUDA
    graph (to check that the two agree)."""

    name = "cuda"

    def __init__(self, device: int = 0, graphs: bool = True):
        import cupy

        from .kernel_sources import expanded_source, kernels_of, module_options, sources

        self.cp = cupy
        self.device = cupy.cuda.Device(device)
        self.device.use()
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.graphs = graphs
        self.fns: dict[str, Any] = {}
        for name, text in sources().items():  # compiled and loaded now, never during a capture
            mod = cupy.RawModule(code=expanded_source(name), options=module_options())
            for kernel, _ in kernels_of(text):
                self.fns[kernel] = mod.get_function(kernel)

    def alloc(self, dtype: str, size: int):
        # zeroed on our (non-blocking) stream: on the null stream the zeroing would be
        # unordered with the uploads and launches that follow on ours
        with self.device, self.stream:
            return self.cp.zeros(size, dtype)

    def view(self, array, buf: Buf):
        return array[buf.offset: buf.offset + buf.extent] if buf.extent else array[buf.offset:]

    def upload(self, array, host: np.ndarray, offset: int = 0) -> None:
        flat = np.ascontiguousarray(host, dtype=array.dtype).reshape(-1)
        array[offset: offset + flat.size].set(flat, stream=self.stream)

    def download(self, array, offset: int, size: int) -> np.ndarray:
        out = array[offset: offset + size].get(stream=self.stream)
        self.stream.synchronize()
        return out

    def launch(self, kernel, grid, block, args) -> None:
        with self.stream:
            self.fns[kernel](grid, block, tuple(args))

    def capture(self, bound):
        if not self.graphs:
            return list(bound)
        with self.stream:
            self.stream.begin_capture()
            try:
                for kernel, grid, block, args in bound:
                    self.fns[kernel](grid, block, tuple(args))
            finally:
                graph = self.stream.end_capture()
        return graph

    def replay(self, captured) -> None:
        if isinstance(captured, list):
            for launch in captured:
                self.launch(*launch)
        else:
            captured.launch(stream=self.stream)


# ---- the runtime -------------------------------------------------------------------------------


class Runtime:
    """`reuse`: scratch buffers share per-dtype arenas by liveness (memory.py); None: on unless
    ADVGRAPH_CUPY_REUSE=0 or the executor checks guard zones (those guard each buffer, so each
    keeps an allocation of its own). `host_written`: scratch buffers the host may upload
    before a phase (live from its start)."""

    def __init__(self, executor: Executor, reuse: bool | None = None,
                 host_written: tuple[str, ...] = ()):
        self.ex = executor
        self.arrays: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}
        self.dtypes: dict[str, str] = {}
        self._captured: dict[Any, Any] = {}
        if reuse is None:
            reuse = os.environ.get("ADVGRAPH_CUPY_REUSE", "1") != "0" and \
                not getattr(executor, "guard", False)
        self.reuse, self.host_written = reuse, host_written
        self.layout = Layout()  # every plan's placed buffers, in one arena per plan and dtype
        self._plans = 0

    def _place(self, plan: Plan) -> None:
        """Lay out the plan's scratch buffers not allocated yet in arenas of their own."""
        fresh = [n for n in eligible(plan) if n not in self.arrays and n not in self.layout.slots]
        if not fresh:
            return
        lay = layout(plan, self.host_written, fresh, prefix=f"arena{self._plans}")
        self._plans += 1
        for name, spec in lay.arenas.items():
            arr = self.ex.alloc(spec.dtype, spec.size)
            if hasattr(self.ex, "name_buffer"):
                self.ex.name_buffer(arr, name)
            self.arrays[name], self.sizes[name], self.dtypes[name] = arr, spec.size, spec.dtype
        self.layout.slots.update(lay.slots)
        self.layout.sizes.update(lay.sizes)
        self.layout.arenas.update(lay.arenas)

    def ensure(self, plan: Plan, sizes: dict[str, int] | None = None) -> None:
        """Allocate the plan's buffers not allocated yet; grow those written by the host
        (keeping their contents). Growing drops every captured phase (they hold pointers)."""
        sizes = sizes or {}
        if self.reuse:
            self._place(plan)
        for name, spec in plan.buffers.items():
            if name in self.layout.slots:
                if spec.size > self.layout.sizes[name]:
                    raise AssertionError(f"buffer {name} (scratch) cannot be resized")
                continue
            size = sizes.get(name, max(spec.size, self.sizes.get(name, 0)))
            if name in self.arrays:
                if self.dtypes[name] != spec.dtype:
                    raise AssertionError(f"buffer {name}: {self.dtypes[name]} vs {spec.dtype}")
                if self.sizes[name] == size:
                    continue
                if spec.role not in ("host_in", "host_out"):
                    raise AssertionError(f"buffer {name} ({spec.role}) cannot be resized")
                old = self.ex.download(self.arrays[name], 0, min(self.sizes[name], size))
                self._captured.clear()
            else:
                old = None
            arr = self.ex.alloc(spec.dtype, size)
            if hasattr(self.ex, "name_buffer"):
                self.ex.name_buffer(arr, name)
            if old is not None and old.size:
                self.ex.upload(arr, old)
            self.arrays[name], self.sizes[name], self.dtypes[name] = arr, size, spec.dtype

    def bind(self, launches: list[Launch]) -> list[tuple[str, tuple, tuple, tuple]]:
        out = []
        for launch in bind_scalars(relocate(launches, self.layout), self.sizes.get("order", 0)):
            args = tuple(self.ex.view(self.arrays[a.name], a) if isinstance(a, Buf) else a
                         for a in launch.args)
            out.append((launch.kernel, launch.grid, launch.block, args))
        return out

    def phase(self, key: Any, plan: Plan, launches: Callable[[], list[Launch]]) -> Any:
        """The captured phase `key`: on first use, `launches()` is checked against the real
        buffer sizes and captured; later uses replay it without building the list again."""
        got = self._captured.get(key)
        if got is None:
            built = relocate(launches(), self.layout)
            check_plan(replace(plan, buffers={**plan.buffers, **self.layout.arenas}), self.sizes,
                       {str(key): built})
            got = self._captured[key] = self.ex.capture(self.bind(built))
        return got

    def run(self, key: Any, plan: Plan, launches: Callable[[], list[Launch]]) -> None:
        self.ex.replay(self.phase(key, plan, launches))

    def _where(self, name: str) -> tuple[Any, int, int]:
        """The array holding a buffer, the buffer's first element in it, and its size."""
        if name in self.layout.slots:
            arena, base = self.layout.slots[name]
            return self.arrays[arena], base, self.layout.sizes[name]
        return self.arrays[name], 0, self.sizes[name]

    def upload(self, name: str, host: np.ndarray, offset: int = 0) -> None:
        if name in self.layout.slots and name not in self.host_written:
            raise AssertionError(f"{name} shares memory by liveness: uploading into it needs "
                                 "it in the runtime's host_written")
        array, base, size = self._where(name)
        if offset + np.size(host) > size:
            raise AssertionError(f"{np.size(host)} elements at {offset} overflow {name} ({size})")
        self.ex.upload(array, host, base + offset)

    def download(self, name: str, offset: int = 0, size: int | None = None) -> np.ndarray:
        array, base, whole = self._where(name)
        size = whole - offset if size is None else size
        return self.ex.download(array, base + offset, size)
