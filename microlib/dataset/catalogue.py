"""The dataset's offline catalogue: one self-contained ``index.html``.

No server, no network, no external script or style sheet: the records are embedded as a
JSON ``<script type="application/json">`` block and rendered by inline JavaScript with
``textContent``, so scraped text is always shown as text, never parsed as HTML.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from microlib.dataset.read import clean_text

# characters that could end the JSON block or open markup inside it; JSON allows them as
# \u escapes, so the parsed value is unchanged
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def embed_json(value: Any) -> str:
    """``value`` as JSON safe to place inside a ``<script type="application/json">`` block.

    Examples
    --------
    >>> embed_json({"t": "</script><b>"})
    '{"t": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    text = json.dumps(value, ensure_ascii=False)
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def catalogue_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """The catalogue's view of one ``data_anns.json`` record (control characters removed)."""
    name = str(record["name"])
    metrics = record.get("metrics") or {}
    files = [str(f) for f in record.get("files") or []]
    preview = f"{name}_preview.png"
    entry = {
        "name": name,
        "title": record.get("brief_descr") or name,
        "description": record.get("long desc") or "",
        "keywords": _as_list(record.get("keywords")),
        "category": _as_list(record.get("category")),
        "element": _as_list(record.get("element")),
        "technique": _as_list(record.get("technique")),
        "data_type": _as_list(record.get("data_type")),
        "credit": record.get("credit") or "",
        "licence": record.get("licence") or "",
        "vf_error": metrics.get("vf_mean_abs_pct_error"),
        "sa_error": metrics.get("surface_area_pct_error"),
        "flags": _as_list(metrics.get("flags")),
        "preview": f"{name}/{preview}" if preview in files or not files else None,
        "files": [f"{name}/{f}" for f in files],
    }
    return clean_text(entry)


def catalogue_family(name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The catalogue's view of one ``families.json`` record (control characters removed)."""
    files = [str(f) for f in record.get("files") or []]
    base = f"families/{name}"
    sweep = f"{name}_sweep.png"
    summary = (record.get("feature_size") or {}).get("summary") or {}
    members = [
        {
            "name": str(m.get("name") or ""),
            "title": m.get("brief_descr") or "",
            "code": m.get("code"),
            "credit": m.get("credit") or "",
        }
        for m in record.get("members") or []
    ]
    family = {
        "name": str(name),
        "data_type": _as_list(record.get("data_type")),
        "code_range": [c for c in record.get("code_range") or [] if isinstance(c, int | float)],
        "members": members,
        "monotone": summary.get("monotone"),
        "size_error": summary.get("max_abs_error_pct"),
        "sweep": f"{base}/{sweep}" if sweep in files else None,
        "files": [f"{base}/{f}" for f in files],
    }
    return clean_text(family)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
header{display:flex;flex-wrap:wrap;gap:.6em;align-items:center;margin-bottom:1em}
input,select{font-size:1em;padding:.25em}
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:1em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em}
.card img{width:100%;height:auto;image-rendering:pixelated;background:#eee}
.card h2{font-size:1em;margin:.4em 0}.meta{font-size:.85em;color:#555}
.card ul{font-size:.8em;padding-left:1.2em;max-height:7em;overflow:auto}
#families{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1em}
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("catalogue-data").textContent);
  var facets = ["category", "element", "technique", "data_type"];
  var cards = document.getElementById("cards");
  var search = document.getElementById("search");
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  facets.forEach(function (facet) {
    var select = document.getElementById("filter-" + facet);
    var values = {};
    data.forEach(function (e) { e[facet].forEach(function (v) { values[v] = true; }); });
    Object.keys(values).sort().forEach(function (v) {
      var opt = el("option", v); opt.value = v; select.appendChild(opt);
    });
    select.addEventListener("change", render);
  });
  search.addEventListener("input", render);
  function pct(v) { return (typeof v === "number") ? v.toFixed(1) + " %" : "n/a"; }
  function matches(e) {
    for (var i = 0; i < facets.length; i++) {
      var want = document.getElementById("filter-" + facets[i]).value;
      if (want && e[facets[i]].indexOf(want) < 0) return false;
    }
    var q = search.value.trim().toLowerCase();
    if (!q) return true;
    var hay = [e.name, e.title, e.description, e.credit].concat(
      e.keywords, e.category, e.element, e.technique, e.data_type).join(" ").toLowerCase();
    return q.split(/\\s+/).every(function (w) { return hay.indexOf(w) >= 0; });
  }
  function card(e) {
    var c = el("article", null, "card");
    c.setAttribute("data-name", e.name);
    if (e.preview) {
      var img = el("img"); img.src = e.preview; img.alt = "preview of " + e.name;
      c.appendChild(img);
    }
    c.appendChild(el("h2", e.name + ": " + e.title));
    c.appendChild(el("div", [e.data_type.join(", "), e.category.join(", "),
      e.element.join(" "), e.technique.join(", ")].filter(Boolean).join(" | "), "meta"));
    c.appendChild(el("div", "volume fraction error " + pct(e.vf_error) +
      ", surface area error " + pct(e.sa_error), "meta metrics"));
    if (e.flags.length) c.appendChild(el("div", "flagged: " + e.flags.join(", "), "meta flags"));
    if (e.keywords.length) c.appendChild(el("div", "keywords: " + e.keywords.join(", "), "meta"));
    if (e.description) c.appendChild(el("p", e.description, "desc"));
    c.appendChild(el("div", e.credit + (e.licence ? " (" + e.licence + ")" : ""), "meta"));
    var list = el("ul");
    e.files.forEach(function (f) {
      var li = el("li"), a = el("a", f.split("/").pop()); a.href = f;
      li.appendChild(a); list.appendChild(li);
    });
    c.appendChild(list);
    return c;
  }
  function render() {
    while (cards.firstChild) cards.removeChild(cards.firstChild);
    var shown = data.filter(matches);
    shown.forEach(function (e) { cards.appendChild(card(e)); });
    document.getElementById("count").textContent = shown.length + " of " + data.length;
  }
  render();
  // families: one card each, with the sweep of generated structures across the codes
  var famData = document.getElementById("catalogue-families");
  var famBox = document.getElementById("families");
  if (famData && famBox) {
    JSON.parse(famData.textContent).forEach(function (f) {
      var c = el("article", null, "card family");
      c.setAttribute("data-family", f.name);
      if (f.sweep) {
        var img = el("img"); img.src = f.sweep; img.alt = "code sweep of family " + f.name;
        c.appendChild(img);
      }
      c.appendChild(el("h2", "family " + f.name + ": " + f.members.length +
        " members, codes " + f.code_range.join(" to ")));
      var follows = f.monotone === true ? "follows the code" :
        (f.monotone === false ? "does not follow the code" : "not measured");
      c.appendChild(el("div", [f.data_type.join(", "), "feature size " + follows +
        ", largest error at a member " + pct(f.size_error)].join(" | "), "meta metrics"));
      var members = el("ul");
      f.members.forEach(function (m) {
        members.appendChild(el("li", "code " + m.code + ": " + m.name + ": " + m.title +
          (m.credit ? " (" + m.credit + ")" : ""), "member"));
      });
      c.appendChild(members);
      var list = el("ul");
      f.files.forEach(function (p) {
        var li = el("li"), a = el("a", p.split("/").pop()); a.href = p;
        li.appendChild(a); list.appendChild(li);
      });
      c.appendChild(list);
      famBox.appendChild(c);
    });
  }
  document.body.setAttribute("data-ready", "1");
})();
"""


def _script_hash() -> str:
    # the page's one script is allowed by its hash: an injected inline script would not run
    digest = hashlib.sha256(_SCRIPT.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def catalogue_html(
    records: Iterable[Mapping[str, Any]],
    families: Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "MicroLib dataset",
) -> str:
    """The self-contained ``index.html`` of a dataset.

    Parameters
    ----------
    records : iterable of mapping
        ``data_anns.json`` records, in display order.
    families : mapping, optional
        ``families.json``: family name -> record. Each family gets a card below the
        entries: its code sweep, members with their codes, whether feature size follows
        the code, and links to its files.
    title : str
        Page title (plain text; escaped).

    Returns
    -------
    str
        The page: search box, filters for category, element, technique and data type, one
        card per entry with its preview, volume-fraction and surface-area errors, the
        validation flags it carries, credit
        and links to its files (all relative to the dataset folder).
    """
    entries = [catalogue_entry(r) for r in records]
    fams = [catalogue_family(n, r) for n, r in (families or {}).items()]
    labels = {
        "category": "category",
        "element": "element",
        "technique": "technique",
        "data_type": "data type",
    }
    selects = "".join(
        f'<label>{label} <select id="filter-{facet}"><option value="">all</option></select></label>'
        for facet, label in labels.items()
    )
    safe_title = clean_text(title).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f"img-src 'self' file: data:; style-src 'unsafe-inline'; script-src '{_script_hash()}'\">\n"
        f"<title>{safe_title}</title>\n<style>{_STYLE}</style></head>\n"
        f"<body><h1>{safe_title}</h1>\n"
        '<header><input id="search" type="search" placeholder="search keywords" '
        f'aria-label="search">{selects}<span id="count"></span></header>\n'
        '<main id="cards"></main>\n'
        + (
            '<h2 id="families-heading">Families</h2><section id="families"></section>\n'
            '<script type="application/json" id="catalogue-families">'
            f"{embed_json(fams)}</script>\n"
            if fams
            else ""
        )
        + f'<script type="application/json" id="catalogue-data">{embed_json(entries)}</script>\n'
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )
