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
    # a horizontal opening keeps long straight runs (bars) and drops text and most blobs
    opened = ndimage.binary_opening(level_mask, structure=np.ones((1, max(3, min_len // 2)), bool))
    lab, objs = _components(opened)
    found = []
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        ys, xs = sl
        bh, bw = ys.stop - ys.start, xs.stop - xs.start
        if (
            bw < min_len
            or bw > max_len
            or bh < min_height
            or bh > max_height
            or bw / bh < min_aspect
        ):
            continue
        # a bar is drawn inside the picture; runs cut by the border are data
        if ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w:
            continue
        comp = lab[sl] == i
        fill = float(comp.mean())
        if fill < min_fill:
            continue
        # straight sides: nearly every row spans the whole width, nearly every column
        # the whole height; organic blobs taper
        row_full = float((comp.mean(axis=1) >= 0.9).mean())
        col_full = float((comp.mean(axis=0) >= 0.9).mean())
        if row_full < 0.8 or col_full < 0.9:
            continue
        inner = (
            grey[sl][ndimage.binary_erosion(comp, iterations=1)]
            if min(bh, bw) > 2
            else grey[sl][comp]
        )
        if inner.size == 0:
            inner = grey[sl][comp]
        colour = float(np.median(inner))
        spread = float(np.percentile(np.abs(inner - colour), 90))
        if spread > 20:  # a bar is one solid colour
            continue
        # it stands out: most of a 3-px ring around it is not bar-coloured (a straight
        # run inside a same-coloured phase is not a bar)
        y0, y1 = max(0, ys.start - 3), min(h, ys.stop + 3)
        x0, x1 = max(0, xs.start - 3), min(w, xs.stop + 3)
        ring = np.ones((y1 - y0, x1 - x0), bool)
        ring[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = False
        around = grey[y0:y1, x0:x1][ring]
        same = float((np.abs(around - colour) <= 20).mean()) if around.size else 1.0
        if same > 0.5:
            continue
        contrast = abs(colour - float(np.median(around)))
        if contrast < 40:
            continue
        found.append(
            {
                "bar_box": [int(xs.start), int(ys.start), int(xs.stop), int(ys.stop)],
                "colour": colour,
                "fill": fill,
                "contrast": contrast,
            }
        )
    return found


def _label_box(grey: np.ndarray, bar_box: list[int], colour: float, tol: float) -> list[int] | None:
    """Bounding box of text of the bar's colour next to the bar (above or below)."""
    h, w = grey.shape
    x0, y0, x1, y1 = bar_box
    bw, bh = x1 - x0, y1 - y0
    reach = int(max(3 * bh, 36))
    wx0, wx1 = max(0, x0 - bw // 2), min(w, x1 + bw // 2)
    wy0, wy1 = max(0, y0 - reach), min(h, y1 + reach)
    win = np.abs(grey[wy0:wy1, wx0:wx1] - colour) <= tol
    # the bar itself is not label
    win[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] = False
    lab, objs = _components(win)
    boxes = []
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
        if size < 3 or gh > reach or gw > bw or touches:
            continue
        boxes.append((xs.start + wx0, ys.start + wy0, xs.stop + wx0, ys.stop + wy0, size))
    if not boxes:
        return None
    # glyphs of one label sit on a common line: keep those overlapping (vertically) the
    # largest cluster, closest to the bar
    boxes.sort(key=lambda b: -b[4])
    ref = boxes[0]
    line = [b for b in boxes if b[1] < ref[3] and b[3] > ref[1]]
    if sum(b[4] for b in line) < 12:
        return None
    return [
        int(min(b[0] for b in line)),
        int(min(b[1] for b in line)),
        int(max(b[2] for b in line)),
        int(max(b[3] for b in line)),
    ]


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

    Candidates are straight-sided, elongated, single-coloured rectangles (bright or
    dark), not cut by the image border, that stand out from what surrounds them; they
    are searched at a few grey levels from the extremes inwards. The label is the
    glyph-sized pieces of the bar's colour above or below the bar. A bar without a
    label is accepted only when it is long (``unlabelled_len_frac``) and at least 4 px
    thick, which keeps straight features of segmented images out.

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
        ``tolerance``, ``polarity`` and ``length_px``, all in the coordinates of
        ``image``; None when no bar was found.
    """
    grey = to_grey(image)
    h, w = grey.shape
    min_len = max(12, int(min_len_frac * w))
    max_len = max(min_len + 1, int(max_len_frac * w))
    max_height = max(min_height + 1, int(max_height_frac * h))
    best = None
    for polarity, levels in (("bright", (250, 235, 215)), ("dark", (5, 20, 40))):
        for level in levels:
            level_mask = grey >= level if polarity == "bright" else grey <= level
            if not level_mask.any():
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
                tol = _bar_tolerance(grey, c["bar_box"], c["colour"], polarity)
                label = _label_box(grey, c["bar_box"], c["colour"], tol)
                if label is None and not (
                    (bx1 - bx0) >= unlabelled_len_frac * w and (by1 - by0) >= 4
                ):
                    continue
                c.update(
                    polarity=polarity,
                    tolerance=tol,
                    label_box=label,
                    score=(bx1 - bx0) * (by1 - by0) * c["fill"] * (2.0 if label else 1.0),
                )
                hit = True
                if best is None or c["score"] > best["score"]:
                    best = c
            if hit:
                break  # the outermost level that shows a bar wins for this polarity
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
    }


def _bar_tolerance(grey: np.ndarray, bar_box: list[int], colour: float, polarity: str) -> float:
    """Halfway between the bar colour and the data's extreme grey level.

    Antialiased glyph pixels more than half covered are kept; data pixels stay out
    unless the data reach the bar colour itself.
    """
    bx0, by0, bx1, by1 = bar_box
    outside = np.ones_like(grey, bool)
    outside[max(0, by0 - 40) : by1 + 40, max(0, bx0 - 40) : bx1 + 40] = False
    data = grey[outside] if outside.any() else grey.ravel()
    extreme = np.percentile(data, 99.9) if polarity == "bright" else np.percentile(data, 0.1)
    return float(np.clip(abs(colour - extreme) * 0.8, 8.0, 100.0))


def scale_bar_mask(
    image: np.ndarray,
    box: list[int] | None,
    colour: float | None,
    tolerance: float,
    dilation: int = 1,
    label_box: list[int] | None = None,
) -> np.ndarray:
    """Pixels to in-paint: those inside ``box`` within ``tolerance`` of the bar colour.

    As MicroLib, the thresholded pixels are dilated by ``dilation`` px (a 3x3 square per
    pixel of dilation) because pixelisation leaves bar and glyph edges out of tolerance;
    unlike MicroLib's ``np.roll`` the dilation never wraps across the image border.

    Thin antialiased text is the exception: a glyph edge that half covers a contrasting
    background has a grey level no tolerance can tell from data, and JPEG smears thin
    strokes further (on the demo library the colour rule alone kept 97-99 % of the label
    pixels). The text label's box (``label_box``, grown by 1 px) is therefore masked
    whole, as MicroLib did for bars without a colour; the cost is the background between
    the glyphs, a few hundred pixels.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` or ``(H, W, 3)``; the grey (luminance) level is compared.
    box : list of int or None
        ``[x0, y0, x1, y1]`` in the coordinates of ``image``; None gives an empty mask.
    colour : float or None
        Bar grey level; None masks the whole box (MicroLib's ``barcol: null``).
    tolerance : float
        Largest absolute grey difference to the bar colour (inclusive).
    dilation : int
        Dilation radius in px.
    label_box : list of int, optional
        The text label's box (same coordinates), masked whole.

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
    if colour is None:
        mask[y0:y1, x0:x1] = True
    else:
        mask[y0:y1, x0:x1] = np.abs(grey[y0:y1, x0:x1] - float(colour)) <= float(tolerance)
        lb = (
            clip_box(
                [label_box[0] - 1, label_box[1] - 1, label_box[2] + 1, label_box[3] + 1], grey.shape
            )
            if label_box is not None
            else None
        )
        if lb is not None:
            lx0, ly0, lx1, ly1 = lb
            mask[ly0:ly1, lx0:lx1] = True
    if dilation > 0 and mask.any():
        mask = ndimage.binary_dilation(
            mask, structure=np.ones((3, 3), bool), iterations=int(dilation)
        )
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
        "dilation": int(bar.get("dilation_px", 1)),
    }
