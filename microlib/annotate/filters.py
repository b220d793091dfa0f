"""Per-image exclusion filters: scores, thresholds, verdicts and their reasons.

MicroLib's criteria (Kench et al. 2022) measurable on one image: isotropy, feature
representativity, even exposure and image quality. :func:`filter_scores` measures,
:func:`evaluate_filters` judges; the scores are stored in the annotation so the
selection checkpoint can re-judge with other thresholds (:func:`scores_from_filters`,
:func:`thresholds_from_filters`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from microlib.annotate.illumination import illumination_field, trend_score
from microlib.annotate.params import FilterThresholds
from microlib.annotate.quality import blur_score, edge_width, jpeg_blockiness, noise_sigma
from microlib.annotate.texture import autocorrelation, correlation_lengths
from microlib.image import masked_values, to_grey

FILTERS = ("isotropy", "representativity", "exposure", "quality")
QUALITY_COMPONENTS = ("resolution", "edge_width", "blur", "contrast", "noise", "jpeg")


def analysis_image(
    image: np.ndarray, typed: dict[str, Any], mask: np.ndarray | None = None
) -> np.ndarray:
    """The field whose statistics the filters measure.

    n-phase: the phase labels mapped to their grey values (the field SliceGAN will be
    trained on, free of grey-level noise); grayscale/colour: the luminance.
    """
    grey = to_grey(image)
    if typed.get("thresholds"):
        lab = np.digitize(grey, np.asarray(typed["thresholds"]))
        vals = np.asarray(typed["grey_values"], dtype=np.float64)
        return vals[lab]
    return grey


def filter_scores(
    image: np.ndarray,
    typed: dict[str, Any],
    mask: np.ndarray | None = None,
    raw_grey: np.ndarray | None = None,
) -> dict[str, Any]:
    """Scores of the per-image exclusion filters (no thresholds applied).

    Parameters
    ----------
    image : ndarray
        Cropped image.
    typed : dict
        Output of :func:`decide_data_type` (or the curated equivalent).
    mask : ndarray of bool, optional
        Scale-bar pixels to ignore.
    raw_grey : ndarray, optional
        Uncropped luminance (JPEG blockiness is measured on the raw block grid).

    Returns
    -------
    dict
        ``isotropy``, ``representativity``, ``exposure`` (scores) with ``detail`` dicts,
        ``quality`` components, plus ``acf`` (the autocorrelation, for the fingerprint).
    """
    grey = to_grey(image)
    h, w = grey.shape
    field = analysis_image(image, typed, mask)
    max_lag = int(min(h, w) // 2)
    acf = autocorrelation(field, mask, max_lag=max_lag)
    noisy = not typed.get("thresholds")
    if np.isfinite(acf[acf.shape[0] // 2, acf.shape[1] // 2]):
        cl = correlation_lengths(acf, noise_correct=noisy)
        iso = cl["major"] / max(cl["minor"], 1e-6)
        # the longest directional length: conservative for elongated features
        rep = min(h, w) / max(cl["longest"], 1e-6)
    else:  # a constant image has no correlation structure at all
        cl = {
            "x": None,
            "y": None,
            "major": None,
            "minor": None,
            "longest": None,
            "angle_deg": None,
            "censored": True,
        }
        iso, rep = float("nan"), 0.0
    trend = trend_score(grey, mask, typed.get("thresholds") or None)
    values = masked_values(grey, mask)
    p1, p99 = np.percentile(values, [1, 99]) if values.size else (0.0, 0.0)
    contrast = float(p99 - p1)
    sigma = noise_sigma(grey, typed.get("thresholds") or None)
    phased = bool(typed.get("thresholds"))
    # sharpness: for phases, the measured width of the phase boundaries; without phases,
    # a no-reference blur score (content-dependent: smooth textures score higher)
    # (after flat-field correction: an illumination drift moves the phases' grey levels
    # and would read as wide transitions)
    ew = (
        edge_width(
            grey - illumination_field(grey, typed["thresholds"], mask), typed["thresholds"], mask
        )
        if phased
        else None
    )
    quality = {
        "resolution": float(min(h, w)),
        "edge_width": (round(ew, 4) if ew is not None and math.isfinite(ew) else float("nan"))
        if phased
        else None,
        "blur": None if phased else round(blur_score(grey), 4),
        "contrast": round(contrast, 3),
        "noise": round(sigma / contrast, 4) if contrast > 1e-6 else float("inf"),
        "jpeg": round(jpeg_blockiness(raw_grey if raw_grey is not None else grey), 4),
    }
    ratio_xy = (cl["x"] / cl["y"]) if cl.get("x") and cl.get("y") else None
    return {
        "isotropy": {
            "score": round(iso, 4) if np.isfinite(iso) else float("nan"),
            "detail": {
                "corr_len_px": cl,
                "ratio_x_over_y": round(ratio_xy, 4) if ratio_xy else None,
            },
        },
        "representativity": {
            "score": round(rep, 3),
            "detail": {"longest_corr_len_px": cl.get("longest"), "short_side_px": int(min(h, w))},
        },
        "exposure": {
            "score": trend["score"],
            "detail": {
                "trend_range": trend["trend_range"],
                "contrast": trend["contrast"],
                "smooth_share": trend["smooth_share"],
            },
        },
        "quality": {"components": quality, "detail": {"noise_sigma": round(sigma, 3)}},
        "acf": acf,
    }


# thresholds: filter -> (attribute, comparison, phrase used in reasons)
FILTER_RULES = {
    "isotropy": ("iso_max", "<=", "correlation-length ratio"),
    "representativity": ("repr_min", ">=", "field of view in correlation lengths"),
    "exposure": ("exposure_max", "<=", "illumination trend as a fraction of contrast"),
}
QUALITY_RULES = {
    "resolution": ("min_size_px", ">=", "shorter side (px)"),
    "edge_width": ("edge_width_max", "<=", "phase-boundary blur (Gaussian sigma, px)"),
    "blur": ("blur_max", "<=", "blur score"),
    "contrast": ("contrast_min", ">=", "contrast p99-p1 (grey levels)"),
    "noise": ("noise_max", "<=", "noise sigma as a fraction of contrast"),
    "jpeg": ("jpeg_max", "<=", "JPEG blockiness"),
}
_REASON_PHRASES = {
    "isotropy": "correlation-length ratio {s:.2f} {op} {t:.2f}",
    "representativity": "field of view {s:.1f} correlation lengths {op} {t:.1f}",
    "exposure": "illumination trend {s:.2f} of contrast {op} {t:.2f}",
    "resolution": "shorter side {s:.0f} px {op} {t:.0f} px",
    "edge_width": "phase boundaries blurred over sigma {s:.1f} px {op} {t:.1f} px",
    "blur": "blur score {s:.2f} {op} {t:.2f}",
    "contrast": "contrast {s:.0f} grey levels {op} {t:.0f}",
    "noise": "noise {s:.2f} of contrast {op} {t:.2f}",
    "jpeg": "JPEG blockiness {s:.2f} {op} {t:.2f}",
}


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))


def _passes(score: Any, comparison: str, threshold: float) -> bool | None:
    if not _finite(score):
        return False
    return float(score) <= threshold if comparison == "<=" else float(score) >= threshold


def _fail_phrase(name: str, score: Any, comparison: str, threshold: float) -> str:
    if not _finite(score):
        return "could not be measured" if name in FILTER_RULES else f"{name} could not be measured"
    op = ">" if comparison == "<=" else "<"
    return _REASON_PHRASES[name].format(s=float(score), op=op, t=float(threshold))


def _json_number(x: Any) -> float | None:
    return round(float(x), 6) if _finite(x) else None


def evaluate_filters(
    scores: dict[str, Any], thresholds: FilterThresholds
) -> tuple[dict[str, Any], list[str]]:
    """Apply thresholds to filter scores.

    Parameters
    ----------
    scores : dict
        ``{filter: {"score": ..., "detail": ...}}`` and ``quality: {"components": ...}``
        as produced by :func:`filter_scores` (or read back from an annotation).
    thresholds : FilterThresholds

    Returns
    -------
    filters : dict
        Per filter: ``score``, ``threshold``, ``comparison``, ``passed``, ``detail``;
        quality also has ``components`` (each with its own score/threshold/passed) and
        its ``score`` is the worst component relative to its limit (passes at <= 1).
    reasons : list of str
        One human-readable line per failed filter, e.g.
        ``"exposure: illumination trend 0.41 of contrast > 0.25"``.
    """
    filters: dict[str, Any] = {}
    reasons: list[str] = []
    rep_score = (scores.get("representativity") or {}).get("score")
    rep_ok = _passes(rep_score, ">=", float(thresholds.repr_min))
    for name, (attr, comp, _) in FILTER_RULES.items():
        entry = scores.get(name, {})
        s = entry.get("score")
        t = float(getattr(thresholds, attr))
        ok = _passes(s, comp, t)
        filters[name] = {
            "score": _json_number(s),
            "threshold": t,
            "comparison": comp,
            "passed": bool(ok),
            "assessed": True,
            "detail": entry.get("detail", {}),
        }
        if name == "isotropy" and not rep_ok:
            # with only a few correlation lengths in view the lengths' ratio is noise:
            # isotropy cannot be judged (representativity already excludes the image)
            filters[name].update(passed=None, assessed=False)
            continue
        if not ok:
            reasons.append(f"{name}: {_fail_phrase(name, s, comp, t)}")
    comps = (scores.get("quality") or {}).get("components", {})
    qcomp: dict[str, Any] = {}
    worst = 0.0
    failed = []
    for name, (attr, comp, _) in QUALITY_RULES.items():
        s = comps.get(name)
        if isinstance(s, dict):  # read back from an annotation
            s = s.get("score")
        t = float(getattr(thresholds, attr))
        if s is None:  # not applicable to this data type
            qcomp[name] = {
                "score": None,
                "threshold": t,
                "comparison": comp,
                "passed": None,
                "applicable": False,
            }
            continue
        ok = _passes(s, comp, t)
        if _finite(s):
            v = float(s)
            bad = (v / t if comp == "<=" else (t / v if v > 0 else 1e6)) if t > 0 else 0.0
        else:
            bad = 1e6
        worst = max(worst, bad)
        qcomp[name] = {
            "score": _json_number(s),
            "threshold": t,
            "comparison": comp,
            "passed": bool(ok),
            "applicable": True,
        }
        if not ok:
            failed.append(_fail_phrase(name, s, comp, t))
    filters["quality"] = {
        "score": round(min(worst, 1e6), 4),
        "threshold": 1.0,
        "comparison": "<=",
        "passed": not failed,
        "assessed": True,
        "components": qcomp,
        "detail": (scores.get("quality") or {}).get("detail", {}),
    }
    if failed:
        reasons.append("quality: " + "; ".join(failed))
    return filters, reasons


def scores_from_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`evaluate_filters`: the raw scores stored in an annotation.

    A stored ``null`` score is NaN (could not be measured, fails) unless the component
    is marked not applicable (None, skipped).
    """
    out: dict[str, Any] = {}
    for name in FILTER_RULES:
        f = filters.get(name) or {}
        s = f.get("score")
        out[name] = {"score": float("nan") if s is None else s, "detail": f.get("detail", {})}
    comps = (filters.get("quality") or {}).get("components", {})
    qc: dict[str, Any] = {}
    for k, v in comps.items():
        v = v or {}
        if v.get("applicable") is False:
            qc[k] = None
        else:
            qc[k] = float("nan") if v.get("score") is None else v["score"]
    out["quality"] = {"components": qc, "detail": (filters.get("quality") or {}).get("detail", {})}
    return out


def thresholds_from_filters(
    filters: dict[str, Any], base: FilterThresholds | None = None
) -> FilterThresholds:
    """The thresholds an annotation was evaluated with (``base`` fills the gaps)."""
    values: dict[str, Any] = {}
    for name, (attr, _, _) in FILTER_RULES.items():
        t = (filters.get(name) or {}).get("threshold")
        if t is not None:
            values[attr] = t
    comps = (filters.get("quality") or {}).get("components", {})
    for name, (attr, _, _) in QUALITY_RULES.items():
        t = (comps.get(name) or {}).get("threshold")
        if t is not None:
            values[attr] = t
    return (base or FilterThresholds()).updated(values)
