"""CupyBackend: the backend plugin (what it lowers and trains, its devices) that builds
trainers (trainer.CupyTrainer) and a sweep's batched members (members.CupyMembers).

`--device cuda[:N]` runs the kernels through NVRTC and cupy with each training iteration
captured as a CUDA graph; `--device cpu` runs the very same kernel sources compiled as C++ on
the CPU, for testing and debugging the kernels without a GPU (slow: not for real training).
"""

from __future__ import annotations

from advgraph.backend_protocol import OptimConfig, check_supported, why_not_one_program
from advgraph.errors import BackendError
from advgraph.ir import Op, Program
from advgraph.ir.objective import LOSSES

from . import lowering as L
from .trainer import HOST_WRITTEN, CupyTrainer

__all__ = ["HOST_WRITTEN", "CupyBackend", "CupyTrainer"]

_DOUBLE_BACKWARD = ("it needs gradients of gradients (the double backward of every op), which "
                    "the cupy kernels do not implement; use --backend torch")
PENALTY_REASON = {"gradient_penalty": _DOUBLE_BACKWARD, "r1": _DOUBLE_BACKWARD}


class CupyBackend:
    name = "cupy"
    distributed = False
    about = ("our own CUDA kernels: --device cuda[:N] (NVRTC, each iteration one CUDA graph) or "
             "--device cpu (the same kernels compiled as C++ and run on the CPU: for testing and "
             "debugging the kernels without a GPU, not for speed)")

    def available(self) -> tuple[bool, str]:
        from .host import available as host_missing

        cuda, host_why = _cuda_count(), host_missing()
        if not cuda and host_why:
            return False, f"no CUDA device (cupy finds none), and {host_why}"
        if not cuda:
            return True, "no CUDA device here: --device cpu only"
        return True, "" if host_why is None else f"--device cuda only: {host_why}"

    def cuda_available(self) -> bool:
        return _cuda_count() > 0

    def unsupported(self, op: Op) -> str | None:
        return L.unsupported(op)

    def unsupported_feature(self, feature: str) -> str | None:
        """Every loss, spectral norm and EMA; not the gradient penalties."""
        if feature in PENALTY_REASON:
            return PENALTY_REASON[feature]
        if feature in ("spectral_norm", "ema") or feature in [f"loss:{x}" for x in LOSSES]:
            return None
        return "not implemented by the cupy kernels"

    def memory_report(self, program: Program, batch_size: int,
                      optim: dict[str, OptimConfig]) -> list[str]:
        """The training plan's device memory (data set excluded), with scratch buffers
        reused by liveness and without: what the runtime allocates."""
        from .memory import memory_bytes

        b = memory_bytes(L.lower(program, batch_size, optim), HOST_WRITTEN)
        mib = {k: v / 2**20 for k, v in b.items()}
        return [f"cupy device memory to train, m={batch_size}, data set excluded: "
                f"{mib['state'] + mib['reused']:,.1f} MiB",
                f"  state {mib['state']:,.1f} MiB + scratch {mib['reused']:,.1f} MiB, reused by "
                f"liveness ({mib['scratch']:,.1f} without)"]

    def build(self, program: Program, device: str, seed: int, batch_size: int,
              optim: dict[str, OptimConfig], dist=None) -> "CupyTrainer":
        if dist is not None:
            raise BackendError("the cupy backend trains on one device only")
        check_supported(self, program)
        return CupyTrainer(program, _executor(device), seed, batch_size, optim)

    def build_members(self, programs: list[Program], device: str, seeds: list[int],
                      batch_size: int, optim: list[dict[str, OptimConfig]]):
        """A sweep's members as one program (members.py), or None where they cannot share one."""
        from .members import CupyMembers

        if not programs or why_not_one_program(programs, optim) is not None:
            return None  # (the sweep has checked every program against this backend)
        return CupyMembers(programs[0], _executor(device), list(seeds), batch_size, optim[0])


def _cuda_count() -> int:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


def _executor(device: str):
    from .runtime import CudaExecutor, HostExecutor

    if device == "cpu":
        from .host import available as host_missing

        why = host_missing()
        if why:
            raise BackendError(f"cupy: `device` cpu runs the kernels as C++ on the host, but {why}")
        return HostExecutor()
    if device == "cuda" or device.startswith("cuda:"):
        index = device[5:]
        if device != "cuda" and not (index.isdigit() and index.isascii()):
            raise BackendError(f"cupy: bad device {device!r} (use cpu, cuda or cuda:N)")
        n = _cuda_count()
        if n == 0:
            raise BackendError(f"cupy: device {device!r} requested but no CUDA device is "
                               "available (cupy finds none); `device` cpu runs the kernels on "
                               "the host")
        if int(index or 0) >= n:
            raise BackendError(f"cupy: device {device!r} does not exist ({n} CUDA device(s))")
        return CudaExecutor(int(index or 0))
    raise BackendError(f"cupy: device {device!r} is not supported (use cpu, cuda or cuda:N)")
