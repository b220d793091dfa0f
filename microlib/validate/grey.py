"""Grayscale and colour statistics: grey histograms and the normalised autocovariance."""

from __future__ import annotations

import numpy as np
from scipy import fft

from microlib.validate.nphase import check_lag


def grey_autocovariance(image: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised non-periodic autocovariance per axis.

    ``C_a(r) = mean over pairs r apart along axis a of (g(p) - mu)(g(p + r e_a) - mu) / var``
    with ``mu``/``var`` of the whole array. Computed with a zero-padded FFT along each
    axis (identical to the direct sum over pairs inside the array).

    Returns
    -------
    ndarray, (ndim, max_lag + 1)
    """
    g = np.asarray(image, dtype=np.float32)
    check_lag(g.shape, max_lag)
    g = g - g.mean(dtype=np.float64)
    var = float(np.mean(g.astype(np.float64) ** 2))
    out = np.zeros((g.ndim, max_lag + 1))
    if var <= 1e-12:
        return out
    for axis in range(g.ndim):
        n = g.shape[axis]
        nfft = fft.next_fast_len(n + max_lag + 1, real=True)
        spec = fft.rfft(g, n=nfft, axis=axis)
        spec = (spec * spec.conj()).real
        corr = fft.irfft(spec, n=nfft, axis=axis)
        other = tuple(a for a in range(g.ndim) if a != axis)
        sums = corr.sum(axis=other, dtype=np.float64)[: max_lag + 1]
        count = g.size // n * (n - np.arange(max_lag + 1))
        out[axis] = sums / count / var
        del spec, corr
    return out


def grey_histogram(values: np.ndarray) -> np.ndarray:
    """Normalised 256-bin histogram of uint8 grey levels."""
    h = np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256).astype(np.float64)
    return h / max(h.sum(), 1.0)


def wasserstein_1(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two normalised histograms on the
    same unit-spaced bins, in bins (grey levels)."""
    return float(np.abs(np.cumsum(hist_a) - np.cumsum(hist_b)).sum())
