"""The scraped record's words: a summary, material similarity, and hints for a curator.

Metadata never decides a verdict on its own: similarity only gates the uniqueness
comparison (same material), hints only draw a person's attention.
"""

from __future__ import annotations

import re
from typing import Any

_META_ALIASES = {
    "brief_description": ("brief_description", "brief_descr", "brief", "title", "description"),
    "keywords": ("keywords", "keyword"),
    "categories": ("categories", "category"),
    "composition": ("composition", "element", "elements"),
    "technique": ("technique",),
    "further_information": ("further_information", "long_description", "long_desc", "further_info"),
    "contributor": ("contributor",),
    "organisation": ("organisation", "organization"),
}


def _norm_key(k: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(k).strip().lower())


def _as_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ", ".join(_as_text(x) for x in v if _as_text(x))
    if isinstance(v, dict):
        return _as_text(v.get("text") or v.get("value") or "")
    return " ".join(str(v).split())


def metadata_summary(meta: dict[str, Any] | None) -> dict[str, str]:
    """The record fields used by uniqueness and hints, from a scraped record dict.

    Tolerant of key spelling (``Brief description``, ``brief_description``,
    ``brief_descr``; ``element`` for composition, ...) and of nesting under
    ``record``/``metadata``/``fields``.
    """
    flat: dict[str, Any] = {}
    stack = [meta or {}]
    while stack:
        d = stack.pop()
        if not isinstance(d, dict):
            continue
        for k, v in d.items():
            nk = _norm_key(k)
            if nk in ("record", "metadata", "fields", "meta") and isinstance(v, dict):
                stack.append(v)
            elif nk not in flat:
                flat[nk] = v
    out = {}
    for field, aliases in _META_ALIASES.items():
        for a in aliases:
            if a in flat and _as_text(flat[a]):
                out[field] = _as_text(flat[a])
                break
        else:
            out[field] = ""
    return out


_STOP = {
    "a",
    "an",
    "the",
    "of",
    "in",
    "and",
    "with",
    "at",
    "on",
    "for",
    "to",
    "by",
    "from",
    "wt",
    "at%",
}


def _tokens(text: str) -> set[str]:
    return {t for t in re.findall(r"[^\W_]+(?:\.\d+)?", text.lower()) if t not in _STOP}


def metadata_similarity(a: dict[str, str], b: dict[str, str]) -> float:
    """Jaccard similarity of material-describing words (description, keywords, composition).

    Contributor and organisation are left out: one lab contributes many materials.
    Returns 0 when either record has no material text.
    """
    ta = _tokens(" ".join(a.get(k, "") for k in ("brief_description", "keywords", "composition")))
    tb = _tokens(" ".join(b.get(k, "") for k in ("brief_description", "keywords", "composition")))
    if not ta or not tb:
        return 0.0
    return round(len(ta & tb) / len(ta | tb), 4)


# words in a record that hint at a failed criterion (hints only: never a verdict)
_HINT_WORDS = {
    "isotropy": (
        "rolled",
        "drawn",
        "extruded",
        "directional",
        "directionally",
        "columnar",
        "aligned",
        "unidirectional",
        "fibre",
        "fiber",
        "fibres",
        "fibers",
        "lamellar",
        "textured",
        "elongated",
        "longitudinal",
        "transverse",
        "banded",
        "banding",
        "weld",
    ),
    "representativity": (
        "single crystal",
        "single grain",
        "bicrystal",
        "one grain",
        "macrograph",
        "fracture surface",
        "whole sample",
        "cross-section of a",
    ),
    "exposure": ("vignetting", "uneven", "shadow"),
    "quality": ("low resolution", "out of focus", "blurred", "scanned", "photocopy"),
}


def metadata_hints(summary: dict[str, str]) -> list[dict[str, str]]:
    """Criteria the record's own words hint at, for a curator's attention."""
    text = " ".join(
        summary.get(k, "")
        for k in ("brief_description", "keywords", "further_information", "technique")
    ).lower()
    hints = []
    for crit, words in _HINT_WORDS.items():
        for wd in words:
            if re.search(r"\b" + re.escape(wd) + r"\b", text):
                hints.append({"criterion": crit, "hint": f"record mentions '{wd}'"})
                break
    return hints
