"""Exemplar in-painting: fill each masked region with a copy of real texture from
elsewhere in the same image.

For every region (a scale bar and its label, grouped as in
:func:`microlib.inpaint.masks.mask_regions`) a window is drawn around it, ``context``
pixels wider than the region on every side. Every equally sized window of the image
that contains no masked pixel is a candidate source; the one whose pixels best match
the window's known pixels (least mean squared difference, on the one-hot encoding for
n-phase images) is copied into the region. Because the fill is a piece of the image
itself, its phase fractions, interface density and grey texture are those of real
material rather than a blur (diffusion) or a generator's approximation (GAN); matching
the surrounding ring keeps the seam small. All candidates are scored at once with
FFT correlations, so one region costs well under a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microlib.datatypes import NPHASE_TYPES
from microlib.inpaint.classical import inpaint_telea
from microlib.inpaint.encoding import check_inputs, composite, encode
from microlib.inpaint.masks import eligible_corners, mask_regions, region_window

#: default knobs of :func:`inpaint_exemplar`
EXEMPLAR_DEFAULTS: dict[str, Any] = {
    "context": 8,  # known pixels around a region that the copied window must match
    "group_gap": 8,  # mask components closer than this are filled together
    "fraction_weight": 4.0,  # prior: copied region's channel means ~ the context's
}


def _correlate(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid-mode cross-correlation of 2D ``a`` with kernel ``k`` (FFT)."""
    from scipy.signal import fftconvolve

    return fftconvolve(a, k[::-1, ::-1], mode="valid")


def match_costs(channels: np.ndarray, template: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted mean squared difference between ``template`` and every window of ``channels``.

    Parameters
    ----------
    channels : ndarray of float, (C, H, W)
    template : ndarray of float, (C, h, w)
    weight : ndarray of float, (h, w)
        1 where the template's pixel is known, 0 where it is not to be compared.

    Returns
    -------
    ndarray of float64, (H - h + 1, W - w + 1)
        ``cost[y, x]`` = sum over known pixels and channels of the squared difference
        between ``template`` and ``channels[:, y:y+h, x:x+w]``, divided by the number of
        known pixels (0 everywhere when none is known).
    """
    w = np.asarray(weight, dtype=np.float64)
    n = w.sum()
    _, hh, ww = template.shape
    shape = (channels.shape[1] - hh + 1, channels.shape[2] - ww + 1)
    if n == 0 or min(shape) < 1:
        return np.zeros((max(shape[0], 0), max(shape[1], 0)))
    cost = np.zeros(shape)
    for img, tpl in zip(channels.astype(np.float64), template.astype(np.float64), strict=True):
        # sum w (I - T)^2 = corr(I^2, w) - 2 corr(I, w T) + sum w T^2
        cost += _correlate(img * img, w) - 2.0 * _correlate(img, w * tpl) + (w * tpl * tpl).sum()
    return np.maximum(cost, 0.0) / n


def best_source(
    channels: np.ndarray,
    mask: np.ndarray,
    window: tuple[int, int, int, int],
    region: np.ndarray | None = None,
    fraction_weight: float = 0.0,
) -> tuple[tuple[int, int], float] | None:
    """The mask-free window of the image that best matches ``window``'s known pixels.

    Parameters
    ----------
    channels : ndarray of float, (C, H, W)
        Encoded image.
    mask : ndarray of bool, (H, W)
        Every pixel to be in-painted; a candidate source window contains none of them.
    window : (y0, y1, x0, x1)
        The window to fill.
    region : ndarray of bool, (H, W), optional
        The pixels of the window that will be copied; with ``fraction_weight`` > 0 a
        source whose copied pixels' channel means (phase fractions) are far from those
        of the window's known pixels is penalised by ``fraction_weight`` times the
        squared difference, summed over channels. A single copied window is one random
        draw of the texture; the prior draws it from the part of the image that looks
        like the surroundings on average as well as at the seam.

    Returns
    -------
    ((sy, sx), cost) or None
        Top-left corner of the best source window and its :func:`match_costs` value, or
        None when no window of that size avoids the mask.
    """
    y0, y1, x0, x1 = window
    corners = eligible_corners(mask, (y1 - y0, x1 - x0))
    if len(corners) == 0:
        return None
    known = ~mask[y0:y1, x0:x1]
    tpl = channels[:, y0:y1, x0:x1]
    cost = match_costs(channels, tpl, known)
    if region is not None and fraction_weight and known.any():
        foot = region[y0:y1, x0:x1].astype(np.float64)
        ctx_mean = tpl[:, known].mean(axis=1)
        for img, mu in zip(channels.astype(np.float64), ctx_mean, strict=True):
            cost += fraction_weight * (_correlate(img, foot) / foot.sum() - mu) ** 2
    c = cost[corners[:, 0], corners[:, 1]]
    k = int(np.argmin(c))  # first minimum in row-major order: deterministic
    return (int(corners[k, 0]), int(corners[k, 1])), float(c[k])


def inpaint_exemplar(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    data_type: str,
    n_phases: int,
    context: int = EXEMPLAR_DEFAULTS["context"],
    group_gap: int = EXEMPLAR_DEFAULTS["group_gap"],
    fraction_weight: float = EXEMPLAR_DEFAULTS["fraction_weight"],
) -> tuple[np.ndarray, dict]:
    """In-paint each masked region with the best-matching mask-free window of the image.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W)`` labels 0..n-1 or grey, or ``(H, W, 3)`` RGB.
    mask : ndarray, (H, W)
        Non-zero where pixels are to be replaced.
    context : int
        Known pixels around a region that the source window must match. When no window
        that large avoids the mask, the context is halved (down to 1 px); when even the
        region's own bounding box fits nowhere, that region is filled by Telea and the
        record says so.
    group_gap : int
        Mask components closer than this share one window.
    fraction_weight : float
        Weight of the phase-fraction prior of :func:`best_source` (n-phase images only).

    Returns
    -------
    out : ndarray of uint8
        Same shape as ``image``; pixels outside the mask are identical to ``image``;
        n-phase fills hold only labels present in the image.
    info : dict
        ``method``, ``masked_pixels``, ``params`` and per-region ``window``, ``source``
        (top-left corner of the copied window), ``context``, ``cost``; ``telea_regions``
        counts regions that had to fall back.
    """
    m = check_inputs(image, mask, data_type, n_phases)
    info: dict[str, Any] = {
        "method": "exemplar",
        "masked_pixels": int(m.sum()),
        "params": {
            "context": int(context),
            "group_gap": int(group_gap),
            "fraction_weight": float(fraction_weight),
        },
        "regions": [],
        "telea_regions": 0,
    }
    if not m.any():
        return np.array(image, copy=True), info
    img = np.asarray(image)
    channels = encode(img, data_type, n_phases)
    fill = np.array(img, copy=True)
    leftover = np.zeros_like(m)
    for region in mask_regions(m, group_gap):
        found = None
        ctx = max(int(context), 1)
        while found is None:
            window = region_window(region, ctx)
            # grey copies are shifted to the context's mean below, so the prior is for
            # phase fractions only
            found = best_source(
                channels, m, window, region, fraction_weight if data_type in NPHASE_TYPES else 0.0
            )
            if found is None and ctx == 1:
                break
            ctx = max(ctx // 2, 1) if found is None else ctx
        if found is None:
            leftover |= region
            info["regions"].append({"pixels": int(region.sum()), "source": None})
            continue
        (sy, sx), cost = found
        y0, y1, x0, x1 = window
        sub = region[y0:y1, x0:x1]
        src = img[sy : sy + y1 - y0, sx : sx + x1 - x0]
        patch = src[sub]
        if data_type not in NPHASE_TYPES:
            # a copy from a brighter or darker part of the image would show as a seam:
            # shift it by the difference of the two windows' known-pixel means
            known = ~m[y0:y1, x0:x1]
            tgt = img[y0:y1, x0:x1]
            if known.any():
                shift = tgt[known].astype(np.float64).mean(0) - src[known].astype(np.float64).mean(
                    0
                )
                patch = np.clip(np.rint(patch + shift), 0, 255).astype(np.uint8)
        fill[y0:y1, x0:x1][sub] = patch
        info["regions"].append(
            {
                "pixels": int(region.sum()),
                "window": [y0, y1, x0, x1],
                "source": [sy, sx],
                "context": ctx,
                "cost": round(cost, 6),
            }
        )
    out = composite(img, fill, m)
    if leftover.any():
        out, _ = inpaint_telea(out, leftover, data_type=data_type, n_phases=n_phases)
        info["telea_regions"] = sum(r["source"] is None for r in info["regions"])
    return out, info
