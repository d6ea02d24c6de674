"""One image file to (C, H, W) uint8 (advgraph.data.images.decode): formats, modes,
transparency, EXIF orientation, the size rule, and every kind of bad file. The files are made
here with Pillow; the expected pixels come from closed forms, not from the code under test."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from advgraph.data.images.decode import MAX_PIXELS, Preparation, Unusable, _flatten, decode


def saved(img: Image.Image, fmt: str = "PNG", **kw) -> io.BytesIO:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    buf.seek(0)
    return buf


def run(img_or_buf, size, channels=3, fit="crop", background=(0, 0, 0), fmt="PNG", **kw):
    buf = img_or_buf if isinstance(img_or_buf, io.BytesIO) else saved(img_or_buf, fmt, **kw)
    out = decode(buf, Preparation(tuple(size), channels, fit, tuple(background)))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    assert out.shape == (channels, *size)
    return out


def luma(r, g, b) -> int:  # ITU-R 601, as Pillow's convert("L") rounds it
    return int((r * 299 + g * 587 + b * 114) / 1000 + 0.5)


# ---- the size rule ---------------------------------------------------------------------------


def test_an_image_of_the_target_size_is_not_resampled():
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = run(Image.fromarray(a), (5, 7))
    assert np.array_equal(out, a.transpose(2, 0, 1))


def test_crop_cuts_the_middle_columns_exactly():
    a = np.array([[10, 20, 30, 40], [50, 60, 70, 80]], np.uint8)  # 2×4, distinct columns
    out = run(Image.fromarray(a, "L"), (2, 2), channels=1)
    assert out[0].tolist() == [[20, 30], [60, 70]]
    out = run(Image.fromarray(a.T.copy(), "L"), (2, 2), channels=1)  # 4×2: the middle rows
    assert out[0].tolist() == [[20, 60], [30, 70]]


def test_pad_centres_the_image_on_the_background_exactly():
    a = np.array([[10, 20], [30, 40]], np.uint8)
    out = run(Image.fromarray(np.stack([a] * 3, -1)), (4, 2), fit="pad", background=(1, 2, 3))
    assert out[:, 1:3].transpose(1, 2, 0).tolist() == np.stack([a] * 3, -1).tolist()
    assert out[:, 0].T.tolist() == [[1, 2, 3]] * 2 and out[:, 3].T.tolist() == [[1, 2, 3]] * 2


def test_crop_scales_to_cover_then_cuts_the_centre():
    # 10×20: red quarter, green half, blue quarter; the centred square is all green
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :5] = (255, 0, 0)
    a[:, 5:15] = (0, 255, 0)
    a[:, 15:] = (0, 0, 255)
    out = run(Image.fromarray(a), (5, 5))
    green = np.array([0, 255, 0])[:, None, None]
    assert np.abs(out[:, :, 1:4].astype(int) - green).max() <= 3
    # Lanczos reaches a little past the cut at the edges; uncut, they would be red and blue
    assert out[0].max() < 32 and out[2].max() < 32 and out[1].min() > 220
    big = run(Image.fromarray(a[:, 5:15]), (20, 20))  # upscaled
    assert (big == np.array([0, 255, 0])[:, None, None]).all()


def test_pad_scales_to_fit_inside_then_pads():
    img = Image.new("RGB", (20, 10), (255, 255, 255))  # W 20, H 10 → 10×5 inside 10×10
    out = run(img, (10, 10), fit="pad", background=(10, 20, 30))
    bg = np.array([10, 20, 30])[:, None, None]
    assert (out[:, :2] == bg).all() and (out[:, 7:] == bg).all()
    assert (out[:, 2:7] == 255).all()
    grey = run(img, (10, 10), channels=1, fit="pad", background=(10, 20, 30))
    assert (grey[0, :2] == luma(10, 20, 30)).all() and (grey[0, 2:7] == 255).all()


# ---- modes -----------------------------------------------------------------------------------


def test_16_bit_greyscale_is_scaled_not_clipped():
    a = np.array([[65535, 32896, 0, 257]], np.uint16)
    img = Image.fromarray(a)
    assert img.mode.startswith("I;16")
    out = run(img, (1, 4), channels=1)
    assert out[0, 0].tolist() == [255, 128, 0, 1]
    assert run(img, (1, 4), channels=3)[:, 0, 0].tolist() == [255, 255, 255]
    i32 = Image.fromarray(a.astype(np.int32), "I")  # 32-bit TIFF holding 16-bit samples
    assert run(i32, (1, 4), channels=1, fmt="TIFF")[0, 0].tolist() == [255, 128, 0, 1]


def test_float_greyscale_in_0_1_is_scaled():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    assert run(f, (1, 3), channels=1, fmt="TIFF")[0, 0].tolist() == [0, 128, 255]


def test_transparent_pixels_take_the_background_exactly():
    a = np.array([[[200, 100, 50, 0], [200, 100, 50, 255]]], np.uint8)
    out = run(Image.fromarray(a, "RGBA"), (1, 2), background=(10, 20, 30))
    assert out[:, 0, 0].tolist() == [10, 20, 30] and out[:, 0, 1].tolist() == [200, 100, 50]
    grey = run(Image.fromarray(a, "RGBA"), (1, 2), channels=1, background=(10, 20, 30))
    assert grey[0, 0].tolist() == [luma(10, 20, 30), luma(200, 100, 50)]
    half = run(Image.fromarray(np.array([[[255, 255, 255, 128]]], np.uint8), "RGBA"), (1, 1))
    assert half[:, 0, 0].tolist() == [128, 128, 128]  # 255·128/255 over black, rounded
    la = Image.fromarray(np.array([[[90, 0], [90, 255]]], np.uint8), "LA")
    assert run(la, (1, 2), background=(10, 20, 30))[:, 0].T.tolist() == [[10, 20, 30],
                                                                          [90, 90, 90]]


def test_a_palette_image_with_a_transparent_index():
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((1, 0), 1)
    out = run(p, (1, 2), background=(7, 8, 9), transparency=0)
    assert out[:, 0].T.tolist() == [[7, 8, 9], [0, 255, 0]]
    assert run(p, (1, 2))[:, 0].T.tolist() == [[255, 0, 0], [0, 255, 0]]  # no transparency
    assert run(p, (1, 2), channels=1)[0, 0].tolist() == [luma(255, 0, 0), luma(0, 255, 0)]


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "CMYK", "YCbCr"])
def test_other_modes_come_out_as_rgb_or_luminance(mode):
    rgb = Image.new("RGB", (3, 2), (255, 255, 255) if mode == "1" else (200, 100, 50))
    img = rgb.convert(mode)
    want = np.asarray(img.convert("RGB"))[0, 0]  # the colour the mode holds, as Pillow sees it
    out = np.asarray(_flatten(img, Preparation((2, 3), 3)))
    assert (out == want).all()
    grey = np.asarray(_flatten(img, Preparation((2, 3), 1)))
    assert abs(int(grey[0, 0]) - luma(*want.tolist())) <= 1


def test_greyscale_is_replicated_to_three_channels():
    out = run(Image.new("L", (2, 2), 77), (2, 2), channels=3)
    assert (out == 77).all()


def test_rgb_to_one_channel_is_the_luminance():
    out = run(Image.new("RGB", (2, 2), (10, 200, 40)), (2, 2), channels=1)
    assert (out == luma(10, 200, 40)).all()


# ---- formats, frames, orientation ------------------------------------------------------------


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("BMP", {}), ("TIFF", {}),
                                    ("WEBP", {"lossless": True}), ("GIF", {}),
                                    ("JPEG", {"quality": 100})])
def test_every_format_is_read(fmt, kw):
    out = run(Image.new("RGB", (6, 4), (0, 0, 255)), (4, 6), fmt=fmt, **kw)
    assert np.abs(out.astype(int) - np.array([0, 0, 255])[:, None, None]).max() <= 3


def test_a_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (4, 4), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    buf = saved(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert Image.open(buf).n_frames == 3
    buf.seek(0)
    assert (run(buf, (4, 4)) == np.array([255, 0, 0])[:, None, None]).all()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_exif_orientation_6_turns_the_image_clockwise(fmt):
    a = np.zeros((16, 32, 3), np.uint8)  # wide, with a white block top-left
    a[:8, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    kw = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    buf = saved(Image.fromarray(a), fmt, exif=exif, **kw)
    out = run(buf, (32, 16))  # the turned image is tall: no scaling
    want = np.rot90(a, k=-1).transpose(2, 0, 1)  # clockwise: the block goes top-right
    assert np.abs(out.astype(int) - want).mean() < 4
    assert out[:, :8, 8:].min() > 200 and out[:, :8, :8].max() < 50


def test_exif_orientation_is_read_only_where_a_file_has_exif():
    # the plain path: a PNG without EXIF is decoded as it is
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(run(Image.fromarray(a, "L"), (3, 4), channels=1)[0], a)


def test_a_large_jpeg_is_decoded_at_reduced_scale_to_the_right_colour():
    big = saved(Image.new("RGB", (4000, 3000), (30, 140, 220)), "JPEG", quality=90)
    out = run(big, (28, 28))
    assert np.abs(out.astype(int) - np.array([30, 140, 220])[:, None, None]).max() <= 3


# ---- bad files -------------------------------------------------------------------------------


def unusable(data: bytes, match: str):
    with pytest.raises(Unusable, match=match):
        decode(io.BytesIO(data), Preparation((4, 4), 3))


def test_an_empty_file():
    unusable(b"", "^empty file$")


@pytest.mark.parametrize("data", [b"hello, world\n", b"\x89PNG\r\n\x1a\n",
                                  b"P5 4 4 255\n" + bytes(16)])  # PGM: not a format we read
def test_not_an_image(data):
    unusable(data, "^not an image Pillow can read")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_file(fmt):
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = saved(Image.fromarray(noise), fmt).getvalue()
    unusable(data[: len(data) // 2], f"^truncated or corrupt {fmt}: ")


def test_a_corrupt_png_chunk():
    data = bytearray(saved(Image.new("RGB", (8, 8), (1, 2, 3))).getvalue())
    data[-20] ^= 0xFF  # inside IDAT: its CRC no longer matches
    unusable(bytes(data), "^truncated or corrupt PNG")


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header claims width×height (the IHDR patched, its CRC fixed)."""
    data = bytearray(saved(Image.new("L", (4, 4))).getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_a_decompression_bomb_is_refused_from_its_header_without_allocating():
    tracemalloc.start()
    t = time.perf_counter()
    try:
        unusable(png_declaring(100_000, 100_000), r"^too large: 10,000,000,000 pixels, over "
                                                  rf"the limit of {MAX_PIXELS:,}$")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20 and time.perf_counter() - t < 2


def test_an_image_over_our_limit_but_under_pillows_is_refused(monkeypatch):
    monkeypatch.setattr("advgraph.data.images.decode.MAX_PIXELS", 15)
    unusable(png_declaring(4, 4), r"^too large: 4×4 pixels, over the limit of 15$")


@pytest.mark.parametrize("side", [15, 40])  # Pillow's warning (over its limit), its error (2×)
def test_pillows_own_bomb_check_is_unusable_and_its_limit_untouched(monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    with _no_warning():
        unusable(png_declaring(side, side), "^too large: ")
    assert Image.MAX_IMAGE_PIXELS == 200


class _no_warning:
    def __enter__(self):
        import warnings
        self._cm = warnings.catch_warnings(record=True)
        self.seen = self._cm.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        assert not [w for w in self.seen if issubclass(w.category, Image.DecompressionBombWarning)]


def test_transparent_pixels_scaled_and_padded_still_give_the_background():
    clear_red = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    for fit, size in [("crop", (4, 4)), ("pad", (6, 3)), ("crop", (16, 16))]:
        out = run(clear_red, size, fit=fit, background=(10, 20, 30))
        assert (out == np.array([10, 20, 30])[:, None, None]).all(), (fit, size)
    opaque = Image.new("RGBA", (8, 4), (0, 200, 0, 255))  # padded: the bands are background
    out = run(opaque, (8, 8), fit="pad", background=(10, 20, 30))
    assert out[:, 0, 0].tolist() == [10, 20, 30] and out[:, 4, 4].tolist() == [0, 200, 0]


def test_a_16_bit_png_with_a_transparent_grey_value():
    a = np.array([[1000, 65535]], np.uint16)
    buf = saved(Image.fromarray(a), "PNG", transparency=1000)
    img = Image.open(buf)
    assert img.mode.startswith("I") and img.info.get("transparency") == 1000
    buf.seek(0)
    assert run(buf, (1, 2), background=(10, 20, 30))[:, 0].T.tolist() == [[10, 20, 30],
                                                                           [255, 255, 255]]


@pytest.mark.parametrize("mode,fmt", [("1", "PNG"), ("L", "PNG"), ("RGB", "PNG"),
                                      ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("LA", "PNG"),
                                      ("I;16B", "TIFF"), ("RGBX", "TIFF"), ("LAB", "TIFF"),
                                      ("YCbCr", "TIFF"), ("P", "GIF"), ("P", "BMP")])
def test_files_of_every_mode_decode(mode, fmt):
    # white in the mode: 16-bit white is 65535 (RGB white converted would be 255 of 65535)
    img = Image.new(mode, (6, 4), 65535) if mode.startswith("I;16") else \
        Image.new("RGB", (6, 4), (255, 255, 255)).convert(mode)
    try:
        buf = saved(img, fmt)
    except (OSError, ValueError, KeyError):
        pytest.skip(f"Pillow cannot write {mode} as {fmt}")
    for channels in (1, 3):
        buf.seek(0)
        out = run(buf, (4, 6), channels=channels)
        assert (out.astype(int) >= 245).all(), (mode, fmt, out.min())


def test_a_mode_pillow_cannot_convert_is_unusable(monkeypatch):
    buf = saved(Image.new("CMYK", (4, 4)), "JPEG")

    def refuse(self, mode=None, *args, **kw):
        raise ValueError(f"conversion from {self.mode} to {mode} not supported")

    monkeypatch.setattr(Image.Image, "convert", refuse)  # as for a mode it does not know
    with pytest.raises(Unusable, match=r"^CMYK pixels cannot be converted: conversion from "
                                       r"CMYK to RGB not supported$"):
        decode(buf, Preparation((4, 4), 3))
