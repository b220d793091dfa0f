"""Automatic annotation of a raw micrograph: crop, scale bar, data type, phases, filters.

This replaces MicroLib's hand-driven GUI (crop clicks, bar-colour clicks, phase clicks,
human exclusion judgement) with pure functions on arrays. Every function takes an image
array plus explicit parameters and returns arrays or plain dicts; nothing here configures
logging or draws a progress bar (that is ``microlib.commands.annotate``); the one file
this package reads is the curation (:func:`load_curation`).

Where to look
-------------
========================  ======================================================
``params``                filter thresholds and data-type parameters (defaults)
``crop``                  the data region: frames, borders, info band
``phases``                colour / n-phase / grayscale, phase thresholds
``illumination``          brightness trend: flat-field and even exposure
``texture``               autocorrelation and correlation lengths
``quality``               blur, noise, JPEG blockiness, boundary width
``filters``               filter scores, verdicts and reasons
``uniqueness``            fingerprints and their distance
``metadata``              record summary, material similarity, hints
``selection``             the checkpoint: verdicts and near-duplicates
``curation``              the curation file and the curated overrides
``entry``                 :func:`annotate_image`, one entry step by step
========================  ======================================================

The scale bar itself (detection, mask) is :mod:`microlib.scalebar` and the shared
array helpers are :mod:`microlib.image`; both sit below the segment stage, which this
package uses to predict the segmented phase fractions.

Coordinates
-----------
Boxes are ``[x0, y0, x1, y1]`` in pixels, ``x`` = column, ``y`` = row, half-open
(``image[y0:y1, x0:x1]``), the same convention as MicroLib's ``barbox``
(``mask[y0:y1, x0:x1]``). Annotation boxes are in *raw* image coordinates; the segment
stage converts them to cropped coordinates.

The exclusion criteria are MicroLib's five (Kench et al. 2022): isotropy, feature
representativity, even exposure, uniqueness and image quality. The first four and the
quality checks are per-image scores with thresholds (:func:`filter_scores`,
:func:`evaluate_filters`); uniqueness compares entries with each other and is decided by
:func:`select_entries`.
"""

from __future__ import annotations

from microlib.annotate.crop import detect_crop
from microlib.annotate.curation import (
    CURATION_SCHEMA,
    curation_from_prelabelled,
    load_curation,
    validate_curation,
)
from microlib.annotate.entry import annotate_image, predicted_phases, unreadable_annotation
from microlib.annotate.filters import (
    FILTER_RULES,
    FILTERS,
    QUALITY_COMPONENTS,
    QUALITY_RULES,
    analysis_image,
    evaluate_filters,
    filter_scores,
    scores_from_filters,
    thresholds_from_filters,
)
from microlib.annotate.illumination import illumination_field, trend_score
from microlib.annotate.metadata import metadata_hints, metadata_similarity, metadata_summary
from microlib.annotate.params import SCHEMA_VERSION, FilterThresholds, TypeParams
from microlib.annotate.phases import (
    chroma_score,
    class_modes,
    decide_data_type,
    interior_pixels,
    otsu_thresholds,
    phase_stats,
    refine_thresholds,
    separability,
)
from microlib.annotate.quality import blur_score, edge_width, jpeg_blockiness, noise_sigma
from microlib.annotate.selection import reevaluate, select_entries
from microlib.annotate.texture import (
    FINGERPRINT_RADII,
    autocorrelation,
    correlation_lengths,
    radial_profile,
)
from microlib.annotate.uniqueness import FINGERPRINT_BINS, fingerprint, fingerprint_distance
from microlib.image import clip_box, crop_image, grey_histogram, to_grey
from microlib.scalebar import bar_mask_args, detect_scale_bar, scale_bar_mask
from microlib.segment import SegmentSettings

__all__ = [
    "CURATION_SCHEMA",
    "FILTERS",
    "FILTER_RULES",
    "FINGERPRINT_BINS",
    "FINGERPRINT_RADII",
    "QUALITY_COMPONENTS",
    "QUALITY_RULES",
    "SCHEMA_VERSION",
    "FilterThresholds",
    "SegmentSettings",
    "TypeParams",
    "analysis_image",
    "annotate_image",
    "autocorrelation",
    "bar_mask_args",
    "blur_score",
    "chroma_score",
    "class_modes",
    "clip_box",
    "correlation_lengths",
    "crop_image",
    "curation_from_prelabelled",
    "decide_data_type",
    "detect_crop",
    "detect_scale_bar",
    "edge_width",
    "evaluate_filters",
    "filter_scores",
    "fingerprint",
    "fingerprint_distance",
    "grey_histogram",
    "illumination_field",
    "interior_pixels",
    "jpeg_blockiness",
    "load_curation",
    "metadata_hints",
    "metadata_similarity",
    "metadata_summary",
    "noise_sigma",
    "otsu_thresholds",
    "phase_stats",
    "predicted_phases",
    "radial_profile",
    "reevaluate",
    "refine_thresholds",
    "scale_bar_mask",
    "scores_from_filters",
    "select_entries",
    "separability",
    "thresholds_from_filters",
    "to_grey",
    "trend_score",
    "unreadable_annotation",
    "validate_curation",
]
