"""The DoITPoMS scraper against real HTTP servers on 127.0.0.1 (tests/faultserver.py).

Every fault case ends with :func:`assert_consistent`: no temporary files, no image
without its JSON (or the reverse), every "present" entry backed by files whose hashes
match the index, and index counts that add up.
"""

from __future__ import annotations

import io as pyio
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from faultserver import OMIT, FaultServer, Reply
from PIL import Image

from microlib import __version__, package
from microlib import io as mio
from microlib.cli import main
from microlib.errors import MicrolibError
from microlib.scrape import (
    ScrapeOptions,
    clean_text,
    parse_elements,
    parse_record,
    parse_retry_after,
    parse_robots,
    same_site,
    scrape,
    split_list,
    validate_image,
)

ROOT = Path(__file__).resolve().parents[1]

# tiny timeouts and backoffs keep the fault cases fast; rate high except where tested
FAST = dict(
    rate=1000.0,
    connect_timeout=2.0,
    read_timeout=2.0,
    retries=2,
    backoff=0.01,
    max_retry_after=5.0,
    max_bytes=2_000_000,
)

CC_LICENCE = (
    '<p class="licence">This micrograph is licensed under a <a rel="license" '
    'href="http://creativecommons.org/licenses/by-nc-sa/2.0/uk/">Creative Commons '
    "Attribution-Noncommercial-Share Alike 2.0 UK: England &amp; Wales License</a>.</p>"
)
TERMS_LICENCE = (
    '<p class="licence">This micrograph is covered by the '
    '<a href="../miclib/terms.php">DoITPoMS standard terms of use</a>.</p>'
)

PEARLITE = {
    "Brief description": "Pearlite in a hypo-eutectoid steel",
    "Keywords": (
        '<a href="browse.php?keyword=pearlite">pearlite</a>, '
        '<a href="browse.php?keyword=steel">steel</a>'
    ),
    "Categories": "Metal or alloy",
    "Composition": "Fe 0.4 wt% C",
    "Technique": "Light microscopy",
    "Further information": (
        "The sample was etched in 2% nital.<br>Ferrite appears light, <i>pearlite</i> dark."
    ),
    "Contributor": "Prof T W Clyne",
    "Organisation": "Department of Materials Science and Metallurgy, University of Cambridge",
}
PEARLITE_FIELDS = {
    "brief_descr": "Pearlite in a hypo-eutectoid steel",
    "keywords": ["pearlite", "steel"],
    "category": ["Metal or alloy"],
    "element": ["Fe", "C"],
    "composition": "Fe 0.4 wt% C",
    "technique": "Light microscopy",
    "long desc": "The sample was etched in 2% nital. Ferrite appears light, pearlite dark.",
    "contributor": "Prof T W Clyne",
    "organisation": "Department of Materials Science and Metallurgy, University of Cambridge",
    "licence": (
        "This micrograph is licensed under a Creative Commons Attribution-"
        "Noncommercial-Share Alike 2.0 UK: England & Wales License."
    ),
    "licence_url": "http://creativecommons.org/licenses/by-nc-sa/2.0/uk/",
}


def record_page(n: int, fields: dict[str, str], licence: str = CC_LICENCE) -> bytes:
    """A record page in the real DoITPoMS layout (div.col-md-8 with dt/dd pairs)."""
    rows = "\n".join(f"   <dt>{k}</dt><dd>{v}</dd>" for k, v in fields.items())
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>DoITPoMS - Micrograph Library - Micrograph {n}</title></head>
<body><div class="container"><div class="row">
 <div class="col-md-4"><a href="micrographs/large/{n:06d}.jpg"><img src="micrographs/large/{n:06d}.jpg" alt="Micrograph {n}"></a></div>
 <div class="col-md-8">
  <h2>Micrograph {n}</h2>
  <dl class="dl-horizontal">
{rows}
  </dl>
  {licence}
 </div></div></div></body></html>""".encode()


def image_bytes(seed: int = 0, size: tuple[int, int] = (64, 48), fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0])) * 255).astype(np.uint8)
    buf = pyio.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def page_path(n: int) -> str:
    return f"/miclib/full_record.php?id={n}"


def image_path(n: int) -> str:
    return f"/miclib/micrographs/large/{n:06d}.jpg"


def add_record(
    srv: FaultServer,
    n: int,
    fields: dict | None = None,
    image: bytes | None = None,
    licence: str = CC_LICENCE,
) -> bytes:
    image = image if image is not None else image_bytes(n)
    srv.static(
        page_path(n), record_page(n, fields or PEARLITE, licence), "text/html; charset=utf-8"
    )
    srv.static(image_path(n), image, "image/jpeg")
    return image


def run_scrape(srv: FaultServer, ids, out: Path, **opts):
    options = ScrapeOptions(**{**FAST, **opts})
    return scrape(srv.url("/miclib/"), list(ids), out, options)


def assert_consistent(out: Path) -> dict:
    """Nothing half-written: the invariants every run must leave behind."""
    names = sorted(os.listdir(out))
    assert not [n for n in names if n.endswith(".part")], names
    index = mio.read_json(out / "index.json")
    entries = index["entries"]
    for jpg in out.glob("*.jpg"):
        assert (out / f"{jpg.stem}.json").exists(), f"{jpg.name} without its JSON"
    for js in out.glob("[0-9]*.json"):
        assert (out / f"{js.stem}.jpg").exists(), f"{js.name} without its image"
    for id6, e in entries.items():
        assert e["status"] in ("present", "missing", "failed")
        assert (e["reason"] is None) == (e["status"] == "present"), (id6, e)
        if e["status"] == "present":
            meta = mio.read_json(out / f"{id6}.json")
            sha = mio.sha256_file(out / f"{id6}.jpg")
            assert sha == e["image_sha256"] == meta["image_sha256"]
            assert meta["image_bytes"] == (out / f"{id6}.jpg").stat().st_size
    counts = {
        s: sum(e["status"] == s for e in entries.values()) for s in ("present", "missing", "failed")
    }
    assert index["counts"] == counts
    return index


def mtimes(out: Path) -> dict[str, int]:
    return {
        p.name: p.stat().st_mtime_ns
        for p in out.iterdir()
        if p.suffix in (".jpg", ".json") and p.name != "index.json" and not p.name.startswith(".")
    }


@pytest.fixture
def srv():
    with FaultServer() as s:
        s.static("/robots.txt", b"User-agent: *\nDisallow: /cgi-bin/\n", "text/plain")
        yield s


# =========================================================================== pure parts


def test_parse_record_real_layout():
    rec = parse_record(
        record_page(237, PEARLITE),
        "https://www.doitpoms.ac.uk/miclib/full_record.php?id=237",
        "text/html; charset=utf-8",
    )
    assert rec == PEARLITE_FIELDS


def test_parse_record_missing_optional_fields_are_null_or_empty():
    rec = parse_record(
        record_page(
            5, {"Brief description": "Cast iron", "Keywords": "", "Technique": "  "}, licence=""
        )
    )
    assert rec["brief_descr"] == "Cast iron"
    for k in (
        "technique",
        "long desc",
        "contributor",
        "organisation",
        "composition",
        "licence",
        "licence_url",
    ):
        assert rec[k] is None, k
    for k in ("keywords", "category", "element"):
        assert rec[k] == [], k  # never [''] from splitting an empty value


def test_parse_record_non_ascii_entities_and_nfc():
    decomposed = "Cafe\u0301"  # e + combining acute: must come back as one é
    fields = {
        "Brief description": f"Grains of 5&nbsp;&micro;m at 900&deg;C, {decomposed} m\u00e9tal",
        "Keywords": "&Aring;kerman phase; b\u00eata",
        "Composition": "Cu 70&nbsp;wt%, Zn 30 wt%",
        "Contributor": "Dr J. Garc\u00eda-L\u00f3pez",
        "Further information": "Held at 1200 \u00b0C for 2&amp;nbsp;h",  # double-encoded
    }
    rec = parse_record(record_page(9, fields).replace(b"utf-8", b"utf-8"))
    assert rec["brief_descr"] == "Grains of 5 \u00b5m at 900\u00b0C, Caf\u00e9 m\u00e9tal"
    assert "\u00b5" in rec["brief_descr"] and "\u03bc" not in rec["brief_descr"]  # NFC, not NFKC
    assert unicodedata.is_normalized("NFC", rec["brief_descr"])
    assert rec["keywords"] == ["\u00c5kerman phase", "b\u00eata"]
    assert rec["element"] == ["Cu", "Zn"]
    assert rec["contributor"] == "Dr J. Garc\u00eda-L\u00f3pez"
    assert rec["long desc"] == "Held at 1200 \u00b0C for 2 h"


def test_parse_record_latin1_page_decoded_by_declared_charset():
    page = record_page(3, {"Brief description": "Ferrite \u00e9tched at 20\u00b0C"})
    page = page.decode().replace('charset="utf-8"', "").encode("latin-1")
    rec = parse_record(page, None, "text/html; charset=ISO-8859-1")
    assert rec["brief_descr"] == "Ferrite \u00e9tched at 20\u00b0C"


def test_parse_record_br_and_nested_tags():
    fields = {
        "Brief description": "Dendrites <b>in</b> an <span>Al-<i>Si</i></span> casting",
        "Keywords": "<a>dendrite</a> <a>casting</a><br><a>aluminium</a>",
        "Categories": "<a>Metal or alloy</a>; <a>Composite</a>",
        "Composition": "Al-7 wt% Si<sup></sup>",
        "Further information": "<p>First para.</p><p>Second<br/>line with <em>empha</em>sis"
        "<!-- hidden --></p><script>var x;</script>",
    }
    rec = parse_record(record_page(1, fields))
    assert rec["brief_descr"] == "Dendrites in an Al-Si casting"
    assert rec["keywords"] == ["dendrite", "casting", "aluminium"]
    assert rec["category"] == ["Metal or alloy", "Composite"]
    assert rec["element"] == ["Al", "Si"]
    assert rec["long desc"] == "First para. Second line with emphasis"


def test_parse_record_licence_variants():
    terms = parse_record(
        record_page(2, PEARLITE, TERMS_LICENCE),
        "https://www.doitpoms.ac.uk/miclib/full_record.php?id=2",
    )
    assert terms["licence"] == "This micrograph is covered by the DoITPoMS standard terms of use."
    assert terms["licence_url"] == "https://www.doitpoms.ac.uk/miclib/terms.php"
    cc_no_rel = CC_LICENCE.replace(' rel="license"', "")
    assert (
        parse_record(record_page(2, PEARLITE, cc_no_rel))["licence_url"]
        == PEARLITE_FIELDS["licence_url"]
    )
    plain = parse_record(record_page(2, PEARLITE, "<div>Licensed for teaching use only.</div>"))
    assert (plain["licence"], plain["licence_url"]) == ("Licensed for teaching use only.", None)


def test_parse_record_table_layout_and_page_without_record():
    table = (
        b"<html><body><div class='col-md-8'><table>"
        b"<tr><th>Brief description:</th><td>Martensite</td></tr>"
        b"<tr><th>Composition:</th><td>Fe-0.8C</td></tr></table></div></body></html>"
    )
    rec = parse_record(table)
    assert rec["brief_descr"] == "Martensite" and rec["element"] == ["Fe", "C"]
    empty = record_page(77, {"Brief description": "", "Keywords": "", "Contributor": " "})
    assert parse_record(empty) is None
    assert parse_record(b"<html><body><p>No such micrograph</p></body></html>") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Fe 0.4 wt% C", ["Fe", "C"]),
        ("Al-4 wt% Cu", ["Al", "Cu"]),
        ("Al2O3", ["Al", "O"]),
        ("wt%", []),
        ("Steel", []),
        ("Ti-6Al-4V", ["Ti", "Al", "V"]),
        ("Cu 70, Zn 30; Cu", ["Cu", "Zn"]),
        ("YSZ with Y2O3", ["Y", "O"]),
        ("FCC Ni", ["Ni"]),
        ("As cast Pb-Sn", ["Pb", "Sn"]),
        ("WC-Co", ["W", "C", "Co"]),
        (None, []),
    ],
)
def test_parse_elements(text, expected):
    assert parse_elements(text) == expected


def test_text_helpers():
    assert clean_text(" a\u00a0\u200b b\n\t c ") == "a b c"
    assert clean_text("  ") is None and clean_text(None) is None
    assert split_list("a, b;; a ,") == ["a", "b"]
    assert split_list("") == []


def test_validate_image_accepts_images_and_rejects_bad_bodies():
    good = image_bytes(1, (64, 48))
    info = validate_image(good)
    assert (info.format, info.width, info.height) == ("JPEG", 64, 48)
    assert validate_image(image_bytes(2, (40, 33), "PNG")).format == "PNG"
    cases = {
        good[: len(good) // 2]: "truncated",
        good[:-2]: "truncated",
        b"<!DOCTYPE html><html><body>Not found</body></html>": "HTML",
        b"GIF89a-not-really": "not a decodable image",
        b"": "empty",
        image_bytes(3, (31, 64)): "too small",
        image_bytes(4, (64, 40), "WEBP"): "unsupported image format WEBP",
    }
    for body, reason in cases.items():
        with pytest.raises(MicrolibError, match=reason):
            validate_image(body)
    with pytest.raises(MicrolibError, match="too large"):
        validate_image(image_bytes(5, (300, 40), "PNG"), max_side=200)
    with pytest.raises(MicrolibError, match="too large"):
        validate_image(image_bytes(5, (120, 120), "PNG"), max_pixels=10_000)


def test_robots_rules_longest_match_and_groups():
    text = (
        "User-agent: *\nDisallow: /\n\n"
        "User-agent: otherbot\nUser-agent: MicroLib/2\nDisallow: /miclib/\n"
        "Allow: /miclib/full_record.php\nDisallow: /*.jpg$\nCrawl-delay: 2.5\n"
    )
    r = parse_robots(text, "microlib")
    assert r.crawl_delay == 2.5
    assert r.allowed("http://h/miclib/full_record.php?id=3")
    assert not r.allowed("http://h/miclib/micrographs/large/000003.jpg")
    assert not r.allowed("http://h/miclib/index.php")
    assert r.allowed("http://h/other/page.html")
    star = parse_robots(text, "somebot")
    assert not star.allowed("http://h/miclib/full_record.php?id=3")
    assert star.allowed("http://h/robots.txt")
    assert parse_robots("", "microlib").allowed("http://h/anything")


def test_retry_after_and_same_site():
    from datetime import datetime, timezone

    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None
    assert same_site("http://127.0.0.1:5000/a", "http://127.0.0.1:5000/b")
    assert not same_site("http://127.0.0.1:5000/a", "http://127.0.0.1:5001/b")
    assert not same_site("http://127.0.0.1:5000/a", "http://example.invalid/b")
    assert same_site("http://www.doitpoms.ac.uk/x", "https://www.doitpoms.ac.uk/x")
    assert not same_site("https://www.doitpoms.ac.uk/x", "http://www.doitpoms.ac.uk/x")
    assert not same_site("http://h/x", "file:///etc/passwd")


# =========================================================================== against a server


def test_normal_run_writes_records_index_and_credit(srv, tmp_path):
    imgs = {n: add_record(srv, n) for n in (1, 2, 4)}
    srv.static(page_path(5), record_page(5, {"Brief description": ""}), "text/html")
    report = run_scrape(srv, range(1, 6), tmp_path)
    assert (report.present, report.missing, report.failed) == (3, 2, 0)
    assert (report.downloaded, report.cached) == (3, 0)
    assert (
        report.summary() == "scrape: 3 present (3 images downloaded, 0 cached), 2 missing, 0 failed"
    )
    index = assert_consistent(tmp_path)
    assert index["counts"] == {"present": 3, "missing": 2, "failed": 0}
    assert index["entries"]["000003"]["reason"] == "record page HTTP 404"
    assert index["entries"]["000005"]["reason"] == "record page has no record"
    for n, data in imgs.items():
        assert (tmp_path / f"{n:06d}.jpg").read_bytes() == data  # bytes untouched
    meta = mio.read_json(tmp_path / "000002.json")
    assert {k: meta[k] for k in PEARLITE_FIELDS} == PEARLITE_FIELDS
    assert meta["id"] == 2 and meta["id6"] == "000002" and meta["name"] == "microstructure002"
    assert meta["record_url"] == srv.url("/miclib/full_record.php?id=2")
    assert meta["image_url"] == srv.url("/miclib/micrographs/large/000002.jpg")
    assert (meta["image_width"], meta["image_height"], meta["image_format"]) == (64, 48, "JPEG")
    assert meta["image_sha256"] == mio.sha256_bytes(imgs[2])
    assert meta["retrieved"].endswith("Z")
    assert not (tmp_path / "000003.jpg").exists() and not (tmp_path / "000005.json").exists()
    # politeness: the project names itself, robots.txt is read once and first
    ua = srv.hits[0].headers["User-Agent"]
    assert srv.hits[0].path == "/robots.txt"
    assert ua.startswith(f"microlib/{__version__} (") and "research" in ua
    assert all(h.headers["User-Agent"] == ua for h in srv.hits)


def test_metadata_feeds_data_anns_with_licence_and_credit(srv, tmp_path):
    add_record(srv, 237)
    add_record(srv, 238, fields={"Brief description": "Eutectic"}, licence=TERMS_LICENCE)
    run_scrape(srv, [237, 238], tmp_path)
    meta = mio.read_json(tmp_path / "000237.json")
    rec = package.entry_record("microstructure237", meta, {"data_type": "twophase"})
    # MicroLib's data_anns.json field names and meaning, straight from the scraped record
    for k in (
        "brief_descr",
        "keywords",
        "category",
        "element",
        "technique",
        "long desc",
        "contributor",
        "organisation",
    ):
        assert rec[k] == PEARLITE_FIELDS[k], k
    assert rec["name"] == meta["name"] == "microstructure237"
    assert (rec["licence"], rec["licence_url"]) == (
        PEARLITE_FIELDS["licence"],
        PEARLITE_FIELDS["licence_url"],
    )
    assert rec["credit"].startswith("Prof T W Clyne, Department of Materials Science")
    sparse = package.entry_record(
        "microstructure238", mio.read_json(tmp_path / "000238.json"), {"data_type": "grayscale"}
    )
    assert sparse["licence"] == "This micrograph is covered by the DoITPoMS standard terms of use."
    assert sparse["licence_url"] == srv.url("/miclib/terms.php")
    assert (sparse["keywords"], sparse["element"], sparse["contributor"]) == ([], [], None)


def test_rerun_downloads_nothing_keeps_mtimes_and_refetches_changed_image(srv, tmp_path):
    for n in (1, 2, 3):
        add_record(srv, n)
    run_scrape(srv, [1, 2, 3], tmp_path)
    before = mtimes(tmp_path)
    assert srv.count("/miclib/micrographs/", 200) == 3
    time.sleep(0.02)  # a rewrite would show in st_mtime_ns

    again = run_scrape(srv, [1, 2, 3], tmp_path)
    assert (again.present, again.downloaded, again.cached) == (3, 0, 3)
    assert srv.count("/miclib/micrographs/", 200) == 3  # no new image transfer
    assert srv.count("/miclib/micrographs/", 304) == 3
    assert srv.count("/miclib/full_record.php", 304) == 3  # pages revalidated too
    assert mtimes(tmp_path) == before
    assert_consistent(tmp_path)

    new = image_bytes(99, (80, 60))
    srv.static(image_path(2), new, "image/jpeg", mtime=1_700_000_000.0)
    third = run_scrape(srv, [1, 2, 3], tmp_path)
    assert (third.downloaded, third.cached) == (1, 2)
    assert (tmp_path / "000002.jpg").read_bytes() == new
    assert mio.read_json(tmp_path / "000002.json")["image_width"] == 80
    after = mtimes(tmp_path)
    assert after["000002.jpg"] != before["000002.jpg"]
    assert {k: v for k, v in after.items() if not k.startswith("000002")} == {
        k: v for k, v in before.items() if not k.startswith("000002")
    }
    assert_consistent(tmp_path)


def test_rerun_after_the_index_was_deleted_downloads_nothing(srv, tmp_path):
    # Snakemake deletes a checkpoint's declared output (index.json) before re-running it:
    # the undeclared cache copy keeps the validators
    for n in (1, 2):
        add_record(srv, n)
    run_scrape(srv, [1, 2], tmp_path)
    before = mtimes(tmp_path)
    (tmp_path / "index.json").unlink()
    time.sleep(0.02)
    again = run_scrape(srv, [1, 2], tmp_path)
    assert (again.present, again.downloaded, again.cached) == (2, 0, 2)
    assert srv.count("/miclib/micrographs/", 200) == 2
    assert {k: v for k, v in mtimes(tmp_path).items() if k in before} == before
    assert (tmp_path / "index.json").is_file()


def test_locally_corrupted_image_is_fetched_again(srv, tmp_path):
    data = add_record(srv, 1)
    run_scrape(srv, [1], tmp_path)
    (tmp_path / "000001.jpg").write_bytes(b"damaged")
    run_scrape(srv, [1], tmp_path)
    assert (tmp_path / "000001.jpg").read_bytes() == data
    assert srv.count(image_path(1), 200) == 2
    assert_consistent(tmp_path)


def test_500_then_200_is_retried(srv, tmp_path):
    add_record(srv, 1)
    srv.script(
        page_path(1),
        Reply(500, b"oops", "text/html"),
        Reply(503, b"busy", "text/html"),
        Reply(200, record_page(1, PEARLITE), "text/html; charset=utf-8"),
    )
    report = run_scrape(srv, [1], tmp_path)
    assert report.present == 1 and report.stats.retries == 2
    assert [h.status for h in srv.hits_for(page_path(1))] == [500, 503, 200]
    assert_consistent(tmp_path)


def test_5xx_until_retries_run_out_fails_the_id_only(srv, tmp_path):
    add_record(srv, 1)
    add_record(srv, 2)
    srv.script(page_path(1), Reply(502, b"bad gateway", "text/html"))
    report = run_scrape(srv, [1, 2], tmp_path, retries=2)
    assert (report.present, report.failed) == (1, 1)
    assert report.failures["000001"] == "record page: HTTP 502 after 3 attempts"
    assert len(srv.hits_for(page_path(1))) == 3
    index = assert_consistent(tmp_path)
    assert index["entries"]["000001"]["status"] == "failed"
    assert not (tmp_path / "000001.jpg").exists()
    # failed ids are retried on the next run
    add_record(srv, 1)
    assert run_scrape(srv, [1, 2], tmp_path).failed == 0
    assert assert_consistent(tmp_path)["counts"]["present"] == 2


def test_429_retry_after_is_honoured_and_capped(srv, tmp_path):
    add_record(srv, 1)
    srv.script(
        image_path(1),
        Reply(429, b"slow down", "text/plain", {"Retry-After": "1"}),
        Reply(200, image_bytes(1), "image/jpeg"),
    )
    report = run_scrape(srv, [1], tmp_path, backoff=0.01)
    assert report.present == 1
    first, second = srv.hits_for(image_path(1))
    assert second.time - first.time >= 0.9  # waited for Retry-After, not the 10 ms backoff
    assert_consistent(tmp_path)

    add_record(srv, 2)
    srv.script(image_path(2), Reply(429, b"", "text/plain", {"Retry-After": "3600"}))
    report = run_scrape(srv, [2], tmp_path, max_retry_after=5)
    assert report.failed == 1
    assert "Retry-After 3600 s" in report.failures["000002"]
    assert len(srv.hits_for(image_path(2))) == 1  # no pointless retries
    assert_consistent(tmp_path)


def test_read_timeout_is_retried_then_recorded(srv, tmp_path):
    add_record(srv, 1)
    add_record(srv, 2)
    srv.script(
        image_path(1),
        Reply(200, image_bytes(1), "image/jpeg", delay=0.6),
        Reply(200, image_bytes(1), "image/jpeg"),
    )
    srv.script(image_path(2), Reply(200, image_bytes(2), "image/jpeg", delay=5))
    report = run_scrape(srv, [1, 2], tmp_path, read_timeout=0.2, retries=1)
    assert report.present == 1 and report.failed == 1
    assert report.failures["000002"] == "image: read timeout after 2 attempts"
    assert not (tmp_path / "000002.jpg").exists() and not (tmp_path / "000002.json").exists()
    assert_consistent(tmp_path)


def test_request_deadline_abandons_a_dripping_server(srv, tmp_path, capsys):
    """A server that drips the body just often enough to beat the read timeout, and one
    that stays silent for longer than the deadline, both lose the request."""
    for n in (1, 2, 3, 4):
        add_record(srv, n)
    slow = image_bytes(2, (256, 192))
    # 32 bytes every 0.2 s: never 2 s of silence, but minutes for the whole body
    srv.script(image_path(2), Reply(200, slow, "image/jpeg", drip=0.2, drip_bytes=32))
    srv.script(image_path(3), Reply(200, image_bytes(3), "image/jpeg", delay=30))
    report = run_scrape(srv, [1, 2, 3, 4], tmp_path, request_deadline=1.0, retries=1)
    assert report.present == 2 and report.failed == 2
    assert report.failures == {
        "000002": "image: request deadline 1 s exceeded after 2 attempts",
        "000003": "image: request deadline 1 s exceeded after 2 attempts",
    }
    hits = srv.hits_for(image_path(2))
    assert len(hits) == 2
    # each transfer had begun and was abandoned long before the body was complete
    assert all(0 < h.sent < len(slow) for h in hits), [h.sent for h in hits]
    index = assert_consistent(tmp_path)
    for id6 in ("000002", "000003"):
        assert index["entries"][id6]["status"] == "failed"
        assert "request deadline" in index["entries"][id6]["reason"]
        assert not (tmp_path / f"{id6}.jpg").exists()
    assert (tmp_path / "000001.jpg").read_bytes() == image_bytes(1)
    assert (tmp_path / "000004.jpg").read_bytes() == image_bytes(4)

    # the CLI flag, and a nonsensical value as one error line
    args = ["scrape", "--base-url", srv.url("/miclib/"), "--ids", "1", "--rate", "1000"]
    assert main([*args, "--out", str(tmp_path / "cli"), "--request-deadline", "5"]) == 0
    assert (tmp_path / "cli" / "000001.jpg").exists()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad"), "--request-deadline", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["microlib scrape: error: --request-deadline must be > 0 s, got 0.0"]


def test_truncated_jpeg_is_rejected(srv, tmp_path):
    full = image_bytes(1, (128, 96))
    add_record(srv, 1, image=full[: len(full) * 2 // 3])
    report = run_scrape(srv, [1], tmp_path)
    assert report.failed == 1 and "truncated" in report.failures["000001"]
    assert sorted(os.listdir(tmp_path)) == [".scrape-cache.json", ".scrape.lock", "index.json"]
    assert_consistent(tmp_path)


def test_truncated_transfer_is_retried_then_fails(srv, tmp_path):
    add_record(srv, 1)
    body = image_bytes(1)
    srv.script(image_path(1), Reply(200, body[:300], "image/jpeg", content_length=len(body)))
    report = run_scrape(srv, [1], tmp_path, retries=1)
    assert report.failed == 1 and "connection error" in report.failures["000001"]
    assert len(srv.hits_for(image_path(1))) == 2
    assert_consistent(tmp_path)


def test_html_where_the_image_should_be(srv, tmp_path):
    add_record(srv, 1)
    add_record(srv, 2)
    html = b"<!DOCTYPE html><html><body><h1>Micrograph not available</h1></body></html>"
    srv.script(image_path(1), Reply(200, html, "text/html; charset=utf-8"))
    srv.script(image_path(2), Reply(200, html, "image/jpeg"))  # lying Content-Type
    report = run_scrape(srv, [1, 2], tmp_path)
    assert report.failed == 2
    assert report.failures["000001"] == "image: text/html served where an image was expected"
    assert report.failures["000002"] == "image: HTML/markup served where an image was expected"
    assert sorted(os.listdir(tmp_path)) == [".scrape-cache.json", ".scrape.lock", "index.json"]
    assert_consistent(tmp_path)


def test_oversized_responses_are_refused(srv, tmp_path):
    add_record(srv, 1)
    add_record(srv, 2)
    big = image_bytes(7, (400, 400), "PNG")
    srv.script(image_path(1), Reply(200, big, "image/png"))  # Content-Length says it
    srv.script(image_path(2), Reply(200, big, "image/png", content_length=OMIT))  # only counted
    report = run_scrape(srv, [1, 2], tmp_path, max_bytes=50_000)
    assert len(big) > 50_000
    assert report.failures["000001"] == (
        f"image: response too large: Content-Length {len(big)} > --max-bytes 50000"
    )
    assert report.failures["000002"] == (
        "image: response too large: more than 50000 bytes (--max-bytes)"
    )
    assert len(srv.hits_for(image_path(1))) == 1  # permanent: not retried
    assert_consistent(tmp_path)


def test_redirects_same_host_followed_foreign_refused(srv, tmp_path):
    add_record(srv, 1)
    add_record(srv, 2)
    srv.static("/elsewhere/000001.jpg", image_bytes(1), "image/jpeg")
    srv.script(image_path(1), Reply(302, b"", "text/html", {"Location": "/elsewhere/000001.jpg"}))
    srv.script(
        image_path(2),
        Reply(302, b"", "text/html", {"Location": "http://example.invalid/000002.jpg"}),
    )
    srv.script(page_path(3), Reply(301, b"", "text/html", {"Location": page_path(3)}))
    report = run_scrape(srv, [1, 2, 3], tmp_path)
    assert report.present == 1 and report.failed == 2
    assert report.failures["000002"] == (
        "image: redirect to another host refused: "
        "example.invalid (http://example.invalid/000002.jpg)"
    )
    assert report.failures["000003"] == "record page: more than 5 redirects"
    assert (tmp_path / "000001.jpg").read_bytes() == image_bytes(1)
    assert len(srv.hits_for(image_path(2))) == 1
    assert_consistent(tmp_path)


def test_robots_disallow_and_crawl_delay(srv, tmp_path):
    add_record(srv, 1)
    add_record(srv, 2)
    srv.static(
        "/robots.txt",
        b"User-agent: *\nDisallow: /miclib/micrographs/large/000002.jpg\nCrawl-delay: 0.15\n",
        "text/plain",
    )
    report = run_scrape(srv, [1, 2], tmp_path, rate=1000)
    assert report.failures == {
        "000002": "disallowed by robots.txt: /miclib/micrographs/large/000002.jpg"
    }
    assert srv.hits_for(image_path(2)) == []  # never requested
    starts = [h.time for h in srv.hits]
    assert min(np.diff(starts)) >= 0.12  # Crawl-delay, not the 1 ms of --rate 1000
    assert_consistent(tmp_path)


def test_rate_limit_spaces_request_starts(srv, tmp_path):
    for n in (1, 2, 3):
        add_record(srv, n)
    run_scrape(srv, [1, 2, 3], tmp_path, rate=12.5)  # >= 80 ms between starts
    starts = [h.time for h in srv.hits]
    assert len(starts) == 7
    # arrival times jitter by tens of ms on a loaded machine, but only at the ends of a
    # span: six gaps must take 6 x 80 ms in all, and no gap is near an unlimited ~1 ms
    assert starts[-1] - starts[0] >= 6 * 0.080 - 0.03
    assert min(np.diff(starts)) >= 0.04


def test_unreachable_robots_is_an_error(srv, tmp_path):
    srv.script("/robots.txt", Reply(503, b"down", "text/plain"))
    with pytest.raises(MicrolibError, match=r"cannot read robots.txt: HTTP 503 after 3 attempts"):
        run_scrape(srv, [1], tmp_path)
    srv.script("/robots.txt", Reply(404, b"", "text/plain"))  # absent robots: allowed
    add_record(srv, 1)
    assert run_scrape(srv, [1], tmp_path).present == 1


def test_interrupted_run_resumes_without_refetching(srv, tmp_path):
    for n in (1, 2, 3, 4):
        add_record(srv, n)

    def stop_after_two(id6, entry):
        if id6 == "000002":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scrape(
            srv.url("/miclib/"),
            [1, 2, 3, 4],
            tmp_path,
            ScrapeOptions(**FAST),
            on_entry=stop_after_two,
        )
    index = assert_consistent(tmp_path)
    assert sorted(index["entries"]) == ["000001", "000002"]
    report = run_scrape(srv, [1, 2, 3, 4], tmp_path)
    assert (report.downloaded, report.cached) == (2, 2)
    for n in (1, 2, 3, 4):
        assert len(srv.hits_for(image_path(n), 200)) == 1
    assert assert_consistent(tmp_path)["counts"]["present"] == 4


def test_killed_process_leaves_no_partial_files_and_resumes(srv, tmp_path):
    for n in (1, 2, 3):
        add_record(srv, n)
    srv.script(image_path(3), Reply(200, image_bytes(3), "image/jpeg", delay=60))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microlib",
            "-q",
            "scrape",
            "--base-url",
            srv.url("/miclib/"),
            "--ids",
            "1-3",
            "--out",
            str(tmp_path),
            "--rate",
            "1000",
            "--read-timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not srv.hits_for(image_path(3)) and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.02)
        assert srv.hits_for(image_path(3)), "scraper never reached id 3"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    index = assert_consistent(tmp_path)
    assert sorted(index["entries"]) == ["000001", "000002"]
    srv.script(image_path(3), Reply(200, image_bytes(3), "image/jpeg"))
    report = run_scrape(srv, [1, 2, 3], tmp_path)
    assert (report.present, report.downloaded, report.cached) == (3, 1, 2)
    assert assert_consistent(tmp_path)["counts"]["present"] == 3


def test_previously_present_entry_keeps_files_when_a_refetch_fails(srv, tmp_path):
    data = add_record(srv, 1)
    run_scrape(srv, [1], tmp_path)
    srv.script(image_path(1), Reply(200, b"<html>gone</html>", "text/html"))
    report = run_scrape(srv, [1], tmp_path)
    assert report.failed == 1
    assert (tmp_path / "000001.jpg").read_bytes() == data  # nothing computed is lost
    assert_consistent(tmp_path)


# =========================================================================== CLI


def write_site(root: Path, ids: list[int]) -> None:
    """A DoITPoMS-shaped folder as microlib.serve expects it."""
    (root / "miclib" / "full_record").mkdir(parents=True)
    (root / "miclib" / "micrographs" / "large").mkdir(parents=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    for n in ids:
        (root / "miclib" / "full_record" / f"{n}.html").write_bytes(record_page(n, PEARLITE))
        (root / "miclib" / "micrographs" / "large" / f"{n:06d}.jpg").write_bytes(image_bytes(n))


def test_cli_serve_twice_second_run_downloads_nothing(tmp_path, capsys):
    site, out = tmp_path / "site", tmp_path / "raw"
    write_site(site, [2, 3, 7])
    argv = ["scrape", "--serve", str(site), "--ids", "1-8", "--out", str(out), "--rate", "500"]
    assert main(argv) == 0
    assert (
        capsys.readouterr().out.strip()
        == "scrape: 3 present (3 images downloaded, 0 cached), 5 missing, 0 failed"
    )
    before = mtimes(out)
    time.sleep(0.02)
    assert main(argv) == 0
    assert (
        capsys.readouterr().out.strip()
        == "scrape: 3 present (0 images downloaded, 3 cached), 5 missing, 0 failed"
    )
    assert mtimes(out) == before
    index = assert_consistent(out)
    assert index["ids"] == "1-8" and index["base_url"].startswith("http://127.0.0.1:")


def test_cli_strict_and_bad_invocations(srv, tmp_path, capsys):
    add_record(srv, 1, image=b"<html>no</html>")
    base = [
        "scrape",
        "--base-url",
        srv.url("/miclib/"),
        "--out",
        str(tmp_path / "o"),
        "--rate",
        "1000",
        "--backoff",
        "0.01",
    ]
    assert main(base + ["--ids", "1"]) == 0
    assert main(base + ["--ids", "1", "--strict"]) == 1
    capsys.readouterr()
    assert main(base + ["--ids", "5-2"]) == 2
    err = capsys.readouterr().err
    assert "microlib scrape: error: bad --ids '5-2'" in err and "Traceback" not in err
    assert (
        main(
            [
                "scrape",
                "--serve",
                str(tmp_path / "nosite"),
                "--ids",
                "1",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "not a DoITPoMS-shaped site" in capsys.readouterr().err
    assert main(base + ["--ids", "1", "--rate", "0"]) == 2
    assert "--rate must be > 0" in capsys.readouterr().err


def test_cli_unreachable_host_is_one_error_line(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = main(
        [
            "scrape",
            "--base-url",
            f"http://127.0.0.1:{port}/miclib/",
            "--ids",
            "1",
            "--out",
            str(tmp_path),
            "--retries",
            "1",
            "--backoff",
            "0.01",
            "--connect-timeout",
            "0.5",
            "--rate",
            "1000",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith(
        f"microlib scrape: error: http://127.0.0.1:{port}/robots.txt: "
        "cannot read robots.txt: connection error"
    )
    assert err[-1].endswith("after 2 attempts")


# =========================================================================== real data


def test_real_micrographs_validate_and_survive_a_scrape_byte_for_byte(realdata, srv, tmp_path):
    import csv

    with open(realdata / "micrographs.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    for name, row in rows.items():
        info = validate_image((realdata / "micrographs" / name).read_bytes())
        assert (info.format, info.height, info.width) == (
            "PNG",
            int(row["height"]),
            int(row["width"]),
        ), name
    steel = (realdata / "inpainter_examples" / "steel_micro237.png").read_bytes()
    add_record(srv, 237, image=steel)
    big = (realdata / "micrographs" / "micro860.png").read_bytes()  # 2048 x 1536
    add_record(srv, 860, image=big)
    add_record(srv, 861, image=big[: len(big) - 5000])
    report = run_scrape(srv, [237, 860, 861], tmp_path, max_bytes=20_000_000)
    assert (report.present, report.failed) == (2, 1)
    assert "truncated" in report.failures["000861"]
    assert (tmp_path / "000237.jpg").read_bytes() == steel
    meta = mio.read_json(tmp_path / "000860.json")
    assert (meta["image_format"], meta["image_width"], meta["image_height"]) == (
        "PNG",
        int(rows["micro860.png"]["width"]),
        int(rows["micro860.png"]["height"]),
    )
    assert_consistent(tmp_path)
