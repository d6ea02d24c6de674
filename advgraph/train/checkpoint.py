"""Writing a training session's checkpoint (reading one back is advgraph.run's: checkpoints.py, restore.py)."""

from __future__ import annotations

import numpy as np

from ..errors import TrainingDiverged
from ..run.directory import RunDir
from ..run.session import Session
from .provenance import versions


def save(run: RunDir, s: Session, extra_kept: int = 0) -> None:
    """Checkpoint (keeping `extra_kept` more than the spec's keep_checkpoints: a sweep prunes
    once every member has written its own). Collective when distributed: parameters are identical on every rank, so each
    checks them itself; every rank's RNG state is gathered; rank 0 alone writes."""
    ctx = s.ctx
    tensors = s.trainer.state_dict()
    if ctx.dist is not None:
        rngs = ctx.dist.gather({k: v for k, v in tensors.items() if k.startswith("rng/")})
        if not ctx.is_main:
            tensors = {k: v for k, v in tensors.items() if not k.startswith("rng/")}
        else:
            for part in rngs or []:
                tensors.update(part)
    bad = [n for n, a in tensors.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    if bad:
        raise TrainingDiverged(
            f"step {s.step}: training diverged: non-finite values in {bad[0]}"
            + (f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else "")
            + ", not saved")
    tensors["data/order"] = s.stream.order.astype(np.int64)
    state = {"step": s.step, "epoch": s.stream.epoch, "stream": s.stream.state(),
             "updates": dict(s.updates), "seed": s.spec.training.seed, "backend": ctx.backend,
             "device": ctx.device, "elapsed_s": round(s.elapsed, 3),
             "versions": versions(ctx.backend), "world_size": ctx.world,
             # the resolved spec it was trained with (as nanoGPT embeds its config): a resume
             # refuses a spec.yaml edited outside the keys that may change
             "spec": s.spec.model_dump(mode="json")}
    if ctx.is_main:
        run.save_checkpoint(s.step, tensors, state, keep=s.spec.training.keep_checkpoints + extra_kept)
