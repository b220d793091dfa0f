"""Code sweep of a family generator: one slice per code, side by side and as an animation.

The montage puts the mid-depth slice of the volume generated at each code in one row,
captioned with its code, and under it the members' 2D training images at their codes
(cropped to the slice size, same pixel scale), so a reader sees at once whether the
generated feature size follows the code and matches the members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from microlib.media.panels import CAPTION_BAND, caption, centre_crop, zoom

GAP = 8


def _row(tiles: Sequence[np.ndarray], slots: int, width: int, gap: int) -> np.ndarray:
    """Tiles placed in ``slots`` equal columns (empty columns stay white)."""
    h = max(t.shape[0] for t in tiles if t is not None)
    out = np.full((h, slots * width + (slots - 1) * gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        if t is not None:
            x = i * (width + gap)
            out[: t.shape[0], x : x + t.shape[1]] = t
    return out


def mid_slice(volume: np.ndarray) -> np.ndarray:
    """The middle ``z`` section of a ``(Z, Y, X[, C])`` volume."""
    return np.asarray(volume)[volume.shape[0] // 2]


def sweep_montage(
    slices: Sequence[tuple[float, np.ndarray]],
    colour: Callable[[np.ndarray], np.ndarray],
    members: Sequence[tuple[float, np.ndarray]] = (),
    factor: int = 2,
) -> np.ndarray:
    """The montage: generated slices by code on top, members under their codes.

    Parameters
    ----------
    slices : sequence of (float, ndarray)
        ``(code, 2D section)`` of each generated volume.
    colour : callable
        Array -> uint8 RGB (:func:`microlib.media.colouriser`).
    members : sequence of (float, ndarray), optional
        ``(code, 2D training image)``; each is centre-cropped to the slices' size and
        placed under the slice of the same code (or its own column when no slice has it).
    factor : int
        Screen pixels per voxel (nearest-neighbour zoom, the same for every tile).

    Returns
    -------
    ndarray of uint8, (H, W, 3)
    """
    if not slices:
        raise ValueError("no slices to show")
    ordered = sorted(slices, key=lambda t: float(t[0]))
    codes = [float(c) for c, _ in ordered]
    extra = sorted(float(c) for c, _ in members if float(c) not in codes)
    columns = sorted(codes + extra)
    h, w = ordered[0][1].shape[:2]
    width = w * factor
    top: list[np.ndarray | None] = [None] * len(columns)
    for c, s in ordered:
        top[columns.index(float(c))] = caption(zoom(colour(s), factor), f"code {c:g}")
    out = [_row(top, len(columns), width, GAP)]
    if members:
        bottom: list[np.ndarray | None] = [None] * len(columns)
        for c, img in members:
            tile = zoom(colour(centre_crop(np.asarray(img), h, w)), factor)
            bottom[columns.index(float(c))] = caption(tile, f"member {float(c):g}")
        gap = np.full((GAP, out[0].shape[1], 3), 255, np.uint8)
        out += [gap, _row(bottom, len(columns), width, GAP)]
    return np.concatenate(out, axis=0)


def sweep_frames(
    slices: Sequence[tuple[float, np.ndarray]],
    colour: Callable[[np.ndarray], np.ndarray],
    factor: int = 2,
) -> list[np.ndarray]:
    """Animation frames: the generated slices in ascending code, each captioned."""
    return [
        caption(zoom(colour(s), factor), f"code {float(c):g}", CAPTION_BAND)
        for c, s in sorted(slices, key=lambda t: float(t[0]))
    ]


__all__ = ["mid_slice", "sweep_frames", "sweep_montage"]
