"""The metrics document of one entry: 2D training image beside 3D volume, with errors,
fidelity measures (:mod:`microlib.validate.fidelity`) and quality flags whose thresholds
are calibrated on a real volume (:mod:`microlib.validate.calibrate`).

Layout: ``workflow/schemas/metrics.schema.yaml``. Every function is pure;
:mod:`microlib.commands.validate` does the file I/O.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from microlib.datatypes import NPHASE_TYPES
from microlib.errors import MicrolibError
from microlib.validate.calibrate import (
    SAMPLED_METRICS,
    THRESHOLDS,
    entry_thresholds,
    raised_note,
    sampling_spread,
)
from microlib.validate.fidelity import (
    axis_ratio,
    checkerboard_ratio,
    checkerboard_score,
    checkerboard_score_axes,
    grey_gradient_axes,
    orientation_anisotropy,
    orientation_anisotropy_planes,
    s2_curve_error,
    surface_area_density_axes,
)
from microlib.validate.grey import grey_autocovariance, grey_histogram, wasserstein_1
from microlib.validate.lattice import lattice_ratio, lattice_score
from microlib.validate.nphase import (
    AXES_2D,
    AXES_3D,
    _phase_pair_counts,
    _surface_from_counts,
    centred_subcube,
    check_lag,
    correlation_length,
    default_max_lag,
    percolation,
    triple_phase_boundary_density,
)
from microlib.validate.transport import tortuosity

SCHEMA_VERSION = 1


def _r(x: float | None, nd: int = 6) -> float | None:
    """Rounded for JSON; None for missing, nan and inf (JSON has no such numbers)."""
    return None if x is None or not math.isfinite(float(x)) else round(float(x), nd)


def _pct(a: float, b: float) -> float | None:
    """MicroLib's percentage error ``|a - b| / a`` (None when ``a`` is 0)."""
    return None if a == 0 else 100.0 * abs(a - b) / a


def _anisotropy(lengths: dict[str, float | None]) -> float | None:
    vals = [v for v in lengths.values() if v]
    return None if len(vals) < 2 else max(vals) / min(vals)


def _axes(names: tuple[str, ...], values: np.ndarray, nd: int = 6) -> dict[str, float | None]:
    return {a: _r(v, nd) for a, v in zip(names, values, strict=True)}


def fidelity_block(
    image: np.ndarray, volume: np.ndarray, *, n_phases: int | None
) -> dict[str, Any]:
    """Anisotropy, checkerboard, lattice and orientation scores, 2D beside 3D, per axis.

    Parameters
    ----------
    image : ndarray, (H, W)
        Labels (``n_phases`` given) or grey levels (colour: pass the channel mean).
    volume : ndarray, (Z, Y, X)
        The same kind of values as ``image``.
    n_phases : int or None
        Labels ``0..n-1`` (anisotropy from the per-axis surface area density, checkerboard
        on the one-hot phases), or None for grey (anisotropy from the per-axis mean
        absolute grey difference, checkerboard on the grey levels).

    Returns
    -------
    dict
        ``anisotropy``: ``measure``, ``2d``, ``3d``, ``error`` (3D / 2D), ``2d_axes``,
        ``3d_axes`` (the per-axis values whose max/min it is); ``checkerboard``: ``2d``,
        ``3d``, ``ratio`` (3D / 2D), ``3d_axes``; ``lattice``: ``2d``, ``3d``, ``ratio``
        (:mod:`~microlib.validate.lattice`); ``orientation``: ``2d``, ``3d`` (largest over
        the slicing planes), ``ratio`` (3D / 2D), ``3d_planes``
        (:func:`~microlib.validate.fidelity.orientation_anisotropy`: streaks at any angle).
    """
    axes_fn = surface_area_density_axes if n_phases else grey_gradient_axes
    ax2, ax3 = axes_fn(image), axes_fn(volume)
    an2, an3 = axis_ratio(ax2), axis_ratio(ax3)
    cb2 = checkerboard_score(image, n_phases=n_phases)
    cb3_axes = checkerboard_score_axes(volume, n_phases=n_phases)
    cb3 = float(cb3_axes.mean())
    lat2 = lattice_score(image, n_phases=n_phases)
    lat3 = lattice_score(volume, n_phases=n_phases)
    or2 = orientation_anisotropy(image, n_phases=n_phases)
    or3_planes = orientation_anisotropy_planes(volume, n_phases=n_phases)
    or3 = float(max(or3_planes))
    or_ratio = or3 / or2 if math.isfinite(or2) and or2 > 0 and math.isfinite(or3) else None
    return {
        "anisotropy": {
            "measure": "surface_area_density_axes" if n_phases else "grey_gradient_axes",
            "2d": _r(an2, 4),
            "3d": _r(an3, 4),
            "error": _r(an3 / an2 if an2 and math.isfinite(an2) else None, 4),
            "2d_axes": _axes(AXES_2D, ax2),
            "3d_axes": _axes(AXES_3D, ax3),
        },
        "checkerboard": {
            "2d": _r(cb2, 6),
            "3d": _r(cb3, 6),
            "ratio": _r(checkerboard_ratio(cb3, cb2), 4),
            "3d_axes": _axes(AXES_3D, cb3_axes),
        },
        "lattice": {
            "2d": _r(lat2, 4),
            "3d": _r(lat3, 4),
            "ratio": _r(lattice_ratio(lat3, lat2), 4),
        },
        "orientation": {
            "2d": _r(or2, 4),
            "3d": _r(or3, 4),
            "ratio": _r(or_ratio, 4),
            "3d_planes": _axes(AXES_3D, or3_planes, 4),
        },
    }


def fidelity_flags(fid: dict[str, Any], th: dict[str, float]) -> dict[str, str]:
    """Anisotropy, checkerboard, lattice and streak flags of a :func:`fidelity_block`, with
    reasons."""
    out = {}
    an = fid["anisotropy"]
    for side in ("3d", "2d"):
        value = an[side]
        # None with per-axis values present means inf: interfaces along some axes only
        unbounded = value is None and max(an[f"{side}_axes"].values()) > 0
        if unbounded or (value is not None and value > th["anisotropy"]):
            shown = "inf" if unbounded else f"{value:.3g}"
            out[f"anisotropic_{side}"] = (
                f"{side.upper()} anisotropy {shown} > {th['anisotropy']:g} (max/min per-axis "
                f"{an['measure']})"
            )
    ratio = fid["checkerboard"]["ratio"]
    if ratio is not None and ratio > th["checkerboard_ratio"]:
        out["checkerboard_3d"] = (
            f"3D checkerboard score {ratio:.3g}x the 2D one > {th['checkerboard_ratio']:g}x"
        )
    lattice = fid["lattice"]["ratio"]
    if lattice is not None and lattice > th["lattice_ratio"]:
        out["lattice_3d"] = (
            f"3D lattice score {lattice:.3g}x the 2D one > {th['lattice_ratio']:g}x (a "
            "pattern repeating every 4 or 8 voxels)"
        )
    # absent from metrics written before the streak flag existed
    orient, limit = fid.get("orientation"), th.get("orientation_ratio")
    if orient and limit and orient["ratio"] is not None and orient["ratio"] > limit:
        plane = max(orient["3d_planes"], key=lambda a: orient["3d_planes"][a] or 0.0)
        out["streaks_3d"] = (
            f"3D orientation anisotropy {orient['3d']:.3g} is {orient['ratio']:.3g}x the 2D "
            f"one > {limit:g}x (features aligned along one in-plane "
            f"direction, diagonals included, in the slices normal to {plane})"
        )
    return out


def _phase_record(k, s2_2, s2_3, vf2, vf3, sa2_phase, sa3_phase, perc2, perc3, tau, tau_shape):
    mean2 = s2_2[k].mean(axis=0)
    mean3 = s2_3[k].mean(axis=0)
    cl2 = {a: _r(correlation_length(s2_2[k, i], vf2[k]), 3) for i, a in enumerate(AXES_2D)}
    cl3 = {a: _r(correlation_length(s2_3[k, i], vf3[k]), 3) for i, a in enumerate(AXES_3D)}
    return {
        "label": k,
        "vf_2d": _r(vf2[k]),
        "vf_3d": _r(vf3[k]),
        "vf_abs_error": _r(abs(vf2[k] - vf3[k])),
        "vf_pct_error": _r(_pct(vf2[k], vf3[k]), 4),
        "surface_2d": _r(sa2_phase[k]),
        "surface_3d": _r(sa3_phase[k]),
        "surface_abs_error": _r(abs(sa2_phase[k] - sa3_phase[k])),
        "surface_pct_error": _r(_pct(sa2_phase[k], sa3_phase[k]), 4),
        "s2_2d": [_r(v) for v in mean2],
        "s2_3d": [_r(v) for v in mean3],
        "s2_2d_axes": {a: [_r(v) for v in s2_2[k, i]] for i, a in enumerate(AXES_2D)},
        "s2_3d_axes": {a: [_r(v) for v in s2_3[k, i]] for i, a in enumerate(AXES_3D)},
        "s2_mean_abs_error": _r(float(np.mean(np.abs(mean2 - mean3)))),
        "s2_curve_error": _r(s2_curve_error(mean2, mean3), 4),
        "corr_length_2d": cl2,
        "corr_length_3d": cl3,
        "anisotropy_2d": _r(_anisotropy(cl2), 4),
        "anisotropy_3d": _r(_anisotropy(cl3), 4),
        "percolates_2d": dict(zip(AXES_2D, perc2[k], strict=True)),
        "percolates_3d": dict(zip(AXES_3D, perc3[k], strict=True)),
        "tortuosity": None
        if tau[k] is None
        else {
            "axis": "z",
            "shape": tau_shape,
            **{key: (_r(v) if isinstance(v, float) else v) for key, v in tau[k].items()},
        },
    }


def nphase_metrics(
    image: np.ndarray,
    volume: np.ndarray,
    n_phases: int,
    *,
    max_lag: int,
    tortuosity_size: int | None = 64,
    device: str = "cpu",
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """All n-phase metrics, 2D beside 3D, with errors, summary and flags.

    Parameters
    ----------
    image : ndarray of uint8, (H, W)
        Training image labels ``0..n-1``.
    volume : ndarray of uint8, (Z, Y, X)
        Generated volume labels ``0..n-1``.
    n_phases : int
    max_lag : int
        Largest lag ``R`` of the two-point correlation (same for 2D and 3D).
    tortuosity_size : int or None
        Edge of the centred sub-cube the tortuosity solver runs on; None skips it.
    device : str
        taufactor's device.
    thresholds : dict, optional
        Overrides of :data:`~microlib.validate.calibrate.THRESHOLDS`. The volume-fraction,
        surface-area and S2 thresholds are then raised to the image's own sampling
        spread at the volume's edge where that is larger
        (:func:`~microlib.validate.calibrate.entry_thresholds`).

    Returns
    -------
    dict
        ``phases`` (one record per phase), ``surface_area_density``, ``tpb_density_3d``,
        ``fidelity`` (:func:`fidelity_block` plus ``s2_curve_error``), ``summary``
        (headline errors, ``flags`` and ``flag_reasons``), ``thresholds`` (those applied),
        ``sampling_spread`` (:func:`~microlib.validate.calibrate.sampling_spread`, or
        None), ``timings_s`` — the layout of ``workflow/schemas/metrics.schema.yaml``.
    """
    th = {**THRESHOLDS, **(thresholds or {})}
    image = np.asarray(image)
    volume = np.asarray(volume)
    for what, arr, nd in (("training image", image, 2), ("volume", volume, 3)):
        if arr.ndim != nd:
            raise MicrolibError(f"{what} must be {nd}D labels, got shape {arr.shape}")
        top = int(arr.max()) if arr.size else 0
        if top >= n_phases:
            raise MicrolibError(f"{what} holds label {top} but the entry has {n_phases} phases")
    check_lag(image.shape, max_lag)
    check_lag(volume.shape, max_lag)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    spread = sampling_spread(image, n_phases, min(volume.shape), max_lag)
    base, th = th, entry_thresholds(th, spread)
    timings["sampling_spread"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    both2, ends2, pairs2 = _phase_pair_counts(image, n_phases, max_lag)
    both3, ends3, pairs3 = _phase_pair_counts(volume, n_phases, max_lag)
    timings["s2_surface"] = time.perf_counter() - t0
    s2_2 = both2 / pairs2[None]
    s2_3 = both3 / pairs3[None]
    vf2 = s2_2[:, 0, 0]
    vf3 = s2_3[:, 0, 0]
    sa2_total, sa2_phase, sa2_axis = _surface_from_counts(both2, ends2, pairs2)
    sa3_total, sa3_phase, sa3_axis = _surface_from_counts(both3, ends3, pairs3)

    t0 = time.perf_counter()
    perc2 = [percolation(image, k) for k in range(n_phases)]
    perc3 = [percolation(volume, k) for k in range(n_phases)]
    timings["percolation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fid = fidelity_block(image, volume, n_phases=n_phases)
    curve_err = s2_curve_error(s2_2.mean(axis=1), s2_3.mean(axis=1))
    fid["s2_curve_error"] = _r(curve_err, 4)
    timings["fidelity"] = time.perf_counter() - t0

    tau_records: list[dict | None] = [None] * n_phases
    tau_shape = None
    if tortuosity_size:
        t0 = time.perf_counter()
        sub = centred_subcube(volume, tortuosity_size)
        tau_shape = list(sub.shape)
        tau_records = [tortuosity(sub, k, device=device) for k in range(n_phases)]
        timings["tortuosity"] = time.perf_counter() - t0

    phases = [
        _phase_record(
            k, s2_2, s2_3, vf2, vf3, sa2_phase, sa3_phase, perc2, perc3, tau_records, tau_shape
        )
        for k in range(n_phases)
    ]

    tpb = None
    if n_phases == 3 and np.count_nonzero(vf3 > 0) == 3:
        t0 = time.perf_counter()
        tpb = _r(triple_phase_boundary_density(volume), 8)
        timings["tpb"] = time.perf_counter() - t0

    present = [k for k in range(n_phases) if vf2[k] > 0]
    vf_pct = [abs(vf2[k] - vf3[k]) / vf2[k] * 100 for k in present]
    vf_points = float(np.max(np.abs(vf2 - vf3)) * 100)
    summary = {
        "vf_mean_abs_pct_error": _r(float(np.mean(vf_pct)) if vf_pct else None, 4),
        "vf_max_abs_pct_error": _r(float(np.max(vf_pct)) if vf_pct else None, 4),
        "vf_mean_abs_error": _r(float(np.mean(np.abs(vf2 - vf3)))),
        "vf_max_abs_error_points": _r(vf_points, 4),
        "surface_area_pct_error": _r(_pct(sa2_total, sa3_total), 4),
        "s2_mean_abs_error": _r(float(np.mean(np.abs(s2_2.mean(axis=1) - s2_3.mean(axis=1))))),
        "s2_curve_error": fid["s2_curve_error"],
        "anisotropy_2d": _r(max((p["anisotropy_2d"] or 0) for p in phases) or None, 4),
        "anisotropy_3d": _r(max((p["anisotropy_3d"] or 0) for p in phases) or None, 4),
        "sa_anisotropy_2d": fid["anisotropy"]["2d"],
        "sa_anisotropy_3d": fid["anisotropy"]["3d"],
        "checkerboard_ratio": fid["checkerboard"]["ratio"],
    }
    flags: dict[str, str] = {}
    own = {k: raised_note(k, base, th, spread) for k in SAMPLED_METRICS}
    if vf_points > th["vf_error_points"]:
        flags["vf_error"] = (
            f"volume fraction off by {vf_points:.2f} points > {th['vf_error_points']:g}"
            + own["vf_error_points"]
        )
    sa_pct = summary["surface_area_pct_error"]
    if sa_pct is not None and sa_pct > th["surface_pct_error"]:
        flags["surface_area_error"] = (
            f"surface area density off by {sa_pct:.1f} % > {th['surface_pct_error']:g} %"
            + own["surface_pct_error"]
        )
    if math.isfinite(curve_err) and curve_err > th["s2_curve_error"]:
        flags["s2_error"] = (
            f"S2 curve error {curve_err:.3f} > {th['s2_curve_error']:g}" + own["s2_curve_error"]
        )
    flags.update(fidelity_flags(fid, th))
    if "streaks_3d" in flags:
        flags["streaks_3d"] += own["orientation_ratio"]
    if any(vf2[k] > 0 and vf3[k] == 0 for k in range(n_phases)):
        flags["phase_missing_3d"] = "a phase of the 2D image is absent from the volume"
    if any(vf2[k] == 0 and vf3[k] > 0 for k in range(n_phases)):
        flags["phase_extra_3d"] = "the volume holds a phase the 2D image lacks"
    # an isotropic 3D structure connects at least as well as its slices do
    if any(any(perc2[k]) and not any(perc3[k]) for k in range(n_phases)):
        flags["percolation_lost_3d"] = "a phase percolates in 2D but along no axis in 3D"
    if any(r and r.get("converged") is False for r in tau_records):
        flags["tortuosity_not_converged"] = "the tortuosity solver did not converge"

    return {
        "phases": phases,
        "surface_area_density": {
            "2d": _r(sa2_total),
            "3d": _r(sa3_total),
            "abs_error": _r(abs(sa2_total - sa3_total)),
            "pct_error": _r(_pct(sa2_total, sa3_total), 4),
            "2d_axes": _axes(AXES_2D, sa2_axis),
            "3d_axes": _axes(AXES_3D, sa3_axis),
        },
        "tpb_density_3d": tpb,
        "fidelity": fid,
        "summary": {**summary, "flags": list(flags), "flag_reasons": flags},
        "thresholds": th,
        "sampling_spread": spread,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def grey_metrics(
    image: np.ndarray,
    volume: np.ndarray,
    *,
    max_lag: int,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Grayscale or colour metrics, 2D beside 3D.

    Parameters
    ----------
    image : ndarray of uint8, (H, W) or (H, W, 3)
    volume : ndarray of uint8, (Z, Y, X) or (Z, Y, X, 3)
    max_lag : int

    Returns
    -------
    dict
        ``channels`` (mean/std/Wasserstein-1 per channel: one for grey, R/G/B for colour),
        ``autocovariance`` (of the grey level, or the channel mean for colour: 2D and 3D
        means over axes, per axis, and correlation lengths), ``fidelity``
        (:func:`fidelity_block` of the grey level), ``summary`` (with ``flags`` and
        ``flag_reasons``), ``thresholds``, ``timings_s``.
    """
    th = {**THRESHOLDS, **(thresholds or {})}
    image = np.asarray(image)
    volume = np.asarray(volume)
    colour = image.ndim == 3
    if colour != (volume.ndim == 4):
        raise MicrolibError(
            f"training image {image.shape} and volume {volume.shape} differ in channels"
        )
    if image.ndim not in (2, 3) or volume.ndim not in (3, 4):
        raise MicrolibError(f"unexpected shapes: image {image.shape}, volume {volume.shape}")
    check_lag(image.shape[:2], max_lag)
    check_lag(volume.shape[:3], max_lag)
    t0 = time.perf_counter()
    names = ["r", "g", "b"] if colour else ["grey"]
    channels = {}
    for c, name in enumerate(names):
        a = image[..., c] if colour else image
        b = volume[..., c] if colour else volume
        h2, h3 = grey_histogram(a), grey_histogram(b)
        m2, m3 = float(a.mean()), float(b.mean())
        s2, s3 = float(a.std()), float(b.std())
        channels[name] = {
            "mean_2d": _r(m2, 4),
            "mean_3d": _r(m3, 4),
            "mean_abs_error": _r(abs(m2 - m3), 4),
            "std_2d": _r(s2, 4),
            "std_3d": _r(s3, 4),
            "std_abs_error": _r(abs(s2 - s3), 4),
            "w1": _r(wasserstein_1(h2, h3), 4),
        }
    g2 = image.mean(axis=2) if colour else image
    g3 = volume.mean(axis=3) if colour else volume
    ac2 = grey_autocovariance(g2, max_lag)
    ac3 = grey_autocovariance(g3, max_lag)
    timings = {"grey": round(time.perf_counter() - t0, 3)}
    t0 = time.perf_counter()
    fid = fidelity_block(g2, g3, n_phases=None)
    timings["fidelity"] = round(time.perf_counter() - t0, 3)

    def cl(curve):
        # the autocovariance is already normalised: C(0) = 1, so vf=... form reduces to C
        below = np.flatnonzero(curve < math.exp(-1.0))
        if len(below) == 0:
            return None
        i = int(below[0])
        if i == 0:
            return 0.0
        return _r(i - 1 + (curve[i - 1] - math.exp(-1.0)) / (curve[i - 1] - curve[i]), 3)

    cl2 = {a: cl(ac2[i]) for i, a in enumerate(AXES_2D)}
    cl3 = {a: cl(ac3[i]) for i, a in enumerate(AXES_3D)}
    autocov = {
        "2d": [_r(v) for v in ac2.mean(axis=0)],
        "3d": [_r(v) for v in ac3.mean(axis=0)],
        "2d_axes": {a: [_r(v) for v in ac2[i]] for i, a in enumerate(AXES_2D)},
        "3d_axes": {a: [_r(v) for v in ac3[i]] for i, a in enumerate(AXES_3D)},
        "mean_abs_error": _r(float(np.mean(np.abs(ac2.mean(axis=0) - ac3.mean(axis=0))))),
        "corr_length_2d": cl2,
        "corr_length_3d": cl3,
    }
    summary = {
        "grey_mean_abs_error": _r(max(c["mean_abs_error"] for c in channels.values()), 4),
        "grey_std_abs_error": _r(max(c["std_abs_error"] for c in channels.values()), 4),
        "grey_w1": _r(max(c["w1"] for c in channels.values()), 4),
        "autocov_mean_abs_error": autocov["mean_abs_error"],
        "anisotropy_2d": _r(_anisotropy(cl2), 4),
        "anisotropy_3d": _r(_anisotropy(cl3), 4),
        "grey_anisotropy_2d": fid["anisotropy"]["2d"],
        "grey_anisotropy_3d": fid["anisotropy"]["3d"],
        "checkerboard_ratio": fid["checkerboard"]["ratio"],
    }
    flags: dict[str, str] = {}
    if summary["grey_mean_abs_error"] > th["grey_mean_abs_error"]:
        flags["grey_mean_error"] = (
            f"mean grey level off by {summary['grey_mean_abs_error']:.1f} "
            f"> {th['grey_mean_abs_error']:g}"
        )
    if summary["grey_w1"] > th["grey_w1"]:
        flags["grey_histogram_error"] = (
            f"grey histograms {summary['grey_w1']:.1f} grey levels apart (Wasserstein-1) > {th['grey_w1']:g}"
        )
    if summary["autocov_mean_abs_error"] > th["autocov_mean_abs_error"]:
        flags["autocovariance_error"] = (
            f"autocovariance error {summary['autocov_mean_abs_error']:.3f} "
            f"> {th['autocov_mean_abs_error']:g}"
        )
    flags.update(fidelity_flags(fid, th))
    return {
        "channels": channels,
        "autocovariance": autocov,
        "fidelity": fid,
        "summary": {**summary, "flags": list(flags), "flag_reasons": flags},
        "thresholds": th,
        "timings_s": timings,
    }


def compare(
    image: np.ndarray,
    volume: np.ndarray,
    *,
    data_type: str,
    n_phases: int,
    max_lag: int | None = None,
    tortuosity_size: int | None = 64,
    device: str = "cpu",
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Metrics document for one entry (without the ``name``/``id`` header).

    Dispatches on ``data_type`` to :func:`nphase_metrics` or :func:`grey_metrics`;
    ``max_lag`` defaults to :func:`default_max_lag`.
    """
    image = np.asarray(image)
    volume = np.asarray(volume)
    lag = int(max_lag) if max_lag else default_max_lag(image.shape, volume.shape)
    head = {
        "schema_version": SCHEMA_VERSION,
        "data_type": data_type,
        "n_phases": int(n_phases),
        "image_shape": list(image.shape),
        "volume_shape": list(volume.shape),
        "max_lag": lag,
        "s2_method": "non-periodic direct shifted products",
    }
    if data_type in NPHASE_TYPES:
        body = nphase_metrics(
            image,
            volume,
            n_phases,
            max_lag=lag,
            tortuosity_size=tortuosity_size,
            device=device,
            thresholds=thresholds,
        )
    elif data_type in ("grayscale", "colour"):
        body = grey_metrics(image, volume, max_lag=lag, thresholds=thresholds)
    else:
        raise MicrolibError(f"unknown data_type {data_type!r}")
    return {**head, **body}
