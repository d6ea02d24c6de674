"""Helpers for tests that drive the CLI as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def interrupt_training(run: str, lines: int, *args: str, env: dict | None = None,
                       poll: float = 0.05) -> tuple[int, str]:
    """Start `python -m advgraph train ARGS` (training into run `run`), wait until its
    metrics.jsonl has `lines` lines (at most 60 s), press Ctrl-C (SIGINT), and wait for it to
    stop. Returns its exit code and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "advgraph", "train", *map(str, args)],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = runs_root() / run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists()
                                          and metrics.read_text().count("\n") >= lines):
        time.sleep(poll)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err
