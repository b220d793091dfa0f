"""Scale bar labels: the text glyphs of the bar's colour beside the bar.

The grey tolerances that decide which pixels are a glyph's (:data:`CORE_TOL`,
:data:`LABEL_GROW`), the glyph pieces (:func:`_glyph_pieces`) and the label's box next
to a bar (:func:`_label_box`). Used by :mod:`microlib.scalebar.bar` (detection) and
:mod:`microlib.scalebar.mask` (the glyphs to in-paint).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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


def _data_reach(grey: np.ndarray, box: list[int], colour: float) -> float:
    """Grey distance from the bar colour to the data's own extreme on the bar's side.

    The extreme is p0.5 / p99.5 (away from the bar) of the pixels more than 40 px from
    ``box``: how close the data come to the bar colour, so a tolerance or a label's
    growth can stop short of the data's levels.
    """
    x0, y0, x1, y1 = box
    outside = np.ones_like(grey, bool)
    outside[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = False
    data = grey[outside] if outside.any() else grey.ravel()
    lo, hi = np.percentile(data, [0.5, 99.5])
    extreme = hi if colour >= float(np.median(data)) else lo
    return abs(colour - float(extreme))


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
    tolerance; data specks of the same grey further along are left out). Pieces joined
    to the bar's edge are not text, and the line must lie within about its own height
    of the bar.
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
    # a label is set apart from its bar; a piece joined to the bar's edge is data of its
    # grey (a phase the bar crosses), or the bar itself if the bar box is data
    ring = np.zeros(win.shape, bool)
    ring[max(0, y0 - wy0 - 1) : y1 - wy0 + 1, max(0, x0 - wx0 - 1) : x1 - wx0 + 1] = True
    ring[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] = False
    joined = set(np.unique(lab[ring]).tolist()) - {0}
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
        if size < 3 or i in joined:
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
    # a label is printed close to its bar, within about its own height; a blob of the
    # bar's grey further off is data (a phase of a segmented image)
    if max(ly0 - y1, y0 - ly1) > max(8, ly1 - ly0):
        return None
    return [int(lx0), int(ly0), int(lx1), int(ly1)]
