"""Errors a user can cause and fix. The CLI prints them without a traceback.

Every error carries an exit code: 2 for a bad spec or bad command-line usage (the same code
typer/click use for usage errors), 1 for everything else the user can fix (data, runs, backend).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping


class AdvGraphError(Exception):
    """Base class: a problem the user can fix, reported without a traceback.

    A message names the caller's parameters as the library's caller passes them, in
    backquotes (`per_label`); a caller that knows them by other names (the CLI: its flags)
    shows those (`worded`)."""

    exit_code = 1

    def render(self) -> str:
        return str(self)

    def worded(self, names: Mapping[str, str]) -> str:
        """render(), with each `parameter` that `names` knows called by its name there."""
        return re.sub(r"`(\w+)`", lambda m: names.get(m[1], m[0]), self.render())


@dataclass
class Problem:
    """One located problem in a spec: file:line:col: dotted.path: message."""

    path: str  # dotted path inside the spec, e.g. "generator.layers[2].units" ("" = document root)
    msg: str
    source: str | None = None  # file name, or "`overrides`" for the overrides given with it
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        path = f"{self.path}: " if self.path else ""
        return f"{where}{path}{self.msg}"


class SpecError(AdvGraphError):
    """One or more problems in a spec (or in --set overrides), each located."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class UsageError(AdvGraphError):
    """A bad argument (on the command line: one that typer cannot catch by itself)."""

    exit_code = 2


class DataError(AdvGraphError):
    """Missing, corrupt or unsuitable data files."""


class RunError(AdvGraphError):
    """A run directory that does not exist, is damaged, or cannot be written."""


class WriteError(RunError):
    """A file could not be written (full disk, no permission, …)."""


class CheckpointError(RunError):
    """A checkpoint that is missing, truncated or fails its checksum."""


class BackendError(AdvGraphError):
    """An unknown or unavailable backend."""


class MissingExtra(AdvGraphError):
    """An option needs packages from one of advgraph's optional extras that are not installed."""

    def __init__(self, option: str, packages: str | list[str], extra: str):
        names = [packages] if isinstance(packages, str) else list(packages)
        what = (f"the {names[0]} package, which is" if len(names) == 1
                else f"the packages {' and '.join(names)}, which are")
        super().__init__(f"{option} needs {what} not installed: pip install 'advgraph[{extra}]'")


class LoweringError(AdvGraphError):
    """A backend cannot lower an op of the graph (never a silent fallback)."""

    def __init__(self, node: str, op: str, backend: str, msg: str = ""):
        self.node, self.op, self.backend = node, op, backend
        text = f"node {node!r}: op {op!r} is not supported by backend {backend!r}"
        super().__init__(text + (f": {msg}" if msg else ""))


class GraphError(ValueError):
    """A graph that breaks the IR's rules (`ir.Graph` lists them), named by its node. The
    compiler never builds one: it is a bug in whatever built the graph, so not an
    `AdvGraphError` (the CLI shows it with its traceback)."""


class TrainingDiverged(AdvGraphError):
    """A loss or parameter became NaN/Inf; the last good checkpoint is kept."""


class ExportError(AdvGraphError):
    """A model could not be written in the format asked for (the exporter's reason)."""
