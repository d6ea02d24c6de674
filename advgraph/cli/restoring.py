"""A trained run read back for `sample`, `interpolate` and `eval`: its checkpoint restored on
the device asked for, and the sizes of a command's samples held against the memory there."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .common import open_run, warn
from .progress import LoadDisplay


def restore(run: str, runs_dir: Optional[Path], checkpoint: Optional[int], device: str,
            data_root: Optional[str], backend: Optional[str] = None, raw: bool = False):
    """The run's checkpoint in a trainer of `backend` (default: the one it trained on) on
    `device` (`auto` resolved for that backend), G's EMA weights where the run keeps them
    unless `raw`; the data, when a command asks for it, loads with a progress bar and
    warnings on rank 0."""
    from ..backend_protocol import resolve_device
    from ..errors import BackendError, LoweringError
    from ..run.restore import restore_run

    r = open_run(run, runs_dir)
    trained_on = r.info().get("backend") or "torch"
    device = resolve_device(device, backend or trained_on)
    try:
        restored = restore_run(r, checkpoint, backend=backend, device=device,
                               data_root=data_root, warn=warn,
                               report=LoadDisplay() if current_rank() == 0 else None, raw=raw)
    except (BackendError, LoweringError) as e:
        if backend is not None or trained_on == "torch":
            raise
        # the run's own backend is the default, and building it (its kernels) failed here
        raise BackendError(f"{e}\n(run {r.name} trained on {trained_on}, its default here; "
                           "checkpoints are backend-neutral: --backend torch reads it with "
                           "torch)") from None
    if current_rank() == 0:
        warn_raw(restored)
    return restored


def warn_raw(restored) -> None:
    """--raw asked of a run without EMA weights: said, as it changes nothing."""
    if restored.raw and restored.program.objective.ema is None:
        warn(f"--raw changes nothing: run {restored.run.name} keeps no moving average of G's "
             "weights (training.regularizers.ema)")


def current_rank() -> int:
    """This process's rank when launched as one of --nproc's ranks (0 otherwise): its errors
    say which rank they come from."""
    from ..distributed import world_from_env
    from ..errors import UsageError

    try:
        return world_from_env()[0]
    except UsageError:  # reported as an error line by `ranks`, inside the command's user_errors
        return 0


# Lower bounds on the float32 copies of the samples a command holds at its peak (see
# memory.generation_bytes): G's batches and their concatenation (2), plus for a figure the
# float64 pixels and their scaling (4) and the grid image (2); for --npz the file's bytes and
# their copy (2); for eval the Parzen centres in float32 and float64 and centred (4), and per
# sample a row of the distance block (2,048 points) and of the kernel terms (128), in float32.
FIGURE_COPIES, NPZ_COPIES, EVAL_COPIES = 8, 4, 6
EVAL_PER_SAMPLE = 4 * (2048 + 128)


def fits(restored, option: str, what: str, n: int, copies: int, per_sample: int = 0) -> None:
    """Refuse, before G draws anything, `n` samples that cannot fit in the memory available
    (memory.check_fits), naming `option`."""
    from math import prod

    from .. import memory

    size = prod(restored.program.data_shape)
    memory.check_fits(option, f"{what}: {n:,} samples of {size:,} values need",
                      memory.generation_bytes(restored.program, n, copies, per_sample))
