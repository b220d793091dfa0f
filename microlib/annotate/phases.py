"""Data type and phases: colour, n-phase or grayscale, and the thresholds between phases.

Replaces MicroLib's ``len(np.unique(img)) == 2`` rule and its hand-clicked phase grey
levels (:func:`decide_data_type`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from microlib.annotate.illumination import illumination_field
from microlib.annotate.params import TypeParams
from microlib.datatypes import nphase_type
from microlib.image import grey_histogram, masked_values, to_grey


def chroma_score(image: np.ndarray, mask: np.ndarray | None = None, bins: int = 256) -> float:
    """Colour that a grey level cannot explain, as an RMS in grey levels.

    The chroma (``R - G``, ``B - G``) is compared with its mean at the same luminance:
    a grey image, a tinted grey image and a false-colour rendering (such as a viridis
    map, where colour is a function of the grey value) all score about 0; a stained
    micrograph whose phases differ in hue at equal brightness scores high.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` (scores 0) or ``(H, W, 3)``.
    mask : ndarray of bool, optional
        Pixels to ignore (scale bar).
    bins : int
        Luminance bins.

    Returns
    -------
    float
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        return 0.0
    rgb = arr[..., :3].astype(np.float64)
    keep = np.ones(rgb.shape[:2], bool) if mask is None else ~mask
    rgb = rgb[keep]
    if rgb.shape[0] < 16:
        return 0.0
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    c = np.stack([rgb[:, 0] - rgb[:, 1], rgb[:, 2] - rgb[:, 1]], axis=1)
    idx = np.clip((lum / 256.0 * bins).astype(int), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins).astype(np.float64)
    resid2 = 0.0
    for j in range(2):
        sums = np.bincount(idx, weights=c[:, j], minlength=bins)
        means = np.divide(sums, counts, out=np.zeros(bins), where=counts > 0)
        resid2 += float(np.mean((c[:, j] - means[idx]) ** 2))
    return float(math.sqrt(resid2))


def _class_stats(
    hist: np.ndarray, thresholds: list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and variances of the classes a histogram splits into.

    A grey level ``g`` belongs to class ``np.digitize(g, thresholds)`` (values equal to a
    threshold go up), the rule the segment stage applies.
    """
    levels = np.arange(256, dtype=np.float64)
    cls = np.digitize(levels, np.asarray(thresholds, dtype=np.float64))
    k = len(thresholds) + 1
    total = hist.sum()
    w = np.array([hist[cls == i].sum() for i in range(k)]) / max(total, 1.0)
    mu = np.zeros(k)
    var = np.zeros(k)
    for i in range(k):
        hi = hist[cls == i]
        li = levels[cls == i]
        s = hi.sum()
        if s > 0:
            mu[i] = (hi * li).sum() / s
            var[i] = (hi * (li - mu[i]) ** 2).sum() / s
    return w, mu, var


def separability(hist: np.ndarray, thresholds: list[float]) -> float:
    """Between-class over total variance of a 256-bin histogram split at ``thresholds``.

    1 means the classes are single grey levels; a single Gaussian split in two scores
    2/pi = 0.64, a uniform histogram 0.75.
    """
    levels = np.arange(256, dtype=np.float64)
    total = hist.sum()
    if total <= 0:
        return 0.0
    mean = (hist * levels).sum() / total
    var_t = (hist * (levels - mean) ** 2).sum() / total
    if var_t <= 0:
        return 0.0
    w, mu, _ = _class_stats(hist, thresholds)
    var_b = float((w * (mu - mean) ** 2).sum())
    return float(min(1.0, var_b / var_t))


def otsu_thresholds(hist: np.ndarray, classes: int) -> list[float]:
    """Multi-Otsu thresholds of a 256-bin histogram, as ``np.digitize`` edges (ascending).

    Fewer distinct grey levels than ``classes`` give cuts between the levels present.
    """
    from skimage.filters import threshold_multiotsu

    levels = np.arange(256, dtype=np.float64)
    nz = np.nonzero(hist)[0]
    if len(nz) < classes:
        # fewer distinct levels than classes: cut between the levels present
        if len(nz) < 2:
            return []
        return [float((nz[i] + nz[i + 1]) / 2.0 + 0.5) for i in range(len(nz) - 1)][: classes - 1]
    # skimage's multi-Otsu works on (values, counts); thresholds are the last level of a class
    th = threshold_multiotsu(
        hist=(hist[nz[0] : nz[-1] + 1], levels[nz[0] : nz[-1] + 1]), classes=classes
    )
    # as a digitize edge: values > th belong to the upper class
    return [float(t) + 0.5 for t in np.atleast_1d(th)]


def refine_thresholds(
    hist: np.ndarray, thresholds: list[float], iterations: int = 10, smooth: float = 2.0
) -> list[float]:
    """Move thresholds to the midpoints between the phases' modal grey levels.

    Optical blur spreads every phase boundary symmetrically between the two grey
    levels, so the boundary's true position is where the grey value crosses the
    midpoint between the phases' levels (which is also MicroLib's rule: thresholds are
    midpoints between the clicked phase grey levels). The modes of the (slightly
    smoothed) histogram within each class estimate those levels without the bias that
    boundary pixels give a class mean; plain Otsu drifts towards the smaller phase when
    fractions differ. Iterated from the Otsu start until stable.
    """
    th = sorted(float(t) for t in thresholds)
    if not th:
        return th
    for _ in range(iterations):
        modes = class_modes(hist, th, smooth)
        if modes is None:
            break
        new = [(modes[i] + modes[i + 1]) / 2.0 + 0.5 for i in range(len(th))]
        if any(b <= a for a, b in zip(new[:-1], new[1:], strict=True)):
            break
        if all(abs(a - b) < 0.25 for a, b in zip(new, th, strict=True)):
            th = new
            break
        th = new
    return [round(v, 3) for v in th]


def class_modes(
    hist: np.ndarray, thresholds: list[float], smooth: float = 2.0
) -> list[float] | None:
    """Modal grey level of each class of a 256-bin histogram split at ``thresholds``.

    Each class's part of the histogram is smoothed on its own (no leakage of a large
    neighbouring peak across the threshold). None when a class is empty.
    """
    levels = np.arange(256, dtype=np.float64)
    cls = np.digitize(levels, np.asarray(thresholds, dtype=np.float64))
    modes = []
    for i in range(len(thresholds) + 1):
        sel = cls == i
        part = np.asarray(hist, dtype=np.float64)[sel]
        if part.size == 0 or part.max() <= 0:
            return None
        if smooth:
            part = ndimage.gaussian_filter1d(part, smooth, mode="constant")
        modes.append(float(levels[sel][int(np.argmax(part))]))
    return modes


def interior_pixels(
    grey: np.ndarray, mask: np.ndarray | None = None, keep: float = 0.5
) -> np.ndarray:
    """The flattest ``keep`` fraction of the pixels (smallest smoothed gradient).

    Phase boundaries, whose blurred grey levels fill the histogram between the phases,
    are left out, so the separability of a blurred n-phase image approaches 1 while a
    continuous texture, whose flat regions still span every grey level, stays low.
    """
    g = ndimage.gaussian_filter(np.asarray(grey, dtype=np.float64), 1.0)
    gm = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1))
    valid = np.ones(g.shape, bool) if mask is None else ~ndimage.binary_dilation(mask, iterations=2)
    if valid.sum() < 16:
        valid = np.ones(g.shape, bool)
    cut = np.percentile(gm[valid], 100.0 * keep)
    return valid & (gm <= cut)


def _split_scores(
    hist: np.ndarray, max_phases: int
) -> tuple[dict[int, list[float]], dict[str, float]]:
    seps: dict[str, float] = {}
    splits: dict[int, list[float]] = {}
    for k in range(2, max(2, min(4, int(max_phases))) + 1):
        th = otsu_thresholds(hist, k)
        if len(th) != k - 1:
            break
        splits[k] = th
        seps[str(k)] = round(separability(hist, th), 5)
    return splits, seps


def decide_data_type(
    image: np.ndarray, mask: np.ndarray | None = None, params: TypeParams | None = None
) -> dict[str, Any]:
    """Decide colour / n-phase / grayscale and, for n-phase, the thresholds.

    Colour when an RGB image has genuine chroma (:func:`chroma_score`); otherwise the
    luminance histogram of the image's flat half (:func:`interior_pixels`, so blurred
    phase boundaries do not count), after flat-field correction
    (:func:`illumination_field`), is split by multi-Otsu into k = 2..``max_phases``
    classes and the separability (between-class over total variance) of each split
    decides. A split is
    acceptable when its separability reaches ``1 - (1 - sep2_min) / (k - 1)^2`` (the
    same within-class variance per class) and every phase covers
    ``min_phase_fraction``; the smallest acceptable k wins unless a larger acceptable k
    shrinks the within-class variance by ``sep_gain_min``. No acceptable split: the image
    is kept as grayscale (a continuous texture a scientist would not threshold).
    This replaces MicroLib's ``len(np.unique(img)) == 2`` rule, which turns colour and
    three-phase images into grayscale silently.

    Parameters
    ----------
    image : ndarray
        Cropped ``(H, W)`` or ``(H, W, 3)`` image.
    mask : ndarray of bool, optional
        Pixels to ignore (scale bar).
    params : TypeParams, optional

    Returns
    -------
    dict
        ``data_type``, ``n_phases``, ``thresholds`` (digitize edges, ascending; empty for
        grayscale/colour), ``grey_values`` and ``fractions`` per phase, and ``scores``
        (``chroma``, ``separability`` per class count, ``gain``).
    """
    p = params or TypeParams()
    chroma = chroma_score(image, mask)
    grey = to_grey(image)
    values = masked_values(grey, mask)
    hist = grey_histogram(values)
    splits, seps = _split_scores(hist, p.max_phases)
    inner = interior_pixels(grey, mask)
    in_hist = grey_histogram(grey[inner])
    # an illumination gradient smears every phase's grey level and would turn a
    # two-phase image into "grayscale"; the decision is made after removing drift
    # *within* phases (segmented or evenly lit images are unchanged). Even exposure is
    # judged separately, by its own filter.
    illum = None
    if p.flat_field and 2 in splits:
        illum = illumination_field(grey, otsu_thresholds(in_hist, 2) or splits[2], mask)
    flat = grey if illum is None else grey - illum
    valid = np.ones(grey.shape, bool) if mask is None else ~mask
    # two views of the histogram: every pixel (exact for segmented images) and the flat
    # half (blurred boundaries left out); per class count the better split decides
    views = [grey_histogram(flat[valid]), grey_histogram(flat[inner])]
    dec_splits: dict[int, list[float]] = {}
    dec_seps: dict[str, float] = {}
    dec_hists: dict[int, np.ndarray] = {}
    for hv in views:
        sp, se = _split_scores(hv, p.max_phases)
        for k, th_k in sp.items():
            if se[str(k)] > dec_seps.get(str(k), -1.0):
                dec_splits[k], dec_seps[str(k)], dec_hists[k] = th_k, se[str(k)], hv
    dec_seps = dict(sorted(dec_seps.items()))
    scores: dict[str, Any] = {
        "chroma": round(chroma, 3),
        "separability": dec_seps,
        "separability_all_pixels": seps,
        "gain": {},
    }
    if illum is not None:
        scores["illumination_range"] = round(float(np.ptp(illum)), 3)
    out: dict[str, Any] = {"scores": scores}
    is_colour = np.asarray(image).ndim == 3 and chroma >= p.chroma_min
    n = 1
    if not is_colour:
        for k in sorted(dec_splits):
            w, _, _ = _class_stats(dec_hists[k], dec_splits[k])
            # k classes always fit better than k-1: the bar rises with k so that the
            # within-class variance allowed per class stays the same
            need = 1.0 - (1.0 - p.sep2_min) / (k - 1) ** 2
            scores.setdefault("required", {})[str(k)] = round(need, 5)
            if dec_seps[str(k)] < need or w.min() < p.min_phase_fraction:
                continue
            if n == 1:
                n = k
                continue
            e_n, e_k = 1.0 - dec_seps[str(n)], 1.0 - dec_seps[str(k)]
            gain = 1.0 if e_n <= 1e-9 else (1e6 if e_k <= 1e-12 else e_n / e_k)
            scores["gain"][f"{n}->{k}"] = round(min(gain, 1e6), 4)
            if gain >= p.sep_gain_min:
                n = k
    if is_colour:
        out.update(data_type="colour", n_phases=3, thresholds=[], grey_values=None, fractions=None)
        return out
    if n == 1:
        out.update(
            data_type="grayscale", n_phases=1, thresholds=[], grey_values=None, fractions=None
        )
        return out
    # thresholds on the raw grey levels: the segment stage thresholds the raw image
    th = otsu_thresholds(dec_hists[n], n) or splits.get(n) or dec_splits[n]
    if p.refine:
        th = refine_thresholds(hist, th)
    stats = phase_stats(grey, th, mask)
    dtype = nphase_type(n)
    out.update(data_type=dtype, n_phases=n, thresholds=[round(float(t), 3) for t in th], **stats)
    return out


def phase_stats(
    grey: np.ndarray, thresholds: list[float], mask: np.ndarray | None = None
) -> dict[str, list]:
    """Grey mean and area fraction of each phase for given thresholds (mask excluded)."""
    values = masked_values(np.asarray(grey, dtype=np.float64), mask)
    labels = np.digitize(values, np.asarray(thresholds, dtype=np.float64))
    k = len(thresholds) + 1
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.bincount(labels, weights=values, minlength=k)
    means = np.divide(sums, counts, out=np.zeros(k), where=counts > 0)
    return {
        "grey_values": [round(float(m), 2) for m in means],
        "fractions": [round(float(c / max(counts.sum(), 1)), 5) for c in counts],
    }
