"""Texture: autocorrelation and correlation lengths of a micrograph.

The isotropy and representativity filters and the uniqueness fingerprint are all read
off the autocorrelation (:func:`autocorrelation`, :func:`correlation_lengths`,
:func:`radial_profile`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

# radii (px) at which the radial autocorrelation of the fingerprint is sampled
FINGERPRINT_RADII = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
_INV_E = math.exp(-1.0)


def autocorrelation(
    image: np.ndarray, mask: np.ndarray | None = None, max_lag: int | None = None
) -> np.ndarray:
    """Normalised autocovariance of a 2D field, computed by FFT without wrap-around.

    Masked pixels are left out properly: every lag is normalised by the number of
    valid pixel pairs at that lag (zero padding, no periodic wrap).

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` field.
    mask : ndarray of bool, optional
        Pixels to ignore.
    max_lag : int, optional
        Largest lag kept (default: half the shorter side).

    Returns
    -------
    ndarray
        ``(2L+1, 2L+1)`` autocovariance divided by the variance, lag 0 at the centre;
        lags with fewer than a quarter of the pixels as pairs are NaN.
    """
    f = np.asarray(image, dtype=np.float64)
    h, w = f.shape
    valid = np.ones_like(f, bool) if mask is None else ~np.asarray(mask, bool)
    lag = int(max_lag if max_lag is not None else min(h, w) // 2)
    lag = max(1, min(lag, h - 1, w - 1))
    m = valid.astype(np.float64)
    n_valid = m.sum()
    if n_valid < 4:
        return np.full((2 * lag + 1, 2 * lag + 1), np.nan)
    mean = (f * m).sum() / n_valid
    g = (f - mean) * m
    shape = (h + lag, w + lag)
    fft_g = np.fft.rfft2(g, s=shape)
    fft_m = np.fft.rfft2(m, s=shape)
    num = np.fft.irfft2(fft_g * np.conj(fft_g), s=shape)
    den = np.fft.irfft2(fft_m * np.conj(fft_m), s=shape)
    num = np.fft.fftshift(num)
    den = np.fft.fftshift(den)
    cy, cx = shape[0] // 2, shape[1] // 2
    num = num[cy - lag : cy + lag + 1, cx - lag : cx + lag + 1]
    den = den[cy - lag : cy + lag + 1, cx - lag : cx + lag + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        acov = num / den
    acov[den < 0.25 * n_valid] = np.nan
    var = acov[lag, lag]
    if not np.isfinite(var) or var <= 1e-12:
        return np.full_like(acov, np.nan)
    return acov / var


def correlation_lengths(
    acf: np.ndarray, *, noise_correct: bool = False, n_directions: int = 8, level: float = _INV_E
) -> dict[str, float]:
    """Correlation lengths of a normalised autocovariance along several directions.

    The length along a direction is the lag where the autocovariance first falls below
    ``level`` (1/e), linearly interpolated. The lengths along ``n_directions`` directions
    over 180 degrees are fitted with an ellipse (``1/L(t)^2 = u(t)^T Q u(t)``), whose axes
    give the major and minor correlation lengths whatever the features' orientation.

    Parameters
    ----------
    acf : ndarray
        Output of :func:`autocorrelation`.
    noise_correct : bool
        Renormalise by the noise-free variance extrapolated from lags 1 and 2, so white
        pixel noise (which only adds to lag 0) does not shorten the lengths.
    n_directions : int
    level : float

    Returns
    -------
    dict
        ``x``, ``y`` (lengths along columns and rows), ``major``, ``minor``,
        ``longest`` (the longest measured direction),
        ``angle_deg`` (direction of the major axis, 0 = along x) and ``censored`` (True
        when some direction never fell below ``level`` inside the lag window).
    """
    lag = acf.shape[0] // 2
    c = np.array(acf, dtype=np.float64)
    if noise_correct:
        c1 = np.nanmean([c[lag, lag + 1], c[lag, lag - 1], c[lag + 1, lag], c[lag - 1, lag]])
        c2 = (
            np.nanmean([c[lag, lag + 2], c[lag, lag - 2], c[lag + 2, lag], c[lag - 2, lag]])
            if lag >= 2
            else c1
        )
        c0 = 2 * c1 - c2
        if np.isfinite(c0) and 0 < c0 < 1:
            c = c / c0
            c[lag, lag] = 1.0
    angles = np.arange(n_directions) * math.pi / n_directions
    radii = np.arange(0, lag + 1e-9, 0.5)
    lengths = []
    censored = False
    for t in angles:
        rows = lag - radii * math.sin(t)  # y axis points down; angle measured from +x
        cols = lag + radii * math.cos(t)
        prof = ndimage.map_coordinates(
            np.nan_to_num(c, nan=-2.0), [rows, cols], order=1, mode="nearest"
        )
        below = np.nonzero(prof < level)[0]
        if below.size == 0:
            lengths.append(float(radii[-1]))
            censored = True
            continue
        j = int(below[0])
        if j == 0:
            lengths.append(0.5)
            continue
        p0, p1 = prof[j - 1], prof[j]
        frac = (p0 - level) / (p0 - p1) if p0 != p1 else 0.0
        lengths.append(float(radii[j - 1] + frac * (radii[j] - radii[j - 1])))
    L = np.maximum(np.asarray(lengths), 0.25)
    # least-squares ellipse in the quadratic form 1/L^2 = a cos^2 + 2b sin cos + c sin^2
    design = np.stack(
        [np.cos(angles) ** 2, 2 * np.sin(angles) * np.cos(angles), np.sin(angles) ** 2], axis=1
    )
    coef, *_ = np.linalg.lstsq(design, 1.0 / L**2, rcond=None)
    q = np.array([[coef[0], coef[1]], [coef[1], coef[2]]])
    evals, evecs = np.linalg.eigh(q)
    if evals[0] > 0:
        major, minor = 1.0 / math.sqrt(evals[0]), 1.0 / math.sqrt(evals[1])
        v = evecs[:, 0]
        angle = math.degrees(math.atan2(v[1], v[0])) % 180.0
    else:  # degenerate fit (very noisy estimate): fall back to the measured extremes
        major, minor = float(L.max()), float(L.min())
        angle = math.degrees(float(angles[int(np.argmax(L))]))
    # the ellipse cannot be more extreme than the measurements it was fitted to
    major = float(min(major, L.max()))
    minor = float(max(minor, L.min()))
    return {
        "x": round(float(L[0]), 3),
        "y": round(float(L[n_directions // 2]), 3),
        "major": round(major, 3),
        "minor": round(minor, 3),
        "longest": round(float(L.max()), 3),
        "angle_deg": round(angle, 1),
        "censored": bool(censored),
    }


def radial_profile(acf: np.ndarray, radii: tuple[int, ...] = FINGERPRINT_RADII) -> list[float]:
    """Mean autocovariance on rings of the given radii (NaN-free, clipped to the window)."""
    lag = acf.shape[0] // 2
    yy, xx = np.mgrid[-lag : lag + 1, -lag : lag + 1]
    rr = np.hypot(yy, xx)
    out = []
    for r in radii:
        ring = (np.abs(rr - r) < 0.5) & np.isfinite(acf)
        out.append(round(float(acf[ring].mean()), 4) if ring.any() else 0.0)
    return out
