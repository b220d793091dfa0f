"""Parameters of the annotation: filter thresholds and the data-type decision.

Kept apart from the maths so the command line, the selection checkpoint and the
benchmark read one set of defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# version of the annotations/{id}.json and selection.json layouts
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FilterThresholds:
    """Thresholds of the per-image exclusion filters and of the uniqueness check.

    Defaults were calibrated on the 60 real MicroLib training images (all of which
    MicroLib included) and on the demo library's bad cases; ``microlib bench annotate``
    prints the pass rates they give.

    Attributes
    ----------
    iso_max : float
        Largest allowed ratio of the major to the minor correlation length (isotropy).
    repr_min : float
        Smallest allowed field of view, in major correlation lengths across the shorter
        image side (representativity).
    exposure_max : float
        Largest allowed range of the fitted large-scale illumination trend, as a fraction
        of the image contrast (even exposure, :func:`trend_score`). 0.45: every MicroLib
        training image passes (grayscale ones score at most 0.37, two-phase ones 0), and
        the flat-field correction segments n-phase images whose phases drift by less
        than half their grey distance; the demo library's uneven-exposure entry scores
        0.71. (Was 0.25, which excluded two grayscale images MicroLib included.)
    min_size_px : float
        Smallest allowed shorter side of the cropped image (quality: resolution). SliceGAN
        samples 64 px training slices, so far smaller images cannot be trained at all.
    edge_width_max : float
        Largest allowed blur of phase boundaries, as the Gaussian sigma in px (quality,
        n-phase images), see :func:`edge_width`.
    blur_max : float
        Largest allowed no-reference blur score (quality, grayscale and colour images,
        where there are no phase boundaries to measure), see :func:`blur_score`.
    contrast_min : float
        Smallest allowed robust grey-level range p99 - p1 (quality: contrast).
    noise_max : float
        Largest allowed noise standard deviation as a fraction of the contrast.
    jpeg_max : float
        Largest allowed JPEG blockiness (ratio of grey steps across 8x8 block edges to
        steps elsewhere; 1 = no block artefacts).
    dup_distance_max : float
        Largest fingerprint distance at which two entries of the same material count as
        near-duplicates (uniqueness).
    dup_meta_min : float
        Smallest metadata similarity at which two entries count as the same material.
    """

    iso_max: float = 1.8
    repr_min: float = 5.0
    exposure_max: float = 0.45
    min_size_px: float = 200.0
    edge_width_max: float = 2.0
    blur_max: float = 0.75
    contrast_min: float = 30.0
    noise_max: float = 0.25
    jpeg_max: float = 2.0
    dup_distance_max: float = 0.06
    dup_meta_min: float = 0.5

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def updated(self, overrides: dict[str, Any] | None) -> FilterThresholds:
        """A copy with the non-None entries of ``overrides`` applied."""
        if not overrides:
            return self
        known = set(self.names())
        clean = {k: float(v) for k, v in overrides.items() if v is not None and k in known}
        return replace(self, **clean)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class TypeParams:
    """Parameters of the data-type decision (:func:`decide_data_type`).

    Attributes
    ----------
    chroma_min : float
        Smallest colour residual (grey levels RMS, see :func:`chroma_score`) for an RGB
        image to count as genuinely colour.
    sep2_min : float
        Smallest two-class Otsu separability (between-class / total variance) for an
        image to be thresholded at all; below it the image is kept as grayscale.
    sep_gain_min : float
        Smallest factor by which one more class must shrink the within-class variance
        for the extra phase to be accepted (three-phase over two-phase).
    min_phase_fraction : float
        Every phase must cover at least this fraction of the image.
    max_phases : int
        Most phases considered (2..4; 4 is labelled ``nphase``).
    refine : bool
        Move Otsu thresholds to the midpoints between the phases' modal grey levels
        (:func:`refine_thresholds`), which removes Otsu's bias with unequal fractions.
    flat_field : bool
        Decide the type after removing within-phase illumination drift
        (:func:`illumination_field`).
    """

    chroma_min: float = 5.0
    sep2_min: float = 0.88
    sep_gain_min: float = 2.5
    min_phase_fraction: float = 0.02
    max_phases: int = 3
    refine: bool = True
    flat_field: bool = True
