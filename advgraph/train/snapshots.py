"""The fixed-noise sample grid written while training (StyleGAN's `fakes*.png`): the same z at
every snapshot, so the files under runs/<name>/samples/training/ show G's progress as a
sequence. Toy data gets its plot. Drawing uses its own seed and G in inference mode, so
training is unaffected (and a resumed run writes the same images)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..run.directory import RunDir
from ..run.session import Session

SNAPSHOT_SEED_OFFSET = 0x5A3  # the grid's noise stream, apart from every training stream


@dataclass
class _SessionView:
    """What run.sample_files.sample reads from a restored run, from a live session."""

    run: RunDir
    program: object
    trainer: object
    spec: object
    splits: object
    step: int
    device: str
    backend: str


def snapshot_path(run: RunDir, step: int) -> Path:
    return _grid_dir(run) / f"step-{step:07d}.png"


def written_snapshots(run: RunDir) -> dict[int, Path]:
    """The grids on disk, by step."""
    matches = (_SNAPSHOT_RE.fullmatch(p.name) for p in _grid_dir(run).glob("step-*.png"))
    return {int(m.group(1)): _grid_dir(run) / m.group(0) for m in matches if m}


_SNAPSHOT_RE = re.compile(r"step-(\d{7,})\.png")


def _grid_dir(run: RunDir) -> Path:
    return run.path / "samples" / "training"


def write_snapshot(run: RunDir, s: Session) -> Path:
    """The grid of G's samples at this step (rows × cols of the spec's sample_grid)."""
    from ..run.sample_files import sample

    grid = s.spec.training.sample_grid
    view = _SessionView(run, s.program, s.trainer, s.spec, s.splits, s.step, s.ctx.device,
                        s.ctx.backend)
    seed = s.spec.training.seed + SNAPSHOT_SEED_OFFSET
    [path] = sample(view, figure=True, rows=grid.rows, cols=grid.cols, seed=seed,  # type: ignore[arg-type]
                    out=snapshot_path(run, s.step), nearest=False, n=None, npz=None)
    return path
