"""Algorithm 1 over the Backend protocol: schedules, data order, checkpoints, metrics.

One *step* is one iteration of Algorithm 1: k D-updates, each on a fresh minibatch of m
examples and m noise samples, then one G-update on fresh noise. An *epoch* is one pass over the
(shuffled) training set by the D-updates' minibatches.

Import from the modules. The package itself imports none of them, so that reading a checkpoint
back (`restore`, for sample and eval) never loads the training loop; `advgraph.train.NAME`
still works for the names below, each loaded from its module when first asked for.

- `schedule`: per-update learning rates and momenta (`Schedule`)
- `stream`: the shuffled data order (`DataStream`)
- `rng`: the random streams derived from the seed (`seeds`, `rank_seed`)
- `context`: backend, device and process group (`Context`)
- `session`: a run's working set built from a spec (`Session`, `build_session`, `make_trainer`)
- `hooks`: what a front end is told while training (`TrainingHooks`, `StartInfo`, `NO_HOOKS`)
- `loop`: the training loop (`run_loop`, `Outcome`); `monitor`: Parzen monitoring;
  `checkpoint`: saving; `interrupt`: Ctrl-C handling
- `starting`, `resuming`: the entry points the CLI calls (`start`, `resume`)
- `restore`: a checkpoint back into a trainer (`restore_run`, `RestoredRun`) or a session
- `provenance`: versions and owner recorded in run.json and checkpoints
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "Schedule": "schedule", "DataStream": "stream", "Seeds": "rng", "seeds": "rng",
    "rank_seed": "rng", "Context": "context", "Session": "session",
    "build_session": "session", "make_trainer": "session", "TrainingHooks": "hooks",
    "StartInfo": "hooks", "NoHooks": "hooks", "NO_HOOKS": "hooks", "Outcome": "loop",
    "run_loop": "loop", "start": "starting", "resume": "resuming", "RESUMABLE": "resuming",
    "RestoredRun": "restore", "restore_run": "restore", "validate_and_restore": "restore",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
