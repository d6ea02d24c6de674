"""A sweep's directory: runs/<sweep>/sweep.json lists its members, which are runs of their own
(runs/<sweep>.<values>.s<seed>/), so every command that reads a run reads a member.

runs/<sweep>/
  sweep.json    name, spec, backend, device, engine, seeds, varied keys, members, status, and
                `step`: the last step at which every live member's checkpoint was written
                (what a resume starts from)
  .lock         held (flock) by the process training the sweep
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..atomic import atomic_write
from ..errors import RunError
from ..jsontext import dump_bytes
from ..names import check_name, is_run_path
from ..run.directory import RunDir, list_runs
from ..run.schemas import describe, read_json

FILE = "sweep.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class MemberInfo(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    seed: int
    values: dict[str, Any] = {}
    setting: str = "all"
    status: Literal["running", "finished", "interrupted", "diverged", "stopped",
                    "missing"] = "running"  # missing: its run was deleted


class SweepInfo(_Model):
    name: str
    status: str
    step: int = Field(ge=0)
    seeds: list[int]
    vary: dict[str, list[Any]] = {}
    members: list[MemberInfo] = Field(min_length=1)


class SweepDir:
    def __init__(self, path: Path):
        self.path = path
        self._run = RunDir(path)  # for the writer's lock

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def info_path(self) -> Path:
        return self.path / FILE

    @staticmethod
    def is_sweep(path: Path) -> bool:
        return (path / FILE).is_file() and not (path / "run.json").exists()

    @classmethod
    def resolve(cls, sweep: str, root: Path) -> "SweepDir":
        """SWEEP as a name in the runs directory, or a path to its directory."""
        path = Path(sweep) if is_run_path(sweep) else root / check_name(sweep)
        if not cls.is_sweep(path):
            known = ", ".join(s.name for s in list_sweeps(root)) or "none"
            raise RunError(f"no sweep {sweep!r} in {root} (no {FILE}; sweeps: {known})")
        return cls(path)

    def info(self) -> dict[str, Any]:
        data = read_json(self.info_path)
        try:
            SweepInfo.model_validate(data)
        except ValidationError as e:
            raise RunError(f"{self.info_path}: damaged ({describe(e)})") from None
        problem = _members_problem(data)
        if problem is not None:
            raise RunError(f"{self.info_path}: damaged ({problem})")
        return data

    def write_info(self, **updates: Any) -> dict[str, Any]:
        info = self.info() if self.info_path.exists() else {"name": self.name}
        info.update(updates)
        info["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write(self.info_path, dump_bytes(info, str(self.info_path), nonfinite=True,
                                                indent=2, sort_keys=False))
        return info

    def set_member_status(self, name: str, status: str) -> None:
        info = self.info()
        for m in info["members"]:
            if m["name"] == name:
                m["status"] = status
        self.write_info(members=info["members"])

    def member_runs(self, info: dict[str, Any] | None = None) -> list[RunDir]:
        """The members' run directories (beside the sweep's, in the same runs directory)."""
        info = self.info() if info is None else info
        return [RunDir(self.path.parent / m["name"]) for m in info["members"]]

    def lock(self) -> None:
        self._run.lock()

    def unlock(self) -> None:
        self._run.unlock()

    def clean_stale_tmp(self) -> list[Path]:
        """sweep.json's temporary files left by a writer killed mid-write (hold the lock)."""
        return self._run.clean_stale_tmp()


def _members_problem(info: dict[str, Any]) -> str | None:
    """Members are named <sweep>.… (plan.members) and listed once: a hand-edited list naming
    another run, or one twice, would have `rm SWEEP` delete a run that is no member, and a
    resume lock a run against itself."""
    seen: set[str] = set()
    for i, m in enumerate(info["members"]):
        name = m["name"]
        if not name.startswith(info["name"] + "."):
            return (f"members[{i}].name: {name!r} is not named after the sweep "
                    f"({info['name']}.…)")
        if name in seen:
            return f"members[{i}].name: {name!r} is listed twice"
        seen.add(name)
    return None


def list_sweeps(root: Path) -> list[SweepDir]:
    if not root.is_dir():
        return []
    try:
        return sorted((SweepDir(p) for p in root.iterdir() if SweepDir.is_sweep(p)),
                      key=lambda s: s.name)
    except OSError as e:
        raise RunError(f"cannot list the runs directory {root}: {e.strerror or e}") from None
