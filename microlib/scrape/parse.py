"""DoITPoMS record pages -> metadata: text normalisation, element symbols, licence.

Record pages hold their metadata in ``div.col-md-8`` as ``<dt>``/``<dd>`` pairs
(Brief description, Keywords, Categories, Composition, Technique, Further
information, Contributor, Organisation) followed by a licence line. The parser reads
the document once and walks each value once, so its cost is linear in the page size
(rescanning every descendant for every label is quadratic). Pure functions on bytes
and strings already in memory.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any
from urllib.parse import urljoin

# --------------------------------------------------------------------------- text

# characters that carry no text but survive whitespace collapsing
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_WS = re.compile(r"\s+")
_ENTITY = re.compile(r"&(#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")


def clean_text(text: str | None) -> str | None:
    """Normalise scraped text; ``None`` when nothing is left.

    HTML entities are decoded (also double-encoded ones such as ``&amp;deg;`` that a
    database sometimes stores), the result is NFC-normalised (NFC, not NFKC, so the
    micro sign ``µ`` stays ``µ``), zero-width characters and soft hyphens are dropped
    and every whitespace run (including non-breaking spaces) becomes one space.
    """
    if text is None:
        return None
    if "&" in text and _ENTITY.search(text):
        text = html.unescape(text)
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = _WS.sub(" ", text).strip()
    return text or None


def split_list(text: str | None) -> list[str]:
    """Split a Keywords/Categories value on commas and semicolons.

    Items are cleaned with :func:`clean_text`; empty items and exact duplicates are
    dropped (order kept), so a missing value gives ``[]``, never ``['']``.
    """
    if not text:
        return []
    out: list[str] = []
    for part in re.split(r"[,;]", text):
        item = clean_text(part)
        if item:
            item = item.strip(" .")
        if item and item not in out:
            out.append(item)
    return out


# --------------------------------------------------------------------------- elements

# every symbol of the periodic table, by atomic number
ELEMENTS: tuple[str, ...] = tuple(
    """
    H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge
    As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm
    Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U
    Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og
    """.split()
)
_ELEMENT_SET = frozenset(ELEMENTS)

# A formula-like token: capitalised symbols with optional amounts ("Fe", "Al2O3",
# "Ti-6Al" -> "Ti", "Al"), not glued to a preceding letter and not continuing into a
# lower-case word (so "Steel", "Brass" and "wt%" give nothing).
_FORMULA = re.compile(r"(?<![A-Za-z])((?:[A-Z][a-z]?(?:\d+(?:\.\d+)?)?)+)(?![a-z])")
_SYMBOL = re.compile(r"[A-Z][a-z]?")
# Element symbols that are also English words; as a word followed by a lower-case
# word ("As cast", "In the ...", "No data") they are prose, not chemistry.
_WORDLIKE = frozenset({"As", "At", "Be", "He", "I", "In", "No"})
_PROSE_AFTER = re.compile(r"\s+[a-z]")


def parse_elements(composition: str | None) -> list[str]:
    """Element symbols named in a Composition text, in order of appearance, unique.

    Every symbol is checked against the periodic table; a token containing anything
    else (``YSZ``, ``SEM``) is rejected whole. Upper-case-only tokens without digits
    of three or more letters or with a repeated letter (``FCC``, ``HCP``, ``II``) are
    taken as acronyms or numerals, not formulae; two-letter ones (``WC``, ``BN``) stay.

    Examples
    --------
    >>> parse_elements("Fe 0.4 wt% C")
    ['Fe', 'C']
    >>> parse_elements("Al-4 wt% Cu")
    ['Al', 'Cu']
    >>> parse_elements("Al2O3")
    ['Al', 'O']
    >>> parse_elements("Steel")
    []
    """
    if not composition:
        return []
    out: list[str] = []
    for m in _FORMULA.finditer(composition):
        token = m.group(1)
        symbols = _SYMBOL.findall(token)
        if not symbols or any(s not in _ELEMENT_SET for s in symbols):
            continue
        if (
            token.isalpha()
            and token.isupper()
            and (len(symbols) >= 3 or len(set(symbols)) < len(symbols))
        ):
            continue
        if len(symbols) == 1 and token in _WORDLIKE and _PROSE_AFTER.match(composition, m.end()):
            continue
        for s in symbols:
            if s not in out:
                out.append(s)
    return out


# --------------------------------------------------------------------------- record page

# label on the page (lower case, no trailing colon) -> field
_LABELS: dict[str, str] = {
    "brief description": "brief_descr",
    "description": "brief_descr",
    "further information": "long desc",
    "further info": "long desc",
    "long description": "long desc",
    "keywords": "keywords",
    "keyword": "keywords",
    "categories": "category",
    "category": "category",
    "composition": "composition",
    "technique": "technique",
    "techniques": "technique",
    "contributor": "contributor",
    "contributors": "contributor",
    "organisation": "organisation",
    "organization": "organisation",
    "institution": "organisation",
}
_LIST_FIELDS = ("keywords", "category")
_BLOCK_TAGS = frozenset(
    {
        "br",
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "dd",
        "dt",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "blockquote",
        "pre",
        "section",
    }
)
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript"})


def _text_of(node: Any) -> str:
    """Visible text of a tag with block boundaries and ``<br>`` as spaces.

    ``get_text(" ")`` would also split words marked up inside (``pear<i>lite</i>``),
    ``get_text("")`` would glue ``line<br>line``; walking the subtree once does both
    right. The walk is iterative so a pathologically deep page cannot exhaust the
    recursion limit.
    """
    from bs4 import Comment, Declaration, NavigableString, ProcessingInstruction, Tag

    parts: list[str] = []
    stack: list[tuple[Any, bool]] = [(iter(node.children), False)]
    while stack:
        child = next(stack[-1][0], None)
        if child is None:
            _, block = stack.pop()
            if block:
                parts.append(" ")
            continue
        if isinstance(child, Tag):
            if child.name in _SKIP_TAGS:
                continue
            block = child.name in _BLOCK_TAGS
            if block:
                parts.append(" ")
            stack.append((iter(child.children), block))
        elif isinstance(child, NavigableString) and not isinstance(
            child, Comment | Declaration | ProcessingInstruction
        ):
            parts.append(str(child))
    return "".join(parts)


def _label_of(node: Any) -> str | None:
    text = clean_text(_text_of(node))
    if not text:
        return None
    return _LABELS.get(text.rstrip(":").strip().lower())


def _labelled_values(container: Any) -> dict[str, list[Any]]:
    """Map field -> value tags from ``<dt>/<dd>`` pairs or two-cell table rows."""
    found: dict[str, list[Any]] = {}
    current: str | None = None
    # one document-order pass over the definition-list parts
    for node in container.find_all(["dt", "dd"]):
        if node.name == "dt":
            current = _label_of(node)
        elif current is not None:
            found.setdefault(current, []).append(node)
    if found:
        return found
    # some layouts render the same record as a table: <tr><th>Label</th><td>value</td>
    for row in container.find_all("tr"):
        cells = row.find_all(["th", "td"], recursive=False)
        if len(cells) >= 2:
            key = _label_of(cells[0])
            if key is not None:
                found.setdefault(key, []).extend(cells[1:])
    return found


def _list_value(tags: list[Any]) -> list[str]:
    items: list[str] = []
    for tag in tags:
        from_text = split_list(_text_of(tag))
        # links separated only by spaces ("<a>a</a> <a>b</a>") are still separate items
        links = [t for t in (clean_text(_text_of(a)) for a in tag.find_all("a")) if t]
        chosen = links if len(links) > len(from_text) else from_text
        for item in chosen:
            if item not in items:
                items.append(item)
    return items


def find_licence(soup: Any, page_url: str | None = None) -> tuple[str | None, str | None]:
    """Find the licence line of a record page.

    Tried in order: a ``rel="license"`` link, a ``creativecommons.org/licenses`` link,
    a ``terms.php`` link (DoITPoMS' own terms), then the shortest block whose text
    mentions "licen". Returns ``(line, url)``: the normalised sentence around the link
    (or the link text when that sentence is a whole page section) and the link made
    absolute against ``page_url``; ``(None, None)`` when nothing is found.
    """
    links = soup.find_all("a", href=True)

    def rel_licence(a: Any) -> bool:
        rel = a.get("rel") or []
        rel = rel.split() if isinstance(rel, str) else rel
        return "license" in [r.lower() for r in rel]

    tests = (
        rel_licence,
        lambda a: "creativecommons.org/licenses" in a["href"].lower(),
        lambda a: "terms.php" in a["href"].lower(),
    )
    for test in tests:
        for a in links:
            if test(a):
                block = a.find_parent(["p", "div", "li", "dd", "td", "span", "footer"])
                line = clean_text(_text_of(block)) if block is not None else None
                if not line or len(line) > 400:
                    line = clean_text(_text_of(a))
                href = a["href"].strip()
                return line, (urljoin(page_url, href) if page_url else href)
    best: Any = None
    for s in soup.find_all(string=re.compile("licen", re.IGNORECASE)):
        block = s.find_parent(["p", "div", "li", "dd", "td", "span", "footer"])
        if block is None:
            continue
        text = clean_text(_text_of(block)) or ""
        if 0 < len(text) <= 400 and (best is None or len(text) < len(best[0])):
            best = (text, block)
    if best is None:
        return None, None
    a = best[1].find("a", href=True)
    url = None
    if a is not None:
        url = urljoin(page_url, a["href"].strip()) if page_url else a["href"].strip()
    return best[0], url


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)


def parse_record(
    page: bytes | str, page_url: str | None = None, content_type: str | None = None
) -> dict[str, Any] | None:
    """Parse a DoITPoMS record page into its metadata fields.

    Parameters
    ----------
    page : bytes or str
        The page as served. Bytes are decoded with the charset of ``content_type``
        when given, else as the document declares (``<meta charset>``), else UTF-8
        with a Windows-1252 fallback.
    page_url : str, optional
        Where the page came from; makes the licence link absolute.
    content_type : str, optional
        The response's ``Content-Type`` header.

    Returns
    -------
    dict or None
        ``brief_descr``, ``keywords`` (list), ``category`` (list), ``composition``,
        ``element`` (list of element symbols from the composition), ``technique``,
        ``long desc``, ``contributor``, ``organisation``, ``licence``, ``licence_url``.
        Missing strings are ``None`` and missing lists ``[]``. ``None``
        when the page holds no record (DoITPoMS answers unknown ids with an empty
        page rather than always a 404).
    """
    from bs4 import BeautifulSoup

    encoding = None
    if isinstance(page, bytes) and content_type:
        m = _CHARSET.search(content_type)
        encoding = m.group(1) if m else None
    try:
        soup = (
            BeautifulSoup(page, "html.parser", from_encoding=encoding)
            if encoding
            else BeautifulSoup(page, "html.parser")
        )
    except LookupError:  # unknown charset in the header: let bs4 sniff
        soup = BeautifulSoup(page, "html.parser")
    container = soup.select_one("div.col-md-8") or soup
    values = _labelled_values(container)
    if not values and container is not soup:
        values = _labelled_values(soup)

    rec: dict[str, Any] = {}
    for fld in (
        "brief_descr",
        "keywords",
        "category",
        "composition",
        "technique",
        "long desc",
        "contributor",
        "organisation",
    ):
        tags = values.get(fld, [])
        if fld in _LIST_FIELDS:
            rec[fld] = _list_value(tags)
        else:
            rec[fld] = clean_text(" ".join(_text_of(t) for t in tags)) if tags else None
    if not any(rec.values()):
        return None
    rec["element"] = parse_elements(rec["composition"])
    rec["licence"], rec["licence_url"] = find_licence(container, page_url)
    if rec["licence"] is None and container is not soup:
        rec["licence"], rec["licence_url"] = find_licence(soup, page_url)
    return rec
