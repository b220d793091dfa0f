"""Scale bars: find a bar and its text label in a micrograph, and the mask to in-paint.

Pure functions on arrays. The middle layer of the image stages (``image`` ->
``scalebar`` -> ``segment`` -> ``annotate``): the annotate stage finds the bar
(:func:`detect_scale_bar`), the segment stage turns an annotation's bar into the mask
the in-painter fills (:func:`scale_bar_mask` with :func:`bar_mask_args`).

Boxes are ``[x0, y0, x1, y1]``, half-open (``image[y0:y1, x0:x1]``), see
:mod:`microlib.image`.

Modules: :mod:`~microlib.scalebar.bar` (finding the solid bar),
:mod:`~microlib.scalebar.label` (the text glyphs beside it) and
:mod:`~microlib.scalebar.mask` (the tight mask and its dilation).
"""

from microlib.scalebar.bar import detect_scale_bar
from microlib.scalebar.label import CORE_TOL, LABEL_GROW, LABEL_GROW_TOL
from microlib.scalebar.mask import bar_mask_args, scale_bar_mask

__all__ = [
    "CORE_TOL",
    "LABEL_GROW",
    "LABEL_GROW_TOL",
    "bar_mask_args",
    "detect_scale_bar",
    "scale_bar_mask",
]
