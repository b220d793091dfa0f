"""Scale bars: find a bar and its text label in a micrograph, and the mask to in-paint.

Pure functions on arrays. The middle layer of the image stages (``image`` ->
``scalebar`` -> ``segment`` -> ``annotate``): the annotate stage finds the bar
(:func:`detect_scale_bar`), the segment stage turns an annotation's bar into the mask
the in-painter fills (:func:`scale_bar_mask` with :func:`bar_mask_args`).

Boxes are ``[x0, y0, x1, y1]``, half-open (``image[y0:y1, x0:x1]``), see
:mod:`microlib.image`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from microlib.image import clip_box, to_grey

# grey distance within which a drawn pixel counts as the bar's own colour (a bar or a
# glyph's fully covered pixels; JPEG moves them by a few levels) ...
CORE_TOL = 12.0


def _core_tol(tol: float) -> float:
    """... or, for small antialiased text whose thin strokes never cover a pixel whole,
    within half the tolerance (at least three quarters covered)."""
    return min(tol, max(CORE_TOL, 0.5 * tol))


# the label's glyph pieces grow by up to this many px into pixels within two tolerances
# of the bar colour (bounded hysteresis, as in Canny's edge linking)
LABEL_GROW = 2
LABEL_GROW_TOL = 1.5


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


def _glyph_pieces(near: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, list]:
    """Components of ``near`` (8-connected) that hold a ``core`` pixel: a glyph's fully
    covered pixels carry the bar's own grey, data that merely come close rarely do."""
    lab, n = ndimage.label(near, structure=np.ones((3, 3), bool))
    if n == 0:
        return lab, []
    has_core = np.zeros(n + 1, bool)
    has_core[np.unique(lab[core & near])] = True
    has_core[0] = False
    return np.where(has_core[lab], lab, 0), ndimage.find_objects(lab)


def _label_box(grey: np.ndarray, bar_box: list[int], colour: float, tol: float) -> list[int] | None:
    """Bounding box of text of the bar's colour next to the bar (above or below).

    Glyphs are pieces of the bar's colour (with a core of its exact grey) that do not run
    off the search window, on one text line: the largest piece and its neighbours that
    overlap it vertically, each no further from the growing line than about a glyph
    height and a half (a word space, or the gaps a thin antialiased stroke leaves out of
    tolerance; data specks of the same grey further along are left out).
    """
    h, w = grey.shape
    x0, y0, x1, y1 = bar_box
    bw, bh = x1 - x0, y1 - y0
    reach = int(max(3 * bh, 36))
    wx0, wx1 = max(0, x0 - bw // 2), min(w, x1 + bw // 2)
    wy0, wy1 = max(0, y0 - reach), min(h, y1 + reach)
    diff = np.abs(grey[wy0:wy1, wx0:wx1] - colour)
    win = diff <= tol
    # the bar itself is not label
    win[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] = False
    lab, objs = _glyph_pieces(win, diff <= _core_tol(tol))
    boxes = []
    big: list[int] = []
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        ys, xs = sl
        gh, gw = ys.stop - ys.start, xs.stop - xs.start
        size = int((lab[sl] == i).sum())
        # glyph-sized pieces that do not run off the search window (data features do)
        touches = (
            ys.start == 0 or xs.start == 0 or ys.stop == win.shape[0] or xs.stop == win.shape[1]
        )
        if size < 3:
            continue
        if gh > reach or gw > bw or touches:
            big.append(i)
            continue
        boxes.append((xs.start + wx0, ys.start + wy0, xs.stop + wx0, ys.stop + wy0, size))
    if not boxes:
        return None
    boxes.sort(key=lambda b: -b[4])
    line = [boxes[0]]
    lx0, ly0, lx1, ly1 = boxes[0][:4]
    rest = boxes[1:]
    grown = True
    while grown:
        grown = False
        gap = max(8, int(1.5 * (ly1 - ly0)))
        for b in list(rest):
            # same text line (vertical overlap), next to the line so far
            if b[1] < ly1 and b[3] > ly0 and b[0] <= lx1 + gap and b[2] >= lx0 - gap:
                rest.remove(b)
                grown = True
                line.append(b)
                # a piece much taller than the line is a glyph merged with data of its
                # grey: it widens the line but does not heighten it
                if (b[3] - b[1]) > 1.6 * (ly1 - ly0) + 2:
                    lx0, lx1 = min(lx0, b[0]), max(lx1, b[2])
                    continue
                lx0, ly0 = min(lx0, b[0]), min(ly0, b[1])
                lx1, ly1 = max(lx1, b[2]), max(ly1, b[3])
    if sum(b[4] for b in line) < 12:
        return None
    # a glyph merged with a long data feature of its grey (a grain boundary running off
    # the window): its part on the text line, next to the line, belongs to the label
    band = lab[ly0 - wy0 : ly1 - wy0]
    gap = max(8, int(1.5 * (ly1 - ly0)))
    for i in big:
        cols = np.flatnonzero((band == i).any(axis=0)) + wx0
        cols = cols[(cols >= lx0 - gap) & (cols < lx1 + gap)]
        if cols.size:
            lx0, lx1 = min(lx0, int(cols.min())), max(lx1, int(cols.max()) + 1)
    return [int(lx0), int(ly0), int(lx1), int(ly1)]


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
    bx0, by0, bx1, by1 = bar_box
    outside = np.ones_like(grey, bool)
    outside[max(0, by0 - 40) : by1 + 40, max(0, bx0 - 40) : bx1 + 40] = False
    data = grey[outside] if outside.any() else grey.ravel()
    lo, hi = np.percentile(data, [0.5, 99.5])
    extreme = hi if colour >= float(np.median(data)) else lo
    limit = 0.8 * abs(colour - extreme) if abs(colour - extreme) < contrast else contrast
    return float(np.clip(min(0.5 * contrast, limit), 8.0, 100.0))


def _edge_blur(grey: np.ndarray, bar_box: list[int], colour: float) -> int:
    """Rows beyond the bar's long edges still pulled towards its colour (0-3 px).

    A drawn bar has a sharp edge; JPEG or a blurred image spreads it (and the glyphs'
    edges) over a few pixels, which the mask's dilation must then cover.
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
        far = float(np.median(np.abs(grey[far_row, x0:x1] - colour)))
        if far < 20:
            continue
        k = 0
        while k < 3 and 0 <= edge + sign * k < h:
            near = float(np.median(np.abs(grey[edge + sign * k, x0:x1] - colour)))
            if near > 0.85 * far:
                break
            k += 1
        blur = max(blur, k)
    return blur


def scale_bar_mask(
    image: np.ndarray,
    box: list[int] | None,
    colour: float | None,
    tolerance: float,
    dilation: int = 1,
    label_box: list[int] | None = None,
    bar_box: list[int] | None = None,
) -> np.ndarray:
    """Pixels to in-paint: the bar and the label's glyphs, grown by ``dilation`` px.

    With the detector's ``bar_box`` and ``label_box`` the mask is tight: the bar's box
    (a solid rectangle), plus the pixels of the label's box (grown by 1 px) within
    ``tolerance`` of the bar colour, i.e. glyph pixels at least about half covered, in
    pieces that hold a pixel of the bar's own grey (:data:`CORE_TOL`): data specks that
    merely come close to the bar colour between the glyphs stay out.
    Without them (curated or older annotations) it is every pixel of ``box`` within
    ``tolerance``. As MicroLib, the pixels are dilated by ``dilation`` px (a 3x3 square
    per step), which adds the antialiased fringe of the glyphs; the detected bar
    rectangle, which has no fringe, grows by ``dilation - 1`` (the edge blur the
    detector measured). Unlike MicroLib's ``np.roll`` the dilation never wraps across
    the image border. Nothing outside ``box`` grown by ``dilation`` is ever masked.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` or ``(H, W, 3)``; the grey (luminance) level is compared.
    box : list of int or None
        ``[x0, y0, x1, y1]`` (bar + label) in the coordinates of ``image``; None gives
        an empty mask.
    colour : float or None
        Bar grey level; None masks the whole box (MicroLib's ``barcol: null``).
    tolerance : float
        Largest absolute grey difference to the bar colour (inclusive).
    dilation : int
        Dilation radius in px.
    label_box : list of int, optional
        The text label's box (same coordinates).
    bar_box : list of int, optional
        The bar's box (same coordinates).

    Returns
    -------
    ndarray of bool
    """
    grey = to_grey(image)
    mask = np.zeros(grey.shape, bool)
    if box is None:
        return mask
    clipped = clip_box(box, grey.shape)
    if clipped is None:
        return mask
    x0, y0, x1, y1 = clipped
    bar_rect = None
    if colour is None:
        mask[y0:y1, x0:x1] = True
    else:
        near = np.abs(grey - float(colour)) <= float(tolerance)
        bb = clip_box(bar_box, grey.shape) if bar_box is not None else None
        if bb is None:
            mask[y0:y1, x0:x1] = near[y0:y1, x0:x1]
        else:
            bar_rect = bb
            if label_box is not None:
                lb = clip_box(
                    [label_box[0] - 1, label_box[1] - 1, label_box[2] + 1, label_box[3] + 1],
                    grey.shape,
                )
                if lb is not None:
                    # glyph pieces inside the whole box that reach into the label's box:
                    # a descender or accent sticking out of the text line stays whole
                    lx0, ly0, lx1, ly1 = lb
                    diff = np.abs(grey[y0:y1, x0:x1] - float(colour))
                    glyphs, _ = _glyph_pieces(
                        diff <= float(tolerance), diff <= _core_tol(float(tolerance))
                    )
                    inside = glyphs[
                        max(0, ly0 - y0) : max(0, ly1 - y0), max(0, lx0 - x0) : max(0, lx1 - x0)
                    ]
                    ids = np.unique(inside[inside > 0])
                    keep = np.zeros(glyphs.shape, bool)
                    objs = ndimage.find_objects(glyphs)
                    for k in ids:
                        ys, xs = objs[k - 1]
                        # a piece sticking far out of the label's box is a glyph merged
                        # with data of its grey: only its part near the text line counts
                        if (
                            ys.start + y0 < ly0 - 3
                            or ys.stop + y0 > ly1 + 3
                            or xs.start + x0 < lx0 - 3
                            or xs.stop + x0 > lx1 + 3
                        ):
                            piece = np.zeros(glyphs.shape, bool)
                            piece[
                                max(0, ly0 - y0) : max(0, ly1 - y0),
                                max(0, lx0 - x0) : max(0, lx1 - x0),
                            ] = True
                            keep |= piece & (glyphs == k)
                        else:
                            keep[ys, xs] |= glyphs[ys, xs] == k
                    # bounded hysteresis: faint stroke pixels (thin strokes JPEG smeared)
                    # within LABEL_GROW px of a glyph join when they lean to its colour
                    if keep.any():
                        keep = ndimage.binary_dilation(
                            keep,
                            structure=np.ones((3, 3), bool),
                            iterations=LABEL_GROW,
                            mask=diff <= LABEL_GROW_TOL * float(tolerance),
                        )
                    mask[y0:y1, x0:x1] |= keep
    if dilation > 0 and mask.any():
        mask = ndimage.binary_dilation(
            mask, structure=np.ones((3, 3), bool), iterations=int(dilation)
        )
    if bar_rect is not None:
        # the detected bar is an exact rectangle: its edges have no antialiased fringe to
        # cover, only what JPEG or blur spread beyond the first pixel
        grow = max(0, int(dilation) - 1)
        bx0, by0, bx1, by1 = bar_rect
        mask[max(0, by0 - grow) : by1 + grow, max(0, bx0 - grow) : bx1 + grow] = True
    return mask


def bar_mask_args(bar: dict[str, Any], crop_box: list[int]) -> dict[str, Any]:
    """Keyword arguments of :func:`scale_bar_mask` for an annotation's scale bar, in the
    coordinates of the cropped image."""
    x0, y0 = crop_box[0], crop_box[1]

    def shift(b: list[int] | None) -> list[int] | None:
        return None if b is None else [b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0]

    return {
        "box": shift(bar.get("box")),
        "colour": bar.get("colour"),
        "tolerance": float(bar.get("tolerance") or 0.0),
        "label_box": shift(bar.get("label_box")),
        "bar_box": shift(bar.get("bar_box")),
        "dilation": int(bar.get("dilation_px", 1)),
    }
