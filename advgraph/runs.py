"""Run directories: naming, the resolved spec, status, metrics, and atomic checkpoints.

runs/<name>/
  spec.yaml                      the resolved spec (every default filled in)
  run.json                       name, status, step, epoch, backend, device, versions, times
  metrics.jsonl                  one JSON line per logging interval
  checkpoints/step-0000100.safetensors + step-0000100.json
                                 tensors (no pickle) + state; the JSON is written last and holds
                                 the tensors' SHA-256, so a checkpoint counts only when complete
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import CheckpointError, RunError, UsageError, WriteError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CKPT_RE = re.compile(r"^step-(\d{7,})\.json$")
FORMAT = 1


def default_root() -> Path:
    return Path(os.environ.get("ADVGRAPH_RUNS", "runs"))


def check_name(name: str) -> str:
    """A run name is one path component: it can never point outside the runs directory."""
    if not NAME_RE.match(name) or name in (".", ".."):
        raise UsageError(f"invalid run name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(one path component, at most 100 characters)")
    return name


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


@dataclass
class Checkpoint:
    step: int
    tensors_path: Path
    state_path: Path

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{self.state_path}: unreadable checkpoint state: {e}") from None

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors and state, after verifying the tensors' checksum."""
        from safetensors import SafetensorError
        from safetensors.numpy import load as st_load

        state = self.state()
        try:
            blob = self.tensors_path.read_bytes()
        except OSError as e:
            raise CheckpointError(f"{self.tensors_path}: cannot read: {e.strerror}") from None
        want = state.get("sha256")
        got = hashlib.sha256(blob).hexdigest()
        if want != got:
            raise CheckpointError(f"{self.tensors_path}: checksum mismatch (file damaged or "
                                  f"truncated: sha256 {got[:12]}…, expected {str(want)[:12]}…)")
        try:
            tensors = st_load(blob)
        except (SafetensorError, ValueError) as e:
            raise CheckpointError(f"{self.tensors_path}: not a valid safetensors file: {e}") from None
        return tensors, state


class RunDir:
    def __init__(self, path: Path):
        self.path = path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    # ---- creation and lookup ----------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, name: str | None) -> "RunDir":
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"cannot create the runs directory {root}: {e.strerror}") from None
        if name is not None:
            check_name(name)
            try:
                (root / name).mkdir()
            except FileExistsError:
                raise RunError(f"run {name!r} already exists in {root}; pick another --name "
                               f"or continue it with --resume {name}") from None
            except OSError as e:
                raise RunError(f"cannot create {root / name}: {e.strerror}") from None
            return cls(root / name)
        taken = [int(m.group(1)) for p in root.iterdir()
                 if (m := re.fullmatch(r"run(\d+)", p.name))]
        n = max(taken, default=0) + 1
        while True:  # mkdir is the lock: two trainers never get the same name
            try:
                (root / f"run{n}").mkdir()
                return cls(root / f"run{n}")
            except FileExistsError:
                n += 1
            except OSError as e:
                raise RunError(f"cannot create {root / f'run{n}'}: {e.strerror}") from None

    @classmethod
    def open(cls, root: Path, name: str) -> "RunDir":
        check_name(name)
        path = root / name
        if not (path / "run.json").is_file() and not (path / "spec.yaml").is_file():
            known = ", ".join(r.name for r in list_runs(root)) or "none"
            raise RunError(f"no run named {name!r} in {root} (runs: {known})")
        return cls(path)

    # ---- metadata ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "run.json").read_text())
        except FileNotFoundError:
            return {"name": self.name, "status": "unknown"}
        except (OSError, ValueError) as e:
            raise RunError(f"{self.path / 'run.json'}: unreadable: {e}") from None

    def status(self) -> str:
        """The recorded status, or 'stopped' for a 'running' run whose process is gone."""
        info = self.info()
        status = info.get("status", "unknown")
        if status == "running" and info.get("host") == platform.node() and info.get("pid"):
            try:
                os.kill(int(info["pid"]), 0)
            except ProcessLookupError:
                return "stopped"
            except (PermissionError, ValueError, OverflowError):
                pass
        return status

    def write_info(self, **updates: Any) -> dict[str, Any]:
        info = self.info() if (self.path / "run.json").exists() else {"name": self.name}
        info.update(updates)
        info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write(self.path / "run.json", _json_bytes(info))
        return info

    # ---- metrics ----------------------------------------------------------------------------

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        return rows

    def truncate_metrics(self, step: int) -> None:
        """Drop lines logged after `step` (work lost since that checkpoint will be redone)."""
        if not self.metrics_path.exists():
            return
        keep = [json.dumps(r) for r in self.metrics() if r.get("step", 0) <= step]
        atomic_write(self.metrics_path, "".join(line + "\n" for line in keep).encode())

    # ---- checkpoints ------------------------------------------------------------------------

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints (state JSON present), oldest first."""
        if not self.ckpt_dir.is_dir():
            return []
        out = []
        for p in self.ckpt_dir.iterdir():
            m = CKPT_RE.match(p.name)
            if m:
                out.append(Checkpoint(int(m.group(1)), p.with_suffix(".safetensors"), p))
        return sorted(out, key=lambda c: c.step)

    def save_checkpoint(self, step: int, tensors: dict[str, np.ndarray],
                        state: dict[str, Any], keep: int) -> Checkpoint:
        from safetensors.numpy import save as st_save

        stem = f"step-{step:07d}"
        blob = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
        ckpt = Checkpoint(step, self.ckpt_dir / f"{stem}.safetensors", self.ckpt_dir / f"{stem}.json")
        state = {"format": FORMAT, **state, "sha256": hashlib.sha256(blob).hexdigest(),
                 "tensors": ckpt.tensors_path.name}
        try:
            atomic_write(ckpt.tensors_path, blob)
            atomic_write(ckpt.state_path, _json_bytes(state))  # last: marks it complete
        except WriteError as e:
            if not ckpt.state_path.exists():  # no tensors without their state
                ckpt.tensors_path.unlink(missing_ok=True)
            raise RunError(f"checkpoint at step {step} not saved: {e}; earlier checkpoints are "
                           "intact") from None
        for old in self.checkpoints()[:-keep]:
            old.state_path.unlink(missing_ok=True)
            old.tensors_path.unlink(missing_ok=True)
        return ckpt

    def latest_checkpoint(self, step: int | None = None,
                          warn=None) -> tuple[Checkpoint, dict[str, np.ndarray], dict[str, Any]]:
        """The newest checkpoint that verifies (or the one at `step`); damaged ones are skipped
        with a warning, never deleted."""
        ckpts = self.checkpoints()
        if step is not None:
            ckpts = [c for c in ckpts if c.step == step]
            if not ckpts:
                have = ", ".join(str(c.step) for c in self.checkpoints()) or "none"
                raise CheckpointError(f"run {self.name!r} has no checkpoint at step {step} "
                                      f"(have: {have})")
        errors = []
        for c in reversed(ckpts):
            try:
                tensors, state = c.load()
                return c, tensors, state
            except CheckpointError as e:
                errors.append(str(e))
                if warn is not None:
                    warn(f"skipping damaged checkpoint: {e}")
        if errors:
            raise CheckpointError("no usable checkpoint:\n" + "\n".join(errors))
        raise CheckpointError(f"run {self.name!r} has no checkpoint yet")


def list_runs(root: Path) -> list[RunDir]:
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if p.is_dir() and (p / "run.json").exists()]

    def key(r: RunDir):
        m = re.fullmatch(r"run(\d+)", r.name)
        return (0, int(m.group(1)), "") if m else (1, 0, r.name)

    return sorted(runs, key=key)
