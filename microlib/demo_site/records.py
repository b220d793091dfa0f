"""Record pages of the demo library, in the DoITPoMS layout the scraper parses.

Every entry is made-up and credited to a fictional "MicroLib demo" contributor; every
inserted text is HTML-escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

LICENCE_CC = (
    '<p class="licence">This micrograph is licensed under a <a rel="license" '
    'href="http://creativecommons.org/licenses/by-nc-sa/2.0/uk/">Creative Commons '
    "Attribution-Noncommercial-Share Alike 2.0 UK: England &amp; Wales License</a>.</p>"
)
LICENCE_TERMS = (
    '<p class="licence">This micrograph is covered by the <a href="../miclib/terms.php">'
    "DoITPoMS standard terms of use</a>.</p>"
)
CONTRIBUTOR = "MicroLib demo (fictional contributor)"
ORGANISATION = "MicroLib demo library, Synthetic Microstructures & Imaging Group (fictional)"


@dataclass
class Record:
    """One DoITPoMS-style record; empty strings / lists omit the field."""

    brief: str
    keywords: list[str] = field(default_factory=list)
    categories: str = ""
    composition: str = ""
    technique: str = ""
    further: list[str] = field(default_factory=list)  # paragraphs, joined by <br>
    contributor: str = CONTRIBUTOR
    organisation: str = ORGANISATION
    licence: str = "cc"


def record_fields(rec: Record) -> dict[str, Any]:
    """The record as plain fields (label -> text; keywords as a list): what a scraper
    should extract from the page. Omitted fields are absent."""
    out: dict[str, Any] = {"Brief description": rec.brief}
    if rec.keywords:
        out["Keywords"] = list(rec.keywords)
    for label, value in (
        ("Categories", rec.categories),
        ("Composition", rec.composition),
        ("Technique", rec.technique),
    ):
        if value:
            out[label] = value
    if rec.further:
        out["Further information"] = "\n".join(rec.further)
    if rec.contributor:
        out["Contributor"] = rec.contributor
    if rec.organisation:
        out["Organisation"] = rec.organisation
    out["licence"] = (
        "CC BY-NC-SA 2.0 UK" if rec.licence != "terms" else "DoITPoMS standard terms of use"
    )
    return out


def record_html(number: int, rec: Record | None) -> str:
    """A record page in the DoITPoMS layout (every inserted text HTML-escaped)."""
    esc = html.escape
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>DoITPoMS - '
        f"Micrograph Library - Micrograph {number}</title></head>\n"
        '<body><div class="container"><div class="row">\n'
    )
    if rec is None:
        return head + ' <div class="col-md-8"></div></div></div></body></html>\n'
    img = f"micrographs/large/{number:06d}.jpg"
    rows = [("Brief description", esc(rec.brief))]
    if rec.keywords:
        links = ", ".join(
            f'<a href="{esc("browse.php?keyword=" + quote(k, safe=""))}">{esc(k)}</a>'
            for k in rec.keywords
        )
        rows.append(("Keywords", links))
    if rec.categories:
        rows.append(("Categories", esc(rec.categories)))
    if rec.composition:
        rows.append(("Composition", esc(rec.composition)))
    if rec.technique:
        rows.append(("Technique", esc(rec.technique)))
    if rec.further:
        rows.append(("Further information", "<br>".join(esc(p) for p in rec.further)))
    if rec.contributor:
        rows.append(("Contributor", esc(rec.contributor)))
    if rec.organisation:
        rows.append(("Organisation", esc(rec.organisation)))
    dl = "\n".join(f"   <dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    licence = LICENCE_TERMS if rec.licence == "terms" else LICENCE_CC
    return (
        head
        + f' <div class="col-md-4"><a href="{img}"><img src="{img}" alt="Micrograph {number}"></a></div>\n'
        + ' <div class="col-md-8">\n'
        + f"  <h2>Micrograph {number}</h2>\n"
        + '  <dl class="dl-horizontal">\n'
        + dl
        + "\n"
        + "  </dl>\n"
        + f"  {licence}\n"
        + " </div></div></div></body></html>\n"
    )
