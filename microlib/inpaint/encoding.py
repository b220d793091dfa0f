"""Input checks and the image <-> network-channel representation of every data type.

n-phase images become one-hot channels (decoded by argmax, so no label between two
phases is ever invented); grey and colour images become intensities in [0, 1].
"""

from __future__ import annotations

import numpy as np

from microlib.datatypes import DATA_TYPES, NPHASE_TYPES
from microlib.errors import MicrolibError


def check_inputs(image: np.ndarray, mask: np.ndarray, data_type: str, n_phases: int) -> np.ndarray:
    """Validate an image/mask pair and return the mask as a boolean array.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W)`` labels or grey, or ``(H, W, 3)`` RGB.
    mask : ndarray
        ``(H, W)``; non-zero marks pixels to in-paint (the file contract is 0/255).
    data_type : str
        One of ``twophase``, ``threephase``, ``nphase``, ``grayscale``, ``colour``.
    n_phases : int
        Number of phases (n-phase) or channels.

    Returns
    -------
    ndarray of bool
        ``(H, W)`` mask, True where a pixel is to be replaced.

    Raises
    ------
    MicrolibError
        On shape, dtype, label or type mismatches.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if data_type not in DATA_TYPES:
        raise MicrolibError(
            f"unknown data_type {data_type!r} (expected one of {', '.join(DATA_TYPES)})"
        )
    if image.dtype != np.uint8:
        raise MicrolibError(f"image must be uint8, got {image.dtype}")
    if data_type == "colour":
        if image.ndim != 3 or image.shape[2] != 3:
            raise MicrolibError(f"colour image must be (H, W, 3), got shape {image.shape}")
    elif image.ndim != 2:
        raise MicrolibError(f"{data_type} image must be 2D (H, W), got shape {image.shape}")
    if data_type in NPHASE_TYPES:
        if n_phases < 2:
            raise MicrolibError(f"{data_type} image needs n_phases >= 2, got {n_phases}")
        top = int(image.max()) if image.size else 0
        if top >= n_phases:
            raise MicrolibError(
                f"label {top} found in a {n_phases}-phase image (labels must be 0..{n_phases - 1})"
            )
    if mask.ndim == 3:
        raise MicrolibError(f"mask must be a single-channel (H, W) image, got shape {mask.shape}")
    if mask.shape != image.shape[:2]:
        raise MicrolibError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    return mask > 0


def n_channels(data_type: str, n_phases: int) -> int:
    """Channels of the network representation: one-hot for n-phase, 1 grey, 3 colour."""
    if data_type in NPHASE_TYPES:
        return int(n_phases)
    return 3 if data_type == "colour" else 1


def encode(image: np.ndarray, data_type: str, n_phases: int) -> np.ndarray:
    """Image -> float32 ``(C, H, W)``: one-hot labels, or intensities scaled to [0, 1]."""
    image = np.asarray(image)
    if data_type in NPHASE_TYPES:
        return (image[None, :, :] == np.arange(n_phases, dtype=image.dtype)[:, None, None]).astype(
            np.float32
        )
    if data_type == "colour":
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
    return image[None].astype(np.float32) / 255.0


def decode(channels: np.ndarray, data_type: str) -> np.ndarray:
    """Float ``(C, H, W)`` -> uint8 image: argmax for n-phase, rounded intensities otherwise."""
    if data_type in NPHASE_TYPES:
        return np.argmax(channels, axis=0).astype(np.uint8)
    grey = np.clip(np.rint(np.asarray(channels, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    return grey.transpose(1, 2, 0) if data_type == "colour" else grey[0]


def composite(image: np.ndarray, fill: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of ``image`` with only the ``mask`` pixels taken from ``fill`` (same shape)."""
    out = np.array(image, copy=True)
    m = np.asarray(mask, dtype=bool)
    out[m] = np.asarray(fill)[m]
    return out
