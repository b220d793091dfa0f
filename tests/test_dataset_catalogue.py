"""The offline catalogue (``index.html``) in a real headless Chromium: it loads from
file:// with no network, filters and search narrow the cards, and a scraped record holding
``<script>`` is shown as text and never executed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from dataset_builder import ENTRIES, build

from microlib.dataset.catalogue import catalogue_html, embed_json
from microlib.io import write_png

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REVIEW_COPY = Path("/work/scratch/dataset/catalogue.png")


def test_embedded_json_cannot_close_its_script_block():
    text = embed_json([{"t": "</script><script>alert(1)</script>&\u2028"}])
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == [{"t": "</script><script>alert(1)</script>&\u2028"}]
    page = catalogue_html([{"name": "microstructure001", "brief_descr": "</script><b>x"}])
    assert page.count("</script>") == 2  # the data block's and the code block's only
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside
    assert not re.search(r"<(link|img|iframe)\b", page)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _names(page) -> list[str]:
    return page.eval_on_selector_all("article.card", "els => els.map(e => e.dataset.name)")


def test_the_catalogue_filters_searches_and_never_runs_scraped_script(browser, tmp_path, request):
    ds = build(tmp_path)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto((ds / "index.html").as_uri())
    page.wait_for_selector("body[data-ready='1']")

    everything = sorted(f"microstructure{e[0]:03d}" for e in ENTRIES)
    assert sorted(_names(page)) == everything
    # every preview image loaded from the dataset folder
    loaded = page.eval_on_selector_all(
        "article.card img", "els => els.map(e => e.complete && e.naturalWidth)"
    )
    assert loaded == [64] * len(ENTRIES)
    assert all(u.startswith("file://") for u in requests), requests

    # the hostile record: shown as text, its script never ran
    hostile = page.locator("article[data-name='microstructure009'] h2").text_content()
    assert "<script>window.__pwned = 1; alert(1)</script>" in hostile
    assert "\x1b" not in hostile and "\x07" not in hostile
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("typeof window.__pwned2") == "undefined"  # no markup parsed either
    assert (
        "<img src=x onerror="
        in page.locator("article[data-name='microstructure009']").text_content()
    )
    assert page.locator("article img").count() == len(ENTRIES)  # previews only
    assert page.locator("article script").count() == 0
    assert dialogs == []

    # filters narrow the cards
    page.select_option("#filter-data_type", "grayscale")
    assert _names(page) == ["microstructure007"]
    page.select_option("#filter-data_type", "")
    page.select_option("#filter-category", "Metal or alloy")
    assert sorted(_names(page)) == ["microstructure003", "microstructure007"]
    page.select_option("#filter-element", "Cu")
    assert _names(page) == ["microstructure007"]
    page.select_option("#filter-element", "")
    page.select_option("#filter-technique", "SEM")
    assert _names(page) == []  # no metal imaged by SEM here
    page.select_option("#filter-category", "")
    assert sorted(_names(page)) == ["microstructure005", "microstructure009"]
    page.select_option("#filter-technique", "")

    # keyword search, over keywords and descriptions
    page.fill("#search", "alumina")
    assert _names(page) == ["microstructure005"]
    page.fill("#search", "steel pearlite")
    assert _names(page) == ["microstructure003"]
    page.fill("#search", "nothing-matches-this")
    assert _names(page) == []
    assert page.text_content("#count") == "0 of 4"
    page.fill("#search", "")
    assert len(_names(page)) == len(ENTRIES)

    # metrics and file links are on the card
    card = page.locator("article[data-name='microstructure005']")
    assert "volume fraction error 6.5 %" in card.text_content()
    hrefs = card.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert "microstructure005/microstructure005.tif" in hrefs

    shot = tmp_path / "catalogue.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if REVIEW_COPY.parent.parent.is_dir():
        REVIEW_COPY.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, REVIEW_COPY)
    page.close()


def test_families_get_cards_with_their_sweep_and_members_as_text(browser, tmp_path):
    fam_dir = tmp_path / "families" / "blobs"
    fam_dir.mkdir(parents=True)
    sweep = np.zeros((24, 96), np.uint8)
    sweep[:, ::8] = 255
    write_png(fam_dir / "blobs_sweep.png", sweep)
    hostile = "<img src=x onerror=window.__pwned=1>"
    family = {
        "data_type": "twophase",
        "code_range": [0.15, 0.6],
        "files": ["blobs_Gen.pt", "blobs_sweep.png"],
        "feature_size": {"summary": {"monotone": True, "max_abs_error_pct": 20.8}},
        "members": [
            {"name": "microstructure036", "brief_descr": "fine glass", "code": 0.15},
            {"name": "microstructure038", "brief_descr": hostile, "code": 0.6},
        ],
    }
    (tmp_path / "index.html").write_text(
        catalogue_html(
            [{"name": "microstructure001", "metrics": {"flags": ["lattice_3d"]}}],
            {"blobs": family},
        )
    )
    page = browser.new_page()
    page.goto((tmp_path / "index.html").as_uri())
    page.wait_for_selector("body[data-ready='1']")
    card = page.locator("article[data-family='blobs']")
    text = card.text_content()
    assert "family blobs: 2 members, codes 0.15 to 0.6" in text
    assert "feature size follows the code, largest error at a member 20.8 %" in text
    assert f"code 0.6: microstructure038: {hostile}" in text  # shown, never parsed
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert card.locator("img").evaluate("e => e.complete && e.naturalWidth") == 96
    hrefs = card.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert hrefs == ["families/blobs/blobs_Gen.pt", "families/blobs/blobs_sweep.png"]
    assert _names(page)[0] == "microstructure001"  # the entries' cards are still there
    entry = page.locator("article[data-name='microstructure001']").text_content()
    assert "flagged: lattice_3d" in entry  # validation's verdict is on the card
    page.close()
