"""Run directories: naming, the resolved spec, status, metrics, and atomic checkpoints.

runs/<name>/
  spec.yaml                      the resolved spec (every default filled in)
  run.json                       name, status, step, epoch, backend, device, versions, times
  metrics.jsonl                  one JSON line per logging interval
  checkpoints/step-0000100.safetensors + step-0000100.json
                                 tensors (no pickle) + state; the JSON is written last and holds
                                 the tensors' SHA-256 and its own (over everything else in it),
                                 so a checkpoint counts only when complete and unaltered
  .lock                          held (flock) by the one process writing the run
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import re
import stat
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import append_line, atomic_write
from ..errors import CheckpointError, RunError, WriteError
from ..jsontext import dump_bytes, dumps
from ..names import check_name, is_name_stem, is_run_path
from .checkpoints import CKPT_RE, FORMAT, Checkpoint, Vanished, state_digest

_LOCKS: dict[str, int] = {}  # run path → the descriptor holding its writer lock
# atomic_write's temporary files: mkstemp(prefix=f".{name}.", suffix=".tmp")
TMP_RE = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp", re.DOTALL)


def default_root() -> Path:
    return Path(os.environ.get("ADVGRAPH_RUNS", "runs"))


def _json_bytes(obj: Any, where: Path) -> bytes:
    # a diverged run's last metrics hold its NaN losses (run.json's last_metrics)
    return dump_bytes(obj, str(where), nonfinite=True, indent=2, sort_keys=False)


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
    def create(cls, root: Path, name: str | None, stem: str = "run") -> "RunDir":
        """A new run directory: `name`, or else `<stem>-001`, `<stem>-002`, … (the spec's name
        as stem, when it is a valid run name)."""
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"cannot create the runs directory {root}: {e.strerror}") from None
        if name is not None:
            check_name(name)
            try:
                (root / name).mkdir()
            except FileExistsError:
                raise RunError(f"run {name!r} already exists in {root}; pick another `name` "
                               f"or continue it with `resume` {name}") from None
            except OSError as e:
                raise RunError(f"cannot create {root / name}: {e.strerror}") from None
            return cls(root / name)
        if not is_name_stem(stem):  # a spec file's stem ("my spec"); a spec's name is checked
            stem = "run"
        taken = [int(m.group(1)) for p in root.iterdir()
                 if (m := re.fullmatch(re.escape(stem) + r"-(\d+)", p.name))]
        n = max(taken, default=0) + 1
        while True:  # mkdir is the lock: two trainers never get the same name
            path = root / f"{stem}-{n:03d}"
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                n += 1
            except OSError as e:
                raise RunError(f"cannot create {path}: {e.strerror}") from None

    @classmethod
    def open(cls, root: Path, name: str) -> "RunDir":
        check_name(name)
        path = root / name
        if not cls(path).exists():
            known = ", ".join(r.name for r in list_runs(root)) or "none"
            raise RunError(f"no run named {name!r} in {root} (runs: {known})")
        return cls(path)

    @classmethod
    def resolve(cls, run: str | os.PathLike, root: Path) -> "RunDir":
        """RUN as the CLI and the API both read it: a path when `is_run_path` says so, else a
        name in the runs directory `root` (never ./name: a name means one thing everywhere)."""
        if not is_run_path(run):
            return cls.open(root, str(run))
        path = Path(run)
        if not cls(path).exists():
            raise RunError(f"{path}: not a run directory (no run.json)")
        return cls(path)

    def exists(self) -> bool:
        """A run.json of any kind (list_runs lists it; reading it names what is wrong), or
        a spec.yaml."""
        return os.path.lexists(self.path / "run.json") or self.spec_path.is_file()

    # ---- the writer's lock -------------------------------------------------------------------

    def lock(self) -> None:
        """Take the run's exclusive writer lock (an advisory flock on `.lock`, released by the
        kernel when the process dies, so a killed run is never locked for ever). A second
        writer is refused with the holder's pid."""
        import fcntl

        from ..atomic import LINK_REFUSED

        path = self.path / ".lock"
        try:  # O_NOFOLLOW: a planted link would have the file it names truncated
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            why = LINK_REFUSED if e.errno == errno.ELOOP else e.strerror or e
            raise RunError(f"cannot lock {path}: {why}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RunError(f"cannot lock {path}: not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                holder = os.pread(fd, 200, 0).decode(errors="replace").split() or ["?"]
                where = f" on {holder[1]}" if len(holder) > 1 else ""
                raise RunError(f"run {self.name!r} is being written by process "
                               f"{holder[0]}{where}; wait for it to finish or stop it first"
                               ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {platform.node()}\n".encode(), 0)
        except BaseException as e:
            os.close(fd)
            if isinstance(e, OSError):
                raise RunError(f"cannot lock {path}: {e.strerror or e}") from None
            raise
        _LOCKS[str(self.path.resolve())] = fd

    def check_removable(self) -> None:
        if self.path.is_symlink() or not self.path.is_dir():
            raise RunError(f"{self.path}: not a run directory (a link or not a directory); "
                           "remove it yourself")

    def unlock(self) -> None:
        fd = _LOCKS.pop(str(self.path.resolve()), None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    # ---- metadata ---------------------------------------------------------------------------

    @property
    def info_path(self) -> Path:
        return self.path / "run.json"

    def info(self) -> dict[str, Any]:
        """run.json as written, after checking it against its schema (schemas.RunInfo): a
        damaged one (not UTF-8, not JSON, not an object, a field of the wrong type) is a
        RunError naming the file and the problem."""
        from .schemas import parse_run_info, read_json

        try:
            data = read_json(self.info_path)
        except RunError:
            if not self.info_path.exists():
                return {"name": self.name, "status": "unknown"}
            raise
        parse_run_info(self.info_path, data)
        return data

    def status(self, info: dict[str, Any] | None = None) -> str:
        """The recorded status, or 'stopped' for a 'running' run whose process is gone."""
        info = self.info() if info is None else info
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
        atomic_write(self.path / "run.json", _json_bytes(info, self.path / "run.json"))
        return info

    # ---- metrics ----------------------------------------------------------------------------

    def append_metrics(self, row: dict[str, Any]) -> None:
        append_line(self.metrics_path, dumps(row, str(self.metrics_path), nonfinite=True))

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl, each checked against its schema (schemas.read_metrics):
        a last line cut short by a crash is skipped; any other damage is a RunError naming the
        file, the line and the problem."""
        from .schemas import read_metrics

        return read_metrics(self.metrics_path)

    # ---- leftovers of interrupted writes -----------------------------------------------------

    def clean_stale_tmp(self, older_than: float = 0.0) -> list[Path]:
        """Remove the temporary files (`.NAME.XXXXXXXX.tmp`, see atomic.atomic_write) that a
        writer killed mid-write left in the run directory and checkpoints/; returns them.

        Call it while holding the run's writer lock (RunDir.lock): then no live process is
        writing there and every such file is stale. Without the lock, pass `older_than`
        (seconds since the file was last modified) so a live writer's file is left alone."""
        now = time.time()
        removed = []
        for d in (self.path, self.ckpt_dir):
            try:
                entries = list(d.iterdir())
            except OSError:
                continue
            for p in entries:
                if not TMP_RE.fullmatch(p.name):
                    continue
                try:
                    st = p.lstat()
                    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                        continue
                    if now - st.st_mtime < older_than:
                        continue
                    p.unlink()
                except FileNotFoundError:
                    continue  # renamed into place or removed meanwhile
                except OSError:
                    continue  # not ours to remove (permissions): harmless, left as it is
                removed.append(p)
        return removed

    def truncate_metrics(self, step: int, partial_at_step: bool = False) -> None:
        """Drop lines logged after `step` (work lost since that checkpoint will be redone), and
        with `partial_at_step` the training line at `step` itself: logged off the schedule (by
        an interrupt or the stop) while the checkpoint kept the interval's running sums, so the
        resumed run logs that interval on schedule, as an uninterrupted run does."""
        if not self.metrics_path.exists():
            return

        def keep_row(r: dict[str, Any]) -> bool:
            s = r.get("step", 0)
            if s == step and partial_at_step and "d_loss" in r:
                return False
            return s <= step

        keep = [dumps(r, str(self.metrics_path), nonfinite=True) for r in self.metrics()
                if keep_row(r)]
        atomic_write(self.metrics_path, "".join(line + "\n" for line in keep).encode())

    # ---- checkpoints ------------------------------------------------------------------------

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints (state JSON present), oldest first."""
        if not self.ckpt_dir.is_dir():
            return []
        out = []
        for p in self.ckpt_dir.iterdir():
            m = CKPT_RE.fullmatch(p.name)
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
        state["state_sha256"] = state_digest(state)
        try:
            atomic_write(ckpt.tensors_path, blob)
            atomic_write(ckpt.state_path, _json_bytes(state, ckpt.state_path))  # last: marks it complete
        except WriteError as e:
            if not _is_regular(ckpt.state_path):  # no tensors without their state (a link
                ckpt.tensors_path.unlink(missing_ok=True)  # or a directory there is not one)
            raise RunError(f"checkpoint at step {step} not saved: {e}; earlier checkpoints are "
                           "intact") from None
        self.prune_checkpoints(keep)
        return ckpt

    def prune_checkpoints(self, keep: int) -> None:
        """Delete all but the newest `keep` checkpoints."""
        for old in self.checkpoints()[:-keep]:
            old.state_path.unlink(missing_ok=True)
            old.tensors_path.unlink(missing_ok=True)

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
        errors: dict[int, str] = {}  # step → why it is unusable (each warned about once)

        def damaged(c: Checkpoint, why: str) -> None:
            if c.step not in errors and warn is not None:
                warn(f"skipping damaged checkpoint: {why}")
            errors[c.step] = why

        for _ in range(5):
            vanished = False
            for c in reversed(ckpts):
                if c.step in errors:
                    continue
                try:
                    tensors, state = c.load()
                    return c, tensors, state
                except Vanished as e:
                    if c.state_path.exists():  # its state is still there: a file is missing
                        damaged(c, f"{c.tensors_path}: missing")
                        continue
                    vanished = True  # pruned by a run still training: look again
                    break
                except CheckpointError as e:
                    damaged(c, str(e))
            if not vanished:
                break
            ckpts = self.checkpoints() if step is None else \
                [c for c in self.checkpoints() if c.step == step]
            if step is not None and not ckpts:
                raise CheckpointError(f"run {self.name!r}: the checkpoint at step {step} was "
                                      "removed (the run is still training and prunes old ones)")
        if errors:
            raise CheckpointError("no usable checkpoint:\n" + "\n".join(errors.values()))
        raise CheckpointError(f"run {self.name!r} has no checkpoint yet")


def _is_regular(path: Path) -> bool:
    """Whether `path` itself (not a link's target) is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def list_runs(root: Path) -> list[RunDir]:
    """Run directories (those holding a run.json) under `root`, by name and counter. A
    directory whose run.json cannot even be looked at is listed too: reading it names the
    problem."""
    if not root.is_dir():
        return []

    def is_run(p: Path) -> bool:
        try:
            if not p.is_dir():
                return False
            os.lstat(p / "run.json")
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            return True  # there, but not readable: reading it says so

    try:
        runs = [RunDir(p) for p in root.iterdir() if is_run(p)]
    except OSError as e:
        raise RunError(f"cannot list the runs directory {root}: {e.strerror or e}") from None

    def key(r: RunDir):  # mnist-002 before mnist-010 (counters past 999 too)
        m = re.fullmatch(r"(.*)-(\d+)", r.name)
        return (m.group(1), int(m.group(2))) if m else (r.name, -1)

    return sorted(runs, key=key)
