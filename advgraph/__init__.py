"""advgraph: generative adversarial nets declared in YAML, compiled to a typed graph.

The Python API (advgraph/api.py): `advgraph.open_run(path_or_name)` returns a `Run` with
`generate(n, seed=…)`, `generator()` (a torch.nn.Module), `spec`, `step` and `checkpoints`;
`advgraph.open_sweep(name)` a `Sweep` whose `runs()` are its members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .api import Run, Sweep, open_run, open_sweep


def __getattr__(name: str) -> Any:  # loaded on first use: `import advgraph` stays light
    if name in ("open_run", "Run", "open_sweep", "Sweep"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Run", "Sweep", "__version__", "open_run", "open_sweep"]
