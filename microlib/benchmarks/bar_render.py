"""Scale bars rendered onto real micrographs, with their exact pixels, for ``bench annotate``.

A bar and its text label are drawn into an alpha layer (PIL: the default bitmap font or
a TrueType font, antialiased), then composited over the image in one grey level. The
ground truth is every pixel the alpha layer touches (alpha > 0), the bar's box and its
length. Overlay style draws over the data; band style appends a plain band below the
image and draws in it (the crop should then remove the band).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = (Path("/usr/share/fonts"),)
BITMAP = "PIL-bitmap"
# most of the data under a bar's block that may share its grey (within 40 levels)
LEGIBLE_MAX = 0.1


def available_fonts(limit: int = 6) -> list[str]:
    """PIL's default bitmap font plus up to ``limit`` TrueType fonts found on the machine
    (regular, bold and serif faces first)."""
    found: list[Path] = []
    for d in FONT_DIRS:
        if d.is_dir():
            found.extend(sorted(d.rglob("*.ttf")))
    # upright text faces only: symbol and math fonts do not draw digits and 'um'
    found = [f for f in found if not any(k in f.name for k in ("Math", "Oblique", "Italic"))]
    pref = ("Sans.ttf", "Sans-Regular", "Sans-Bold", "Serif", "Mono", "Condensed", "Narrow")
    found.sort(key=lambda f: next((i for i, k in enumerate(pref) if k in f.name), len(pref)))
    out, seen = [BITMAP], set()
    for f in found:
        fam = f.stem.split("-")[0] + ("B" if "Bold" in f.stem else "")
        if fam in seen:
            continue
        seen.add(fam)
        out.append(str(f))
        if len(out) > limit:
            break
    return out


@dataclass(frozen=True)
class BarStyle:
    """One rendering: font (path or :data:`BITMAP`), text size (px), bar grey level,
    preferred corner (``bl``, ``br``, ``tl``, ``tr``; an overlay moves to the corner where
    it reads best when the data there share its grey), ``overlay`` or ``band``, bar length as a
    fraction of the width and bar thickness (px)."""

    font: str
    size: int
    colour: int
    corner: str
    style: str
    length_frac: float
    thickness: int

    def describe(self) -> str:
        name = "bitmap" if self.font == BITMAP else Path(self.font).stem
        return (
            f"{name} {self.size}px grey {self.colour} {self.corner} {self.style} "
            f"len {self.length_frac:.2f} thick {self.thickness}"
        )


def _font(style: BarStyle) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    if style.font == BITMAP:
        return ImageFont.load_default_imagefont()
    return ImageFont.truetype(style.font, style.size)


def _corner_origin(corner: str, shape: tuple[int, ...], margin: int, bw: int, bh: int):
    h, w = shape[:2]
    top = margin if corner.startswith("t") else h - margin - bh
    left = margin if corner.endswith("l") else w - margin - bw
    return top, left


def _legible_placement(
    img: np.ndarray, style: BarStyle, margin: int, bw: int, bh: int
) -> tuple[int, int, int]:
    """Where and in which grey a microscopist would put the bar: the style's corner and
    grey unless more than a tenth of the data there are within 40 levels of the bar's
    grey (it would not read), then the corner where fewest are; when no corner reads
    (a black bar on a mostly black image), the corner and black or white that read best.
    Returns ``(top, left, grey)``."""
    grey = img.astype(np.float64) if img.ndim == 2 else img[..., :3].astype(np.float64).mean(-1)

    def same(corner: str, colour: int) -> float:
        top, left = _corner_origin(corner, img.shape, margin, bw, bh)
        region = grey[max(0, top) : top + bh, max(0, left) : left + bw]
        return float((np.abs(region - colour) <= 40).mean()) if region.size else 1.0

    corner, colour = style.corner, style.colour
    if same(corner, colour) > LEGIBLE_MAX:
        corner = min(("bl", "br", "tl", "tr"), key=lambda c: same(c, colour))
    if same(corner, colour) > LEGIBLE_MAX:
        corner, colour = min(
            ((c, v) for c in ("bl", "br", "tl", "tr") for v in (0, 255)),
            key=lambda cv: same(*cv),
        )
    return (*_corner_origin(corner, img.shape, margin, bw, bh), colour)


def render(image: np.ndarray, style: BarStyle, label: str = "50 um") -> dict[str, Any]:
    """Draw a scale bar and label on ``image`` (uint8 grey or RGB).

    Returns
    -------
    dict
        ``image`` (uint8, same channels), ``truth`` (bool, alpha > 0), ``bar_box``,
        ``length_px``, ``colour`` (the grey drawn), ``data_box`` (the micrograph inside the output, ``[x0, y0, x1, y1]``).
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    font = _font(style)
    bar_len = max(20, int(round(style.length_frac * w)))
    draw_probe = ImageDraw.Draw(Image.new("L", (8, 8)))
    tx0, ty0, tx1, ty1 = draw_probe.textbbox((0, 0), label, font=font)
    tw, th = tx1 - tx0, ty1 - ty0
    gap = max(3, th // 3)
    block_w, block_h = max(bar_len, tw), th + gap + style.thickness
    margin = max(8, int(0.03 * min(h, w)))
    colour = style.colour
    if style.style == "band":
        band_h = block_h + 2 * margin
        out_h = h + band_h
        top = h + margin
        left = margin if style.corner.endswith("l") else w - margin - block_w
    else:
        out_h = h
        top, left, colour = _legible_placement(img, style, margin, block_w, block_h)
    alpha = Image.new("L", (w, out_h), 0)
    d = ImageDraw.Draw(alpha)
    bx0 = left + (block_w - bar_len) // 2
    by0 = top + th + gap
    d.rectangle([bx0, by0, bx0 + bar_len - 1, by0 + style.thickness - 1], fill=255)
    lx = left + (block_w - tw) // 2 - tx0
    d.text((lx, top - ty0), label, fill=255, font=font)
    a = np.asarray(alpha, dtype=np.float64) / 255.0
    base = img.astype(np.float64)
    if style.style == "band":
        # the band is the far extreme from the bar colour, as DoITPoMS info bands are
        band_grey = 0.0 if style.colour >= 128 else 255.0
        shape = (out_h, w) + base.shape[2:]
        canvas = np.full(shape, band_grey)
        canvas[:h] = base
        base = canvas
    if base.ndim == 3:
        a = a[..., None]
    out = np.clip(np.round(base * (1 - a) + float(colour) * a), 0, 255).astype(np.uint8)
    truth = np.asarray(alpha) > 0
    return {
        "image": out,
        "truth": truth,
        "bar_box": [int(bx0), int(by0), int(bx0 + bar_len), int(by0 + style.thickness)],
        "length_px": int(bar_len),
        "colour": int(colour),
        "data_box": [0, 0, int(w), int(h)],
    }


def styles_for(index: int, fonts: list[str], n: int, rng: np.random.Generator) -> list[BarStyle]:
    """``n`` renderings for image ``index``: fonts cycle over the images, colours cycle
    white / black / grey, corners and styles rotate, sizes and bar shapes are drawn."""
    colours = (255, 0, 128, 200, 50)
    corners = ("bl", "br", "tl", "tr")
    out = []
    for k in range(n):
        j = index * n + k
        out.append(
            BarStyle(
                font=fonts[j % len(fonts)],
                size=int(rng.integers(11, 30)),
                colour=colours[j % len(colours)],
                corner=corners[(j // 2) % len(corners)],
                style="band" if j % 4 == 3 else "overlay",
                length_frac=float(rng.uniform(0.12, 0.35)),
                thickness=int(rng.integers(3, 9)),
            )
        )
    return out
