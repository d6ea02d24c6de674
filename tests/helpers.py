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


def make_shapes(root: Path, per_class: int = 120, seed: int = 0,
                classes: tuple[str, ...] = ("circle", "square")) -> Path:
    """A folder of the user's own images, drawn: `per_class` circles or squares of random
    sizes, positions and colours on canvases of random sizes (so the size rule crops and
    scales) in a folder per class (PNG, every fifth a JPEG), and one file in the last folder
    that is not an image (`broken.png`)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for shape in classes:
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            w, h = (int(v) for v in rng.integers(16, 40, 2))
            back = tuple(int(v) for v in rng.integers(0, 100, 3))
            img = Image.new("RGB", (w, h), back)
            side = int(rng.integers(6, min(w, h) - 2))
            x0, y0 = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            colour = tuple(int(v) for v in rng.integers(120, 256, 3))
            box = (x0, y0, x0 + side, y0 + side)
            draw = ImageDraw.Draw(img)
            (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
            img.save(root / shape / f"{i:03d}.{'jpg' if i % 5 == 0 else 'png'}")
    (root / classes[-1] / "broken.png").write_bytes(b"this is not a PNG")
    return root


def central_differences(f, x, eps: float = 1e-6):
    """∂f/∂x of the scalar f at x by central differences, in float64 (x is left unchanged)."""
    import numpy as np

    x = np.array(x, np.float64)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        hi = f(x)
        x[i] = old - eps
        lo = f(x)
        x[i] = old
        out[i] = (hi - lo) / (2 * eps)
    return out
