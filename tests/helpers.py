"""Helpers for tests that drive the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from advgraph.cli import app

ROOT = Path(__file__).resolve().parents[1]


def runs_root() -> Path:
    """The runs directory the autouse fixture points ADVGRAPH_RUNS at."""
    return Path(os.environ["ADVGRAPH_RUNS"])


def cli(*args: str):
    """Run the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def cli_proc(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run `python -m advgraph` in a subprocess (fresh interpreter)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "advgraph", *map(str, args)], env=full,
                          capture_output=True, text=True, **kw)
