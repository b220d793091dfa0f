"""Uniqueness fingerprints: a compact statistical descriptor of a micrograph.

Two regions of one sample have nearly the same fingerprint; a different material or
magnification does not. The selection checkpoint compares them across entries
(:mod:`microlib.annotate.selection`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microlib.annotate.texture import FINGERPRINT_RADII, radial_profile
from microlib.image import masked_values, to_grey

FINGERPRINT_BINS = 32


def fingerprint(
    image: np.ndarray, typed: dict[str, Any], acf: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, Any]:
    """Statistical descriptor of a micrograph for the uniqueness check.

    A normalised grey histogram (``FINGERPRINT_BINS`` bins over 0..255), the radial
    autocovariance at ``FINGERPRINT_RADII`` px (feature size and shape) and the phase
    fractions.
    """
    grey = to_grey(image)
    values = masked_values(grey, mask)
    hist, _ = np.histogram(values, bins=FINGERPRINT_BINS, range=(0.0, 256.0))
    hist = hist.astype(np.float64) / max(hist.sum(), 1)
    centre = np.isfinite(acf[acf.shape[0] // 2, acf.shape[1] // 2])
    return {
        "histogram": [round(float(x), 5) for x in hist],
        "radial_acf": radial_profile(acf) if centre else [0.0] * len(FINGERPRINT_RADII),
        "radii_px": list(FINGERPRINT_RADII),
        "fractions": typed.get("fractions"),
    }


def fingerprint_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Distance between two fingerprints in [0, 1] (0 = statistically identical).

    The largest of: the earth mover's distance between the grey histograms (as a
    fraction of the grey range), the largest difference of the radial autocovariances
    (feature size/shape), and the largest phase-fraction difference. Two regions of one
    sample differ by a few hundredths in each; a different material or magnification
    differs by a tenth or more in at least one. n-phase and grayscale/colour images, or
    different phase counts, are never duplicates (distance 1).
    """
    ha, hb = np.asarray(a["histogram"], float), np.asarray(b["histogram"], float)
    if ha.shape != hb.shape or ha.size == 0:
        d_hist = 1.0
    else:
        d_hist = float(np.abs(np.cumsum(ha) - np.cumsum(hb)).sum() / ha.size)
    ra, rb = np.asarray(a["radial_acf"], float), np.asarray(b["radial_acf"], float)
    d_acf = float(np.abs(ra - rb).max()) if ra.shape == rb.shape and ra.size else 1.0
    fa, fb = a.get("fractions"), b.get("fractions")
    if fa and fb and len(fa) == len(fb):
        d_vf = float(np.abs(np.asarray(fa) - np.asarray(fb)).max())
    elif fa or fb:
        d_vf = 1.0
    else:
        d_vf = 0.0
    return round(min(1.0, max(d_hist, d_acf, d_vf)), 5)
