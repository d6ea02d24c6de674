"""Where a run trains: backend, device and process group, as one value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..distributed import Dist


@dataclass(frozen=True)
class Context:
    """The backend plugin's name, the device, and the process group (None: one process)."""

    backend: str
    device: str
    dist: Dist | None = None

    @property
    def is_main(self) -> bool:
        """The rank that writes the run directory and reports (the only one, alone)."""
        return self.dist is None or self.dist.is_main

    @property
    def world(self) -> int:
        return self.dist.world if self.dist is not None else 1
