"""Shell completion (typer's `--install-completion`): run names for RUN arguments and spec
files for SPEC arguments. Called by the shell on every Tab, so it imports nothing heavy and
never raises: a problem means no candidates, not a traceback in the user's prompt."""

from __future__ import annotations

import os
from pathlib import Path

import typer

SPEC_SUFFIXES = (".yaml", ".yml")


def complete_run(ctx: typer.Context, incomplete: str) -> list[str]:
    """The runs (directories holding a run.json) under --runs-dir, $ADVGRAPH_RUNS or ./runs
    whose names start with `incomplete`."""
    from ..run.directory import default_root, list_runs

    given = ctx.params.get("runs_dir") if ctx is not None else None
    root = Path(given) if given else default_root()
    try:
        return [r.name for r in list_runs(root) if r.name.startswith(incomplete)]
    except OSError:
        return []


def complete_spec(incomplete: str) -> list[str]:
    """Directories (to descend into, with a trailing /) and *.yaml / *.yml files whose path
    starts with `incomplete`, written as the user began it (relative, or under ~)."""
    return _files(incomplete, SPEC_SUFFIXES)


def complete_images(incomplete: str) -> list[str]:
    """`data inspect|prepare PATH`: folders (of images, or to descend into), .zip files and
    specs."""
    return _files(incomplete, SPEC_SUFFIXES + (".zip",))


def _files(incomplete: str, suffixes: tuple[str, ...]) -> list[str]:
    head, sep, prefix = incomplete.rpartition("/")
    shown = head + sep  # what precedes each candidate, exactly as typed
    folder = Path(os.path.expanduser(shown)) if shown else Path(".")
    out = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    for e in entries:
        if not e.name.startswith(prefix) or (e.name.startswith(".") and not prefix.startswith(".")):
            continue
        try:
            if e.is_dir():
                out.append(f"{shown}{e.name}/")
            elif e.name.endswith(suffixes) and e.is_file():
                out.append(f"{shown}{e.name}")
        except OSError:
            continue
    return out


def choices(*values: str):
    """Completion of an option that takes one of `values`."""
    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete
