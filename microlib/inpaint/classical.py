"""Classical (non-learned) diffusion in-painting: OpenCV Telea and Navier-Stokes,
scikit-image biharmonic.

All three propagate the surrounding values smoothly into the hole, so they are fast and
get the average right, but a wide fill comes out blurred: in a label image the blur is
cut back to sharp phases by argmax, which leaves too few interfaces; in a grey image it
leaves too little texture. :mod:`microlib.inpaint.exemplar` copies texture instead.
"""

from __future__ import annotations

import numpy as np

from microlib.datatypes import NPHASE_TYPES
from microlib.inpaint.encoding import check_inputs, composite


def _per_channel(image: np.ndarray, data_type: str, n_phases: int, fill_one) -> np.ndarray:
    """Apply ``fill_one`` (uint8 2D/3D array -> same) in the right representation.

    n-phase images are in-painted channel by channel on their one-hot encoding and
    re-labelled by argmax, so no label between two phases is ever invented.
    """
    if data_type in NPHASE_TYPES:
        score = np.stack(
            [fill_one(np.where(image == k, 255, 0).astype(np.uint8)) for k in range(n_phases)]
        )
        return np.argmax(score, axis=0).astype(np.uint8)
    return fill_one(np.ascontiguousarray(image))


def inpaint_opencv(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    data_type: str,
    n_phases: int,
    radius: float = 5.0,
    flavour: str = "telea",
) -> tuple[np.ndarray, dict]:
    """In-paint with OpenCV's Telea fast marching (``flavour='telea'``) or its
    Navier-Stokes method (``flavour='ns'``).

    Returns
    -------
    out : ndarray of uint8
        Same shape as ``image``; pixels outside the mask are identical to ``image``.
    info : dict
        ``method`` (the flavour), ``radius``, ``masked_pixels``.
    """
    import cv2

    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[flavour]
    m = check_inputs(image, mask, data_type, n_phases)
    info = {"method": flavour, "radius": float(radius), "masked_pixels": int(m.sum())}
    if not m.any():
        return np.array(image, copy=True), info
    m8 = m.astype(np.uint8) * 255
    fill = _per_channel(
        np.asarray(image), data_type, n_phases, lambda a: cv2.inpaint(a, m8, radius, flags)
    )
    return composite(image, fill, m), info


def inpaint_telea(
    image: np.ndarray, mask: np.ndarray, *, data_type: str, n_phases: int, radius: float = 5.0
) -> tuple[np.ndarray, dict]:
    """OpenCV Telea fast marching: the fallback whenever another method cannot run."""
    return inpaint_opencv(
        image, mask, data_type=data_type, n_phases=n_phases, radius=radius, flavour="telea"
    )


def inpaint_ns(
    image: np.ndarray, mask: np.ndarray, *, data_type: str, n_phases: int, radius: float = 5.0
) -> tuple[np.ndarray, dict]:
    """OpenCV's Navier-Stokes in-painting (Bertalmio et al. 2001)."""
    return inpaint_opencv(
        image, mask, data_type=data_type, n_phases=n_phases, radius=radius, flavour="ns"
    )


def inpaint_biharmonic(
    image: np.ndarray, mask: np.ndarray, *, data_type: str, n_phases: int
) -> tuple[np.ndarray, dict]:
    """scikit-image's biharmonic in-painting (smooth fill, one sparse solve per hole).

    Returns
    -------
    out : ndarray of uint8
        Same shape as ``image``; pixels outside the mask are identical to ``image``.
    info : dict
        ``method``, ``masked_pixels``.
    """
    from skimage.restoration import inpaint_biharmonic as sk_biharmonic

    m = check_inputs(image, mask, data_type, n_phases)
    info = {"method": "biharmonic", "masked_pixels": int(m.sum())}
    if not m.any():
        return np.array(image, copy=True), info

    def one(a: np.ndarray) -> np.ndarray:
        f = sk_biharmonic(a.astype(np.float64) / 255.0, m, channel_axis=-1 if a.ndim == 3 else None)
        return np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)

    fill = _per_channel(np.asarray(image), data_type, n_phases, one)
    return composite(image, fill, m), info
