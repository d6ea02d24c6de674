"""Run names, and how a RUN argument is told apart from a path: below the spec (a spec's
`name` must be able to name runs) and the run directories alike."""

from __future__ import annotations

import os
import re

from .errors import UsageError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # always fullmatch: `$` admits "x\n"


def check_name(name: str) -> str:
    """A run name is one path component: it can never point outside the runs directory."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise UsageError(f"invalid run name {name!r}: use letters, digits, '.', '_' or '-' "
                         "(one path component, at most 100 characters)")
    return name


def is_name_stem(stem: str) -> bool:
    """Whether runs can be numbered `<stem>-001`, `<stem>-002`, … (a spec's `name`)."""
    return NAME_RE.fullmatch(stem + "-000") is not None


def is_run_path(run: str | os.PathLike) -> bool:
    """A Path, or a string with a path separator or a leading '.' (`runs/fm`, `./fm`, `..`),
    is a path to a run directory; any other string is a run name (a name never has either)."""
    if not isinstance(run, str):
        return True
    return run.startswith(".") or "/" in run or (os.sep != "/" and os.sep in run)
