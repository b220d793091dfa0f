"""Image-quality measures: blur, pixel noise, JPEG blockiness, phase-boundary width.

The components of the quality filter (:func:`microlib.annotate.filters.filter_scores`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from microlib.annotate.phases import class_modes
from microlib.image import grey_histogram


def blur_score(grey: np.ndarray, mask: np.ndarray | None = None) -> float:
    """No-reference blur score in [0, 1] (Crete et al. 2007, via scikit-image).

    0 = sharp, 1 = fully blurred: how little the image's neighbour differences drop when
    it is blurred once more.
    """
    from skimage.measure import blur_effect

    g = np.asarray(grey, dtype=np.float64)
    if min(g.shape) < 16:
        return 1.0
    return float(blur_effect(g, h_size=11))


def noise_sigma(grey: np.ndarray, thresholds: list[float] | None = None) -> float:
    """Gaussian pixel-noise standard deviation, robust to phase boundaries.

    Immerkaer's (1996) Laplacian-difference kernel responds to white noise with a
    standard deviation of ``6 sigma`` and to smooth shading not at all. Boundaries between
    phases respond strongly too, so for an n-phase image (``thresholds`` given) only
    pixels whose 3x3 neighbourhood lies in one phase are used, and elsewhere the median
    absolute response (robust while edges cover under half the pixels) is used; an
    already segmented image scores 0 rather than its edge density.
    """
    g = np.asarray(grey, dtype=np.float64)
    if min(g.shape) < 3:
        return 0.0
    kern = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    resp = np.abs(ndimage.convolve(g, kern, mode="reflect")[1:-1, 1:-1])
    if thresholds:
        lab = np.digitize(g, np.asarray(thresholds, dtype=np.float64))
        same = (ndimage.maximum_filter(lab, size=3) == ndimage.minimum_filter(lab, size=3))[
            1:-1, 1:-1
        ]
        if same.sum() >= 100:
            return float(math.sqrt(math.pi / 2.0) * resp[same].mean() / 6.0)
    return float(np.median(resp) / (0.6745 * 6.0))


def jpeg_blockiness(grey: np.ndarray) -> float:
    """Ratio of grey steps across 8x8 JPEG block edges to steps inside blocks.

    About 1 for images without block artefacts; heavily compressed JPEGs score well above
    1. Must be computed in the raw image's coordinates (JPEG blocks are aligned to the
    encoded image, not to a crop).
    """
    g = np.asarray(grey, dtype=np.float64)
    h, w = g.shape
    if h < 32 or w < 32:
        return 1.0
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    bx = np.zeros(dx.shape[1], bool)
    bx[7::8] = True
    by = np.zeros(dy.shape[0], bool)
    by[7::8] = True
    edge = dx[:, bx].mean() + dy[by, :].mean()
    inner = dx[:, ~bx].mean() + dy[~by, :].mean()
    if inner <= 1e-9:
        return 1.0
    return float(edge / inner)


def edge_width(grey: np.ndarray, thresholds: list[float], mask: np.ndarray | None = None) -> float:
    """Blur of the phase boundaries, as the sigma (px) of a Gaussian edge spread.

    Pixels whose grey level lies in the middle half between two adjacent phases' modal
    levels are transition pixels; a Gaussian-blurred step puts ``1.349 sigma`` of them
    per unit of boundary length. Boundary length is counted from 4-neighbour label
    changes with the Cauchy-Crofton factor pi/4. A 3x3 median first removes pixel noise
    (which would add false transition pixels) without widening long edges.

    Returns
    -------
    float
        Estimated sigma in px (0 for an already segmented image); NaN without boundaries.
    """
    g = ndimage.median_filter(np.asarray(grey, dtype=np.float64), size=3)
    valid = np.ones_like(g, bool) if mask is None else ~ndimage.binary_dilation(mask, iterations=2)
    th = np.asarray(sorted(thresholds), dtype=np.float64)
    lab = np.digitize(g, th)
    modes = class_modes(grey_histogram(g[valid]), list(th))
    if modes is None:
        return float("nan")
    trans, length = 0.0, 0.0
    for i in range(len(th)):
        lo, hi = modes[i], modes[i + 1]
        d = hi - lo
        if d <= 2:
            continue
        trans += float((valid & (g > lo + 0.25 * d) & (g < hi - 0.25 * d)).sum())
        a, b = lab == i, lab == i + 1
        ph = ((a[:, :-1] & b[:, 1:]) | (b[:, :-1] & a[:, 1:])) & valid[:, :-1] & valid[:, 1:]
        pv = ((a[:-1, :] & b[1:, :]) | (b[:-1, :] & a[1:, :])) & valid[:-1, :] & valid[1:, :]
        length += float(ph.sum() + pv.sum()) * math.pi / 4.0
    if length <= 0:
        return float("nan")
    return trans / length / 1.349
