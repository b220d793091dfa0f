"""Procedural microstructures of the demo library and how they are imaged.

Gaussian random fields (thresholded into phases), Voronoi grains, and an imaging model
(grey level per phase, per-grain etch contrast, optical blur, grey-level noise).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def gaussian_random_field(
    shape: tuple[int, int], corr_len: float, rng: np.random.Generator, aspect: float = 1.0
) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with a Gaussian covariance.

    Parameters
    ----------
    shape : (int, int)
    corr_len : float
        Correlation length along y (rows), px.
    rng : numpy.random.Generator
    aspect : float
        Correlation length along x divided by that along y (> 1: features elongated
        along x).

    Returns
    -------
    ndarray of float64
    """
    noise = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    ly, lx = float(corr_len), float(corr_len) * float(aspect)
    filt = np.exp(-2.0 * np.pi**2 * ((kx * lx) ** 2 + (ky * ly) ** 2))
    f = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=shape)
    return (f - f.mean()) / (f.std() + 1e-12)


def threshold_field(f: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean image that is True on the ``fraction`` of pixels with the lowest values."""
    return f <= np.quantile(f, fraction)


def voronoi_grains(shape: tuple[int, int], n_grains: int, rng: np.random.Generator) -> np.ndarray:
    """Label image of a Voronoi tessellation with ``n_grains`` random seeds (grain ids)."""
    from scipy.spatial import cKDTree

    h, w = shape
    seeds = rng.uniform([0, 0], [h, w], size=(n_grains, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    _, idx = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], axis=1))
    return idx.reshape(h, w)


def image_phases(
    labels: np.ndarray,
    grey_levels: list[float],
    rng: np.random.Generator,
    *,
    blur: float = 0.8,
    noise: float = 6.0,
    grain_ids: np.ndarray | None = None,
    grain_jitter: float = 0.0,
) -> np.ndarray:
    """Image a phase-label map: grey level per phase, optional per-grain etch contrast,
    optical blur, Gaussian grey-level noise (float64, unclipped)."""
    img = np.asarray(grey_levels, dtype=np.float64)[labels]
    if grain_ids is not None and grain_jitter > 0:
        offs = rng.normal(0.0, grain_jitter, size=int(grain_ids.max()) + 1)
        img = img + offs[grain_ids]
    if blur > 0:
        img = ndimage.gaussian_filter(img, blur)
    return img + rng.normal(0.0, noise, size=img.shape)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a float image to uint8."""
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
