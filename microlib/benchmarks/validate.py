"""``microlib bench validate``: two-point correlation + surface area density on a large
volume, ``microlib.validate`` vs a straightforward NumPy reference measured in the same
run (float64 shifted products per phase, axis and lag; ``!=`` counts for the faces).

Prints both times, their ratio and the largest difference between the two results
(they compute the same non-periodic quantities, so it should be ~1e-16).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from microlib import validate as V

HELP = "S2/surface-area implementation vs a straightforward reference on a 320^3 volume"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=320, help="volume edge (default 320)")
    parser.add_argument("--phases", type=int, default=3, help="phases of the synthetic volume")
    parser.add_argument("--max-lag", type=int, default=32, help="lags 0..R (default 32)")
    parser.add_argument("--seed", type=int, default=0)


def synthetic_volume(size: int, n_phases: int, seed: int = 0) -> np.ndarray:
    """Blobby n-phase volume: smoothed noise cut at equal-fraction quantiles."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((size,) * 3, dtype=np.float32), 3.0)
    cuts = np.quantile(f[::4, ::4, ::4], np.linspace(0, 1, n_phases + 1)[1:-1])
    return np.digitize(f, cuts).astype(np.uint8)


def reference(labels: np.ndarray, n_phases: int, max_lag: int) -> tuple[np.ndarray, float]:
    """The textbook computation: one float64 product mean per phase, axis and lag."""
    s2 = np.zeros((n_phases, labels.ndim, max_lag + 1))
    for k in range(n_phases):
        ind = (labels == k).astype(np.float64)
        for axis in range(labels.ndim):
            a = np.moveaxis(ind, axis, 0)
            s2[k, axis, 0] = a.mean()
            for lag in range(1, max_lag + 1):
                s2[k, axis, lag] = np.mean(a[:-lag] * a[lag:])
    diff = total = 0
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        diff += int(np.count_nonzero(a[1:] != a[:-1]))
        total += a[1:].size
    return s2, diff / total


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    vol = synthetic_volume(args.size, args.phases, args.seed)
    print(
        f"# bench validate: {args.size}^3 volume, {args.phases} phases, lags 0..{args.max_lag} "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    t0 = time.perf_counter()
    s2 = V.two_point_correlation(vol, args.phases, args.max_lag)
    t_s2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    sa = V.surface_area_density(vol, args.phases)["total"]
    t_sa = time.perf_counter() - t0
    t_ours = t_s2 + t_sa
    print(f"microlib.validate: S2 {t_s2:.2f} s + surface {t_sa:.2f} s = {t_ours:.2f} s")
    t0 = time.perf_counter()
    s2_ref, sa_ref = reference(vol, args.phases, args.max_lag)
    t_ref = time.perf_counter() - t0
    print(f"reference:         {t_ref:.2f} s")
    print(
        f"speed-up: {t_ref / t_ours:.1f}x   max |S2 difference| {np.abs(s2 - s2_ref).max():.2e}   "
        f"|surface difference| {abs(sa - sa_ref):.2e}"
    )
    return 0
