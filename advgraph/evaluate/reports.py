"""The reports an evaluation writes under the run directory's eval/."""

from __future__ import annotations

from typing import Any

from ..atomic import append_line, atomic_write
from ..jsontext import dump_bytes, dumps
from ..run.directory import RunDir


def write_report(run: RunDir, name: str, report: dict[str, Any], metric: str) -> None:
    """The latest report as eval/<name>, and one line of eval/metrics.jsonl per evaluation,
    so results accumulate across checkpoints and settings."""
    path = run.path / "eval" / name
    atomic_write(path, dump_bytes(report, str(path), indent=2))
    report["written"] = str(path)
    line = {"metric": metric, "checkpoint_step": report.get("checkpoint_step"),
            "report": name, **{k: v for k, v in report.items() if k != "written"}}
    jsonl = run.path / "eval" / "metrics.jsonl"
    append_line(jsonl, dumps(line, str(jsonl)))
