"""In-painting with OpenCV's Telea fast-marching method: the baseline and fallback."""

from __future__ import annotations

import numpy as np

from microlib.datatypes import NPHASE_TYPES
from microlib.inpaint.encoding import check_inputs, composite


def inpaint_telea(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    data_type: str,
    n_phases: int,
    radius: float = 5.0,
) -> tuple[np.ndarray, dict]:
    """In-paint with OpenCV's Telea fast-marching method (baseline and fallback).

    n-phase images are in-painted channel by channel on their one-hot encoding and
    re-labelled by argmax, so no label between two phases is ever invented.

    Returns
    -------
    out : ndarray of uint8
        Same shape as ``image``; pixels outside the mask are identical to ``image``.
    info : dict
        ``method``, ``radius``, ``masked_pixels``.
    """
    import cv2

    m = check_inputs(image, mask, data_type, n_phases)
    info = {"method": "telea", "radius": float(radius), "masked_pixels": int(m.sum())}
    if not m.any():
        return np.array(image, copy=True), info
    m8 = m.astype(np.uint8) * 255
    if data_type in NPHASE_TYPES:
        score = np.stack(
            [
                cv2.inpaint(
                    np.where(image == k, 255, 0).astype(np.uint8), m8, radius, cv2.INPAINT_TELEA
                )
                for k in range(n_phases)
            ]
        )
        fill = np.argmax(score, axis=0).astype(np.uint8)
    else:
        fill = cv2.inpaint(np.ascontiguousarray(image), m8, radius, cv2.INPAINT_TELEA)
    return composite(image, fill, m), info
