"""Fidelity of a generated volume beyond the means: direction, texture and S2 shape.

A generator can match volume fractions and still be wrong in ways a materials scientist
sees at once: features stretched along one axis, a checkerboard texture left by
transposed convolutions, too many or too few interfaces. These functions measure that
directly and compare the same quantity in 2D and 3D:

- :func:`surface_area_density_axes` — per axis, the share of neighbour pairs whose labels
  differ (MicroLib's surface area density along that axis);
- :func:`anisotropy` — max / min of those per-axis values (1 = isotropic);
- :func:`grey_gradient_axes` / :func:`grey_anisotropy` — the same for grey images, with
  the mean absolute grey difference between neighbours in place of "labels differ"
  (for a two-level 0/1 image the two coincide);
- :func:`checkerboard_score` / :func:`checkerboard_score_axes` — share of spectral power
  next to the Nyquist frequency, the signature of stride-2 upsampling artefacts;
- :func:`s2_curve_error` — difference of two-point-correlation curves in units of
  ``vf (1 - vf)``, the curve's own scale;
- :func:`orientation_anisotropy` — in-plane structure-tensor eigenvalue ratio: sees
  features aligned along a diagonal, which the per-axis measures above cannot (a streak at
  45 degrees crosses the x and y axes equally often).

All functions are pure; volumes are ``(Z, Y, X)``, images ``(H, W)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft

from microlib.errors import MicrolibError

#: default half-width of the Nyquist band of :func:`checkerboard_score`, cycles / pixel
NYQUIST_BAND = 1.0 / 32.0
#: checkerboard scores below this (0.1 % of the power) are treated as this when taking
#: the 3D / 2D ratio: a smooth grey image scores ~1e-5 from uint8 rounding alone, and
#: ratios of such numbers are noise, not artefacts
CHECKERBOARD_FLOOR = 1e-3
_SLICE_BATCH = 32  # slices per FFT batch: bounds memory on 320^3 volumes


def _check_nd(a: np.ndarray, what: str) -> None:
    if a.ndim not in (2, 3) or min(a.shape) < 2:
        raise MicrolibError(f"{what} needs a 2D image or 3D volume of edge >= 2, got {a.shape}")


def _neighbour_pairs(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    n = a.shape[axis]
    return np.take(a, np.arange(n - 1), axis=axis), np.take(a, np.arange(1, n), axis=axis)


def surface_area_density_axes(labels: np.ndarray) -> np.ndarray:
    """Per-axis share of neighbour pairs with different labels.

    Parameters
    ----------
    labels : ndarray of int, (H, W) or (Z, Y, X)

    Returns
    -------
    ndarray of float64, (ndim,)
        Entry ``a`` is (pairs of neighbours along axis ``a`` whose labels differ) /
        (all such pairs inside the array), array axis order (2D: y, x; 3D: z, y, x).
        This is MicroLib's surface area density measured along one axis: for an
        isotropic structure every axis gives the same value, in 2D as in 3D.
    """
    a = np.asarray(labels)
    _check_nd(a, "surface_area_density_axes")
    out = np.empty(a.ndim)
    for axis in range(a.ndim):
        lo, hi = _neighbour_pairs(a, axis)
        out[axis] = np.count_nonzero(lo != hi) / lo.size
    return out


def axis_ratio(values: np.ndarray) -> float:
    """``max / min`` of per-axis values: 1 for equal values, ``inf`` when only the
    smallest is 0, ``nan`` when all are 0 (no interfaces: no direction to compare)."""
    v = np.asarray(values, dtype=np.float64)
    hi, lo = float(v.max()), float(v.min())
    if hi <= 0:
        return math.nan
    return math.inf if lo <= 0 else hi / lo


def anisotropy(labels: np.ndarray) -> float:
    """Anisotropy of a label image or volume from its per-axis surface area density.

    Parameters
    ----------
    labels : ndarray of int, (H, W) or (Z, Y, X)

    Returns
    -------
    float
        ``max / min`` of :func:`surface_area_density_axes`: 1 for an isotropic
        structure; ``k`` when features are ``k`` times longer along one axis than along
        another (interfaces are crossed ``k`` times less often along it). ``inf`` for
        stripes (no interface along one axis), ``nan`` for a single phase.
    """
    return axis_ratio(surface_area_density_axes(labels))


def grey_gradient_axes(image: np.ndarray) -> np.ndarray:
    """Per-axis mean absolute grey difference between neighbours.

    Parameters
    ----------
    image : ndarray, (H, W) or (Z, Y, X)
        Grey levels (pass the channel mean of a colour image).

    Returns
    -------
    ndarray of float64, (ndim,)
        ``mean |g(p + e_a) - g(p)|`` over neighbour pairs inside the array, per axis.
        For an image holding only 0 and 1 this equals :func:`surface_area_density_axes`.
    """
    a = np.asarray(image)
    _check_nd(a, "grey_gradient_axes")
    a = a.astype(np.float32)
    out = np.empty(a.ndim)
    for axis in range(a.ndim):
        out[axis] = float(np.abs(np.diff(a, axis=axis)).mean(dtype=np.float64))
    return out


def grey_anisotropy(image: np.ndarray) -> float:
    """``max / min`` of :func:`grey_gradient_axes`; see :func:`anisotropy`."""
    return axis_ratio(grey_gradient_axes(image))


def _plane_tensor(stack: np.ndarray, n_phases: int | None) -> np.ndarray:
    """Summed 2x2 gradient structure tensor of the slices ``stack[i]`` (all channels)."""
    j = np.zeros((2, 2))
    for ch in _channels(stack, n_phases):
        c = ch.reshape((-1, *ch.shape[-2:]))
        # central differences on the interior: forward differences share their anchor
        # pixel, which correlates the two components (a random binary field read 1.8)
        gy = (c[:, 2:, 1:-1] - c[:, :-2, 1:-1]).astype(np.float64)
        gx = (c[:, 1:-1, 2:] - c[:, 1:-1, :-2]).astype(np.float64)
        j += [[np.sum(gy * gy), np.sum(gy * gx)], [np.sum(gy * gx), np.sum(gx * gx)]]
    return j


def _eigen_ratio(j: np.ndarray) -> float:
    lo, hi = np.linalg.eigvalsh(j)
    if hi <= 0:
        return math.nan
    return math.inf if lo <= 0 else float(hi / lo)


def orientation_anisotropy(image: np.ndarray, *, n_phases: int | None = None) -> float:
    """Direction of features in any in-plane orientation, diagonals included.

    Parameters
    ----------
    image : ndarray, (H, W) or (Z, Y, X)
        Labels (give ``n_phases``: each phase's indicator contributes) or grey levels.
    n_phases : int, optional
        Number of phases of a label image; ``None`` reads the values as grey levels.

    Returns
    -------
    float
        ``lambda_max / lambda_min`` of the gradient structure tensor summed over the image
        (1 = no preferred direction; ``k`` when interfaces run along one direction ``k``
        times more than across it, at whatever angle). For a volume, the largest of the
        three values of the slices normal to z, y and x, each pooled over its slices: an
        artefact that streaks one slicing plane shows there. ``nan`` without any gradient.
    """
    a = np.asarray(image)
    _check_nd(a, "orientation_anisotropy")
    if a.ndim == 2:
        return _eigen_ratio(_plane_tensor(a[None], n_phases))
    return max(orientation_anisotropy_planes(a, n_phases=n_phases))


def orientation_anisotropy_planes(volume: np.ndarray, *, n_phases: int | None = None) -> np.ndarray:
    """:func:`orientation_anisotropy` of the slices normal to each axis of a volume.

    Returns
    -------
    ndarray of float64, (3,)
        Entry ``a`` pools the structure tensor of every slice normal to axis ``a``
        (z, y, x); slices are taken in batches, so memory stays small on 320^3 volumes.
    """
    v = np.asarray(volume)
    if v.ndim != 3 or min(v.shape) < 3:
        raise MicrolibError(f"orientation_anisotropy_planes needs a 3D volume, got {v.shape}")
    out = np.empty(3)
    for axis in range(3):
        m = np.moveaxis(v, axis, 0)
        j = np.zeros((2, 2))
        for start in range(0, m.shape[0], _SLICE_BATCH):
            j += _plane_tensor(m[start : start + _SLICE_BATCH], n_phases)
        out[axis] = _eigen_ratio(j)
    return out


def _channels(a: np.ndarray, n_phases: int | None) -> list[np.ndarray]:
    if n_phases is None:
        return [a.astype(np.float32)]
    return [(a == k).astype(np.float32) for k in range(int(n_phases))]


def _band_weights(h: int, w: int, band: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights over the ``rfft2`` half-plane: how many full-plane bins each stands for
    (2, or 1 on the ``fx = 0`` and ``fx = Nyquist`` columns), zero at DC; and the same
    restricted to the Nyquist band."""
    fy = np.abs(np.fft.fftfreq(h))[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    # at least two bins: the Hann window spreads a Nyquist tone over +-2 bins, which a
    # one-bin band of a small slice would partly miss
    band_y, band_x = max(band, 2.0 / h), max(band, 2.0 / w)
    weight = np.full((h, len(fx[0])), 2.0)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    weight[0, 0] = 0.0
    near = (fy >= 0.5 - band_y) | (fx >= 0.5 - band_x)
    return weight, weight * near


def _stack_band_power(stack: np.ndarray, n_phases: int | None, band: float) -> tuple[float, float]:
    """(Nyquist-band power, total power) summed over the 2D slices ``stack[i]``."""
    _, h, w = stack.shape
    # a Hann window removes the edge discontinuity of a non-periodic slice, whose
    # leakage would otherwise reach the Nyquist band along the frequency axes
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    weight, near = _band_weights(h, w, band)
    band_p = total_p = 0.0
    for start in range(0, len(stack), _SLICE_BATCH):
        part = stack[start : start + _SLICE_BATCH]
        for ch in _channels(part, n_phases):
            ch = (ch - ch.mean(axis=(1, 2), keepdims=True)) * win
            p = np.abs(fft.rfft2(ch, axes=(1, 2))) ** 2
            p = p.sum(axis=0, dtype=np.float64)
            band_p += float((p * near).sum())
            total_p += float((p * weight).sum())
    return band_p, total_p


def checkerboard_score_axes(
    volume: np.ndarray, *, n_phases: int | None = None, band: float = NYQUIST_BAND
) -> np.ndarray:
    """:func:`checkerboard_score` of the slices normal to each axis of a volume.

    Returns
    -------
    ndarray of float64, (3,)
        Entry ``a`` pools the power of every slice normal to axis ``a`` (z, y, x), so an
        artefact confined to one slicing direction shows there.
    """
    v = np.asarray(volume)
    if v.ndim != 3 or min(v.shape) < 4:
        raise MicrolibError(f"checkerboard_score_axes needs a 3D volume, got {v.shape}")
    out = np.empty(3)
    for axis in range(3):
        b, t = _stack_band_power(np.moveaxis(v, axis, 0), n_phases, band)
        out[axis] = b / t if t > 0 else 0.0
    return out


def checkerboard_score(
    image: np.ndarray, *, n_phases: int | None = None, band: float = NYQUIST_BAND
) -> float:
    """Share of spectral power next to the Nyquist frequency: checkerboard artefacts.

    Transposed convolutions with stride 2 leave a pattern of period 2 pixels, i.e.
    power at the Nyquist frequency 0.5 cycles / pixel along y, x or both. The score is

        sum of |F(f)|^2 over f with |f_y| >= 0.5 - band or |f_x| >= 0.5 - band
        --------------------------------------------------------------------
                        sum of |F(f)|^2 over all f except DC

    where ``F`` is the 2D Fourier transform of a slice with its mean removed and a
    Hann window applied (a non-periodic slice's edges would otherwise leak power
    everywhere). A smooth image scores ~0, white noise about the band's share of the
    frequency plane (``~4 band``, 0.12 at the default), a pure checkerboard ~1. Sharp
    phase boundaries add some band power, so compare a volume with its own training
    image (their ratio) rather than with a fixed number.

    Parameters
    ----------
    image : ndarray, (H, W) or (Z, Y, X)
        Grey levels or labels. A volume is scored over all its 2D slices normal to each
        axis (power pooled per axis, the three axes averaged).
    n_phases : int, optional
        Labels ``0..n-1``: score the one-hot indicators (powers summed over phases), so
        the arbitrary numbering of phases does not matter. None: use the values as grey.
    band : float
        Half-width of the Nyquist band in cycles / pixel (default 1/32: four frequency
        bins of a 128 px slice), and never under two bins (``2 / edge``).

    Returns
    -------
    float
        In [0, 1]; 0 for a constant image.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        if min(a.shape) < 4:
            raise MicrolibError(f"checkerboard_score needs edges >= 4, got {a.shape}")
        b, t = _stack_band_power(a[None], n_phases, band)
        return b / t if t > 0 else 0.0
    return float(checkerboard_score_axes(a, n_phases=n_phases, band=band).mean())


def checkerboard_ratio(score_3d: float, score_2d: float) -> float:
    """``score_3d / max(score_2d, CHECKERBOARD_FLOOR)``: how much more Nyquist power the
    volume's slices carry than the training image (1 = as much)."""
    return float(score_3d) / max(float(score_2d), CHECKERBOARD_FLOOR)


def s2_curve_error(s2_2d: np.ndarray, s2_3d: np.ndarray) -> float:
    """Two-point-correlation curve error in units of the curve's own scale.

    Parameters
    ----------
    s2_2d, s2_3d : ndarray, (R + 1,) or (n_phases, R + 1)
        ``S2(r)`` for ``r = 0..R`` (axis-averaged), one curve per phase; ``S2(0)`` is
        the volume fraction ``vf`` of the 2D curve.

    Returns
    -------
    float
        Mean over phases of ``mean_r |S2_2d(r) - S2_3d(r)| / (vf (1 - vf))`` with ``vf``
        from the 2D curve. ``S2`` falls from ``vf`` to ``vf^2``, a drop of
        ``vf (1 - vf)``, so 0.1 means the curves differ by a tenth of that drop on
        average, whatever the phase's fraction; ``r = 0`` is included, so a volume
        fraction error counts too. Phases absent from (or filling) the 2D image are
        skipped; ``nan`` when none remains.
    """
    a = np.atleast_2d(np.asarray(s2_2d, dtype=np.float64))
    b = np.atleast_2d(np.asarray(s2_3d, dtype=np.float64))
    if a.shape != b.shape:
        raise MicrolibError(f"S2 curves differ in shape: {a.shape} vs {b.shape}")
    vf = a[:, 0]
    scale = vf * (1 - vf)
    keep = scale > 1e-12
    if not keep.any():
        return math.nan
    err = np.abs(a[keep] - b[keep]).mean(axis=1) / scale[keep]
    return float(err.mean())
