"""Where training patches may come from, and the mask split into regions to fill."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def eligible_corners(mask: np.ndarray, patch: int | tuple[int, int]) -> np.ndarray:
    """Top-left corners of ``patch x patch`` windows that contain no masked pixel.

    One integral image answers every window at once (the research code summed 4096
    rolled copies of the full mask).

    Parameters
    ----------
    mask : ndarray of bool, (H, W)
    patch : int or (int, int)
        Window edge, or ``(height, width)`` of a rectangular window.

    Returns
    -------
    ndarray of int64, (K, 2)
        ``(row, col)`` of every eligible corner, row-major order.
    """
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    ph, pw = (patch, patch) if np.isscalar(patch) else patch
    ph, pw = int(ph), int(pw)
    if h < ph or w < pw:
        return np.zeros((0, 2), dtype=np.int64)
    s = np.zeros((h + 1, w + 1), dtype=np.int64)
    s[1:, 1:] = np.cumsum(np.cumsum(m, axis=0, dtype=np.int64), axis=1)
    window = (
        s[ph:, pw:] - s[: h + 1 - ph, pw:] - s[ph:, : w + 1 - pw] + s[: h + 1 - ph, : w + 1 - pw]
    )
    return np.argwhere(window == 0)


def mask_regions(mask: np.ndarray, group_gap: int = 8) -> list[np.ndarray]:
    """Split a mask into regions to fill one at a time.

    Connected components (8-connectivity) closer than ``group_gap`` pixels are grouped,
    so a scale bar and the letters of its label become one region with one shared
    context window.

    Returns
    -------
    list of ndarray of bool
        One full-size boolean mask per region, ordered by first pixel (row-major).
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return []
    grown = (
        ndimage.binary_dilation(
            m, structure=np.ones((3, 3), bool), iterations=max(int(group_gap) // 2, 0)
        )
        if group_gap > 1
        else m
    )
    labels, n = ndimage.label(grown, structure=np.ones((3, 3), int))
    regions = []
    for k in range(1, n + 1):
        r = m & (labels == k)
        if r.any():
            regions.append(r)
    return regions


def region_window(region: np.ndarray, context: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the region's bounding box grown by ``context`` px, clipped."""
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    h, w = region.shape
    return (
        max(int(rows[0]) - context, 0),
        min(int(rows[-1]) + 1 + context, h),
        max(int(cols[0]) - context, 0),
        min(int(cols[-1]) + 1 + context, w),
    )
