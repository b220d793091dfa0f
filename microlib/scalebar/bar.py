"""Scale bar detection: the solid bar, its colour, tolerance and edge blur.

Candidate bars at a few grey levels (:func:`_bar_candidates`,
:func:`_candidate_levels`), the grey tolerance of a bar's drawn pixels
(:func:`_bar_tolerance`), how far JPEG or blur spread its edges (:func:`_edge_blur`),
and :func:`detect_scale_bar`, which joins the best bar with its text label
(:func:`microlib.scalebar.label._label_box`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from microlib.image import clip_box, to_grey
from microlib.scalebar.label import _data_reach, _label_box


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    lab, _ = ndimage.label(mask)
    return lab, ndimage.find_objects(lab)


def _bar_candidates(
    grey: np.ndarray,
    level_mask: np.ndarray,
    *,
    min_len: int,
    max_len: int,
    min_height: int,
    max_height: int,
    min_aspect: float,
    min_fill: float,
) -> list[dict]:
    h, w = grey.shape
    # a horizontal opening keeps long straight runs (bars) and drops text and most blobs;
    # a second opening by a min_height-thick rectangle cuts off data of the bar's colour
    # that touches the bar in a row or two (a phase of a segmented image, a dark speck)
    run = max(3, min_len // 2)
    opened = ndimage.binary_opening(level_mask, structure=np.ones((1, run), bool))
    opened = ndimage.binary_opening(opened, structure=np.ones((min_height, run), bool))
    lab, objs = _components(opened)
    found = []
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        ys, xs = sl
        cy0, cy1, cx0, cx1 = ys.start, ys.stop, xs.start, xs.stop
        bh, bw = cy1 - cy0, cx1 - cx0
        if (
            bw < min_len
            or bw > max_len
            or bh < min_height
            or bh > max_height
            or bw / bh < min_aspect
        ):
            continue
        # a bar is drawn inside the picture; runs cut by the border are data
        if cy0 == 0 or cx0 == 0 or cy1 == h or cx1 == w:
            continue
        box = lab[cy0:cy1, cx0:cx1] == i
        fill = float(box.mean())
        if fill < min_fill:
            continue
        # straight sides: nearly every row spans the whole width, nearly every column
        # the whole height; organic blobs taper
        row_full = float((box.mean(axis=1) >= 0.9).mean())
        col_full = float((box.mean(axis=0) >= 0.9).mean())
        if row_full < 0.8 or col_full < 0.9:
            continue
        inner = (
            grey[cy0:cy1, cx0:cx1][ndimage.binary_erosion(box, iterations=1)]
            if min(bh, bw) > 2
            else grey[cy0:cy1, cx0:cx1][box]
        )
        if inner.size == 0:
            inner = grey[cy0:cy1, cx0:cx1][box]
        colour = float(np.median(inner))
        spread = float(np.percentile(np.abs(inner - colour), 90))
        if spread > 20:  # a bar is one solid colour
            continue
        # it stands out: most of a 3-px ring around it is not bar-coloured (a straight
        # run inside a same-coloured phase is not a bar)
        y0, y1 = max(0, cy0 - 3), min(h, cy1 + 3)
        x0, x1 = max(0, cx0 - 3), min(w, cx1 + 3)
        ring = np.ones((y1 - y0, x1 - x0), bool)
        ring[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = False
        around = grey[y0:y1, x0:x1][ring]
        same = float((np.abs(around - colour) <= 20).mean()) if around.size else 1.0
        if same > 0.5:
            continue
        # contrast: the typical grey distance of the surroundings (a mid-grey bar over a
        # texture has no single background level, but it differs from most of it)
        contrast = float(np.median(np.abs(around - colour)))
        if contrast < 30:
            continue
        found.append(
            {
                "bar_box": [int(cx0), int(cy0), int(cx1), int(cy1)],
                "colour": colour,
                "fill": fill,
                "contrast": contrast,
                "background": float(np.median(around)),
            }
        )
    return found


def _candidate_levels(grey: np.ndarray, min_len: int, min_height: int) -> list[float]:
    """Grey levels of solid, long horizontal runs: where a bar of any colour could be.

    A pixel is solid when its 3x3 neighbourhood is within 3 grey levels of it; drawn
    bars and glyph strokes are, textured data rarely is for ``min_len`` pixels in a row.
    Saturated or segmented data (0/255) are solid too, which only adds their levels.
    """
    g = np.round(grey)
    mx = ndimage.maximum_filter(g, size=3)
    mn = ndimage.minimum_filter(g, size=3)
    solid = (mx - mn) <= 3
    run = max(3, min_len // 2)
    solid = ndimage.binary_opening(solid, structure=np.ones((1, run), bool))
    if not solid.any():
        return []
    hist = np.bincount(np.clip(g[solid], 0, 255).astype(np.int64), minlength=256)
    hist = np.convolve(hist, np.ones(5), mode="same")  # JPEG moves a bar by a few levels
    levels: list[float] = []
    for v in np.argsort(hist)[::-1]:
        if hist[v] < min_len * max(1, min_height - 2):
            break
        if all(abs(int(v) - lv) > 12 for lv in levels):
            levels.append(int(v))
        if len(levels) >= 4:
            break
    return [float(v) for v in levels]


def detect_scale_bar(
    image: np.ndarray,
    *,
    min_len_frac: float = 0.05,
    max_len_frac: float = 0.6,
    min_height: int = 3,
    max_height_frac: float = 0.06,
    min_aspect: float = 3.0,
    min_fill: float = 0.9,
    unlabelled_len_frac: float = 0.1,
    pad: int = 2,
) -> dict[str, Any] | None:
    """Detect a scale bar (solid bar plus text label) in an image.

    Candidates are straight-sided, elongated, single-coloured rectangles, not cut by
    the image border, that stand out from what surrounds them; they are searched at a
    few grey levels from the extremes inwards (white and black bars), then at the grey
    levels of any solid long runs (:func:`_candidate_levels`: grey bars, and black or
    white bars over data that reach the same grey). The label is the glyph-sized pieces
    of the bar's colour above or below the bar, on one text line (:func:`_label_box`).
    A bar without a label is accepted only when it is long (``unlabelled_len_frac``)
    and at least 4 px thick, which keeps straight features of segmented images out.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` or ``(H, W, 3)``, normally the cropped micrograph.
    min_len_frac, max_len_frac : float
        Bar length limits as fractions of the image width.
    min_height : int
        Thinnest bar (px).
    max_height_frac : float
        Thickest bar as a fraction of the image height.
    min_aspect : float
        Smallest length / thickness ratio.
    min_fill : float
        Smallest fraction of the bar's bounding box it fills (rectangularity).
    unlabelled_len_frac : float
        Shortest bar (fraction of the width) accepted without a label.
    pad : int
        Margin added around bar and label.

    Returns
    -------
    dict or None
        ``box`` (bar + label, padded), ``bar_box``, ``label_box`` (or None), ``colour``,
        ``tolerance``, ``polarity``, ``length_px`` and ``edge_blur_px`` (how far JPEG or
        blur spread the bar's edges: add it to the mask's dilation), all in the
        coordinates of ``image``; None when no bar was found.
    """
    grey = to_grey(image)
    h, w = grey.shape
    min_len = max(12, int(min_len_frac * w))
    max_len = max(min_len + 1, int(max_len_frac * w))
    max_height = max(min_height + 1, int(max_height_frac * h))
    # level masks, outermost first: the extremes (white or black bars, robust to JPEG
    # blur), then the levels of any solid long runs (grey bars, black bars over data that
    # also reaches black)
    masks: list[tuple[str, np.ndarray]] = []
    for level in (250, 235, 215):
        masks.append(("bright", grey >= level))
    for level in (5, 20, 40):
        masks.append(("dark", grey <= level))
    for level in _candidate_levels(grey, min_len, min_height):
        masks.append((f"level{level:.0f}", np.abs(grey - level) <= 12))
    best = None
    done: set[str] = set()
    for family, level_mask in masks:
        if family in done or not level_mask.any():
            continue
        cands = _bar_candidates(
            grey,
            level_mask,
            min_len=min_len,
            max_len=max_len,
            min_height=min_height,
            max_height=max_height,
            min_aspect=min_aspect,
            min_fill=min_fill,
        )
        hit = False
        for c in cands:
            bx0, by0, bx1, by1 = c["bar_box"]
            tol = _bar_tolerance(grey, c["bar_box"], c["colour"], c["contrast"])
            label = _label_box(grey, c["bar_box"], c["colour"], tol)
            if label is None and not ((bx1 - bx0) >= unlabelled_len_frac * w and (by1 - by0) >= 4):
                continue
            c.update(
                polarity="bright" if c["colour"] >= c["background"] else "dark",
                tolerance=tol,
                label_box=label,
                score=(bx1 - bx0) * (by1 - by0) * c["fill"] * (2.0 if label else 1.0),
            )
            hit = True
            if best is None or c["score"] > best["score"]:
                best = c
        if hit:
            done.add(family)  # the outermost level that shows a bar wins for its family
    if best is None:
        return None
    bx0, by0, bx1, by1 = best["bar_box"]
    label = best["label_box"]
    parts = [best["bar_box"]] + ([label] if label else [])
    box = [
        min(p[0] for p in parts) - pad,
        min(p[1] for p in parts) - pad,
        max(p[2] for p in parts) + pad,
        max(p[3] for p in parts) + pad,
    ]
    return {
        "box": clip_box(box, grey.shape),
        "bar_box": best["bar_box"],
        "label_box": label,
        "colour": round(best["colour"], 2),
        "tolerance": round(best["tolerance"], 2),
        "polarity": best["polarity"],
        "length_px": int(bx1 - bx0),
        "edge_blur_px": _edge_blur(grey, best["bar_box"], best["colour"]),
    }


def _bar_tolerance(grey: np.ndarray, bar_box: list[int], colour: float, contrast: float) -> float:
    """Grey distance to the bar colour within which a pixel counts as drawn.

    Half the bar's typical distance to its surroundings (a glyph pixel at least half
    covered is within it; the mask's dilation adds the antialiased fringe), but no more
    than 0.8 of the distance to the data's own extreme on the bar's side (p0.5 / p99.5
    away from the bar), so data that come close to the bar colour stay out.
    """
    reach = _data_reach(grey, bar_box, colour)
    limit = 0.8 * reach if reach < contrast else contrast
    # at least 8 levels (JPEG moves drawn pixels by a few), unless a phase sits that close
    # to the bar colour (a grey-200 bar over a 192 phase); a bar at the data's own
    # extreme cannot be told apart by grey, and keeps the 8
    floor = min(8.0, 0.8 * reach) if reach >= 3.0 else 8.0
    return float(np.clip(min(0.5 * contrast, limit), floor, 100.0))


def _edge_blur(grey: np.ndarray, bar_box: list[int], colour: float) -> int:
    """Rows beyond the bar's long edges still pulled towards its colour (0-3 px).

    A drawn bar has a sharp edge; JPEG or a blurred image spreads it (and the glyphs'
    edges) over a few pixels, which the mask's dilation must then cover. Blur makes a
    ramp: in nearly every column a pulled row lies clearly nearer the bar colour than
    the row beyond it. Data next to a sharp bar do not (a dark phase along a black bar
    is as far from it as the phase two rows out), so comparing each column with itself
    keeps the data's own levels from reading as blur.
    """
    h, _ = grey.shape
    x0, y0, x1, y1 = bar_box
    # a drawn bar is exactly one grey; JPEG leaves it rippled, and its ringing spreads
    # thin glyph strokes by a pixel more than their antialiasing
    inner = grey[y0:y1, x0:x1]
    blur = 1 if float(np.percentile(np.abs(inner - colour), 90)) > 2.0 else 0
    for sign, edge in ((-1, y0 - 1), (1, y1)):
        far_row = edge + sign * 5
        if not 0 <= far_row < h:
            continue
        # columns where the data there differ from the bar: only they can show a ramp
        cols = np.abs(grey[far_row, x0:x1] - colour) >= 20
        if cols.sum() < 0.5 * (x1 - x0):
            continue
        k = 0
        while k < 3 and 0 <= edge + sign * (k + 1) < h:
            near = np.abs(grey[edge + sign * k, x0:x1] - colour)[cols]
            out = np.abs(grey[edge + sign * (k + 1), x0:x1] - colour)[cols]
            pulled = near < np.minimum(0.9 * out, out - 3.0)
            if float(pulled.mean()) < 0.6:
                break
            k += 1
        blur = max(blur, k)
    return blur
