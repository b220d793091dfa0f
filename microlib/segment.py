"""Segmentation: thresholds -> phase labels, and the scale-bar mask, in cropped coordinates.

Pure functions on arrays (file I/O lives in ``microlib.commands.segment``). The rules
follow the pipeline's file contract: n-phase images become uint8 labels ``0..n-1`` in
ascending grey order (label 0 = darkest phase), grayscale images stay grey, colour images
stay RGB; the mask is 0/255 with 255 on the pixels the in-painter must fill.

MicroLib relabelled pixels in place, interval by interval, so for three or more phases the
already-written label 1 fell into the last interval and classes merged. Here every
pixel is binned once with ``np.digitize`` against the ascending thresholds.

Layering: ``image`` -> ``scalebar`` -> ``segment`` -> ``annotate``. The annotate stage
predicts the phase fractions of the segmented image with :func:`label_phases` and the
same :class:`SegmentSettings` the segment stage runs with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from microlib.datatypes import MAX_PHASES, NPHASE_TYPES
from microlib.errors import MicrolibError
from microlib.image import clip_box, crop_image, to_grey, uint8_image
from microlib.scalebar import bar_mask_args, scale_bar_mask

DENOISE_METHODS = ("none", "median", "gaussian")


@dataclass(frozen=True)
class SegmentSettings:
    """How n-phase images are thresholded into labels (the ``segment:`` config section).

    The annotate stage predicts phase fractions with these too, so both stages must be
    given the same values (the workflow passes the ``segment:`` section to both rules).

    Attributes
    ----------
    denoise : {"none", "median", "gaussian"}
        Denoising before thresholding, see :func:`denoise`.
    denoise_size : float
        Median window or three Gaussian sigmas, px.
    halos : bool
        Remove blurred-transition rims of intermediate phases (:func:`suppress_halos`).
    """

    denoise: str = "median"
    denoise_size: float = 3
    halos: bool = True

    def __post_init__(self) -> None:
        if self.denoise not in DENOISE_METHODS:
            raise ValueError(
                f"unknown denoise method {self.denoise!r} "
                f"(choose from {', '.join(DENOISE_METHODS)})"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def denoise(grey: np.ndarray, method: str = "median", size: float = 3) -> np.ndarray:
    """Light denoising before thresholding.

    Pixel noise that crosses a threshold becomes isolated speckle in the labels, which
    SliceGAN would learn as a feature. ``median`` (a ``size`` x ``size`` median; default)
    removes speckle while keeping straight boundaries in place; ``gaussian`` (sigma =
    ``size`` / 3) is smoother but rounds corners; ``none`` thresholds the raw values.

    Parameters
    ----------
    grey : ndarray
        ``(H, W)`` grey image.
    method : {"none", "median", "gaussian"}
    size : float
        Median window (odd integer) or three Gaussian sigmas, px.

    Returns
    -------
    ndarray of float64
    """
    g = np.asarray(grey, dtype=np.float64)
    if method == "none" or size <= 1:
        return g
    if method == "median":
        return ndimage.median_filter(g, size=int(size) | 1, mode="reflect")
    if method == "gaussian":
        return ndimage.gaussian_filter(g, sigma=float(size) / 3.0, mode="reflect")
    raise ValueError(
        f"unknown denoise method {method!r} (choose from {', '.join(DENOISE_METHODS)})"
    )


def suppress_halos(labels: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Reassign intermediate-phase pixels that only exist as a blurred transition.

    With three or more phases, a blurred boundary between a dark and a bright phase
    passes through the grey levels of the phases in between, leaving a rim of them, 1-2
    px wide, around every such boundary. A pixel of an intermediate phase is a rim pixel
    when it belongs to a structure thinner than 3 px (it does not survive a 3x3
    opening) and a darker and a brighter phase both lie within 2 px; it goes to the
    darker or the brighter of those phases, whichever mean grey level is closer.
    Genuine features of the intermediate phase 3 px or wider are untouched.

    Parameters
    ----------
    labels : ndarray of int
        Labels ``0..n-1`` in ascending grey order.
    grey : ndarray
        The grey image the labels came from.

    Returns
    -------
    ndarray
        Corrected labels (same dtype).
    """
    lab = np.asarray(labels).copy()
    g = np.asarray(grey, dtype=np.float64)
    n = int(lab.max()) + 1 if lab.size else 0
    if n < 3:
        return lab
    lo = ndimage.minimum_filter(lab, size=5, mode="nearest")
    hi = ndimage.maximum_filter(lab, size=5, mode="nearest")
    counts = np.bincount(lab.ravel(), minlength=n).astype(np.float64)
    sums = np.bincount(lab.ravel(), weights=g.ravel(), minlength=n)
    means = np.divide(sums, counts, out=np.arange(n, dtype=np.float64), where=counts > 0)
    rim = np.zeros(lab.shape, bool)
    for i in range(1, n - 1):
        phase = lab == i
        thin = phase & ~ndimage.binary_opening(phase, structure=np.ones((3, 3), bool))
        rim |= thin & (lo < i) & (hi > i)
    if rim.any():
        lo_r, hi_r = lo[rim], hi[rim]
        to_lo = np.abs(g[rim] - means[lo_r]) <= np.abs(g[rim] - means[hi_r])
        lab[rim] = np.where(to_lo, lo_r, hi_r).astype(lab.dtype)
    return lab


def label_phases(
    grey: np.ndarray,
    thresholds: list[float],
    *,
    method: str = "median",
    size: float = 3,
    halos: bool = True,
) -> np.ndarray:
    """Threshold a grey image into phase labels ``0..n-1`` (ascending grey order).

    Each pixel is binned once: ``label = np.digitize(value, thresholds)``, so a value
    equal to a threshold belongs to the brighter phase and no class can swallow another
    (MicroLib's in-place relabelling merged classes for three or more phases).

    Parameters
    ----------
    grey : ndarray
        ``(H, W)`` grey image (0..255).
    thresholds : list of float
        Ascending thresholds, ``n - 1`` of them.
    method, size
        Denoising before thresholding, see :func:`denoise`.
    halos : bool
        Remove transition rims between non-adjacent phases (:func:`suppress_halos`).

    Returns
    -------
    ndarray of uint8
    """
    th = np.asarray(thresholds, dtype=np.float64)
    if th.ndim != 1 or th.size == 0:
        raise ValueError("label_phases needs at least one threshold")
    if np.any(np.diff(th) <= 0):
        raise ValueError(f"thresholds must be strictly ascending, got {list(thresholds)}")
    if th.size + 1 > MAX_PHASES:
        raise ValueError(f"{th.size + 1} phases from the thresholds; at most {MAX_PHASES}")
    g = denoise(grey, method, size)
    lab = np.digitize(g, th).astype(np.uint8)
    if halos and th.size >= 2:
        lab = suppress_halos(lab, g)
    return lab


def phase_statistics(
    grey: np.ndarray, labels: np.ndarray, n_phases: int, mask: np.ndarray | None = None
) -> dict[str, list[float]]:
    """Mean raw grey level and area fraction of each phase, mask excluded."""
    g = np.asarray(grey, dtype=np.float64)
    keep = np.ones(g.shape, bool) if mask is None else ~np.asarray(mask, bool)
    lab = np.asarray(labels)[keep].astype(np.int64)
    vals = g[keep]
    counts = np.bincount(lab, minlength=n_phases).astype(np.float64)[:n_phases]
    sums = np.bincount(lab, weights=vals, minlength=n_phases)[:n_phases]
    means = np.divide(sums, counts, out=np.full(n_phases, np.nan), where=counts > 0)
    total = max(counts.sum(), 1.0)
    return {
        "grey_values": [round(float(m), 2) if np.isfinite(m) else None for m in means],
        "fractions": [round(float(c / total), 5) for c in counts],
    }


def segment_image(
    image: np.ndarray,
    annotation: dict[str, Any],
    *,
    method: str = "median",
    size: float = 3,
    halos: bool = True,
    settings: SegmentSettings | None = None,
    entry: str | None = None,
) -> dict[str, Any]:
    """Crop, segment and mask one raw micrograph as its annotation says.

    Parameters
    ----------
    image : ndarray
        Raw ``(H, W)`` or ``(H, W, 3)`` uint8 image (the file the annotation was made on).
    annotation : dict
        ``annotations/{id}.json`` content.
    method, size, halos
        See :func:`label_phases` (n-phase only).
    settings : SegmentSettings, optional
        Replaces ``method``, ``size`` and ``halos`` when given.
    entry : str, optional
        For error messages.

    Returns
    -------
    dict
        ``image`` (uint8 labels, grey or RGB, cropped), ``mask`` (uint8 0/255, cropped),
        ``data_type``, ``n_phases``, ``phase_grey_values`` (n-phase, raw grey means per
        label, mask excluded; else None), ``fractions`` (n-phase; else None).

    Raises
    ------
    MicrolibError
        When the annotation does not fit the image or lacks what its type needs.
    """
    if settings is not None:
        method, size, halos = settings.denoise, settings.denoise_size, settings.halos
    if not annotation.get("readable", True):
        raise MicrolibError(
            f"the annotation marks the image unreadable: {annotation.get('error')}", entry=entry
        )
    try:
        arr = uint8_image(image)
    except ValueError as exc:
        raise MicrolibError(str(exc), entry=entry) from exc
    shape = (annotation.get("image") or {}).get("shape")
    if shape and list(arr.shape[:2]) != list(shape[:2]):
        raise MicrolibError(
            f"image is {arr.shape[1]}x{arr.shape[0]} but the annotation was made on "
            f"{shape[1]}x{shape[0]}",
            entry=entry,
        )
    box = clip_box(
        (annotation.get("crop") or {}).get("box") or [0, 0, arr.shape[1], arr.shape[0]], arr.shape
    )
    if box is None:
        raise MicrolibError("crop box lies outside the image", entry=entry)
    cropped = crop_image(arr, box)
    grey = to_grey(cropped)

    bar = annotation.get("scale_bar") or {}
    if bar.get("present") and bar.get("box"):
        mask = scale_bar_mask(cropped, **bar_mask_args(bar, box))
    else:
        mask = np.zeros(grey.shape, bool)

    dtype = annotation.get("data_type")
    if dtype in NPHASE_TYPES:
        th = (annotation.get("phases") or {}).get("thresholds")
        if not th:
            raise MicrolibError(
                f"data_type {dtype} but the annotation has no thresholds", entry=entry
            )
        labels = label_phases(grey, th, method=method, size=size, halos=halos)
        n = len(th) + 1
        stats = phase_statistics(grey, labels, n, mask)
        out_img = labels
        grey_values, fractions = stats["grey_values"], stats["fractions"]
    elif dtype == "grayscale":
        out_img = (
            np.clip(np.round(grey), 0, 255).astype(np.uint8)
            if cropped.ndim == 3
            else cropped.astype(np.uint8)
        )
        n, grey_values, fractions = 1, None, None
    elif dtype == "colour":
        if cropped.ndim != 3:
            raise MicrolibError("data_type colour but the image has one channel", entry=entry)
        out_img = np.ascontiguousarray(cropped[..., :3]).astype(np.uint8)
        n, grey_values, fractions = 3, None, None
    else:
        raise MicrolibError(f"unknown data_type {dtype!r} in the annotation", entry=entry)
    return {
        "image": np.ascontiguousarray(out_img),
        "mask": (mask.astype(np.uint8) * 255),
        "data_type": dtype,
        "n_phases": int(n),
        "phase_grey_values": grey_values,
        "fractions": fractions,
        "crop_box": box,
    }
