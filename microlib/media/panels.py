"""Still figures of an entry: the equal-scale preview and the in-painting panel.

The preview sets a crop of the 2D training image beside the 3D volume's mid-slices at
the **same pixel scale**: one image pixel and one voxel both become ``zoom x zoom``
screen pixels (integer nearest-neighbour repetition, so label colours stay exact and no
panel is resampled). A feature therefore looks as large in 3D as in 2D, and when the
voxel size is known every panel carries the same micrometre scale bar.

Text is rendered in software with Pillow's built-in font (no system fonts needed);
that font has no ``µ``, so the micro sign is drawn as a ``u`` with a descender.
All functions are pure (arrays in, arrays out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from microlib.media.render import MASK_COLOUR, render_box

CAPTION_BAND = 22  # px of caption above a tile
SCALE_BAND = 20  # px under a slice tile holding the scale bar
FONT_SIZE = 12
INK = (0, 0, 0)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=FONT_SIZE)


def draw_text(rgb: np.ndarray, xy: tuple[int, int], text: str, colour=INK) -> np.ndarray:
    """Draw ``text`` with its top-left corner at ``xy`` (in place; also returned).

    ``µ`` is drawn as ``u`` plus a descender on its left stem, since the built-in font
    lacks the glyph.
    """
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    font = _font()
    x, y = xy
    for i, part in enumerate(text.split("µ")):
        if i:
            left, top, right, bottom = draw.textbbox((x, y), "u", font=font)
            draw.text((x, y), "u", fill=colour, font=font)
            draw.line([(left, top), (left, bottom + 3)], fill=colour, width=1)
            x = right
        if part:
            draw.text((x, y), part, fill=colour, font=font)
            x = draw.textbbox((x, y), part, font=font)[2]
    rgb[:] = np.asarray(im)
    return rgb


def caption(tile: np.ndarray, text: str, band: int = CAPTION_BAND) -> np.ndarray:
    """The tile under a white band of ``band`` px holding ``text``."""
    out = np.full((tile.shape[0] + band, tile.shape[1], 3), 255, np.uint8)
    out[band:] = tile
    return draw_text(out, (4, max(band - FONT_SIZE - 6, 0)), text)


def fit_height(rgb: np.ndarray, height: int, nearest: bool = False) -> np.ndarray:
    """Resize an RGB image to ``height`` rows, keeping the aspect ratio."""
    import cv2

    h, w = rgb.shape[:2]
    if h == height:
        return rgb
    width = max(int(round(w * height / h)), 1)
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if height < h else cv2.INTER_LINEAR)
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interp)


def hstack(tiles: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Tiles side by side on white, top-aligned, ``gap`` px apart."""
    h = max(t.shape[0] for t in tiles)
    w = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    out = np.full((h, w, 3), 255, np.uint8)
    x = 0
    for t in tiles:
        out[: t.shape[0], x : x + t.shape[1]] = t
        x += t.shape[1] + gap
    return out


# --------------------------------------------------------------------------- scale


def zoom_factor(volume_shape: Sequence[int], size: int) -> int:
    """Integer screen pixels per voxel so the volume's longest edge spans at most ``size``
    px (at least 1: a volume is never shown below one screen pixel per voxel)."""
    return max(1, int(size) // max(int(s) for s in volume_shape[:3]))


def zoom(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel repeated ``factor x factor`` times: exact, equal for every panel."""
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1) if factor > 1 else rgb


def centre_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centred ``height x width`` crop (clipped to the image)."""
    h, w = image.shape[:2]
    ch, cw = min(h, int(height)), min(w, int(width))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return image[y0 : y0 + ch, x0 : x0 + cw]


def round_length(max_um: float) -> float:
    """The largest 1, 2 or 5 x 10^k micrometres not above ``max_um``."""
    if max_um <= 0 or not math.isfinite(max_um):
        raise ValueError(f"scale bar room must be a positive length, got {max_um}")
    k = math.floor(math.log10(max_um))
    for m in (5, 2, 1):
        if m * 10.0**k <= max_um * (1 + 1e-9):
            return m * 10.0**k
    return 10.0**k  # unreachable: 1 x 10^k <= max_um by the choice of k


def format_length(um: float) -> str:
    """``"50 µm"``, ``"500 nm"`` below 1 µm, ``"2 mm"`` from 1 mm."""
    if um >= 1000:
        return f"{um / 1000:g} mm"
    if um < 1:
        return f"{um * 1000:g} nm"
    return f"{um:g} µm"


def scale_bar(voxel_size_um: float, factor: int, max_px: int) -> tuple[float, int]:
    """Round scale-bar length for a panel of ``factor`` screen px per pixel.

    Returns
    -------
    (length_um, length_px)
        A 1/2/5 x 10^k µm length and its on-screen length
        ``round(length_um * factor / voxel_size_um)``, at most ``max_px``.
    """
    px_per_um = factor / float(voxel_size_um)
    length = round_length(max_px / px_per_um)
    return length, int(round(length * px_per_um))


def with_scale_band(
    tile: np.ndarray, voxel_size_um: float | None, factor: int, band: int = SCALE_BAND
) -> np.ndarray:
    """The tile above a white band with a black scale bar and its length (or "scale
    unknown" when the voxel size is None). The bar starts 4 px from the left, 3 px tall;
    it fills at most 40 % of the tile's width."""
    out = np.full((tile.shape[0] + band, tile.shape[1], 3), 255, np.uint8)
    out[: tile.shape[0]] = tile
    top = tile.shape[0] + 4
    if not voxel_size_um:
        return draw_text(out, (4, top - 2), "scale unknown", (110, 110, 110))
    length, px = scale_bar(voxel_size_um, factor, max(int(0.4 * tile.shape[1]), 1))
    out[top : top + 3, 4 : 4 + px] = INK
    return draw_text(out, (4 + px + 5, top - 4), format_length(length))


# --------------------------------------------------------------------------- figures


def preview(
    image: np.ndarray,
    volume: np.ndarray,
    colour: Callable,
    *,
    size: int = 256,
    nearest: bool = True,
    voxel_size_um: float | None = None,
) -> np.ndarray:
    """Training-image crop | z, y, x mid-slices | cube render, all at one pixel scale.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, 3)
        The 2D training image; its centred crop to the volume's ``Y x X`` edge is shown.
    volume : ndarray, (Z, Y, X) or (Z, Y, X, 3)
    colour : callable
        Slice -> uint8 RGB (:func:`~microlib.media.render.colouriser`).
    size : int
        The cube render's edge in px; slices get :func:`zoom_factor` ``(volume, size)``
        screen px per voxel, and the crop the same per image pixel.
    nearest : bool
        Kept for callers of the earlier API; panels are always zoomed by integer pixel
        repetition, which keeps label colours exact.
    voxel_size_um : float, optional
        Micrometres per pixel/voxel: a scale bar under every 2D panel.

    Returns
    -------
    ndarray of uint8, (rows, cols, 3)
        Captions on top (:data:`CAPTION_BAND` px), scale band under each slice panel.
    """
    del nearest  # always exact repetition, see above
    zn, yn, xn = volume.shape[:3]
    f = zoom_factor(volume.shape, size)
    crop = centre_crop(image, yn, xn)
    panels = [
        ("2D training image (crop)", crop),
        (f"3D z = {zn // 2}", volume[zn // 2]),
        (f"3D y = {yn // 2}", volume[:, yn // 2]),
        (f"3D x = {xn // 2}", volume[:, :, xn // 2]),
    ]
    tiles = [
        caption(with_scale_band(zoom(colour(arr), f), voxel_size_um, f), text)
        for text, arr in panels
    ]
    cube = render_box(volume, colour, azimuth=35.0, elevation=30.0, size=size)
    text = f"3D {zn}x{yn}x{xn}"
    if voxel_size_um:
        text += f", {format_length(voxel_size_um)} voxels"
    tiles.append(caption(cube, text))
    return hstack(tiles)


def mask_overlay(
    image_rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = MASK_COLOUR
) -> np.ndarray:
    """Copy of an RGB image with the mask's pixels painted ``colour``."""
    out = np.array(image_rgb, copy=True)
    out[np.asarray(mask) > 0] = colour
    return out


def inpaint_panel(
    segmented: np.ndarray,
    mask: np.ndarray,
    training: np.ndarray,
    colour: Callable,
    *,
    max_height: int = 1024,
) -> np.ndarray:
    """Segmented image with the mask in red beside the in-painted training image
    (MicroLib Figure 2, columns 2-3), at native resolution up to ``max_height``."""
    left = mask_overlay(colour(segmented), mask)
    right = colour(training)
    h = min(left.shape[0], max_height)
    return hstack(
        [
            caption(fit_height(left, h, True), "segmented + mask"),
            caption(fit_height(right, h, True), "in-painted (training)"),
        ]
    )
