"""One entry's annotation: crop, scale bar, data type, phases, voxel size, filters.

:func:`annotate_image` does what MicroLib's GUI clicks and a person's judgement did by
hand, step by step: find the data region, find the scale bar and its mask, decide the
data type and phase thresholds, predict the segmented phase fractions, work out the
voxel size, and score the exclusion filters. Every step takes the curated value instead
when the entry's curation record has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microlib.annotate.crop import detect_crop
from microlib.annotate.curation import (
    TYPE_FIELDS,
    curated_crop,
    curated_scale_bar,
    curated_typing,
    curated_verdict,
    curated_voxel_size,
    no_scale_bar,
)
from microlib.annotate.filters import evaluate_filters, filter_scores
from microlib.annotate.metadata import metadata_hints, metadata_summary
from microlib.annotate.params import SCHEMA_VERSION, FilterThresholds, TypeParams
from microlib.annotate.phases import decide_data_type
from microlib.annotate.uniqueness import fingerprint
from microlib.errors import MicrolibError
from microlib.image import crop_image, shift_box, to_grey, uint8_image
from microlib.scalebar import bar_mask_args, detect_scale_bar, scale_bar_mask
from microlib.segment import SegmentSettings, label_phases, phase_statistics

# in-paint this many px around the thresholded bar pixels (MicroLib's dilation)
BAR_DILATION_PX = 1


@dataclass
class _Provenance:
    """Which decisions were curated (in order) and how many were automatic."""

    manual: list[str] = field(default_factory=list)
    n_auto: int = 0

    def source(self) -> str:
        if not self.manual:
            return "auto"
        return "manual" if self.n_auto == 0 else "mixed"


def _checked_image(image: np.ndarray, entry: str | None) -> np.ndarray:
    try:
        arr = uint8_image(image)
    except ValueError as exc:
        raise MicrolibError(str(exc), entry=entry) from exc
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 8:
        raise MicrolibError(f"image too small or not 2D: shape {arr.shape}", entry=entry)
    return arr


def _crop(arr: np.ndarray, cur: dict[str, Any], prov: _Provenance, entry: str | None) -> dict:
    if cur.get("crop") is not None:
        prov.manual.append("crop")
        return curated_crop(cur["crop"], arr.shape, entry)
    prov.n_auto += 1
    return {**detect_crop(arr), "source": "auto"}


def _scale_bar(
    arr: np.ndarray,
    cropped: np.ndarray,
    crop_box: list[int],
    cur: dict[str, Any],
    prov: _Provenance,
    entry: str | None,
) -> dict[str, Any]:
    """The scale bar in raw coordinates (detected on the cropped image)."""
    if cur.get("scale_bar") is not None:
        prov.manual.append("scale_bar")
        return curated_scale_bar(cur["scale_bar"], arr.shape, entry)
    prov.n_auto += 1
    found = detect_scale_bar(cropped)
    if found is not None:
        cx0, cy0 = crop_box[0], crop_box[1]
        return {
            "present": True,
            "box": shift_box(found["box"], cx0, cy0),
            "bar_box": shift_box(found["bar_box"], cx0, cy0),
            "label_box": shift_box(found["label_box"], cx0, cy0),
            "colour": found["colour"],
            "tolerance": found["tolerance"],
            "length_px": found["length_px"],
            "polarity": found["polarity"],
            "source": "auto",
            # JPEG or blur spread the bar's and glyphs' edges this far beyond MicroLib's 1 px
            "dilation_px": BAR_DILATION_PX + int(found["edge_blur_px"]),
        }
    bar = no_scale_bar("auto")
    # a bar in a band the crop removed needs no in-painting, but its length still turns
    # a curated scale_bar_um into a voxel size
    outside = bar_outside_crop(arr, crop_box)
    if outside is not None:
        bar["outside_crop"] = outside
        bar["length_px"] = outside["length_px"]
    return bar


def bar_outside_crop(arr: np.ndarray, crop_box: list[int]) -> dict[str, Any] | None:
    """A scale bar in the strips the crop removed (an info band), in raw coordinates.

    Each removed strip is searched on its own, so a bar-like feature of the data cannot
    outbid the band's bar. Returns ``{"bar_box", "length_px"}`` of the longest bar, or
    None.
    """
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    strips = [(0, 0, w, y0), (0, y1, w, h), (0, 0, x0, h), (x1, 0, w, h)]
    best = None
    for sx0, sy0, sx1, sy1 in strips:
        if sx1 - sx0 < 8 or sy1 - sy0 < 8:
            continue
        # thickness limits stay relative to the whole image, not to the thin strip
        found = detect_scale_bar(
            arr[sy0:sy1, sx0:sx1],
            max_height_frac=0.06 * h / (sy1 - sy0),
            min_len_frac=0.05 * w / (sx1 - sx0),
        )
        if found is not None and (best is None or found["length_px"] > best["length_px"]):
            best = {
                "bar_box": shift_box(found["bar_box"], sx0, sy0),
                "length_px": found["length_px"],
            }
    return best


def _bar_mask(cropped: np.ndarray, bar: dict[str, Any], crop_box: list[int]) -> np.ndarray:
    """The in-paint mask on the cropped image; records dilation and masked fraction."""
    bar.setdefault("dilation_px", BAR_DILATION_PX)
    if bar["present"]:
        mask = scale_bar_mask(cropped, **bar_mask_args(bar, crop_box))
    else:
        mask = np.zeros(cropped.shape[:2], bool)
    bar["mask_fraction"] = round(float(mask.mean()), 6)
    return mask


def _typing(
    cropped: np.ndarray,
    mask: np.ndarray | None,
    cur: dict[str, Any],
    params: TypeParams,
    prov: _Provenance,
    entry: str | None,
) -> dict[str, Any]:
    typed = decide_data_type(cropped, mask, params)
    if all(cur.get(k) is None for k in TYPE_FIELDS):
        prov.n_auto += 1
        return typed
    prov.manual.append("data_type")
    channels = 3 if cropped.ndim == 3 else 1
    return curated_typing(cur, typed, to_grey(cropped), mask, channels, entry)


def predicted_phases(
    grey: np.ndarray,
    typed: dict[str, Any],
    mask: np.ndarray | None,
    settings: SegmentSettings,
) -> dict[str, list]:
    """Phase grey values and fractions as the segment stage will produce them.

    The segment stage denoises and removes halos before its statistics; predicting with
    the same :class:`~microlib.segment.SegmentSettings` makes the annotation describe
    the segmented image rather than a plain threshold of the raw one.
    """
    labels = label_phases(
        grey,
        typed["thresholds"],
        method=settings.denoise,
        size=settings.denoise_size,
        halos=settings.halos,
    )
    return phase_statistics(grey, labels, int(typed["n_phases"]), mask)


def _phases_field(typed: dict[str, Any]) -> dict[str, Any] | None:
    if not typed["thresholds"]:
        return None
    return {
        "thresholds": typed["thresholds"],
        "grey_values": typed["grey_values"],
        "fractions": typed["fractions"],
    }


def _verdict(
    reasons: list[str], forced: dict[str, Any] | None
) -> tuple[bool, list[str], list[str] | None]:
    """``(included, reasons, overridden_reasons)``; a curated verdict wins."""
    if forced is None:
        return not reasons, reasons, None
    if forced["include"]:
        return True, [], reasons or None
    return False, [f"curation: {forced['reason']}", *reasons], None


def annotate_image(
    image: np.ndarray,
    meta: dict[str, Any] | None = None,
    curation: dict[str, Any] | None = None,
    thresholds: FilterThresholds | None = None,
    type_params: TypeParams | None = None,
    entry: str | None = None,
    segment_settings: SegmentSettings | None = None,
) -> dict[str, Any]:
    """Annotate one raw micrograph (everything MicroLib's GUI and judgement did by hand).

    Parameters
    ----------
    image : ndarray
        Raw ``(H, W)`` or ``(H, W, 3)`` uint8 image as served.
    meta : dict, optional
        The scraped record (for hints and the uniqueness check).
    curation : dict, optional
        Hand overrides for this entry (see ``workflow/schemas/curation.schema.yaml``):
        ``crop``, ``scale_bar`` ("none" or {box, colour, tolerance}), ``scale_bar_um``,
        ``data_type``, ``phases`` (grey levels) or ``thresholds``, ``voxel_size_um``,
        ``include`` + ``reason``. Curated values replace the automatic ones.
    thresholds : FilterThresholds, optional
    type_params : TypeParams, optional
    entry : str, optional
        Entry id, only used in error messages.
    segment_settings : SegmentSettings, optional
        The settings the segment stage will run with (default: its defaults); the
        predicted phase fractions are those of the segmented image.

    Returns
    -------
    dict
        The annotation (``workflow/schemas/annotation.schema.yaml``) without ``id``/
        ``name``/``image`` file facts, which the caller adds.

    Raises
    ------
    MicrolibError
        When the image is not uint8 2D, or the curation is inconsistent with the image
        (e.g. a crop outside it).
    """
    th = thresholds or FilterThresholds()
    seg = segment_settings or SegmentSettings()
    cur = dict(curation or {})
    arr = _checked_image(image, entry)
    h, w = arr.shape[:2]
    prov = _Provenance()

    crop = _crop(arr, cur, prov, entry)
    cropped = crop_image(arr, crop["box"])
    bar = _scale_bar(arr, cropped, crop["box"], cur, prov, entry)
    mask = _bar_mask(cropped, bar, crop["box"])
    mask_or_none = mask if mask.any() else None

    typed = _typing(cropped, mask_or_none, cur, type_params or TypeParams(), prov, entry)
    if typed["thresholds"]:
        typed.update(predicted_phases(to_grey(cropped), typed, mask_or_none, seg))

    voxel = curated_voxel_size(cur, bar, entry)
    if voxel is not None:
        prov.manual.append("voxel_size_um")

    scores = filter_scores(cropped, typed, mask_or_none, raw_grey=to_grey(arr))
    acf = scores.pop("acf")
    filters, reasons = evaluate_filters(scores, th)
    forced = curated_verdict(cur)
    if forced is not None:
        prov.manual.append("include")
    included, reasons, overridden = _verdict(reasons, forced)
    summary = metadata_summary(meta)

    ann = {
        "schema_version": SCHEMA_VERSION,
        "readable": True,
        "error": None,
        "source": prov.source(),
        "manual_fields": prov.manual,
        "image": {"shape": [int(h), int(w)], "channels": int(arr.shape[2]) if arr.ndim == 3 else 1},
        "crop": crop,
        "scale_bar": bar,
        "data_type": typed["data_type"],
        "n_phases": int(typed["n_phases"]),
        "phases": _phases_field(typed),
        "type_scores": typed["scores"],
        "voxel_size_um": voxel,
        "filters": filters,
        "thresholds": th.as_dict(),
        "segment_settings": seg.as_dict(),
        "fingerprint": fingerprint(cropped, typed, acf, mask_or_none),
        "metadata": summary,
        "hints": metadata_hints(summary),
        "forced": forced,
        "included": bool(included),
        "reasons": reasons,
    }
    if overridden:
        ann["overridden_reasons"] = overridden
    return ann


def unreadable_annotation(reason: str) -> dict[str, Any]:
    """The annotation of an image that could not be decoded: excluded, with the reason."""
    return {
        "schema_version": SCHEMA_VERSION,
        "readable": False,
        "error": reason,
        "source": "auto",
        "manual_fields": [],
        "image": None,
        "crop": None,
        "scale_bar": None,
        "data_type": None,
        "n_phases": None,
        "phases": None,
        "type_scores": None,
        "voxel_size_um": None,
        "filters": {},
        "thresholds": FilterThresholds().as_dict(),
        "fingerprint": None,
        "metadata": {},
        "hints": [],
        "forced": None,
        "included": False,
        "reasons": [f"unreadable: {reason}"],
    }
