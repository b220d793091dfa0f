"""The data region of a raw micrograph: strip frames, borders and the info band.

DoITPoMS micrographs often carry a frame and a band of text (magnification, scale bar)
along one edge; SliceGAN must see only the microstructure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microlib.image import to_grey


def _row_flatness(rows: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(rows, axis=1)
    frac = (np.abs(rows - med[:, None]) <= tol).mean(axis=1)
    return med, frac


def _edge_trim(
    rows: np.ndarray,
    *,
    tol: float,
    line_frac: float,
    band_bg_frac: float,
    band_contrast: float,
    max_band_frac: float,
    margin: int,
) -> tuple[int, int]:
    """Rows to remove from the start of ``rows`` (index 0 = image edge).

    Returns ``(n_removed, band_rows)`` where ``band_rows`` is the height of an info band
    (0 when only constant lines were stripped).
    """
    n = rows.shape[0]
    limit = max(1, int(max_band_frac * n))
    # a line's pixels sit within 3 tol of its median (JPEG ringing next to the data moves
    # a few by more than tol); a data row of a segmented image with a dominant phase
    # fails this through its few pixels of the other phase, which are far off
    med, flat = _row_flatness(rows[: min(n, 3 * limit + 2)], 3 * tol)
    is_flat = flat >= line_frac

    max_lines = max(4, int(round(0.03 * n)))

    def strip_lines(start: int) -> int:
        # constant lines (frames, borders, separators) from `start` inwards; a row next to
        # a stripped line that mostly keeps the line's value is the line's JPEG fringe.
        # Frames are thin: a longer flat run is a uniform region of the data (a grain
        # spanning the picture) and stays.
        i = start
        while i < limit:
            if i - start >= max_lines:
                return start
            if is_flat[i]:
                i += 1
                continue
            if i > start and (np.abs(rows[i] - med[i - 1]) <= 3 * tol).mean() >= 0.9:
                i += 1
                continue
            break
        return i

    k = strip_lines(0)
    band = 0
    # an info band: a region from the edge whose rows are mostly one background value
    # (text covers a minority of each row), ending in `margin` constant rows on the data
    # side, and clearly flatter than the data rows just inside it. The last condition
    # keeps a micrograph with a dominant flat phase from being read as one big band.
    candidates = [
        b for b in range(k + margin + 1, limit + 1) if b < n and is_flat[b - margin : b].all()
    ]
    cache: dict[int, np.ndarray] = {}
    sub = rows[: min(n, 3 * limit + 2)]
    for b in sorted(candidates, reverse=True):
        v = float(med[b - 1])
        key = int(round(v))
        if key not in cache:
            cache[key] = (np.abs(sub - v) <= tol).mean(axis=1)
        bg = cache[key]
        inside = bg[:b]
        if not np.all((inside >= band_bg_frac) | is_flat[:b]):
            continue
        # a printed band is noise-free: its margin rows, and a good part of all its rows,
        # are background to within tol (a noisy uniform grain is not)
        if not (bg[b - margin : b] >= 0.98).all() or (inside >= 0.98).mean() < 0.25:
            continue
        data = bg[b : min(len(bg), 2 * b)]
        if len(data) == 0:
            continue
        if float(inside.mean()) - float(data.mean()) < band_contrast:
            continue
        band = b
        break
    removed = max(k, band)
    if band:
        removed = strip_lines(band)  # separator lines of another colour, and their fringe
    return removed, band


def detect_crop(
    image: np.ndarray,
    *,
    tol: float = 8.0,
    line_frac: float = 0.995,
    band_bg_frac: float = 0.5,
    band_contrast: float = 0.3,
    max_band_frac: float = 0.35,
    margin: int = 2,
) -> dict[str, Any]:
    """Find the data region of a raw micrograph.

    Strips, on every side, constant lines (frames, borders: rows or columns where at
    least ``line_frac`` of the pixels lie within ``tol`` grey levels of the median) and an
    info band (a flat background region holding text such as the scale bar and
    magnification, separated from the data by at least ``margin`` constant rows).

    Parameters
    ----------
    image : ndarray
        Raw ``(H, W)`` or ``(H, W, 3)`` image.
    tol : float
        Grey-level tolerance of "constant" (absorbs JPEG noise).
    line_frac : float
        Fraction of a row that must be constant for a line to be stripped.
    band_bg_frac : float
        Fraction of every band row that must be background (the rest is text).
    band_contrast : float
        How much flatter (in background fraction) the band must be than the data rows
        next to it.
    max_band_frac : float
        Largest part of the image height/width a band or border may take.
    margin : int
        Constant rows required between band content and data.

    Returns
    -------
    dict
        ``box`` [x0, y0, x1, y1], ``removed`` {top, bottom, left, right} in px and
        ``info_band`` {side, size_px} or None.
    """
    grey = to_grey(image)
    h, w = grey.shape
    views = {
        "top": grey,
        "bottom": grey[::-1],
        "left": grey.T,
        "right": grey.T[::-1],
    }
    trim = dict(
        tol=tol,
        line_frac=line_frac,
        band_bg_frac=band_bg_frac,
        band_contrast=band_contrast,
        max_band_frac=max_band_frac,
        margin=margin,
    )
    removed: dict[str, int] = {}
    bands: dict[str, int] = {}
    for side, rows in views.items():
        removed[side], bands[side] = _edge_trim(rows, **trim)
    # a frame line along the sides next to an info band stops at the band (the band's
    # text and background cross it): look for such lines again beside the data alone
    across = {"top": ("left", "right"), "bottom": ("left", "right")}
    across.update(left=("top", "bottom"), right=("top", "bottom"))
    for side in [s for s in views if bands[s]]:
        for other in across[side]:
            if bands[other]:
                continue
            if other in ("left", "right"):
                data = grey[removed["top"] : h - removed["bottom"]]
                rows = data.T if other == "left" else data.T[::-1]
            else:
                data = grey[:, removed["left"] : w - removed["right"]]
                rows = data if other == "top" else data[::-1]
            removed[other] = max(removed[other], _edge_trim(rows, **trim)[0])
    x0, x1 = removed["left"], w - removed["right"]
    y0, y1 = removed["top"], h - removed["bottom"]
    if x1 - x0 < 8 or y1 - y0 < 8:  # degenerate (e.g. a blank image): keep everything
        x0, y0, x1, y1 = 0, 0, w, h
        removed = {k: 0 for k in removed}
        bands = {k: 0 for k in bands}
    band_side = max(bands, key=lambda s: bands[s])
    info_band = (
        {"side": band_side, "size_px": int(removed[band_side])} if bands[band_side] else None
    )
    return {
        "box": [int(x0), int(y0), int(x1), int(y1)],
        "removed": {k: int(v) for k, v in removed.items()},
        "info_band": info_band,
    }
