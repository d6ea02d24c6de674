"""Schemas of the files a run directory holds: run.json, the rows of metrics.jsonl and the
checkpoint state JSON. Every reader parses through these, so a damaged file is one clear error
naming the file (and line) and the problem, never a traceback further on.

Unknown keys are allowed everywhere (a newer advgraph may add some); the known ones are
type-checked strictly: an int is never a string, a bool or 10.0, a float is never a string.
Losses may be non-finite (a diverged run logs its last, non-finite row): null, with a
`nonfinite` record of what they were (jsontext.dumps); older runs wrote bare NaN tokens,
which are still read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..atomic import read_regular
from ..errors import CheckpointError, RunError

# ---- field types ----------------------------------------------------------------------------

Count = Annotated[int, Field(ge=0, le=2**62)]  # steps, epochs, updates, batches
Positive = Annotated[int, Field(ge=1, le=2**62)]
Finite = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Line = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00-\x1f\x7f]*$")]  # printable, one line
Token = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:+-]+$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00]+$")]


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


# ---- metrics.jsonl --------------------------------------------------------------------------


class TrainRow(_Schema):
    """One logging interval of training (see train.loop.run_loop). Only `step` is required."""

    step: Count
    epoch: Finite = None  # type: ignore[assignment]  # absent or a number, never null
    d_loss: Optional[float] = None
    g_loss: Optional[float] = None
    d_real: Optional[float] = None
    d_fake: Optional[float] = None
    lr_d: float = None  # type: ignore[assignment]
    lr_g: float = None  # type: ignore[assignment]
    momentum: float = None  # type: ignore[assignment]
    steps_per_s: float = None  # type: ignore[assignment]
    time_s: float = None  # type: ignore[assignment]


class ParzenRow(_Schema):
    """One Parzen monitoring estimate (see train.monitor); `parzen_valid` is null when
    there is no validation data."""

    step: Count
    epoch: Finite = None  # type: ignore[assignment]
    parzen_sigma: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    parzen_samples: Positive = None  # type: ignore[assignment]
    parzen_valid: Optional[float]


MetricsRow = Union[TrainRow, ParzenRow]


def is_parzen_row(row: dict[str, Any]) -> bool:
    return any(k.startswith("parzen_") for k in row)


# ---- run.json -------------------------------------------------------------------------------


class DataProvenance(_Schema):
    """run.json `data`: where a run's data came from (a folder of images: its fingerprint,
    the SHA-256 of the prepared pixels, the split), as data.imageset records it."""

    path: Optional[str] = None
    fingerprint: Optional[Hex64] = None
    sha256: Optional[Hex64] = None
    labels_sha256: Optional[Hex64] = None
    images: Optional[Count] = None
    skipped: Optional[Count] = None
    cached: Optional[bool] = None


class RunInfo(_Schema):
    """run.json, as train.starting / resuming / loop write it through RunDir.write_info."""

    name: Optional[Line] = None
    status: Token = "unknown"
    step: Count = 0
    epoch: Count = 0
    backend: Optional[Line] = None
    device: Optional[Line] = None
    data_root: Optional[str] = None
    pid: Optional[Annotated[int, Field(ge=1, le=2**31)]] = None
    host: Optional[str] = None
    created: Optional[Line] = None
    updated: Optional[Line] = None
    spec_source: Optional[str] = None
    versions: Optional[dict[str, str]] = None
    world_size: Positive = 1
    last_metrics: Optional[TrainRow] = None
    elapsed_s: Optional[Finite] = None
    resumed_from: Optional[Count] = None
    data: Optional[DataProvenance] = None


# ---- checkpoint state -----------------------------------------------------------------------


class RngState(_Schema):
    """A NumPy bit generator's state (bit_generator.state)."""

    bit_generator: Token
    state: dict[str, Any]


class StreamState(_Schema):
    batches: Count
    rng: RngState


class Updates(_Schema):
    D: Count
    G: Count


class CheckpointState(_Schema):
    """checkpoints/step-NNNNNNN.json (train.checkpoint.save + RunDir.save_checkpoint).
    Required: what makes it a checkpoint at all (format, step, the tensors' file and checksum); what resuming
    needs (stream, updates) is checked when present."""

    format: Positive
    step: Count
    sha256: Hex64
    tensors: FileName
    state_sha256: Optional[Hex64] = None
    epoch: Count = None  # type: ignore[assignment]
    stream: StreamState = None  # type: ignore[assignment]
    updates: Updates = None  # type: ignore[assignment]
    seed: int = None  # type: ignore[assignment]
    backend: Line = None  # type: ignore[assignment]
    device: Line = None  # type: ignore[assignment]
    elapsed_s: Finite = None  # type: ignore[assignment]
    versions: dict[str, str] = None  # type: ignore[assignment]
    world_size: Positive = None  # type: ignore[assignment]


# ---- parsing --------------------------------------------------------------------------------


def describe(e: ValidationError, limit: int = 3) -> str:
    """A pydantic error as one line: `field.path: problem (got …)`, the first few of them."""
    parts = []
    for err in e.errors()[:limit]:
        loc = ""
        for p in err["loc"]:
            if isinstance(p, int):
                loc += f"[{p}]"
            elif p in ("TrainRow", "ParzenRow"):
                continue
            else:
                p = str(p)  # a key of the file's: quoted unless plain (a newline in one)
                loc += ("." if loc else "") + (p if p.isprintable() and p.strip() == p and p
                                               else repr(p))
        got = err.get("input")
        got_s = repr(got)
        if len(got_s) > 40:
            got_s = got_s[:37] + "..."
        msg = err["msg"]
        if err["type"] == "missing":
            parts.append(f"{loc}: missing")
        else:
            parts.append(f"{loc + ': ' if loc else ''}{msg[0].lower() + msg[1:]} (got {got_s})")
    more = len(e.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _kind(obj: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(obj), type(obj).__name__)


def decode_json(data: bytes | str, where: str, error: type[RunError] = RunError) -> Any:
    """UTF-8 JSON text → a Python value, or `error` naming `where` and the problem."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{where}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                        f"{e.start}); the file is damaged") from None
    try:
        return json.loads(data)
    except RecursionError:
        raise error(f"{where}: not valid JSON (nested too deeply); the file is damaged") from None
    except ValueError as e:
        raise error(f"{where}: not valid JSON ({e}); the file is damaged") from None


def _object(obj: Any, where: str, what: str, error: type[RunError]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise error(f"{where}: not {what} (a JSON {_kind(obj)}, not an object); "
                    "the file is damaged")
    return obj


def read_json(path: Path, error: type[RunError] = RunError) -> Any:
    try:
        blob = read_regular(Path(path))
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    return decode_json(blob, str(path), error)


def parse_run_info(path: Path, data: Any) -> RunInfo:
    """run.json's contents (bytes, text, or the decoded value) → RunInfo, or RunError."""
    if isinstance(data, (bytes, str)):
        data = decode_json(data, str(path))
    _object(data, str(path), "a run record", RunError)
    try:
        return RunInfo.model_validate(data)
    except ValidationError as e:
        raise RunError(f"{path}: {describe(e)}") from None


def parse_metrics_row(path: Path, lineno: int, obj: Any) -> MetricsRow:
    where = f"{path}:{lineno}"
    _object(obj, where, "a metrics row", RunError)
    model = ParzenRow if is_parzen_row(obj) else TrainRow
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise RunError(f"{where}: {describe(e)}") from None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl → its rows (dicts, as written), each checked against its schema.

    The last line is skipped when it is not valid JSON or not UTF-8: a write cut short by a
    crash (a run killed mid-append, a zero-filled tail after a power loss). Anything else that
    is wrong — an earlier undecodable line, a line that is JSON but not an object, a field of
    the wrong type — is damage: RunError naming the file, the line and the problem."""
    try:
        blob = read_regular(Path(path))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RunError(f"{path}: cannot read: {e.strerror or e}") from None
    lines = blob.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue  # blank lines carry nothing
        try:
            obj = decode_json(line, f"{path}:{i}")
        except RunError:
            if i == len(lines):
                continue  # cut short by a crash
            raise
        parse_metrics_row(path, i, obj)
        rows.append(obj)
    return rows


def parse_checkpoint_state(path: Path, data: Any) -> CheckpointState:
    """A checkpoint's state JSON (bytes, text, or the decoded value) → CheckpointState, or a
    CheckpointError naming the file and the problem."""
    if isinstance(data, (bytes, str)):
        data = decode_json(data, str(path), CheckpointError)
    _object(data, str(path), "a checkpoint state", CheckpointError)
    try:
        return CheckpointState.model_validate(data)
    except ValidationError as e:
        raise CheckpointError(f"{path}: {describe(e)}") from None
