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
``orientation_ratio``   1.2    1.121   orientation anisotropy (structure tensor, any
                                       in-plane angle), 3D / 2D: the real volume's
                                       slicing planes read 1.10-1.20, its octants
                                       1.15-1.24
======================  =====  ======  =================================================

For comparison, the octants alone against the whole volume differ by at most 3.9 points
of volume fraction, 4.0 % of surface area, checkerboard ratio 1.20 and S2 curve error
0.10; the larger figures above come from 128^2 mid-slices against single octants.
The measured spreads are kept beside the thresholds in :data:`CALIBRATION_SPREAD`.

The grey flags (grayscale and colour entries) are calibrated the same way by
:func:`calibrate_grey_thresholds`, on two kinds of real data, margin 1.5:

- the seven grayscale MicroLib training images (DoITPoMS 189, 217, 319, 429, 516, 638,
  797; 797's false colour read as its channel mean): each quadrant against the whole
  image. The largest spread per image ranges widely (mean grey level 3.5-26 grey levels,
  autocovariance error 0.021-0.24: 217 and 319 have grain-scale regional contrast), so
  the median image counts: 6.4 grey levels, Wasserstein-1 6.4, autocovariance 0.047;
- the real 128^3 three-phase volume read as grey levels ``label x 127.5``: octants
  against the whole and mid-slices against the whole and the octants, as above: 8.40,
  8.41 and 0.060.

The larger of the two is the spread (here the volume's, for all three metrics).

==========================  =====  ======  =============================================
threshold                   value  spread  what
==========================  =====  ======  =============================================
``grey_mean_abs_error``     13     8.40    mean grey level difference, largest channel
``grey_w1``                 13     8.41    Wasserstein-1 of the grey histograms, grey
                                           levels, largest channel
``autocov_mean_abs_error``  0.09   0.060   mean absolute difference of the normalised
                                           autocovariance curves (axis-averaged)
==========================  =====  ======  =============================================

The grey spreads are kept in :data:`GREY_CALIBRATION_SPREAD`.

That volume's octants hold hundreds of features. For an n-phase image whose features are
large for the compared cube, :func:`sampling_spread` measures the image's own spread at
the cube's edge and :func:`entry_thresholds` raises the volume-fraction, surface-area,
S2 and orientation (streak) thresholds to it (same margin) where it is larger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from microlib.errors import MicrolibError
from microlib.validate.fidelity import (
    anisotropy,
    checkerboard_ratio,
    checkerboard_score,
    orientation_anisotropy,
    s2_curve_error,
)
from microlib.validate.grey import grey_autocovariance, grey_histogram, wasserstein_1
from microlib.validate.lattice import lattice_score
from microlib.validate.nphase import (
    _phase_pair_counts,
    _surface_from_counts,
    default_max_lag,
    finest_chord,
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
    "lattice_ratio": 1.239,
    "orientation_ratio": 1.121,
}

#: flag thresholds: CALIBRATION_MARGIN x CALIBRATION_SPREAD, rounded up to 2 figures
#: (``anisotropy`` and the ``_ratio`` thresholds are ratios:
#: 1 + margin x (spread - 1))
CALIBRATED: dict[str, float] = {
    "vf_error_points": 7.9,
    "surface_pct_error": 19.0,
    "anisotropy": 1.4,
    "checkerboard_ratio": 1.7,
    "s2_curve_error": 0.2,
    "lattice_ratio": 1.4,
    "orientation_ratio": 1.2,
}

#: the spreads of the grey metrics measured by :func:`calibrate_grey_thresholds` on the
#: seven grayscale MicroLib training images and the real three-phase volume read as grey
#: (see the module docstring)
GREY_CALIBRATION_SPREAD: dict[str, float] = {
    "grey_mean_abs_error": 8.399,
    "grey_w1": 8.413,
    "autocov_mean_abs_error": 0.060,
}

#: grey flag thresholds: CALIBRATION_MARGIN x GREY_CALIBRATION_SPREAD, rounded up to 2
#: figures (grey levels; the autocovariance error is a difference of normalised curves)
GREY_THRESHOLDS: dict[str, float] = {
    "grey_w1": 13.0,
    "grey_mean_abs_error": 13.0,
    "autocov_mean_abs_error": 0.09,
}

#: every flag threshold (recorded in every metrics file)
THRESHOLDS: dict[str, float] = {**CALIBRATED, **GREY_THRESHOLDS}


def _round_up(x: float, figures: int = 2) -> float:
    if x <= 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - figures + 1)
    return round(math.ceil(x / step - 1e-9) * step, 10)


def _amounts(labels: np.ndarray, n_phases: int, max_lag: int) -> dict[str, Any]:
    both, ends, pairs = _phase_pair_counts(labels, n_phases, max_lag)
    s2 = both / pairs[None]
    return {
        "vf": s2[:, 0, 0],
        "sa": _surface_from_counts(both, ends, pairs)[0],
        "s2": s2.mean(axis=1),
    }


def _stats(labels: np.ndarray, n_phases: int, max_lag: int) -> dict[str, Any]:
    return {
        **_amounts(labels, n_phases, max_lag),
        "anisotropy": anisotropy(labels),
        "checkerboard": checkerboard_score(labels, n_phases=n_phases),
        "lattice": lattice_score(labels, n_phases=n_phases),
        "orientation": orientation_anisotropy(labels, n_phases=n_phases),
    }


def _spread(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Spread of block/slice ``b`` relative to reference ``a`` (``a`` plays the 2D side
    of a comparison: the training image)."""
    return {
        **_amount_spread(a, b),
        "checkerboard_ratio": checkerboard_ratio(b["checkerboard"], a["checkerboard"]),
        "orientation_ratio": b["orientation"] / a["orientation"],
    }


def _amount_spread(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """The :data:`SAMPLED_METRICS` of ``b`` against reference ``a`` (:func:`_amounts`)."""
    return {
        "vf_error_points": float(np.max(np.abs(a["vf"] - b["vf"])) * 100),
        "surface_pct_error": abs(a["sa"] - b["sa"]) / a["sa"] * 100 if a["sa"] else 0.0,
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
        the ratios (``anisotropy`` and the ``_ratio`` keys) ``1 + margin x (spread - 1)``.
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
    # a lattice is judged as a volume's score over its image's, which is about 1 within
    # the real volume: the spread is the highest score any real block or slice reaches
    spread["lattice_ratio"] = max(x["lattice"] for x in [whole, *blocks, *slices])
    thresholds = {}
    for key, value in spread.items():
        if key == "anisotropy" or key.endswith("_ratio"):
            thresholds[key] = _round_up(1 + margin * (value - 1))
        else:
            thresholds[key] = _round_up(margin * value)
    return {
        "spread": {k: round(float(x), 6) for k, x in spread.items()},
        "thresholds": thresholds,
        "octants": {"vf": [[round(float(f), 4) for f in _stats(o, n, 1)["vf"]] for o in octants]},
    }


GREY_KEYS = ("grey_mean_abs_error", "grey_w1", "autocov_mean_abs_error")


def _grey_stats(grey: np.ndarray, max_lag: int) -> dict[str, Any]:
    g = np.asarray(grey, dtype=np.float64)
    return {
        "mean": float(g.mean()),
        "hist": grey_histogram(np.clip(np.rint(g), 0, 255).astype(np.uint8)),
        "autocov": grey_autocovariance(g, max_lag).mean(axis=0),
    }


def _grey_spread(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """The grey flags' metrics of ``b`` against reference ``a`` (as :func:`grey_metrics`
    of :mod:`microlib.validate.compare` computes them for a training image and a volume)."""
    return {
        "grey_mean_abs_error": abs(a["mean"] - b["mean"]),
        "grey_w1": wasserstein_1(a["hist"], b["hist"]),
        "autocov_mean_abs_error": float(np.mean(np.abs(a["autocov"] - b["autocov"]))),
    }


def _largest(spreads: list[dict[str, float]]) -> dict[str, float]:
    return {k: max(s[k] for s in spreads) for k in GREY_KEYS}


def _image_spread(grey: np.ndarray) -> dict[str, float]:
    """Largest spread of each grey metric between a 2D image's quadrants and the image."""
    g = np.asarray(grey, dtype=np.float64)
    if g.ndim != 2:
        raise MicrolibError(f"grey calibration needs 2D grey images, got shape {g.shape}")
    h, w = g.shape[0] // 2, g.shape[1] // 2
    lag = default_max_lag((h, w), (h, w))
    if lag < 8:
        raise MicrolibError(f"grey calibration needs images of edge >= 32, got {g.shape}")
    whole = _grey_stats(g, lag)
    quads = [g[y : y + h, x : x + w] for y in (0, h) for x in (0, w)]
    return _largest([_grey_spread(whole, _grey_stats(q, lag)) for q in quads])


def _volume_spread(labels: np.ndarray) -> dict[str, float]:
    """Largest grey spread within a real label volume read as grey levels, measured as
    :func:`calibrate_thresholds` does: octants against the whole, and the mid-slices
    (2D) against the whole and every octant (3D)."""
    v = np.asarray(labels)
    if v.ndim != 3 or min(v.shape) < 32:
        raise MicrolibError(f"grey calibration needs a 3D volume of edge >= 32, got {v.shape}")
    top = max(int(v.max()), 1)
    g = v.astype(np.float64) * (255.0 / top)
    hz, hy, hx = (s // 2 for s in g.shape)
    octants = [
        g[z : z + hz, y : y + hy, x : x + hx] for z in (0, hz) for y in (0, hy) for x in (0, hx)
    ]
    lag = default_max_lag(octants[0].shape, octants[0].shape)
    whole = _grey_stats(g, lag)
    blocks = [_grey_stats(o, lag) for o in octants]
    slices = [_grey_stats(np.take(g, g.shape[a] // 2, axis=a), lag) for a in range(3)]
    spreads = [_grey_spread(whole, b) for b in blocks]
    spreads += [_grey_spread(s, b) for s in slices for b in [whole, *blocks]]
    return _largest(spreads)


#: the metrics of amount (fractions, interface, correlation) and the orientation ratio,
#: whose thresholds also follow an entry's own sampling spread (:func:`sampling_spread`)
SAMPLED_METRICS = ("vf_error_points", "surface_pct_error", "s2_curve_error", "orientation_ratio")


def sampling_spread(
    image: np.ndarray, n_phases: int, edge: int, max_lag: int
) -> dict[str, Any] | None:
    """How much a cube of edge ``edge`` can differ from its training image by sampling alone.

    The calibrated thresholds come from a fine-grained real volume whose 64^3 octants hold
    hundreds of features. An image whose features are large for the cube (the demo's 005:
    grains of ~50 px, a 128^3 cube holds about ten) varies more than that between pieces
    of itself, and so do a faithful generator's cubes: 48 128^3 cubes of six 005
    generators, whose volume fractions were right on average (within 5 points over each
    generator's eight cubes), were 8.8 points off one by one (RMS), up to 20. This
    measures that spread on the image itself, as :func:`calibrate_thresholds` measures
    it on a real volume: windows of ``edge`` px on a half-edge grid, each against the
    whole image, the *largest* difference of each of :data:`SAMPLED_METRICS` (the
    orientation ratio: window over whole), scaled by ``sqrt(min(1, L / edge))`` for the
    finest phase's mean chord ``L`` (:func:`~microlib.validate.nphase.finest_chord`): a
    cube pools its ``edge`` slices, which decorrelate over about one feature, so its
    variance is that of one slice divided by about ``edge / L`` (on 005 the windows' RMS
    scaled so, 8.8 points, matches the cubes' 8.8). A root mean square in place of the
    largest difference, with the same margin, flagged 21 of those 48 cubes (volume
    fraction 5, S2 6, streaks 14).

    Parameters
    ----------
    image : ndarray of uint8, (H, W)
        Training image labels ``0..n-1``.
    n_phases : int
    edge : int
        Edge of the compared cube (its smallest side).
    max_lag : int
        Largest S2 lag of the comparison (capped below the window edge).

    Returns
    -------
    dict or None
        ``edge``, ``windows``, ``finest_chord_px``, ``factor`` and the scaled spread of
        each metric (the orientation ratio as ``1 + factor x (largest ratio - 1)``); None
        when fewer than two windows fit the image.
    """
    image = np.asarray(image)
    n = int(min(edge, *image.shape[:2]))
    lag = min(int(max_lag), n - 1)
    step = max(1, n // 2)
    starts = [range(0, side - n + 1, step) for side in image.shape[:2]]
    if len(starts[0]) * len(starts[1]) < 2 or lag < 1:
        return None
    whole = _amounts(image, n_phases, lag)
    orient = orientation_anisotropy(image, n_phases=n_phases)
    rows = []
    for y in starts[0]:
        for x in starts[1]:
            win = image[y : y + n, x : x + n]
            d = _amount_spread(whole, _amounts(win, n_phases, lag))
            d["orientation_ratio"] = orientation_anisotropy(win, n_phases=n_phases) / orient - 1
            rows.append([d[k] for k in SAMPLED_METRICS])
    # a metric undefined in every window (orientation where no window has interfaces
    # both ways) stays undefined, without numpy's all-NaN warning in the logs
    largest = [
        float(c[~np.isnan(c)].max()) if (~np.isnan(c)).any() else math.nan
        for c in np.asarray(rows, dtype=np.float64).T
    ]
    chord = finest_chord(image, n_phases)
    factor = math.sqrt(min(1.0, chord / n))
    out = {
        k: round(float(v) * factor, 4) if math.isfinite(v) else None
        for k, v in zip(SAMPLED_METRICS, largest, strict=True)
    }
    if out["orientation_ratio"] is not None:
        out["orientation_ratio"] = round(1 + max(0.0, out["orientation_ratio"]), 4)
    return {
        "edge": n,
        "windows": len(rows),
        "finest_chord_px": round(chord, 3) if math.isfinite(chord) else None,
        "factor": round(factor, 4),
        **out,
    }


def entry_thresholds(
    thresholds: dict[str, float], spread: dict[str, Any] | None, margin: float = CALIBRATION_MARGIN
) -> dict[str, float]:
    """``thresholds`` with each of :data:`SAMPLED_METRICS` raised to the threshold the
    entry's own :func:`sampling_spread` gives where that is larger: ``margin`` x spread,
    for the orientation ratio ``1 + margin x (spread - 1)``, rounded up to two figures as
    :func:`calibrate_thresholds` rounds. A cube is only flagged for differing from its
    image by more than pieces of the image differ from it at the cube's size."""
    out = dict(thresholds)
    if spread:
        for k in SAMPLED_METRICS:
            v = spread.get(k)
            if k in out and v is not None and math.isfinite(v):
                own = 1 + margin * (v - 1) if k.endswith("_ratio") else margin * v
                out[k] = max(out[k], _round_up(own))
    return out


def raised_note(
    key: str, base: dict[str, float], applied: dict[str, float], spread: dict[str, Any] | None
) -> str:
    """The remark a flag reason carries when the image's own spread set its threshold: the
    cube is too small to judge that statistic more finely. Empty otherwise."""
    if spread and applied[key] > base[key]:
        return f" (the image's own spread at {spread['edge']} px)"
    return ""


def calibrate_grey_thresholds(
    images: Sequence[np.ndarray],
    volume: np.ndarray | None = None,
    *,
    margin: float = CALIBRATION_MARGIN,
) -> dict[str, Any]:
    """Grey flag thresholds from the spread of the grey metrics within real data.

    For each real 2D grey image, the largest spread of each metric (mean grey level,
    Wasserstein-1 of the histograms, mean absolute autocovariance difference) between one
    of its four quadrants and the whole image, at the lags validation would use for a
    quadrant (:func:`~microlib.validate.nphase.default_max_lag`). Real grey micrographs
    differ widely in how uniform they are (regional contrast, grains as large as a
    quadrant), so the images' *median* is taken: the spread within a typical real
    micrograph. A real label volume, read as grey levels ``label x 255 / max``, adds the
    2D-against-3D situation (mid-slices against the whole volume and its octants); the
    larger of the two spreads is kept. A threshold is ``margin`` x spread rounded up to
    two figures.

    Parameters
    ----------
    images : sequence of ndarray, (H, W)
        Real grey images (grey levels 0..255; colour: pass the channel mean), edges >= 32.
    volume : ndarray of int, (Z, Y, X), optional
        Real labels ``0..n-1``, edges >= 32.
    margin : float

    Returns
    -------
    dict
        ``spread`` and ``thresholds`` keyed like :data:`GREY_THRESHOLDS`; ``images`` (each
        image's largest spreads, in input order), ``image_median`` and ``volume`` (None
        without a volume).
    """
    if not images:
        raise MicrolibError("grey calibration needs at least one real grey image")
    per_image = [_image_spread(g) for g in images]
    median = {k: float(np.median([s[k] for s in per_image])) for k in GREY_KEYS}
    vol = _volume_spread(volume) if volume is not None else None
    spread = {k: max(median[k], vol[k]) if vol else median[k] for k in GREY_KEYS}
    return {
        "spread": {k: round(v, 6) for k, v in spread.items()},
        "thresholds": {k: _round_up(margin * v) for k, v in spread.items()},
        "images": [{k: round(v, 6) for k, v in s.items()} for s in per_image],
        "image_median": {k: round(v, 6) for k, v in median.items()},
        "volume": None if vol is None else {k: round(v, 6) for k, v in vol.items()},
    }
