"""Validation: metrics of the 2D training image beside those of the generated 3D volume.

Modules:

- :mod:`~microlib.validate.nphase` — label statistics: volume fraction, surface area
  density, non-periodic two-point correlation, correlation length, percolation,
  triple-phase-boundary density;
- :mod:`~microlib.validate.transport` — tortuosity factor (taufactor);
- :mod:`~microlib.validate.grey` — grey histograms, Wasserstein-1, autocovariance;
- :mod:`~microlib.validate.fidelity` — per-axis surface area density, anisotropy,
  checkerboard (Nyquist-power) score, S2 curve error;
- :mod:`~microlib.validate.lattice` — lattice score: a texture repeating on the
  generator's 4 and 8 voxel stride grid;
- :mod:`~microlib.validate.feature` — feature size (correlation length, mean chord
  length), used to check a family generator's interpolation;
- :mod:`~microlib.validate.calibrate` — flag thresholds calibrated on real data;
- :mod:`~microlib.validate.compare` — the metrics document of one entry.

Everything public is re-exported here (``from microlib import validate as V``).
"""

from microlib.datatypes import NPHASE_TYPES
from microlib.validate.calibrate import (
    CALIBRATED,
    CALIBRATION_MARGIN,
    CALIBRATION_MAX_LAG,
    CALIBRATION_SPREAD,
    GREY_CALIBRATION_SPREAD,
    GREY_THRESHOLDS,
    THRESHOLDS,
    calibrate_grey_thresholds,
    calibrate_thresholds,
)
from microlib.validate.compare import (
    SCHEMA_VERSION,
    compare,
    fidelity_block,
    fidelity_flags,
    grey_metrics,
    nphase_metrics,
)
from microlib.validate.feature import (
    family_feature_table,
    feature_size,
    is_monotone,
    mean_chord_lengths,
)
from microlib.validate.fidelity import (
    CHECKERBOARD_FLOOR,
    NYQUIST_BAND,
    anisotropy,
    axis_ratio,
    checkerboard_ratio,
    checkerboard_score,
    checkerboard_score_axes,
    grey_anisotropy,
    grey_gradient_axes,
    orientation_anisotropy,
    orientation_anisotropy_planes,
    s2_curve_error,
    surface_area_density_axes,
)
from microlib.validate.grey import grey_autocovariance, grey_histogram, wasserstein_1
from microlib.validate.lattice import LATTICE_FREQUENCIES, lattice_ratio, lattice_score
from microlib.validate.nphase import (
    AXES_2D,
    AXES_3D,
    centred_subcube,
    check_lag,
    correlation_length,
    default_max_lag,
    finest_chord,
    percolation,
    surface_area_density,
    triple_phase_boundary_density,
    two_point_correlation,
    volume_fractions,
)
from microlib.validate.transport import tortuosity

__all__ = [
    "AXES_2D",
    "AXES_3D",
    "CALIBRATED",
    "CALIBRATION_MARGIN",
    "CALIBRATION_MAX_LAG",
    "CALIBRATION_SPREAD",
    "CHECKERBOARD_FLOOR",
    "GREY_CALIBRATION_SPREAD",
    "GREY_THRESHOLDS",
    "NPHASE_TYPES",
    "NYQUIST_BAND",
    "SCHEMA_VERSION",
    "THRESHOLDS",
    "anisotropy",
    "axis_ratio",
    "calibrate_grey_thresholds",
    "calibrate_thresholds",
    "centred_subcube",
    "check_lag",
    "LATTICE_FREQUENCIES",
    "lattice_ratio",
    "lattice_score",
    "checkerboard_ratio",
    "checkerboard_score",
    "checkerboard_score_axes",
    "compare",
    "correlation_length",
    "default_max_lag",
    "family_feature_table",
    "feature_size",
    "fidelity_block",
    "finest_chord",
    "fidelity_flags",
    "grey_anisotropy",
    "grey_autocovariance",
    "grey_gradient_axes",
    "orientation_anisotropy",
    "orientation_anisotropy_planes",
    "grey_histogram",
    "is_monotone",
    "grey_metrics",
    "mean_chord_lengths",
    "nphase_metrics",
    "percolation",
    "s2_curve_error",
    "surface_area_density",
    "surface_area_density_axes",
    "tortuosity",
    "triple_phase_boundary_density",
    "two_point_correlation",
    "volume_fractions",
    "wasserstein_1",
]
