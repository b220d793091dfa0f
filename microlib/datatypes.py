"""The data types an entry can have and the phase-count limit, in one place.

``twophase``, ``threephase`` and ``nphase`` (n >= 4) hold phase labels ``0..n-1`` in
ascending grey order; ``grayscale`` holds grey levels 0..255; ``colour`` holds RGB.
An n-phase image has at most :data:`MAX_PHASES` phases; :func:`infer_data_type` is the
one rule for telling a label image from a grey one when no metadata says.
"""

from __future__ import annotations

import numpy as np

NPHASE_TYPES: tuple[str, ...] = ("twophase", "threephase", "nphase")
DATA_TYPES: tuple[str, ...] = (*NPHASE_TYPES, "grayscale", "colour")


def is_nphase(data_type: str) -> bool:
    """True for the labelled (segmented) data types."""
    return data_type in NPHASE_TYPES


def nphase_type(n_phases: int) -> str:
    """The data-type name for an image with ``n_phases`` labels (``n_phases >= 2``)."""
    return {2: "twophase", 3: "threephase"}.get(n_phases, "nphase")


# Most phases an n-phase (label) image may have, everywhere in the pipeline. SliceGAN
# trains one one-hot channel per phase, so the network's size grows with it; 16 is far
# beyond any DoITPoMS micrograph (two to four phases) yet small enough that a grey
# image whose few grey levels happen to be 0..k-1 with k > 16 is not taken for labels.
MAX_PHASES: int = 16


def infer_data_type(image: np.ndarray, max_phases: int = MAX_PHASES) -> tuple[str, int]:
    """Guess ``(data_type, n_phases)`` of an image that carries no metadata.

    The one phase-count inference of the pipeline: an ``(H, W, 3)`` image is
    ``colour`` (3 channels); an ``(H, W)`` (or volume) array whose values are exactly
    ``0..k-1`` with ``2 <= k <= max_phases`` is a ``k``-phase label image; anything else
    is ``grayscale`` (1 channel).

    Parameters
    ----------
    image : ndarray
        Label, grey or RGB image.
    max_phases : int
        Most phases a label image may have (default :data:`MAX_PHASES`).

    Returns
    -------
    tuple of (str, int)
        The data type (one of :data:`DATA_TYPES`) and the phase count.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return "colour", 3
    values = np.unique(arr)
    k = int(values.size)
    if 2 <= k <= max_phases and values[0] == 0 and values[-1] == k - 1:
        return nphase_type(k), k
    return "grayscale", 1
