"""Scale bar masks: the pixels to in-paint, tight around bar and glyphs, and dilated.

:func:`scale_bar_mask` builds the mask from a detected (or curated) scale bar;
:func:`bar_mask_args` gives its arguments for an annotation's bar in the coordinates
of the cropped image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from microlib.image import clip_box, to_grey
from microlib.scalebar.label import (
    CORE_TOL,
    LABEL_GROW,
    LABEL_GROW_TOL,
    _core_tol,
    _data_reach,
    _glyph_pieces,
)


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
    merely come close to the bar colour between the glyphs stay out; the glyphs then
    take in the faint parts of their strokes (:func:`_grow_strokes`). Without them (curated or older annotations) it is every pixel of ``box`` within
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
                    if keep.any():
                        keep = _grow_strokes(
                            grey[y0:y1, x0:x1],
                            keep,
                            float(colour),
                            float(tolerance),
                            _data_reach(grey, clipped, float(colour)),
                            [lx0 - x0, ly0 - y0, lx1 - x0, ly1 - y0],
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


def _grow_strokes(
    region: np.ndarray,
    keep: np.ndarray,
    colour: float,
    tol: float,
    reach: float,
    label_box: list[int],
) -> np.ndarray:
    """Glyph pixels ``keep`` grown by the faint parts of their strokes.

    Bounded hysteresis: pixels within :data:`LABEL_GROW` px of a glyph join when they
    lean to its colour (within :data:`LABEL_GROW_TOL` tolerances: thin strokes JPEG
    smeared), but never as far as the data's own levels (``0.8 * reach``; a dark phase
    next to black text would join whole). Inside the label's box, thin strokes that
    antialiasing split over two pixels (each half covered, both past the tolerance when
    the data come close to the bar colour) join along their length: pixels at least 30 %
    of the way from their surroundings (5x5 median) to the bar colour.
    """
    diff = np.abs(region - colour)
    grow_tol = min(LABEL_GROW_TOL * tol, max(tol, 0.8 * reach))
    if grow_tol > tol:
        keep = ndimage.binary_dilation(
            keep, structure=np.ones((3, 3), bool), iterations=LABEL_GROW, mask=diff <= grow_tol
        )
    local = np.abs(ndimage.median_filter(region, size=5) - colour)
    lean = (diff <= 0.7 * local) & (local - diff >= CORE_TOL)
    lx0, ly0, lx1, ly1 = label_box
    box = np.zeros(region.shape, bool)
    box[max(0, ly0) : max(0, ly1), max(0, lx0) : max(0, lx1)] = True
    return ndimage.binary_propagation(
        keep, structure=np.ones((3, 3), bool), mask=keep | (lean & box)
    )


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
