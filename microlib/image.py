"""Array helpers every image stage shares: luminance, boxes, crops, grey histograms.

The lowest layer of the image stages (``image`` -> ``scalebar`` -> ``segment`` ->
``annotate``): it imports no other ``microlib`` module.

Boxes are ``[x0, y0, x1, y1]`` in pixels, ``x`` = column, ``y`` = row, half-open
(``image[y0:y1, x0:x1]``), the same convention as MicroLib's ``barbox``.
"""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights, the ones MicroLib's and PIL's grey conversions use
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_grey(image: np.ndarray) -> np.ndarray:
    """Luminance of an image as float64 in 0..255 (ITU-R BT.601 weights for RGB).

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey or ``(H, W, 3|4)`` colour image (alpha ignored).

    Returns
    -------
    ndarray
        ``(H, W)`` float64.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[2] >= 3:
        rgb = arr[..., :3].astype(np.float64)
        r, g, b = LUMA_WEIGHTS
        return rgb[..., 0] * r + rgb[..., 1] * g + rgb[..., 2] * b
    raise ValueError(f"expected (H, W) or (H, W, 3) image, got shape {arr.shape}")


def crop_image(image: np.ndarray, box: list[int] | tuple[int, ...]) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` for a box ``[x0, y0, x1, y1]``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[y0:y1, x0:x1]


def clip_box(box: list[int] | tuple[int, ...], shape: tuple[int, ...]) -> list[int] | None:
    """Clip a box to an image of ``shape``; None when nothing is left."""
    h, w = shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = max(0, min(x0, w)), max(0, min(x1, w))
    y0, y1 = max(0, min(y0, h)), max(0, min(y1, h))
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1, y1]


def shift_box(box: list[int] | None, dx: int, dy: int) -> list[int] | None:
    """``box`` moved by ``(dx, dy)``; None stays None."""
    return None if box is None else [box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy]


def box_outside(box: list[int], other: list[int]) -> bool:
    """True when ``box`` has no pixel inside ``other`` (both ``[x0, y0, x1, y1]``)."""
    return box[2] <= other[0] or box[0] >= other[2] or box[3] <= other[1] or box[1] >= other[3]


def masked_values(grey: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The pixels of ``grey`` not under ``mask`` (all of them without a mask), flattened."""
    if mask is None:
        return grey.ravel()
    return grey[~mask]


def grey_histogram(values: np.ndarray) -> np.ndarray:
    """256-bin histogram of grey values (rounded and clipped to 0..255), float64 counts."""
    v = np.clip(np.round(values), 0, 255).astype(np.int64)
    return np.bincount(v, minlength=256).astype(np.float64)


def uint8_image(image: np.ndarray) -> np.ndarray:
    """``image`` without an alpha channel; a non-uint8 array raises ``ValueError``.

    Every image stage works on 8-bit grey or RGB; other pixel formats are converted (or
    refused) where files are read (``microlib.io.read_image``).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {arr.dtype}")
    return arr
