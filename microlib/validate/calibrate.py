"""Flag thresholds calibrated on how much a real 3D structure varies within itself.

A generated volume is only "wrong" when it differs from its training image by more than
pieces of one real microstructure differ from each other. :func:`calibrate_thresholds`
measures that spread on a real label volume: each of its eight octants against the whole
volume, and 2D slices against the 3D block they were cut from (the situation of a
training image and its generated volume). A threshold is the largest spread seen times
a safety margin, rounded up to two significant figures.

:data:`THRESHOLDS` holds the numbers this gives for a real 128^3 three-phase volume
(phase fractions 0.344 / 0.519 / 0.137) with its eight 64^3 octants, margin 1.5
(value = threshold, spread = largest spread measured):

======================  =====  ======  =================================================
threshold               value  spread  what
======================  =====  ======  =================================================
``vf_error_points``     7.9    5.21    largest volume-fraction difference of any phase,
                                       percentage points
``surface_pct_error``   19     12.45   surface-area-density difference, % of the 2D value
``anisotropy``          1.4    1.223   max/min per-axis surface area density (a value,
                                       not a difference: the real volume itself is
                                       1.18 and its octants 1.15-1.22)
``checkerboard_ratio``  1.7    1.418   checkerboard score, 3D / 2D
``s2_curve_error``      0.2    0.132   :func:`~microlib.validate.fidelity.s2_curve_error`,
                                       lags 0..16
======================  =====  ======  =================================================

For comparison, the octants alone against the whole volume differ by at most 3.9 points
of volume fraction, 4.0 % of surface area, checkerboard ratio 1.20 and S2 curve error
0.10; the larger figures above come from 128^2 mid-slices against single octants.
The measured spreads are kept beside the thresholds in :data:`CALIBRATION_SPREAD`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from microlib.errors import MicrolibError
from microlib.validate.fidelity import (
    anisotropy,
    checkerboard_ratio,
    checkerboard_score,
    s2_curve_error,
)
from microlib.validate.nphase import (
    _phase_pair_counts,
    _surface_from_counts,
    volume_fractions,
)

#: margin by which a threshold exceeds the largest spread within the real volume
CALIBRATION_MARGIN = 1.5
#: lags of the S2 curves compared during calibration (a quarter of a 64^3 octant)
CALIBRATION_MAX_LAG = 16

#: the largest spreads measured by :func:`calibrate_thresholds` on a real 128^3
#: three-phase volume's eight 64^3 octants (see the module docstring)
CALIBRATION_SPREAD: dict[str, float] = {
    "vf_error_points": 5.21,
    "surface_pct_error": 12.45,
    "anisotropy": 1.223,
    "checkerboard_ratio": 1.418,
    "s2_curve_error": 0.132,
}

#: flag thresholds: CALIBRATION_MARGIN x CALIBRATION_SPREAD, rounded up to 2 figures
#: (``anisotropy`` and ``checkerboard_ratio`` are ratios: 1 + margin x (spread - 1))
CALIBRATED: dict[str, float] = {
    "vf_error_points": 7.9,
    "surface_pct_error": 19.0,
    "anisotropy": 1.4,
    "checkerboard_ratio": 1.7,
    "s2_curve_error": 0.2,
}

#: thresholds of the flags not calibrated on label volumes (grey levels)
GREY_THRESHOLDS: dict[str, float] = {
    "grey_w1": 10.0,  # grey levels
    "grey_mean_abs_error": 10.0,  # grey levels
    "autocov_mean_abs_error": 0.05,
}

#: every flag threshold (recorded in every metrics file)
THRESHOLDS: dict[str, float] = {**CALIBRATED, **GREY_THRESHOLDS}


def _round_up(x: float, figures: int = 2) -> float:
    if x <= 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - figures + 1)
    return round(math.ceil(x / step - 1e-9) * step, 10)


def _stats(labels: np.ndarray, n_phases: int, max_lag: int) -> dict[str, Any]:
    both, ends, pairs = _phase_pair_counts(labels, n_phases, max_lag)
    s2 = (both / pairs[None]).mean(axis=1)
    return {
        "vf": volume_fractions(labels, n_phases),
        "sa": _surface_from_counts(both, ends, pairs)[0],
        "s2": s2,
        "anisotropy": anisotropy(labels),
        "checkerboard": checkerboard_score(labels, n_phases=n_phases),
    }


def _spread(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Spread of block/slice ``b`` relative to reference ``a`` (``a`` plays the 2D side
    of a comparison: the training image)."""
    return {
        "vf_error_points": float(np.max(np.abs(a["vf"] - b["vf"])) * 100),
        "surface_pct_error": abs(a["sa"] - b["sa"]) / a["sa"] * 100,
        "checkerboard_ratio": checkerboard_ratio(b["checkerboard"], a["checkerboard"]),
        "s2_curve_error": s2_curve_error(a["s2"], b["s2"]),
    }


def calibrate_thresholds(
    volume: np.ndarray,
    *,
    n_phases: int | None = None,
    margin: float = CALIBRATION_MARGIN,
    max_lag: int = CALIBRATION_MAX_LAG,
) -> dict[str, dict[str, float]]:
    """Flag thresholds from the spread of the metrics within one real label volume.

    Two kinds of spread are measured and the larger kept, metric by metric:

    - octant vs whole: each of the eight octants (half the edge) against the whole
      volume;
    - slice vs block: the whole volume's three mid-slices (2D, the role of a training
      image) against the whole volume and against each octant (3D, the role of a
      generated cube).

    Slices of an octant itself are not used: a 64^2 slice is far smaller than any
    training image, and its sampling noise (volume fractions off by up to 20 points on
    the real volume) would make every threshold useless.

    Parameters
    ----------
    volume : ndarray of int, (Z, Y, X)
        Real labels ``0..n-1``, edges even and >= ``4 * max_lag``.
    n_phases : int, optional
        Default: largest label + 1.
    margin : float
        A threshold is ``margin`` x the largest spread, rounded up to two figures; for
        the ratios (``anisotropy``, ``checkerboard_ratio``) ``1 + margin x (spread - 1)``.
    max_lag : int
        Lags ``0..max_lag`` of the S2 curves compared.

    Returns
    -------
    dict
        ``spread`` (largest value of each metric), ``thresholds`` (the flag thresholds)
        and ``octants`` (per-octant volume fractions, for reference).
    """
    v = np.asarray(volume)
    if v.ndim != 3 or min(v.shape) < 4 * max_lag:
        raise MicrolibError(
            f"calibration needs a 3D volume of edge >= {4 * max_lag}, got {v.shape}"
        )
    n = int(n_phases or int(v.max()) + 1)
    hz, hy, hx = (s // 2 for s in v.shape)
    octants = [
        v[z : z + hz, y : y + hy, x : x + hx] for z in (0, hz) for y in (0, hy) for x in (0, hx)
    ]
    whole = _stats(v, n, max_lag)
    blocks = [_stats(o, n, max_lag) for o in octants]
    slices = [_stats(np.take(v, v.shape[a] // 2, axis=a), n, max_lag) for a in range(3)]
    spreads = [_spread(whole, b) for b in blocks]
    spreads += [_spread(s, b) for s in slices for b in [whole, *blocks]]
    aniso = [x["anisotropy"] for x in [whole, *blocks, *slices]]
    spread = {k: max(s[k] for s in spreads) for k in spreads[0]}
    spread["anisotropy"] = max(aniso)
    thresholds = {}
    for key, value in spread.items():
        if key in ("anisotropy", "checkerboard_ratio"):
            thresholds[key] = _round_up(1 + margin * (value - 1))
        else:
            thresholds[key] = _round_up(margin * value)
    return {
        "spread": {k: round(float(x), 6) for k, x in spread.items()},
        "thresholds": thresholds,
        "octants": {"vf": [[round(float(f), 4) for f in _stats(o, n, 1)["vf"]] for o in octants]},
    }
