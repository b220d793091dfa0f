"""Rendered scale bars (a solid bar plus a text label) and JPEG encoding.

The bar is drawn on a separate coverage layer before compositing, so every pixel it or
its antialiased label touched is known: the ground-truth mask the in-painter must cover.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from microlib.demo_site.structures import to_uint8


@dataclass
class BarSpec:
    """A scale bar to render: ``placement`` is ``overlay`` (drawn on the data, bottom
    right or bottom left), ``band`` (in an info band added below the data) or ``none``."""

    placement: str = "overlay"
    corner: str = "right"
    colour: int = 255
    um: float = 20.0
    voxel_size_um: float = 0.25
    thickness: int = 6
    band_height: int = 46
    band_colour: int = 0
    separator: int | None = None
    extra_text: str | None = None
    font_size: int = 16


def _font(size: int) -> tuple[Any, bool]:
    """A scalable font and whether it has non-ASCII glyphs (µ, ×, ü).

    DejaVu Sans (present on most Linux systems and in matplotlib) covers them; Pillow's
    built-in font, the fallback, does not, so labels then fall back to ASCII ("um").
    """
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    try:
        import matplotlib

        path = f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf"
        return ImageFont.truetype(path, size), True
    except (ImportError, OSError):
        pass
    return ImageFont.load_default(size=size), False


def _ascii(text: str) -> str:
    return text.replace("µ", "u").replace("×", "x").replace("ü", "ue").replace("°", " deg")


def render_scale_bar(
    img: np.ndarray, spec: BarSpec
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw a scale bar and its label on a uint8 image.

    Returns
    -------
    image : ndarray
        uint8 image (taller by ``band_height`` for a band placement).
    overlay : ndarray of bool
        Every pixel the bar or label touched (antialiasing included): the ground-truth
        mask the in-painter must cover.
    info : dict
        ``bar_box``, ``label_box``, ``box`` (union), ``length_px``, ``label``.
    """
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    colour_img = img.ndim == 3
    if spec.placement == "none":
        return img, np.zeros((h, w), bool), {"placement": "none"}
    length = int(round(spec.um / spec.voxel_size_um))
    font, unicode_ok = _font(spec.font_size)
    label = f"{spec.um:g} µm" if unicode_ok else f"{spec.um:g} um"
    if spec.placement == "band":
        band = np.full((spec.band_height, w) + img.shape[2:], spec.band_colour, np.uint8)
        parts = [img]
        if spec.separator is not None:
            parts.append(np.full((2, w) + img.shape[2:], spec.separator, np.uint8))
        parts.append(band)
        canvas = np.concatenate(parts, axis=0)
        top = canvas.shape[0] - spec.band_height
        y_bar = top + spec.band_height - 10 - spec.thickness
        x_bar = w - 16 - length
    else:
        canvas = img.copy()
        top = None
        y_bar = h - 14 - spec.thickness
        x_bar = w - 18 - length if spec.corner == "right" else 18
    ch, cw = canvas.shape[:2]
    # draw on a separate coverage layer, then composite: the layer is the ground truth
    layer = Image.new("L", (cw, ch), 0)
    draw = ImageDraw.Draw(layer)
    draw.rectangle([x_bar, y_bar, x_bar + length - 1, y_bar + spec.thickness - 1], fill=255)
    tb = draw.textbbox((0, 0), label, font=font)
    tw, th = tb[2] - tb[0], tb[3] - tb[1]
    tx = x_bar + (length - tw) // 2 - tb[0]
    ty = y_bar - 4 - th - tb[1]
    draw.text((tx, ty), label, font=font, fill=255)
    if spec.extra_text and top is not None:
        small, small_ok = _font(spec.font_size - 2)
        draw.text(
            (12, top + 8),
            spec.extra_text if small_ok else _ascii(spec.extra_text),
            font=small,
            fill=255,
        )
    alpha = np.asarray(layer, dtype=np.float64) / 255.0
    if colour_img:
        alpha3 = alpha[..., None]
        out = canvas.astype(np.float64) * (1 - alpha3) + spec.colour * alpha3
    else:
        out = canvas.astype(np.float64) * (1 - alpha) + spec.colour * alpha
    overlay = alpha > 0
    ys, xs = np.nonzero(overlay)
    lab_ys, lab_xs = np.nonzero(overlay[:y_bar, :]) if y_bar > 0 else (ys, xs)
    info = {
        "placement": spec.placement,
        "colour": spec.colour,
        "um": spec.um,
        "label": label,
        "length_px": length,
        "bar_box": [int(x_bar), int(y_bar), int(x_bar + length), int(y_bar + spec.thickness)],
        "label_box": (
            [int(lab_xs.min()), int(lab_ys.min()), int(lab_xs.max() + 1), int(y_bar)]
            if lab_xs.size
            else None
        ),
        "box": [int(xs.min()), int(ys.min()), int(xs.max() + 1), int(ys.max() + 1)],
    }
    return to_uint8(out), overlay, info


def add_frame(img: np.ndarray, width: int, value: int) -> np.ndarray:
    """Surround an image with a constant frame ``width`` px wide."""
    pad = ((width, width), (width, width)) + (((0, 0),) if img.ndim == 3 else ())
    return np.pad(img, pad, mode="constant", constant_values=value)


def encode_jpeg(img: np.ndarray, quality: int = 88) -> bytes:
    """JPEG bytes of a uint8 image (the demo site serves JPEGs like DoITPoMS)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality), optimize=False)
    return buf.getvalue()
