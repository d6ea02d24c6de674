"""One image file to a (C, H, W) uint8 array, by the declared channels and size rule.

Pillow reads PNG, JPEG, WebP, BMP, GIF (its first frame) and TIFF only. The pixel count is
checked from the header, before anything is decoded (MAX_PIXELS; Pillow's own global limit is
left as the user has it). A JPEG much larger than the target is decoded at 1/2, 1/4 or 1/8
scale (draft). Then: EXIF orientation; the mode brought to L or RGB (palette, 1-bit, 16-bit
and float greyscale scaled, never clipped; CMYK and YCbCr converted; transparency composited
over the background); the size rule; greyscale from RGB is Pillow's convert("L") (ITU-R 601).
Scaling is Lanczos (reducing_gap 3: a large image is first reduced by box averaging)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
MAX_PIXELS = 64_000_000
RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0
# EXIF orientation → the transpose that undoes it (as ImageOps.exif_transpose)
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


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
    img = load(fp, max(prep.size))
    img = _flatten(img, prep)
    img = _fit(img, prep)
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[None] if prep.channels == 1 else np.broadcast_to(a, (3, *a.shape))
    else:
        a = a.transpose(2, 0, 1)
    return np.ascontiguousarray(a)


def _too_large(pixels: str) -> Unusable:
    return Unusable(f"too large: {pixels} pixels, over the limit of {MAX_PIXELS:,}")


def load(fp: BinaryIO, target: int | None = None) -> Image.Image:
    """The image in `fp`, decoded (the first frame) and turned by its EXIF orientation;
    Unusable when it is not one, is damaged or is too large. `target`: the largest side
    wanted, for a reduced-scale JPEG decode."""
    if not fp.read(1):
        raise Unusable("empty file")
    fp.seek(0)
    fmt = "image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=FORMATS)
            fmt = img.format or fmt
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise _too_large(f"{w:,}×{h:,}")
            if target and fmt == "JPEG" and min(w, h) >= 2 * target:
                img.draft(None, (target, target))  # keeps both sides ≥ target
            img.load()
    except Unusable:
        raise
    except UnidentifiedImageError:
        raise Unusable("not an image Pillow can read (PNG, JPEG, WebP, BMP, GIF, TIFF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise _too_large(f"{int(m[1]):,}" if m else "too many") from None
    except MemoryError:
        raise Unusable(f"{fmt}: not enough memory to decode it") from None
    except Exception as e:  # OSError, SyntaxError, EOFError, struct.error, ...: a bad file
        raise Unusable(f"truncated or corrupt {fmt}: {_brief(e)}") from None
    return _oriented(img)


def _brief(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _oriented(img: Image.Image) -> Image.Image:
    # only files that carry EXIF pay for reading it (a plain PNG has no "exif" in its info)
    if "exif" not in img.info and img.format != "TIFF":
        return img
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block: the pixels are still good
        return img
    method = _ORIENT.get(orientation)
    return img if method is None else img.transpose(method)


def _flatten(img: Image.Image, prep: Preparation) -> Image.Image:
    """`img` as L (one channel, or a greyscale image for three) or RGB, with transparency
    composited over the background."""
    mode = img.mode
    if "transparency" in img.info and mode in ("L", "RGB", "P", "1", "I;16", "I"):
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("L", "RGB"):
        pass
    elif mode == "1":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("RGB")
    elif mode.startswith("I;16") or mode == "I":
        img = Image.fromarray(_from_16bit(np.asarray(img)), "L")
    elif mode == "F":
        img = Image.fromarray(_from_float(np.asarray(img)), "L")
    elif mode in _ALPHA:
        img = Image.fromarray(_composite(np.asarray(img.convert("RGBA")), prep.background),
                              "RGB")
    else:  # CMYK, YCbCr, LAB, HSV, RGBX
        img = img.convert("RGB")
    if prep.channels == 1 and img.mode == "RGB":
        img = img.convert("L")
    return img


def _from_16bit(a: np.ndarray) -> np.ndarray:
    """16-bit samples to 8 bits, rounded (65535 → 255, 32896 → 128); mode "I" holds 16-bit
    samples too (values outside 0..65535 are clipped)."""
    a = np.clip(a.astype(np.int64), 0, 65535)
    return ((a * 255 + 32767) // 65535).astype(np.uint8)


def _from_float(a: np.ndarray) -> np.ndarray:
    """Float samples: in [0, 1] when none is above 1, else in [0, 255]; NaN is 0."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    scale = 255.0 if a.size and a.max() <= 1.0 else 1.0
    return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)


def _composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """RGBA over an opaque background, rounded: alpha 0 gives the background exactly, alpha
    255 the colour."""
    alpha = rgba[..., 3:].astype(np.uint32)
    fg = rgba[..., :3].astype(np.uint32)
    bg = np.asarray(background, np.uint32)
    return ((fg * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)


def _fill(img: Image.Image, background: tuple[int, int, int]) -> int | tuple[int, int, int]:
    if img.mode == "RGB":
        return tuple(background)
    return Image.new("RGB", (1, 1), tuple(background)).convert("L").getpixel((0, 0))


def _fit(img: Image.Image, prep: Preparation) -> Image.Image:
    """`img` brought to prep.size: covering it and cut to the centre ("crop"), or inside it
    and padded ("pad"). Nothing is resampled where no scaling is needed."""
    th, tw = prep.size
    w, h = img.size
    if (w, h) == (tw, th):
        return img
    if prep.fit == "crop":
        if w * th == h * tw:  # same aspect: the whole image, scaled
            return img.resize((tw, th), RESAMPLE, reducing_gap=REDUCING_GAP)
        if w >= tw and h >= th and (w == tw or h == th):  # only cutting
            x, y = (w - tw) // 2, (h - th) // 2
            return img.crop((x, y, x + tw, y + th))
        # the largest centred region of the target's aspect, scaled to the target
        s = min(w / tw, h / th)
        rw, rh = tw * s, th * s
        box = ((w - rw) / 2, (h - rh) / 2, (w + rw) / 2, (h + rh) / 2)
        return img.resize((tw, th), RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    s = min(tw / w, th / h)
    nw, nh = max(1, min(tw, round(w * s))), max(1, min(th, round(h * s)))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), RESAMPLE, reducing_gap=REDUCING_GAP)
    canvas = Image.new(img.mode, (tw, th), _fill(img, prep.background))
    canvas.paste(img, ((tw - nw) // 2, (th - nh) // 2))
    return canvas
