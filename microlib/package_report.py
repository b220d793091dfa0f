"""The dataset's summary for the run report: 2D vs 3D statistics of every entry.

MicroLib's Figure 4 plots, for every entry, the volume fraction and the surface area
measured on the 2D training image against the same on the generated 3D volume; points
on the diagonal are entries whose volume reproduces the micrograph. This module draws
that figure as a self-contained SVG (no plotting library needed) and an HTML table of
the excluded ids; both are pure functions of the metrics and records.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from microlib.dataset.read import clean_text


def summary_points(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The figure's data from each entry's ``metrics/{name}.json``.

    Parameters
    ----------
    metrics : mapping
        ``{name: metrics dict}``.

    Returns
    -------
    dict
        ``vf`` and ``surface``: lists of ``(name, 2D value, 3D value)`` (one volume-fraction
        point per phase); ``vf_mean_pct_error`` and ``surface_mean_pct_error``: the means
        over entries of the per-entry % errors (None when no entry has them).
    """
    vf: list[tuple[str, float, float]] = []
    surface: list[tuple[str, float, float]] = []
    vf_err: list[float] = []
    sa_err: list[float] = []
    for name, m in sorted(metrics.items()):
        for phase in m.get("phases") or []:
            if phase.get("vf_2d") is not None and phase.get("vf_3d") is not None:
                vf.append((name, float(phase["vf_2d"]), float(phase["vf_3d"])))
        sad = m.get("surface_area_density") or {}
        if sad.get("2d") is not None and sad.get("3d") is not None:
            surface.append((name, float(sad["2d"]), float(sad["3d"])))
        summary = m.get("summary") or {}
        if summary.get("vf_mean_abs_pct_error") is not None:
            vf_err.append(float(summary["vf_mean_abs_pct_error"]))
        if summary.get("surface_area_pct_error") is not None:
            sa_err.append(float(summary["surface_area_pct_error"]))
    return {
        "vf": vf,
        "surface": surface,
        "vf_mean_pct_error": sum(vf_err) / len(vf_err) if vf_err else None,
        "surface_mean_pct_error": sum(sa_err) / len(sa_err) if sa_err else None,
        "n_entries": len(metrics),
    }


def _panel(
    points: list[tuple[str, float, float]], x0: float, title: str, unit: str, size: float
) -> list[str]:
    """One square scatter panel (2D on x, 3D on y, the diagonal drawn) at ``x0``."""
    pad, top = 50.0, 40.0
    hi = max([max(a, b) for _, a, b in points], default=1.0) * 1.1 or 1.0
    scale = (size - pad - 10) / hi

    def xy(a: float, b: float) -> tuple[float, float]:
        return x0 + pad + a * scale, top + (size - pad - 10) - b * scale

    ax0, ay0 = xy(0, 0)
    ax1, ay1 = xy(hi, hi)
    out = [
        f'<text x="{x0 + size / 2:.1f}" y="20" text-anchor="middle" font-size="14">'
        f"{html.escape(title)}</text>",
        f'<rect x="{ax0:.1f}" y="{ay1:.1f}" width="{ax1 - ax0:.1f}" height="{ay0 - ay1:.1f}"'
        ' fill="none" stroke="#444"/>',
        f'<line x1="{ax0:.1f}" y1="{ay0:.1f}" x2="{ax1:.1f}" y2="{ay1:.1f}"'
        ' stroke="#999" stroke-dasharray="4 3"/>',
        f'<text x="{(ax0 + ax1) / 2:.1f}" y="{ay0 + 30:.1f}" text-anchor="middle"'
        f' font-size="12">2D training image {html.escape(unit)}</text>',
        f'<text x="{ax0 - 36:.1f}" y="{(ay0 + ay1) / 2:.1f}" text-anchor="middle" font-size="12"'
        f' transform="rotate(-90 {ax0 - 36:.1f} {(ay0 + ay1) / 2:.1f})">3D volume'
        f" {html.escape(unit)}</text>",
        f'<text x="{ax0 - 4:.1f}" y="{ay0 + 4:.1f}" text-anchor="end" font-size="10">0</text>',
        f'<text x="{ax1:.1f}" y="{ay0 + 14:.1f}" text-anchor="end" font-size="10">{hi:.3g}</text>',
        f'<text x="{ax0 - 4:.1f}" y="{ay1 + 8:.1f}" text-anchor="end" font-size="10">{hi:.3g}</text>',
    ]
    for name, a, b in points:
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        px, py = xy(a, b)
        out.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="#1f77b4" fill-opacity="0.7">'
            f"<title>{html.escape(name)}: 2D {a:.4g}, 3D {b:.4g}</title></circle>"
        )
    return out


def summary_svg(points: Mapping[str, Any]) -> str:
    """MicroLib's Figure 4 for this dataset: volume fraction and surface area, 2D vs 3D."""
    size = 360.0

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f} %"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * size:.0f}" height="{size + 70:.0f}"'
        f' viewBox="0 0 {2 * size:.0f} {size + 70:.0f}" font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        *_panel(list(points["vf"]), 0.0, "Volume fraction (each phase)", "", size),
        *_panel(list(points["surface"]), size, "Surface area density", "(1/px)", size),
        f'<text x="{size:.1f}" y="{size + 55:.1f}" text-anchor="middle" font-size="13">'
        f"{points['n_entries']} entries; mean volume-fraction error"
        f" {pct(points['vf_mean_pct_error'])}, mean surface-area error"
        f" {pct(points['surface_mean_pct_error'])}</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def excluded_html(excluded: Mapping[str, Mapping[str, Any]]) -> str:
    """A self-contained HTML table of the excluded ids and their reasons (text escaped)."""
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(str(ident)),
            html.escape(clean_text(str(info.get("name", "")))),
            html.escape(str(info.get("stage", ""))),
            html.escape(clean_text("; ".join(map(str, info.get("reasons") or [])))),
        )
        for ident, info in sorted(excluded.items())
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Excluded entries'
        "</title><style>body{font-family:sans-serif}td,th{border:1px solid #ccc;"
        "padding:.2em .5em;text-align:left}table{border-collapse:collapse}</style></head>"
        f"<body><h1>Excluded entries ({len(excluded)})</h1><table><tr><th>id</th><th>name</th>"
        f"<th>stage</th><th>reasons</th></tr>{rows}</table></body></html>\n"
    )
