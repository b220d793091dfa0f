"""Is a served body a complete, decodable image of plausible size?"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from microlib.errors import MicrolibError

IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "TIFF", "BMP")


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`validate_image` learnt about an image."""

    format: str
    width: int
    height: int
    mode: str


def _looks_like_markup(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<!--"))


def validate_image(
    data: bytes,
    *,
    min_side: int = 32,
    max_side: int = 20000,
    max_pixels: int = 100_000_000,
    formats: tuple[str, ...] = IMAGE_FORMATS,
) -> ImageInfo:
    """Check that ``data`` is a complete, decodable image of plausible size.

    The image is fully decoded (``verify()`` alone misses truncated JPEG scans), with
    Pillow's truncated-image tolerance forced off. Dimensions are checked from the
    header before decoding so an oversized image is rejected without decompressing it.

    Raises
    ------
    MicrolibError
        With the reason: HTML or other non-image body, undecodable or truncated data,
        a format outside ``formats``, a side below ``min_side`` or above ``max_side``,
        or more than ``max_pixels`` pixels.
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    if not data:
        raise MicrolibError("empty body where an image was expected")
    if _looks_like_markup(data):
        raise MicrolibError("HTML/markup served where an image was expected")
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # we apply our own pixel cap below; Pillow's lower warning threshold is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                im = Image.open(io.BytesIO(data))
            except UnidentifiedImageError:
                raise MicrolibError("not a decodable image (unknown format)") from None
            except Image.DecompressionBombError as exc:
                raise MicrolibError(f"image too large: {exc}") from None
            with im:
                fmt, (w, h), mode = im.format or "?", im.size, im.mode
                if fmt not in formats:
                    raise MicrolibError(
                        f"unsupported image format {fmt} (allowed: {', '.join(formats)})"
                    )
                if min(w, h) < min_side:
                    raise MicrolibError(f"image too small: {w}x{h} px (min side {min_side})")
                if max(w, h) > max_side:
                    raise MicrolibError(f"image too large: {w}x{h} px (max side {max_side})")
                if w * h > max_pixels:
                    raise MicrolibError(f"image too large: {w * h} px > {max_pixels}")
                try:
                    im.load()
                except (OSError, SyntaxError, ValueError) as exc:
                    raise MicrolibError(f"truncated or corrupt image: {exc}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return ImageInfo(format=fmt, width=int(w), height=int(h), mode=mode)
