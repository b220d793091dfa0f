"""Lattice artefacts: a texture that repeats on the generator's stride grid.

A SliceGAN generator upsamples by 2 per layer, so every output voxel sits at one of 2, 4,
8, ... positions relative to the grid of each hidden layer. A briefly trained generator
can paint a fixed pattern onto those positions: a lattice of period 4 or 8 voxels that a
grey or colour slice shows at once (n-phase slices hide a weak one under the argmax). The
checkerboard score only looks at the Nyquist frequency (period 2); this measure looks at
the stride harmonics below it.

:func:`lattice_score` is the largest prominence of a spectral peak at 1/8, 1/4 or 3/8
cycles per pixel: the mean 1D power spectrum of all lines along one axis, at the harmonic,
over the median of the spectrum a few bins either side. A texture without periodicity
scores about 1 (a smooth spectrum has no peak), a lattice scores its peak's height. A
material that is periodic at those spacings, or a JPEG's 8 px blocks, score high in 2D
too: compare a volume with its own training image (:func:`lattice_ratio`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft

from microlib.errors import MicrolibError
from microlib.validate.fidelity import _channels

#: the stride harmonics below Nyquist, cycles / pixel (periods 8, 4 and 8/3 pixels)
LATTICE_FREQUENCIES = (1.0 / 8.0, 1.0 / 4.0, 3.0 / 8.0)
#: a peak is the largest bin within 1 of the harmonic (a Hann window spreads a tone that
#: falls between bins over its neighbours); the reference is the median of the bins 3 to 6
#: away on either side, clear of that spread
_PEAK_HALF_WIDTH = 1
_RING = (3, 6)


def _line_power(a: np.ndarray, axis: int, n_phases: int | None) -> np.ndarray:
    """Mean power spectrum of the lines of ``a`` along ``axis`` (mean removed, Hann)."""
    lines = np.moveaxis(a, axis, -1)
    n = lines.shape[-1]
    window = np.hanning(n).astype(np.float32)
    total = np.zeros(n // 2 + 1)
    for c in _channels(lines, n_phases):
        c = c.reshape(-1, n)
        c = (c - c.mean(axis=1, keepdims=True)) * window
        total += (np.abs(fft.rfft(c, axis=1)) ** 2).mean(axis=0)
    return total


def _prominence(power: np.ndarray, n: int) -> float:
    """Largest peak-over-surroundings ratio at the stride harmonics; nan if none fits."""
    ratios = []
    for f in LATTICE_FREQUENCIES:
        i = int(round(f * n))
        lo, hi = i - _RING[1], i + _RING[1]
        if lo < 1 or hi >= len(power):
            continue  # too short a line to see this harmonic against a background
        peak = power[i - _PEAK_HALF_WIDTH : i + _PEAK_HALF_WIDTH + 1].max()
        ring = np.r_[power[lo : i - _RING[0] + 1], power[i + _RING[0] : hi + 1]]
        ref = float(np.median(ring))
        if ref > 0:
            ratios.append(peak / ref)
    return float(max(ratios)) if ratios else math.nan


def lattice_score(image: np.ndarray, *, n_phases: int | None = None) -> float:
    """Height of the tallest spectral peak at a stride harmonic, over its surroundings.

    Parameters
    ----------
    image : ndarray, (H, W) or (Z, Y, X)
        Grey levels or labels; lines along every axis are scored.
    n_phases : int, optional
        Labels ``0..n-1``: the one-hot indicators' spectra are summed. None: grey values.

    Returns
    -------
    float
        ``max`` over the axes and the harmonics 1/8, 1/4, 3/8 of the ratio above (about 1
        without periodicity). ``nan`` when every axis is under about 50 pixels or the
        image is constant.
    """
    a = np.asarray(image)
    if a.ndim not in (2, 3):
        raise MicrolibError(f"lattice_score needs a 2D image or a 3D volume, got {a.shape}")
    scores = [_prominence(_line_power(a, ax, n_phases), a.shape[ax]) for ax in range(a.ndim)]
    scores = [s for s in scores if not math.isnan(s)]
    return max(scores) if scores else math.nan


def lattice_ratio(score_3d: float, score_2d: float) -> float | None:
    """3D over 2D lattice score; None when either is undefined. A 2D score under 1 counts
    as 1: a spectrum falling off steeply there is not less periodic than a flat one."""
    if not (math.isfinite(score_3d) and math.isfinite(score_2d)):
        return None
    return float(score_3d / max(score_2d, 1.0))
