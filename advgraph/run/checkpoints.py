"""A checkpoint of a run: its two files (tensors, then the state JSON written last) and how
they are read back and verified. runs/<name>/checkpoints/step-0000100.safetensors + .json."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import read_regular
from ..errors import CheckpointError

CKPT_RE = re.compile(r"step-(\d{7,})\.json")
# 2: the state JSON carries `state_sha256` over the rest of itself (format 1 did not)
FORMAT = 2


def state_digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's state without its own digest, in a canonical form (sorted
    keys, no whitespace), so it survives re-indenting but not a changed value."""
    body = {k: v for k, v in state.items() if k != "state_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     allow_nan=False).encode()).hexdigest()


class Vanished(CheckpointError):
    """A checkpoint's file disappeared while it was read (pruned by a training run): not
    damage; the reader looks again."""


@dataclass
class Checkpoint:
    step: int
    tensors_path: Path
    state_path: Path

    def state(self) -> dict[str, Any]:
        """The state JSON, checked against its schema and (format 2 on) its own checksum."""
        from .schemas import decode_json, parse_checkpoint_state

        try:
            blob = read_regular(self.state_path)
        except FileNotFoundError:
            raise Vanished(f"{self.state_path}: vanished") from None
        except OSError as e:
            raise CheckpointError(f"{self.state_path}: unreadable checkpoint state: "
                                  f"{e.strerror or e}") from None
        state = decode_json(blob, str(self.state_path), CheckpointError)
        if isinstance(state, dict) and isinstance(state.get("format"), int) and \
                state["format"] > FORMAT:
            raise CheckpointError(f"{self.state_path}: checkpoint format {state['format']} is "
                                  f"newer than this advgraph reads ({FORMAT}); upgrade advgraph")
        parse_checkpoint_state(self.state_path, state)
        if state["format"] >= 2 and "state_sha256" not in state:
            raise CheckpointError(f"{self.state_path}: no state_sha256 (damaged)")
        # wherever there is a digest, not only in format 2: else a format changed to 1 (by
        # damage or by hand) would switch the check off
        if "state_sha256" in state and state["state_sha256"] != state_digest(state):
            raise CheckpointError(f"{self.state_path}: checksum mismatch (the state was changed "
                                  "or damaged after it was written)")
        return state

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors and state, after verifying both checksums."""
        from safetensors import SafetensorError
        from safetensors.numpy import load as st_load

        state = self.state()
        try:
            blob = read_regular(self.tensors_path)
        except FileNotFoundError:
            raise Vanished(f"{self.tensors_path}: vanished") from None
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

