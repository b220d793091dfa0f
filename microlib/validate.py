"""2D training image vs 3D generated volume: MicroLib's validation metrics and more.

n-phase data (labels ``0..n-1``):

- volume fraction per phase;
- surface area density as MicroLib defines it: the proportion of pixel edges (2D) or
  voxel faces (3D) between neighbours of two different phases, in total and per phase
  (faces with the phase on exactly one side). Along any one axis this is the
  probability that two neighbours differ, the same quantity in 2D and 3D for an
  isotropic structure, so the 2D and 3D numbers compare directly;
- two-point correlation ``S2_k(r)``: the probability that two points ``r`` apart along
  an axis are both of phase ``k``, for ``r = 0..R``, per axis and averaged (2D: y, x;
  3D: z, y, x). **Non-periodic**: only pairs inside the array count, because neither a
  micrograph nor a generated volume is periodic and wrapped pairs would mix opposite
  edges. Computed as direct shifted products, exactly, on bit-packed phase indicators
  (AND + popcount) so a 320^3 volume takes well under a second per phase;
- correlation length per axis (where the normalised ``S2`` falls below 1/e), which
  exposes anisotropy;
- percolation of each phase along each axis (face connectivity);
- 3D only: tortuosity factor per phase (taufactor, on a centred sub-cube) and
  triple-phase-boundary density for three phases.

Grayscale/colour data: mean, standard deviation, Wasserstein-1 distance between grey
histograms, normalised autocovariance per lag (non-periodic, via a zero-padded FFT,
which equals the direct shifted products exactly).

Every function here is pure; :mod:`microlib.commands.validate` does the file I/O.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import warnings
from typing import Any

import numpy as np

from microlib.datatypes import NPHASE_TYPES  # noqa: E402
from microlib.errors import MicrolibError

AXES_2D = ("y", "x")
AXES_3D = ("z", "y", "x")
SCHEMA_VERSION = 1

#: thresholds of the quality flags (recorded in every metrics file)
THRESHOLDS: dict[str, float] = {
    "vf_pct_error": 5.0,  # MicroLib's outlier criterion (5 of 78 entries)
    "surface_pct_error": 10.0,  # MicroLib's mean was 4.3 %; 10 % is clearly off
    "s2_mean_abs_error": 0.02,  # probability units, mean over phases and lags
    "anisotropy_ratio": 1.5,  # correlation-length ratio between axes (and 1/1.5)
    "grey_w1": 10.0,  # grey levels
    "grey_mean_abs_error": 10.0,  # grey levels
    "autocov_mean_abs_error": 0.05,
}


# --------------------------------------------------------------------------- n-phase


def volume_fractions(labels: np.ndarray, n_phases: int) -> np.ndarray:
    """Fraction of pixels/voxels of each phase ``0..n_phases-1``."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=n_phases)[:n_phases]
    return counts / max(np.asarray(labels).size, 1)


def _packed(ind: np.ndarray, axis: int) -> np.ndarray:
    """Bit-pack a boolean array along an axis other than ``axis``."""
    pack_axis = ind.ndim - 1 if axis != ind.ndim - 1 else ind.ndim - 2
    return np.packbits(ind, axis=pack_axis)


def _shift(a: np.ndarray, axis: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis] = slice(None, a.shape[axis] - lag)
    hi[axis] = slice(lag, None)
    return a[tuple(lo)], a[tuple(hi)]


def _popcount(a: np.ndarray) -> int:
    return int(np.bitwise_count(a).sum(dtype=np.int64))


def _phase_pair_counts(
    labels: np.ndarray, n_phases: int, max_lag: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact non-periodic pair counts along every axis.

    Returns
    -------
    both : ndarray of int64, (n_phases, ndim, max_lag + 1)
        Pairs ``r`` apart along the axis with both ends in phase k (``r = 0``: count of k).
    ends : ndarray of int64, (n_phases, ndim)
        Lag-1 pairs with phase k at the first plus at the second end.
    pairs : ndarray of int64, (ndim, max_lag + 1)
        Number of pairs per axis and lag.
    """
    labels = np.asarray(labels)
    ndim = labels.ndim
    both = np.zeros((n_phases, ndim, max_lag + 1), dtype=np.int64)
    ends = np.zeros((n_phases, ndim), dtype=np.int64)
    pairs = np.zeros((ndim, max_lag + 1), dtype=np.int64)
    for axis in range(ndim):
        length = labels.shape[axis]
        for lag in range(max_lag + 1):
            pairs[axis, lag] = labels.size // length * max(length - lag, 0)
    for k in range(n_phases):
        ind = labels == k
        total = int(ind.sum())
        for axis in range(ndim):
            packed = _packed(ind, axis)
            both[k, axis, 0] = total
            for lag in range(1, min(max_lag, labels.shape[axis] - 1) + 1):
                a, b = _shift(packed, axis, lag)
                both[k, axis, lag] = _popcount(a & b)
            if labels.shape[axis] > 1:
                first = np.take(ind, 0, axis=axis).sum()
                last = np.take(ind, -1, axis=axis).sum()
                ends[k, axis] = 2 * total - first - last
    return both, ends, pairs


def two_point_correlation(labels: np.ndarray, n_phases: int, max_lag: int) -> np.ndarray:
    """Non-periodic two-point correlation per phase and axis.

    Parameters
    ----------
    labels : ndarray of int, 2D or 3D
    n_phases : int
    max_lag : int
        Largest separation ``R``; must be smaller than every axis length.

    Returns
    -------
    ndarray of float64, (n_phases, ndim, max_lag + 1)
        ``S2[k, a, r]`` = P(both points of phase k) for points ``r`` apart along axis
        ``a`` (array order). ``S2[k, :, 0]`` is the volume fraction of k.
    """
    _check_lag(np.asarray(labels).shape, max_lag)
    both, _, pairs = _phase_pair_counts(labels, n_phases, max_lag)
    return both / pairs[None]


def surface_area_density(labels: np.ndarray, n_phases: int) -> dict[str, Any]:
    """MicroLib's surface area density: proportion of faces between different phases.

    A face is the boundary between two pixels (2D) or voxels (3D) that are neighbours
    along an axis; faces on the array's outer boundary do not count.

    Returns
    -------
    dict
        ``total`` (faces with different phases on the two sides / all faces),
        ``per_phase`` ((n,): faces with phase k on exactly one side / all faces) and
        ``per_axis`` ((ndim,): ``total`` along each axis).
    """
    both, ends, pairs = _phase_pair_counts(labels, n_phases, 1)
    total, per_phase, per_axis = _surface_from_counts(both, ends, pairs)
    return {"total": total, "per_phase": per_phase, "per_axis": per_axis}


def _surface_from_counts(
    both: np.ndarray, ends: np.ndarray, pairs: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    # faces with phase k on exactly one side = (k at first end) + (k at second end) - 2 (k at both)
    faces = pairs[:, 1].astype(np.float64)
    per_phase_axis = ends - 2 * both[:, :, 1]
    total_faces = max(faces.sum(), 1.0)
    return (
        float(per_phase_axis.sum() / 2 / total_faces),
        per_phase_axis.sum(axis=1) / total_faces,
        per_phase_axis.sum(axis=0) / 2 / np.maximum(faces, 1.0),
    )


def correlation_length(s2: np.ndarray, vf: float) -> float | None:
    """Lag at which the normalised two-point correlation first falls below 1/e.

    ``(S2(r) - vf^2) / (vf - vf^2)`` is 1 at r = 0 and decays to 0 for a structure
    without long-range order; the crossing is linearly interpolated. ``None`` when the
    phase is absent or fills everything, or when the curve does not cross within the
    lags given (the correlation length exceeds ``R``).
    """
    denom = vf - vf * vf
    if denom <= 1e-12:
        return None
    c = (np.asarray(s2, dtype=np.float64) - vf * vf) / denom
    below = np.flatnonzero(c < math.exp(-1.0))
    if len(below) == 0:
        return None
    i = int(below[0])
    if i == 0:
        return 0.0
    c0, c1 = c[i - 1], c[i]
    return float(i - 1 + (c0 - math.exp(-1.0)) / (c0 - c1))


def percolation(labels: np.ndarray, phase: int) -> list[bool]:
    """Whether ``phase`` connects the two opposite faces along each axis.

    Face connectivity (4-neighbours in 2D, 6 in 3D): the connectivity a diffusion
    solver sees. Returns one bool per axis, array order.
    """
    from scipy import ndimage

    ind = np.asarray(labels) == phase
    if not ind.any():
        return [False] * ind.ndim
    lab, _ = ndimage.label(ind, structure=ndimage.generate_binary_structure(ind.ndim, 1))
    out = []
    for axis in range(ind.ndim):
        first = np.unique(np.take(lab, 0, axis=axis))
        last = np.unique(np.take(lab, -1, axis=axis))
        common = np.intersect1d(first, last)
        out.append(bool((common > 0).any()))
    return out


def triple_phase_boundary_density(labels: np.ndarray) -> float:
    """Density of triple-phase-boundary edges of a three-phase volume.

    An edge of the voxel grid (a line where four voxels meet) is a TPB edge when all
    three phases occur among its four voxels. The density is the count divided by the
    number of interior edges; this is taufactor's ``triple_phase_boundary`` definition,
    computed without its per-phase rolled copies. 2D input: vertices where four pixels
    meet.
    """
    v = np.asarray(labels)
    # bincount, not np.unique: no sort of 32 M voxels for a 320^3 volume
    phases = np.flatnonzero(np.bincount(v.ravel())) if v.dtype.kind in "ub" else np.unique(v)
    if len(phases) != 3:
        raise MicrolibError(
            f"triple-phase-boundary density needs exactly 3 phases, found {len(phases)}"
        )
    if v.ndim == 2:
        planes = [(v, (0, 1))]
        total = (v.shape[0] - 1) * (v.shape[1] - 1)
    elif v.ndim == 3:
        planes = [(v, tuple(a for a in range(3) if a != d)) for d in range(3)]
        z, y, x = v.shape
        total = z * (y - 1) * (x - 1) + y * (z - 1) * (x - 1) + x * (z - 1) * (y - 1)
    else:
        raise MicrolibError(f"triple-phase-boundary density needs 2D or 3D labels, got {v.ndim}D")
    count = 0
    for arr, (a1, a2) in planes:
        present = None
        for ph in phases:
            ind = arr == ph
            i0, i1 = _shift(ind, a1, 1)
            win = None
            for part in (i0, i1):
                j0, j1 = _shift(part, a2, 1)
                w = j0 | j1
                win = w if win is None else (win | w)
            present = win if present is None else (present & win)
        count += int(present.sum())
    return count / max(total, 1)


def tortuosity(
    labels: np.ndarray,
    phase: int,
    *,
    device: str = "cpu",
    conv_crit: float = 1e-2,
    iter_limit: int = 10000,
) -> dict[str, Any]:
    """Tortuosity factor of one phase along axis 0 with taufactor.

    A phase that does not connect the two faces normal to axis 0 has no tortuosity:
    the result then says ``percolates: False`` with ``tau``/``d_eff`` None, instead of
    the meaningless number taufactor returns for a blocked path.

    Returns
    -------
    dict
        ``percolates``, ``tau``, ``d_eff`` (effective diffusivity relative to the bulk),
        ``vf``, ``converged``, ``iterations``, ``seconds``.
    """
    import taufactor

    ind = (np.asarray(labels) == phase).astype(np.uint8)
    out: dict[str, Any] = {
        "percolates": percolation(ind, 1)[0],
        "tau": None,
        "d_eff": None,
        "vf": float(ind.mean()),
        "converged": None,
        "iterations": None,
        "seconds": 0.0,
    }
    if not out["percolates"]:
        return out
    t0 = time.perf_counter()
    solver = taufactor.Solver(ind, device=device)
    # taufactor prints progress and convergence warnings on stdout; keep stdout clean
    with contextlib.redirect_stdout(io.StringIO()) as buf, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tau = solver.solve(iter_limit=iter_limit, verbose=False, conv_crit=conv_crit)
    out["tau"] = float(np.ravel(tau)[0])  # taufactor returns 1-element arrays
    out["d_eff"] = float(np.ravel(solver.D_eff)[0])
    out["converged"] = "not converged" not in buf.getvalue()
    out["iterations"] = int(getattr(solver, "iter", 0))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def centred_subcube(volume: np.ndarray, size: int) -> np.ndarray:
    """The centred ``size``-edge sub-cube (clipped to the volume)."""
    v = np.asarray(volume)
    sl = []
    for n in v.shape[:3]:
        s = min(int(size), n)
        start = (n - s) // 2
        sl.append(slice(start, start + s))
    return v[tuple(sl)]


# --------------------------------------------------------------------------- grey


def grey_autocovariance(image: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised non-periodic autocovariance per axis.

    ``C_a(r) = mean over pairs r apart along axis a of (g(p) - mu)(g(p + r e_a) - mu) / var``
    with ``mu``/``var`` of the whole array. Computed with a zero-padded FFT along each
    axis (identical to the direct sum over pairs inside the array).

    Returns
    -------
    ndarray, (ndim, max_lag + 1)
    """
    from scipy import fft

    g = np.asarray(image, dtype=np.float32)
    _check_lag(g.shape, max_lag)
    g = g - g.mean(dtype=np.float64)
    var = float(np.mean(g.astype(np.float64) ** 2))
    out = np.zeros((g.ndim, max_lag + 1))
    if var <= 1e-12:
        return out
    for axis in range(g.ndim):
        n = g.shape[axis]
        nfft = fft.next_fast_len(n + max_lag + 1, real=True)
        spec = fft.rfft(g, n=nfft, axis=axis)
        spec = (spec * spec.conj()).real
        corr = fft.irfft(spec, n=nfft, axis=axis)
        other = tuple(a for a in range(g.ndim) if a != axis)
        sums = corr.sum(axis=other, dtype=np.float64)[: max_lag + 1]
        count = g.size // n * (n - np.arange(max_lag + 1))
        out[axis] = sums / count / var
        del spec, corr
    return out


def grey_histogram(values: np.ndarray) -> np.ndarray:
    """Normalised 256-bin histogram of uint8 grey levels."""
    h = np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256).astype(np.float64)
    return h / max(h.sum(), 1.0)


def wasserstein_1(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two normalised histograms on the
    same unit-spaced bins, in bins (grey levels)."""
    return float(np.abs(np.cumsum(hist_a) - np.cumsum(hist_b)).sum())


# --------------------------------------------------------------------------- report


def _check_lag(shape: tuple[int, ...], max_lag: int) -> None:
    if max_lag < 1:
        raise MicrolibError(f"max_lag must be >= 1, got {max_lag}")
    if max_lag >= min(shape):
        raise MicrolibError(
            f"max_lag {max_lag} must be smaller than every edge of shape {tuple(shape)}"
        )


def default_max_lag(
    image_shape: tuple[int, ...], volume_shape: tuple[int, ...], cap: int = 64
) -> int:
    """``min(cap, smallest edge of image and volume // 2)``: the same lags for 2D and 3D."""
    return max(1, min(cap, min(image_shape[:2]) // 2, min(volume_shape[:3]) // 2))


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def _pct(a: float, b: float) -> float | None:
    """MicroLib's percentage error ``|a - b| / a`` (None when ``a`` is 0)."""
    return None if a == 0 else 100.0 * abs(a - b) / a


def _anisotropy(lengths: dict[str, float | None]) -> float | None:
    vals = [v for v in lengths.values() if v]
    return None if len(vals) < 2 else max(vals) / min(vals)


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
        Overrides of :data:`THRESHOLDS`.

    Returns
    -------
    dict
        ``phases`` (one record per phase), ``surface_area_density``, ``tpb_density_3d``,
        ``summary`` (headline errors and the quality ``flags``), ``thresholds``, ``timings_s`` — the layout of
        ``workflow/schemas/metrics.schema.yaml``.
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
    _check_lag(image.shape, max_lag)
    _check_lag(volume.shape, max_lag)
    timings: dict[str, float] = {}

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

    tau_records: list[dict | None] = [None] * n_phases
    tau_shape = None
    if tortuosity_size:
        t0 = time.perf_counter()
        sub = centred_subcube(volume, tortuosity_size)
        tau_shape = list(sub.shape)
        tau_records = [tortuosity(sub, k, device=device) for k in range(n_phases)]
        timings["tortuosity"] = time.perf_counter() - t0

    phases = []
    for k in range(n_phases):
        mean2 = s2_2[k].mean(axis=0)
        mean3 = s2_3[k].mean(axis=0)
        cl2 = {a: _r(correlation_length(s2_2[k, i], vf2[k]), 3) for i, a in enumerate(AXES_2D)}
        cl3 = {a: _r(correlation_length(s2_3[k, i], vf3[k]), 3) for i, a in enumerate(AXES_3D)}
        rec = {
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
            "corr_length_2d": cl2,
            "corr_length_3d": cl3,
            "anisotropy_2d": _r(_anisotropy(cl2), 4),
            "anisotropy_3d": _r(_anisotropy(cl3), 4),
            "percolates_2d": dict(zip(AXES_2D, perc2[k], strict=True)),
            "percolates_3d": dict(zip(AXES_3D, perc3[k], strict=True)),
            "tortuosity": None
            if tau_records[k] is None
            else {
                "axis": "z",
                "shape": tau_shape,
                **{
                    key: (_r(v) if isinstance(v, float) else v) for key, v in tau_records[k].items()
                },
            },
        }
        phases.append(rec)

    tpb = None
    if n_phases == 3 and np.count_nonzero(vf3 > 0) == 3:
        t0 = time.perf_counter()
        tpb = _r(triple_phase_boundary_density(volume), 8)
        timings["tpb"] = time.perf_counter() - t0

    present = [k for k in range(n_phases) if vf2[k] > 0]
    vf_pct = [abs(vf2[k] - vf3[k]) / vf2[k] * 100 for k in present]
    summary = {
        "vf_mean_abs_pct_error": _r(float(np.mean(vf_pct)) if vf_pct else None, 4),
        "vf_max_abs_pct_error": _r(float(np.max(vf_pct)) if vf_pct else None, 4),
        "vf_mean_abs_error": _r(float(np.mean(np.abs(vf2 - vf3)))),
        "surface_area_pct_error": _r(_pct(sa2_total, sa3_total), 4),
        "s2_mean_abs_error": _r(float(np.mean(np.abs(s2_2.mean(axis=1) - s2_3.mean(axis=1))))),
        "anisotropy_2d": _r(max((p["anisotropy_2d"] or 0) for p in phases) or None, 4),
        "anisotropy_3d": _r(max((p["anisotropy_3d"] or 0) for p in phases) or None, 4),
    }
    flags = []
    if (
        summary["vf_max_abs_pct_error"] is not None
        and summary["vf_max_abs_pct_error"] > th["vf_pct_error"]
    ):
        flags.append("vf_error")
    if (
        summary["surface_area_pct_error"] is not None
        and summary["surface_area_pct_error"] > th["surface_pct_error"]
    ):
        flags.append("surface_area_error")
    if summary["s2_mean_abs_error"] > th["s2_mean_abs_error"]:
        flags.append("s2_error")
    ratio = th["anisotropy_ratio"]
    if summary["anisotropy_3d"] and summary["anisotropy_3d"] > ratio:
        flags.append("anisotropic_3d")
    if summary["anisotropy_2d"] and summary["anisotropy_2d"] > ratio:
        flags.append("anisotropic_2d")
    if any(vf2[k] > 0 and vf3[k] == 0 for k in range(n_phases)):
        flags.append("phase_missing_3d")
    if any(vf2[k] == 0 and vf3[k] > 0 for k in range(n_phases)):
        flags.append("phase_extra_3d")
    # an isotropic 3D structure connects at least as well as its slices do
    if any(any(perc2[k]) and not any(perc3[k]) for k in range(n_phases)):
        flags.append("percolation_lost_3d")
    if any(r and r.get("converged") is False for r in tau_records):
        flags.append("tortuosity_not_converged")

    return {
        "phases": phases,
        "surface_area_density": {
            "2d": _r(sa2_total),
            "3d": _r(sa3_total),
            "abs_error": _r(abs(sa2_total - sa3_total)),
            "pct_error": _r(_pct(sa2_total, sa3_total), 4),
            "2d_axes": {a: _r(v) for a, v in zip(AXES_2D, sa2_axis, strict=True)},
            "3d_axes": {a: _r(v) for a, v in zip(AXES_3D, sa3_axis, strict=True)},
        },
        "tpb_density_3d": tpb,
        "summary": {**summary, "flags": flags},
        "thresholds": th,
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
        ``channels`` (mean/std/W1 per channel: one for grey, R/G/B for colour),
        ``autocovariance`` (of the grey level, or the channel mean for colour: 2D and 3D
        means over axes, per axis, and correlation lengths), ``summary`` (with ``flags``),
        ``thresholds``, ``timings_s``.
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
    _check_lag(image.shape[:2], max_lag)
    _check_lag(volume.shape[:3], max_lag)
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
    }
    flags = []
    if summary["grey_mean_abs_error"] > th["grey_mean_abs_error"]:
        flags.append("grey_mean_error")
    if summary["grey_w1"] > th["grey_w1"]:
        flags.append("grey_histogram_error")
    if summary["autocov_mean_abs_error"] > th["autocov_mean_abs_error"]:
        flags.append("autocovariance_error")
    if summary["anisotropy_3d"] and summary["anisotropy_3d"] > th["anisotropy_ratio"]:
        flags.append("anisotropic_3d")
    if summary["anisotropy_2d"] and summary["anisotropy_2d"] > th["anisotropy_ratio"]:
        flags.append("anisotropic_2d")
    return {
        "channels": channels,
        "autocovariance": autocov,
        "summary": {**summary, "flags": flags},
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
