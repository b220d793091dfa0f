"""How well a fill matches: statistics of a region and the error between two of them."""

from __future__ import annotations

from typing import Any

import numpy as np

from microlib.datatypes import NPHASE_TYPES


def region_statistics(
    image: np.ndarray, region: np.ndarray, *, data_type: str, n_phases: int, max_lag: int = 16
) -> dict:
    """Statistics of the pixels of ``region`` and how they join their surroundings.

    Used to judge an in-painting against the hidden truth (benchmark) or against the
    rest of the image (tests). Pairs of pixels count when at least one end lies in the
    region, so a visible seam along the region's border shows up as an error.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W)`` labels/grey or ``(H, W, 3)`` RGB (colour uses the channel mean).
    region : ndarray of bool, (H, W)
    max_lag : int
        Largest pixel separation of the two-point statistics.

    Returns
    -------
    dict
        n-phase: ``phase_fractions`` (n,), ``interface_density`` (fraction of
        neighbouring pairs with different labels), ``s2`` ((n, max_lag+1): probability
        that both ends of a pair at lag r are of phase k, mean of the x and y axes).
        grey/colour: ``mean``, ``std``, ``histogram`` (32 bins, normalised),
        ``autocovariance`` ((max_lag+1,), normalised, mean of x and y),
        ``gradient_rms`` (root mean square grey difference of neighbouring pixels: the
        texture a blurred fill lacks and a noisy one overdoes).
    """
    r = np.asarray(region, dtype=bool)
    img = np.asarray(image)
    if img.ndim == 3:
        img = img.mean(axis=2)

    def pairs(a: np.ndarray, lag: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        if lag == 0:
            return a[r], a[r]
        sl_a = [slice(None)] * 2
        sl_b = [slice(None)] * 2
        sl_a[axis] = slice(None, -lag)
        sl_b[axis] = slice(lag, None)
        keep = r[tuple(sl_a)] | r[tuple(sl_b)]
        return a[tuple(sl_a)][keep], a[tuple(sl_b)][keep]

    out: dict[str, Any] = {"pixels": int(r.sum())}
    if data_type in NPHASE_TYPES:
        vals = img[r]
        out["phase_fractions"] = np.bincount(vals, minlength=n_phases)[:n_phases] / max(
            vals.size, 1
        )
        diff = [np.mean(u != v) for u, v in (pairs(img, 1, 0), pairs(img, 1, 1)) if u.size]
        out["interface_density"] = float(np.mean(diff)) if diff else 0.0
        s2 = np.zeros((n_phases, max_lag + 1))
        for lag in range(max_lag + 1):
            per_axis = []
            for axis in (0, 1):
                u, v = pairs(img, lag, axis)
                if u.size:
                    per_axis.append([np.mean((u == k) & (v == k)) for k in range(n_phases)])
            if per_axis:
                s2[:, lag] = np.mean(per_axis, axis=0)
        out["s2"] = s2
    else:
        vals = img[r].astype(np.float64)
        out["mean"] = float(vals.mean()) if vals.size else 0.0
        out["std"] = float(vals.std()) if vals.size else 0.0
        hist, _ = np.histogram(vals, bins=32, range=(0, 256))
        out["histogram"] = hist / max(hist.sum(), 1)
        full = img.astype(np.float64)
        mu, var = full.mean(), max(full.var(), 1e-12)
        ac = np.zeros(max_lag + 1)
        for lag in range(max_lag + 1):
            per_axis = [
                np.mean((u - mu) * (v - mu)) / var
                for u, v in (pairs(full, lag, 0), pairs(full, lag, 1))
                if u.size
            ]
            ac[lag] = np.mean(per_axis) if per_axis else 0.0
        out["autocovariance"] = ac
        sq = [((u - v) ** 2).ravel() for u, v in (pairs(full, 1, 0), pairs(full, 1, 1))]
        sq = np.concatenate(sq)
        out["gradient_rms"] = float(np.sqrt(sq.mean())) if sq.size else 0.0
    return out


def statistics_error(a: dict, b: dict) -> dict:
    """Absolute differences between two :func:`region_statistics` results.

    n-phase: ``phase_fraction`` (mean abs over phases), ``interface_density``,
    ``s2`` (mean abs over phases and lags). grey: ``mean``/``std`` (grey levels),
    ``histogram`` (Wasserstein-1 between the 32-bin histograms, in bins),
    ``autocovariance`` (mean abs over lags), ``gradient`` (abs difference of
    ``gradient_rms``, grey levels).
    """
    if "phase_fractions" in a:
        return {
            "phase_fraction": float(
                np.mean(np.abs(np.asarray(a["phase_fractions"]) - b["phase_fractions"]))
            ),
            "interface_density": abs(a["interface_density"] - b["interface_density"]),
            "s2": float(np.mean(np.abs(np.asarray(a["s2"]) - b["s2"]))),
        }
    return {
        "mean": abs(a["mean"] - b["mean"]),
        "std": abs(a["std"] - b["std"]),
        "histogram": float(np.abs(np.cumsum(a["histogram"]) - np.cumsum(b["histogram"])).sum()),
        "autocovariance": float(
            np.mean(np.abs(np.asarray(a["autocovariance"]) - b["autocovariance"]))
        ),
        "gradient": abs(a.get("gradient_rms", 0.0) - b.get("gradient_rms", 0.0)),
    }
