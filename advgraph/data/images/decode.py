"""One image file to a (C, H, W) uint8 array, by the declared channels and size rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np


class Unusable(Exception):
    """The file cannot be used; str(e) says why in a few words ("not an image", "truncated or
    corrupt PNG", "decompression bomb: 200,000,000 pixels, over the limit of ...")."""


@dataclass(frozen=True)
class Preparation:
    """How every image is brought to one shape: `size` (H, W), `channels` 1 or 3, `fit`
    "crop" (scale so the image covers H×W, then cut the centre) or "pad" (scale so it fits
    inside H×W, then pad with the background), `background` the RGB drawn under transparent
    pixels and in the padding."""

    size: tuple[int, int]
    channels: int
    fit: str = "crop"
    background: tuple[int, int, int] = (0, 0, 0)

    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def as_dict(self) -> dict:
        return {"size": list(self.size), "channels": self.channels, "fit": self.fit,
                "background": list(self.background)}


def decode(fp: BinaryIO, prep: Preparation) -> np.ndarray:
    """The image in `fp` as (C, H, W) uint8; Unusable when it cannot be."""
    raise NotImplementedError
