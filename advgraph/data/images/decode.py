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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import BinaryIO, Iterator

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
    mode = img.mode
    try:
        img = _fit(_normalised(img), prep)
        img = _opaque(img, prep)
    except (ValueError, OSError) as e:  # a mode Pillow cannot convert
        raise Unusable(f"{mode} pixels cannot be converted: {_brief(e)}") from None
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[None] if prep.channels == 1 else np.broadcast_to(a, (3, *a.shape))
    else:
        a = a.transpose(2, 0, 1)
    return np.ascontiguousarray(a)


_BOMBS_GUARDED = 0  # inside bombs_as_errors(): load() need not enter its own


@contextmanager
def bombs_as_errors() -> Iterator[None]:
    """Pillow's DecompressionBombWarning raised (load() makes it Unusable) for every file
    decoded inside: one catch_warnings for a chunk of files instead of one each (it costs about
    2 µs a file, 4% of decoding a small PNG)."""
    global _BOMBS_GUARDED
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        _BOMBS_GUARDED += 1
        try:
            yield
        finally:
            _BOMBS_GUARDED -= 1


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
        with (nullcontext() if _BOMBS_GUARDED else bombs_as_errors()):
            img = Image.open(fp, formats=FORMATS)
            fmt = img.format or fmt
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise _too_large(f"{w:,}×{h:,}")
            if target and fmt in ("JPEG", "MPO") and min(w, h) >= 2 * target:
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


def _normalised(img: Image.Image) -> Image.Image:
    """`img` as L, RGB or RGBA: palette, 1-bit, 16-bit and float greyscale, CMYK, YCbCr, ...;
    RGBA wherever the image has transparency (an alpha band or a transparent colour)."""
    mode = img.mode
    trns = img.info.get("transparency")
    if mode in ("L", "RGB") and trns is None:
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        raw = np.asarray(img)
        grey = _from_float(raw) if mode == "F" else _from_16bit(raw)
        if isinstance(trns, int):  # a grey value that stands for transparent
            alpha = np.where(raw == trns, 0, 255).astype(np.uint8)
            return Image.fromarray(np.stack([grey] * 3 + [alpha], -1), "RGBA")
        return Image.fromarray(grey, "L")
    if trns is not None or mode in _ALPHA:
        return img.convert("RGBA")
    return img.convert("L" if mode == "1" else "RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX


def _opaque(img: Image.Image, prep: Preparation) -> Image.Image:
    """`img` (L, RGB or RGBA) composited over the background, in prep.channels: one is
    Pillow's luminance of RGB (ITU-R 601)."""
    if img.mode == "RGBA":
        canvas = Image.new("RGB", img.size, tuple(prep.background))
        canvas.paste(img.convert("RGB"), mask=img.getchannel("A"))
        img = canvas
    if prep.channels == 1 and img.mode == "RGB":
        img = img.convert("L")
    return img


def _flatten(img: Image.Image, prep: Preparation) -> Image.Image:
    """`img` as L (one channel, or a greyscale image for three) or RGB, its transparency
    composited over the background (no resizing)."""
    return _opaque(_normalised(img), prep)


_LUT16 = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _from_16bit(a: np.ndarray) -> np.ndarray:
    """16-bit samples to 8 bits, rounded (65535 → 255, 32896 → 128); mode "I" holds 16-bit
    samples too (values outside 0..65535 are clipped)."""
    if a.dtype.itemsize > 2:
        a = np.clip(a, 0, 65535)
    return _LUT16[a]


def _from_float(a: np.ndarray) -> np.ndarray:
    """Float samples: in [0, 1] when none is above 1, else in [0, 255]; NaN is 0."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    scale = 255.0 if a.size and a.max() <= 1.0 else 1.0
    return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)


def _fill(img: Image.Image, background: tuple[int, int, int]):
    """The padding's colour in the image's mode (transparent in RGBA: composited later)."""
    if img.mode == "RGBA":
        return (0, 0, 0, 0)
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
