"""Rows, means and the montage of ``microlib bench fidelity``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from microlib import io as mio

#: MicroLib's reported mean errors over its library (percent), printed beside ours.
MICROLIB_REPORTED = {"vf_pct": 4.7, "sa_pct": 4.3}

_COLS = [
    ("vf_pts", "vf pts", "{:7.2f}"),
    ("vf_pct", "vf %", "{:7.1f}"),
    ("sa_pct", "SA %", "{:7.1f}"),
    ("sa_raw_pct", "SAraw %", "{:7.1f}"),
    ("s2_err", "S2 err", "{:7.3f}"),
    ("aniso_3d", "aniso3D", "{:7.2f}"),
    ("orient_3d", "orient3D", "{:8.2f}"),
    ("cb_ratio", "cb 3/2D", "{:7.2f}"),
    ("lattice_ratio", "lat 3/2D", "{:8.2f}"),
    ("train_s", "train s", "{:7.1f}"),
    ("scale", "scale", "{:7.0f}"),
]
HEADER = f"  {'entry / candidate':<28}" + " ".join(f"{h:>7}" for _, h, _ in _COLS)


def row(name: str, rec: dict) -> str:
    return f"  {name:<28}" + " ".join(f.format(rec.get(k, math.nan)) for k, _, f in _COLS)


def tile(a: np.ndarray, kind: str, edge: int) -> np.ndarray:
    a = np.asarray(a)[:edge, :edge]
    if kind == "nphase":
        top = max(int(a.max()), 1)
        a = (a.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    pad = np.full((edge + 4, edge + 4), 255, np.uint8)
    pad[2 : 2 + a.shape[0], 2 : 2 + a.shape[1]] = a
    return pad


def _mean(values: list[float]) -> float:
    """Mean of the values that are not nan (a column only grey entries fill is nan
    elsewhere); an infinite anisotropy keeps the mean infinite."""
    known = [v for v in values if not math.isnan(v)]
    return float(np.mean(known)) if known else math.nan


def means(recs: list[dict]) -> dict[str, float]:
    """Each column's mean over records (entries, or one entry's seeds)."""
    return {k: _mean([r.get(k, math.nan) for r in recs]) for k, _, _ in _COLS}


def seed_mean(runs: list[dict]) -> dict:
    """One entry's record over several training seeds: the columns' means, the runs kept."""
    return {"entry": runs[0]["entry"], "kind": runs[0]["kind"], **means(runs), "seeds": runs}


def largest_anisotropy(recs: list[dict]) -> str:
    """The entry with the largest 3D anisotropy (a mean over seeds where there are several),
    and the largest single run's."""
    worst = max(recs, key=lambda r: r["aniso_3d"])
    text = f"{worst['aniso_3d']:.3f} ({worst['entry']})"
    runs = [(run, r["entry"]) for r in recs for run in r.get("seeds", [])]
    if runs:
        run, name = max(runs, key=lambda t: t[0]["aniso_3d"])
        text += f"; single run {run['aniso_3d']:.3f} ({name}, seed {run['seed']})"
    return text


def save(out: Path, labels: dict[str, str], results: dict, montage_rows: list) -> None:
    """Rewrite ``results.json`` (per-entry records and means) and ``montage.png``."""
    doc = {
        "candidates": labels,
        "microlib_reported": MICROLIB_REPORTED,
        "results": results,
        "means": {name: means(recs) for name, recs in results.items()},
    }
    mio.write_json(out / "results.json", doc)
    mio.write_png(out / "montage.png", np.block(montage_rows))
