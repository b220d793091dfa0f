"""The built-in demo library: deterministic, DoITPoMS-shaped, with consistent ground truth."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from microlib import demo_site
from microlib.cli import main
from microlib.serve import serve_site

LABELS = {
    "Brief description",
    "Keywords",
    "Categories",
    "Composition",
    "Technique",
    "Further information",
    "Contributor",
    "Organisation",
}


@pytest.fixture(scope="module")
def site():
    return demo_site.build_site(0)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_same_seed_same_bytes_other_seed_other_images(site):
    files, truth = site
    again, truth2 = demo_site.build_site(0)
    assert again.keys() == files.keys()
    assert all(again[k] == files[k] for k in files)
    assert truth2 == truth
    other, _ = demo_site.build_site(1)
    jpgs = [k for k in files if k.endswith(".jpg")]
    assert other.keys() == files.keys()  # same ids and layout for every seed
    assert sum(other[k] != files[k] for k in jpgs) == len(jpgs)


def test_ids_are_sparse_with_gaps_and_one_empty_record(site):
    files, truth = site
    pages = sorted(
        int(k.rsplit("/", 1)[1][:-5]) for k in files if k.startswith("miclib/full_record/")
    )
    present = [int(i) for i in truth["present"]]
    missing = [int(i) for i in truth["missing"]]
    assert pages == sorted(present + missing)
    assert all(1 <= n <= 40 for n in pages)
    assert len(pages) < 40 and missing == [12]
    images = sorted(int(k.rsplit("/", 1)[1][:6]) for k in files if k.endswith(".jpg"))
    assert images == present  # the empty record has no image
    assert files["robots.txt"].startswith(b"User-agent: *\nAllow: /")


def test_record_pages_parse_in_the_doitpoms_layout(site):
    files, truth = site
    seen_terms = seen_cc = 0
    omitted = 0
    for ident, tr in truth["entries"].items():
        n = int(ident)
        html = files[f"miclib/full_record/{n}.html"].decode("utf-8")
        soup = BeautifulSoup(html, "html.parser")
        assert soup.title.get_text() == f"DoITPoMS - Micrograph Library - Micrograph {n}"
        img = soup.select_one("div.col-md-4 a img")
        assert img["src"] == f"micrographs/large/{n:06d}.jpg" and img["alt"] == f"Micrograph {n}"
        block = soup.find("div", class_="col-md-8")
        assert block.h2.get_text() == f"Micrograph {n}"
        dl = block.find("dl", class_="dl-horizontal")
        pairs = {dt.get_text(): dt.find_next_sibling("dd") for dt in dl.find_all("dt")}
        assert set(pairs) <= LABELS and "Brief description" in pairs
        omitted += len(LABELS - set(pairs))
        rec = tr["record"]
        for label, dd in pairs.items():
            if label == "Keywords":
                assert [a.get_text() for a in dd.find_all("a")] == rec["Keywords"]
                assert all(a["href"].startswith("browse.php?keyword=") for a in dd.find_all("a"))
            elif label == "Further information":
                assert dd.get_text("\n") == rec[label]
            else:
                assert dd.get_text() == rec[label]
        assert "demo" in rec["Contributor"].lower() and "fictional" in rec["Organisation"].lower()
        licence = block.find("p", class_="licence")
        if "terms.php" in str(licence):
            seen_terms += 1
            assert licence.a["href"] == "../miclib/terms.php"
        else:
            seen_cc += 1
            assert licence.a["href"] == "http://creativecommons.org/licenses/by-nc-sa/2.0/uk/"
    assert seen_terms == 1 and seen_cc >= 5
    assert omitted >= 3  # some records leave optional fields out
    text = " ".join(f.decode("utf-8") for k, f in files.items() if k.endswith(".html"))
    assert "µm" in text and "°C" in text and "Müller" in text
    assert "&amp; Imaging" in text  # scraped-looking text is escaped
    empty = BeautifulSoup(files["miclib/full_record/12.html"], "html.parser")
    assert empty.find("div", class_="col-md-8").get_text(strip=True) == ""


def test_record_html_escapes_every_inserted_text():
    rec = demo_site.Record(
        brief="<script>alert(1)</script>",
        keywords=['a"b', "c&d"],
        composition="Fe <b>1</b>",
        further=["x<y", "z"],
    )
    html = demo_site.record_html(7, rec)
    assert "<script>" not in html and "<b>" not in html
    soup = BeautifulSoup(html, "html.parser")
    dds = {dt.get_text(): dt.find_next_sibling("dd") for dt in soup.find_all("dt")}
    assert dds["Brief description"].get_text() == "<script>alert(1)</script>"
    assert [a.get_text() for a in dds["Keywords"].find_all("a")] == ['a"b', "c&d"]
    assert dds["Keywords"].find_all("a")[1]["href"] == "browse.php?keyword=c%26d"
    assert dds["Further information"].get_text("\n") == "x<y\nz"


def test_images_decode_and_ground_truth_is_consistent(site):
    files, truth = site
    kinds = {}
    for ident, tr in truth["entries"].items():
        img = _png(files[f"miclib/micrographs/large/{ident}.jpg"])
        assert files[f"miclib/micrographs/large/{ident}.jpg"][:3] == b"\xff\xd8\xff"
        assert list(img.shape[:2]) == tr["image_size"]
        assert (img.ndim == 3) == (tr["channels"] == 3)
        # realistic imaging: grey levels spread by noise/blur, phases not at 0/255
        assert len(np.unique(img)) > 40
        x0, y0, x1, y1 = tr["crop_box"]
        assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
        assert 300 <= (y1 - y0) <= 500 and 300 <= (x1 - x0) <= 500
        bar = _png(files[tr["bar_mask"]])
        assert bar.shape == img.shape[:2] and set(np.unique(bar)) <= {0, 255}
        if tr["scale_bar"]["placement"] == "none":
            assert not bar.any()
        else:
            bx0, by0, bx1, by1 = tr["scale_bar"]["box"]
            ys, xs = np.nonzero(bar)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (bx0, by0, bx1, by1)
            assert tr["scale_bar"]["length_px"] == round(
                tr["scale_bar"]["um"] / tr["voxel_size_um"]
            )
            in_crop = bar[y0:y1, x0:x1].any()
            assert in_crop == tr["scale_bar_in_crop"] == (tr["scale_bar"]["placement"] == "overlay")
        if tr["labels"]:
            lab = _png(files[tr["labels"]])
            assert lab.shape == (y1 - y0, x1 - x0)
            assert lab.max() == tr["n_phases"] - 1
            keep = bar[y0:y1, x0:x1] == 0
            fr = np.bincount(lab[keep].ravel(), minlength=tr["n_phases"]) / keep.sum()
            assert np.allclose(fr, tr["phase_fractions"], atol=1e-4)
            # labels ascend with grey: the mean image grey rises with the label
            grey = img[y0:y1, x0:x1].astype(float)
            grey = grey.mean(axis=2) if grey.ndim == 3 else grey
            means = [grey[(lab == i) & keep].mean() for i in range(tr["n_phases"])]
            assert means == sorted(means)
        kinds.setdefault(tr["data_type"], []).append(tr["included"])
    # the five included entries cover every data type; one exclusion per criterion
    assert sorted(truth["included"]) == sorted(
        k for k, v in truth["entries"].items() if v["included"]
    )
    singles = [i for i in truth["included"] if not truth["entries"][i]["family"]]
    inc_types = sorted(truth["entries"][i]["data_type"] for i in singles)
    assert inc_types == ["colour", "grayscale", "threephase", "twophase", "twophase"]
    # one family of three included two-phase members with distinct codes
    family = {i: v["family"] for i, v in truth["entries"].items() if v["family"]}
    assert sorted(family) == ["000036", "000037", "000038"]
    assert {f["name"] for f in family.values()} == {"blobs"}
    assert [f["code"] for f in family.values()] == [0.15, 0.35, 0.6]
    assert all(truth["entries"][i]["included"] for i in family)
    assert sorted(truth["excluded"].values()) == [
        "exposure",
        "isotropy",
        "quality",
        "representativity",
        "uniqueness",
    ]
    dup = [v for v in truth["entries"].values() if v["criterion"] == "uniqueness"][0]
    twin = truth["entries"][dup["duplicate_of"]]
    assert twin["included"] and twin["record"] == dup["record"]
    placements = {v["scale_bar"]["placement"] for v in truth["entries"].values()}
    assert placements == {"overlay", "band", "none"}
    colours = {
        v["scale_bar"].get("colour")
        for v in truth["entries"].values()
        if v["scale_bar"]["placement"] == "overlay"
    }
    assert colours == {0, 255}  # white and black bars on the data
    assert json.loads(files["ground_truth.json"]) == truth


def test_site_serves_over_loopback_with_404_gaps(tmp_path):
    assert main(["-q", "demo-site", str(tmp_path / "site"), "--seed", "0"]) == 0
    files, truth = demo_site.build_site(0)
    for rel, data in files.items():
        assert (tmp_path / "site" / rel).read_bytes() == data
    with serve_site(tmp_path / "site") as base:
        assert base.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(base + "full_record.php?id=3", timeout=10).read()
        assert page == files["miclib/full_record/3.html"]
        jpg = urllib.request.urlopen(base + "micrographs/large/000003.jpg", timeout=10).read()
        assert jpg == files["miclib/micrographs/large/000003.jpg"]
        empty = urllib.request.urlopen(base + "micrograph_record.php?id=12", timeout=10).read()
        assert b'<div class="col-md-8"></div>' in empty
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "full_record.php?id=2", timeout=10)
        assert err.value.code == 404
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "micrographs/large/000012.jpg", timeout=10)
    assert (tmp_path / "site" / "ground_truth.json").is_file()
    assert not (tmp_path / "site" / "miclib" / "ground_truth.json").exists()


def test_demo_site_refuses_a_file_as_target(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    assert main(["demo-site", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("microlib demo-site: error:") and "not a folder" in err[-1]
