"""The `advgraph` command line. Thin: parse, call the library, print.

AdvGraphError → a message on stderr and its exit code (2 for spec/usage problems, 1 otherwise),
never a traceback. `--help` and `check` import neither torch nor cupy (backends load lazily).

The modules point one way: `root` builds the `advgraph` command from the command modules,
which know nothing of it:
- `check`: check; `train`: train;
- `generate`: sample, interpolate, plot; `evaluate`: eval; `export`: export;
- `backends`: backends, parity; `rundirs`: runs, rm;
and below them `common` (consoles, errors as messages, shared options), `restoring` (a run
restored for sample, interpolate and eval), `ranks` (--nproc), `reports` (eval's tables),
`progress` (train's display) and `completion` (what Tab offers).
"""

from __future__ import annotations

from .root import app, main

__all__ = ["app", "main"]
