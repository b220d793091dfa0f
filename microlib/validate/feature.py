"""Feature size of a labelled structure: two-point-correlation length and mean chord length.

Used to check that a family (conditional) generator interpolates: the feature size of the
volume generated at a code between two members' codes should lie between theirs. Both
measures work on 2D images and 3D volumes alike, so a training image and a generated
volume are compared directly (in pixels, and in micrometres when the voxel size is known).
"""

from __future__ import annotations

import numpy as np

from microlib.errors import MicrolibError
from microlib.validate.nphase import correlation_length, two_point_correlation


def _max_lag(shape: tuple[int, ...]) -> int:
    # half the shortest edge: longer lags see too few pairs to be worth the time
    return max(1, min(min(shape) - 1, min(shape) // 2))


def mean_chord_lengths(labels: np.ndarray, n_phases: int) -> np.ndarray:
    """Mean chord length per phase and axis, in pixels: ``(n_phases, ndim)``.

    A chord is a maximal run of one phase along an axis; chords cut by the array border
    count as they are (a slight underestimate for features near the edge size). NaN where
    the phase is absent.
    """
    a = np.asarray(labels)
    out = np.full((n_phases, a.ndim), np.nan)
    for k in range(n_phases):
        ind = a == k
        total = int(ind.sum())
        if total == 0:
            continue
        for ax in range(a.ndim):
            first = np.take(ind, [0], axis=ax)
            # a chord starts at the border or where the phase begins
            starts = int(first.sum()) + int((np.diff(ind.astype(np.int8), axis=ax) == 1).sum())
            out[k, ax] = total / max(starts, 1)
    return out


def feature_size(
    labels: np.ndarray,
    n_phases: int | None = None,
    max_lag: int | None = None,
    voxel_size_um: float | None = None,
) -> dict:
    """Feature size of an n-phase image or volume.

    Parameters
    ----------
    labels : ndarray of int, 2D or 3D
        Labels ``0..n-1``.
    n_phases : int, optional
        Default: ``labels.max() + 1``.
    max_lag : int, optional
        Largest lag of the two-point correlation (default: half the shortest edge).
    voxel_size_um : float, optional
        Micrometres per pixel; adds ``*_um`` values.

    Returns
    -------
    dict
        ``correlation_length_px``: lag where the normalised two-point correlation falls
        below 1/e, averaged over axes and the phases that are present (None when it does
        not fall within ``max_lag``); ``correlation_length_axes_px`` per axis;
        ``chord_length_px`` mean chord length per phase (averaged over axes);
        ``mean_chord_length_px`` over phases; ``*_um`` versions when the voxel size is
        known.
    """
    a = np.asarray(labels)
    if a.ndim not in (2, 3):
        raise MicrolibError(f"feature size needs a 2D image or 3D volume, got shape {a.shape}")
    if a.size == 0 or a.min() < 0:
        raise MicrolibError("feature size needs labels 0..n-1")
    n = int(n_phases) if n_phases else int(a.max()) + 1
    lag = int(max_lag) if max_lag else _max_lag(a.shape)
    s2 = two_point_correlation(a, n, lag)
    per_axis: list[float | None] = []
    for ax in range(a.ndim):
        vals = []
        for k in range(n):
            vf = float(s2[k, ax, 0])
            if 0.0 < vf < 1.0:
                cl = correlation_length(s2[k, ax], vf)
                if cl is None:
                    vals = None
                    break
                vals.append(cl)
        per_axis.append(float(np.mean(vals)) if vals else None)
    cl_px = None if any(v is None for v in per_axis) else float(np.mean(per_axis))
    chords = mean_chord_lengths(a, n)
    chord_px = [None if np.isnan(c).all() else float(np.nanmean(c)) for c in chords]
    present = [c for c in chord_px if c is not None]
    out = {
        "correlation_length_px": cl_px,
        "correlation_length_axes_px": per_axis,
        "chord_length_px": chord_px,
        "mean_chord_length_px": float(np.mean(present)) if present else None,
        "max_lag": lag,
    }
    if voxel_size_um:
        v = float(voxel_size_um)
        out["voxel_size_um"] = v
        out["correlation_length_um"] = None if cl_px is None else cl_px * v
        out["mean_chord_length_um"] = (
            None if out["mean_chord_length_px"] is None else out["mean_chord_length_px"] * v
        )
    return out


def is_monotone(values: list[float], strict: bool = True) -> bool:
    """Whether ``values`` rise (or fall) throughout, strictly by default."""
    d = np.diff(np.asarray(values, dtype=float))
    if strict:
        return bool(np.all(d > 0) or np.all(d < 0))
    return bool(np.all(d >= 0) or np.all(d <= 0))


def _fractions(labels: np.ndarray, n_phases: int) -> list[float]:
    counts = np.bincount(np.asarray(labels).ravel(), minlength=n_phases)[:n_phases]
    return [round(float(c), 5) for c in counts / max(int(counts.sum()), 1)]


def _row(labels: np.ndarray, n_phases: int, max_lag: int | None) -> dict:
    fs = feature_size(labels, n_phases, max_lag=max_lag)
    return {
        "correlation_length_px": fs["correlation_length_px"],
        "mean_chord_length_px": fs["mean_chord_length_px"],
        "volume_fractions": _fractions(labels, n_phases),
    }


def family_feature_table(
    members: list[tuple[float, np.ndarray]],
    volumes: list[tuple[float, np.ndarray]],
    n_phases: int,
    max_lag: int | None = None,
) -> dict:
    """Feature size against code for a family generator.

    Parameters
    ----------
    members : list of (float, ndarray)
        ``(code, labels)`` of each member's 2D training image.
    volumes : list of (float, ndarray)
        ``(code, labels)`` of each volume generated at a code (3D).
    n_phases : int
    max_lag : int, optional
        Largest two-point-correlation lag, the same for images and volumes (default: half
        the shortest edge of all of them, capped at 64).

    Returns
    -------
    dict
        ``members`` and ``codes``: one row per image / volume, in ascending code, with
        ``correlation_length_px``, ``mean_chord_length_px`` and ``volume_fractions``; a
        volume at a member's code also has ``member_correlation_length_px`` and
        ``correlation_length_error_pct`` (relative to that member). ``summary``:
        ``monotone`` (the volumes' correlation length rises or falls strictly with the
        code), ``members_monotone`` (the same for the members), ``max_abs_error_pct``
        (over the volumes at member codes) and ``max_lag``.
    """
    if len(members) < 2:
        raise MicrolibError("a family needs two or more members")
    if not volumes:
        raise MicrolibError("no generated volumes to measure")
    shapes = [a.shape for _, a in members] + [a.shape for _, a in volumes]
    lag = int(max_lag) if max_lag else min(64, min(_max_lag(s) for s in shapes))
    rows_m = [{"code": float(c), **_row(a, n_phases, lag)} for c, a in sorted(members, key=_code)]
    by_code = {r["code"]: r for r in rows_m}
    rows_v = []
    for c, a in sorted(volumes, key=_code):
        row = {"code": float(c), "training_code": float(c) in by_code, **_row(a, n_phases, lag)}
        member = by_code.get(float(c))
        if member is not None:
            want, got = member["correlation_length_px"], row["correlation_length_px"]
            row["member_correlation_length_px"] = want
            row["correlation_length_error_pct"] = (
                None if want is None or got is None else round(100.0 * (got - want) / want, 2)
            )
        rows_v.append(row)
    errors = [
        abs(r["correlation_length_error_pct"])
        for r in rows_v
        if r.get("correlation_length_error_pct") is not None
    ]
    sizes_v = [r["correlation_length_px"] for r in rows_v]
    sizes_m = [r["correlation_length_px"] for r in rows_m]
    return {
        "members": rows_m,
        "codes": rows_v,
        "summary": {
            "monotone": None not in sizes_v and len(sizes_v) > 1 and is_monotone(sizes_v),
            "members_monotone": None not in sizes_m and is_monotone(sizes_m),
            "max_abs_error_pct": max(errors) if errors else None,
            "max_lag": lag,
        },
    }


def _code(item: tuple[float, np.ndarray]) -> float:
    return float(item[0])


__all__ = ["family_feature_table", "feature_size", "is_monotone", "mean_chord_lengths"]
