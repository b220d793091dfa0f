"""The data types an entry can have, in one place.

``twophase``, ``threephase`` and ``nphase`` (n >= 4) hold phase labels ``0..n-1`` in
ascending grey order; ``grayscale`` holds grey levels 0..255; ``colour`` holds RGB.
"""

from __future__ import annotations

NPHASE_TYPES: tuple[str, ...] = ("twophase", "threephase", "nphase")
DATA_TYPES: tuple[str, ...] = (*NPHASE_TYPES, "grayscale", "colour")


def is_nphase(data_type: str) -> bool:
    """True for the labelled (segmented) data types."""
    return data_type in NPHASE_TYPES


def nphase_type(n_phases: int) -> str:
    """The data-type name for an image with ``n_phases`` labels (``n_phases >= 2``)."""
    return {2: "twophase", 3: "threephase"}.get(n_phases, "nphase")
