"""package stage: records, data_anns.json, excluded.json, zip writing and safe extraction."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from microlib import io
from microlib.cli import main
from microlib.errors import MicrolibError
from microlib.package import (
    check_member,
    data_anns,
    entry_record,
    excluded_records,
    safe_extract,
    write_zip,
)

ROOT = Path(__file__).resolve().parents[1]


def schema(name: str) -> dict:
    return yaml.safe_load((ROOT / "workflow" / "schemas" / name).read_text())


RAW = {
    "id": 237,
    "id6": "000237",
    "name": "microstructure237",
    "record_url": "http://127.0.0.1/miclib/full_record.php?id=237",
    "image_url": "http://127.0.0.1/miclib/micrographs/large/000237.jpg",
    "brief_descr": "Pearlite in a hypo-eutectoid steel",
    "keywords": ["pearlite", "steel"],
    "category": ["Metal or alloy"],
    "element": ["Fe", "C"],
    "composition": "Fe 0.4 wt% C",
    "technique": "Light microscopy",
    "long desc": "Etched in 2% nital. 20 µm grains.",
    "contributor": "Prof Müller",
    "organisation": "Demo University",
    "licence": "Creative Commons Attribution-Noncommercial-Share Alike 2.0 UK",
    "licence_url": "http://creativecommons.org/licenses/by-nc-sa/2.0/uk/",
    "image_sha256": "a" * 64,
    "retrieved": "2026-11-22T00:00:00Z",
}


def test_entry_record_has_microlib_fields_licence_and_credit():
    rec = entry_record(
        "microstructure237",
        RAW,
        {"data_type": "twophase", "voxel_size_um": 0.5, "source": "auto"},
        {"nc": 2, "phase_grey_values": [40.0, 200.0]},
        {"summary": {"vf_mean_abs_pct_error": 2.5}},
        ["microstructure237.tif"],
    )
    assert list(rec)[:10] == [
        "name",
        "data_type",
        "brief_descr",
        "keywords",
        "category",
        "element",
        "technique",
        "long desc",
        "contributor",
        "organisation",
    ]
    assert (
        rec["credit"]
        == "Prof Müller, Demo University; DoITPoMS Micrograph Library, University of Cambridge"
    )
    assert rec["licence_url"].startswith("http://creativecommons.org")
    assert rec["metrics"] == {"vf_mean_abs_pct_error": 2.5}
    assert rec["doitpoms_id"] == 237 and rec["n_phases"] == 2
    anns = data_anns([rec, dict(rec, name="microstructure003", doitpoms_id=3)])
    assert list(anns) == ["1", "2"] and anns["1"]["name"] == "microstructure003"
    jsonschema.validate(anns, schema("data_anns.schema.yaml"))


def test_data_anns_rejects_duplicate_names():
    rec = entry_record("microstructure237", RAW, {"data_type": "twophase"})
    with pytest.raises(MicrolibError, match="duplicate"):
        data_anns([rec, rec])


def test_excluded_lists_filter_and_scrape_failures_not_missing_ids():
    selection = {
        "included": ["000003"],
        "excluded": {
            "000021": {
                "name": "microstructure021",
                "reasons": ["exposure: trend 0.4 > 0.25"],
                "criteria": ["exposure"],
            }
        },
    }
    index = {
        "entries": {
            "000003": {"status": "present"},
            "000005": {"status": "missing"},
            "000009": {"status": "failed", "reason": "truncated JPEG"},
        }
    }
    out = excluded_records(selection, index)
    assert list(out) == ["000009", "000021"]
    assert out["000009"]["reasons"] == ["scrape failed: truncated JPEG"]
    assert out["000021"]["stage"] == "select"
    jsonschema.validate(out, schema("excluded.schema.yaml"))


def _dataset(tmp_path: Path, names=("microstructure003", "microstructure007")) -> Path:
    ds = tmp_path / "microlibDataset"
    for n in names:
        (ds / n).mkdir(parents=True)
        io.write_bytes(ds / n / f"{n}_Gen.pt", b"weights")
        io.write_tif(ds / n / f"{n}.tif", np.zeros((4, 4, 4), np.uint8))
    io.write_json(ds / "data_anns.json", {"1": {"name": names[0]}})
    io.write_json(ds / "excluded.json", {})
    return ds


def test_zip_contains_only_listed_entries_and_roundtrips(tmp_path):
    ds = _dataset(tmp_path, ("microstructure003", "microstructure007", "microstructure099"))
    archive = tmp_path / "microlibDataset.zip"
    members = write_zip(ds, archive, ["microstructure003", "microstructure007"])
    assert "microlibDataset/data_anns.json" in members
    assert not any("microstructure099" in m for m in members)  # stale entry never leaks
    out = tmp_path / "out"
    written = safe_extract(archive, out)
    assert len(written) == len(members)
    assert (
        out / "microlibDataset/microstructure003/microstructure003_Gen.pt"
    ).read_bytes() == b"weights"
    with zipfile.ZipFile(archive) as zf:  # .pt stored, .tif deflated
        assert (
            zf.getinfo("microlibDataset/microstructure003/microstructure003_Gen.pt").compress_type
            == zipfile.ZIP_STORED
        )
        assert (
            zf.getinfo("microlibDataset/microstructure003/microstructure003.tif").compress_type
            == zipfile.ZIP_DEFLATED
        )


@pytest.mark.parametrize(
    "evil", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:/evil.txt", "..\\evil.txt"]
)
def test_safe_extract_refuses_paths_leaving_the_target(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(evil, "pwned")
    target = tmp_path / "target"
    with pytest.raises(MicrolibError, match="outside"):
        safe_extract(archive, target)
    # checked before anything is written: not even the harmless member
    assert not (target / "ok.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_symlinks_and_bombs(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(MicrolibError, match="symbolic link"):
        safe_extract(archive, tmp_path / "t")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 2_000_000)
    with pytest.raises(MicrolibError, match="expand"):
        safe_extract(bomb, tmp_path / "t2", max_bytes=1_000_000, max_ratio=10_000)
    with pytest.raises(MicrolibError, match="zip bomb"):
        safe_extract(bomb, tmp_path / "t2")
    assert not (tmp_path / "t2").exists()


def test_check_member_inside_target(tmp_path):
    assert check_member("a/b.txt", tmp_path) == (tmp_path / "a" / "b.txt").resolve()


def _stage_outputs(tmp_path: Path, name: str = "microstructure003") -> dict[str, Path]:
    """Minimal but real outputs of the upstream stages for one entry."""
    rng = np.random.default_rng(0)
    d = {
        k: tmp_path / k
        for k in ("raw", "annotations", "training", "models", "volumes", "metrics", "media")
    }
    raw = tmp_path / "raw" / "000003.jpg"
    raw.parent.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(raw, format="JPEG")
    io.write_json(tmp_path / "raw" / "000003.json", dict(RAW, id=3, id6="000003", name=name))
    io.write_json(
        tmp_path / "annotations" / "000003.json",
        {"id": "000003", "data_type": "twophase", "voxel_size_um": None, "source": "auto"},
    )
    io.write_png(
        tmp_path / "training" / f"{name}.png",
        rng.integers(0, 2, (40, 50), dtype=np.uint8),
        {"data_type": "twophase", "n_phases": 2},
    )
    mdir = tmp_path / "models" / name
    for suffix in ("_Gen.pt", "_Disc.pt", "_params.data"):
        io.write_bytes(mdir / f"{name}{suffix}", b"x")
    io.write_json(
        mdir / f"{name}_params.json",
        {"nc": 2, "image_type": "nphase", "training": {"preset": "tiny", "iterations": 5}},
    )
    io.write_tif(
        tmp_path / "volumes" / f"{name}.tif", rng.integers(0, 2, (8, 8, 8), dtype=np.uint8)
    )
    io.write_json(
        tmp_path / "metrics" / f"{name}.json", {"summary": {"vf_mean_abs_pct_error": 1.0}}
    )
    for kind in ("preview.png", "rotation.gif", "slicing.gif", "inpaint.png"):
        io.write_bytes(tmp_path / "media" / name / f"{name}_{kind}", b"media")
    return d


def test_package_cli_entry_then_dataset(tmp_path):
    name = "microstructure003"
    _stage_outputs(tmp_path, name)
    ds = tmp_path / "microlibDataset"
    rc = main(
        [
            "package",
            "entry",
            "--name",
            name,
            "--raw-image",
            str(tmp_path / "raw/000003.jpg"),
            "--raw-meta",
            str(tmp_path / "raw/000003.json"),
            "--annotation",
            str(tmp_path / "annotations/000003.json"),
            "--training",
            str(tmp_path / f"training/{name}.png"),
            "--model-dir",
            str(tmp_path / f"models/{name}"),
            "--volume",
            str(tmp_path / f"volumes/{name}.tif"),
            "--metrics",
            str(tmp_path / f"metrics/{name}.json"),
            "--media-dir",
            str(tmp_path / f"media/{name}"),
            "--out-dir",
            str(ds / name),
        ]
    )
    assert rc == 0
    files = sorted(p.name for p in (ds / name).iterdir())
    assert f"{name}_original.png" in files and f"{name}.tif" in files
    packaged, volume = ds / name / f"{name}.tif", tmp_path / f"volumes/{name}.tif"
    assert packaged.read_bytes() == volume.read_bytes()
    assert not os.path.samefile(packaged, volume)  # a copy: Snakemake touches outputs
    meta = io.read_json(ds / name / f"{name}_metadata.json")
    assert meta["record"]["files"] == files

    selection = {
        "included": ["000003"],
        "excluded": {
            "000021": {
                "name": "microstructure021",
                "reasons": ["exposure"],
                "criteria": ["exposure"],
            }
        },
    }
    io.write_json(tmp_path / "selection.json", selection)
    rc = main(
        [
            "package",
            "dataset",
            "--selection",
            str(tmp_path / "selection.json"),
            "--dataset-dir",
            str(ds),
            "--zip",
            str(tmp_path / "microlibDataset.zip"),
            name,
        ]
    )
    assert rc == 0
    anns = io.read_json(ds / "data_anns.json")
    jsonschema.validate(anns, schema("data_anns.schema.yaml"))
    assert anns["1"]["name"] == name
    assert io.read_json(ds / "excluded.json")["000021"]["reasons"] == ["exposure"]
    with zipfile.ZipFile(tmp_path / "microlibDataset.zip") as zf:
        assert f"microlibDataset/{name}/{name}_Gen.pt" in zf.namelist()

    # a name the selection does not include is refused with one clear line
    rc = main(
        [
            "package",
            "dataset",
            "--selection",
            str(tmp_path / "selection.json"),
            "--dataset-dir",
            str(ds),
            "--no-zip",
            "microstructure021",
        ]
    )
    assert rc == 2


def test_dataset_reader_lists_entries_from_zip_and_folder(tmp_path):
    from microlib.dataset import Dataset

    ds = _dataset(tmp_path, ("microstructure003",))
    io.write_json(
        ds / "data_anns.json", {"1": {"name": "microstructure003", "data_type": "twophase"}}
    )
    archive = tmp_path / "d.zip"
    write_zip(ds, archive, ["microstructure003"])
    for source in (archive, ds, tmp_path):
        with Dataset(source) as d:
            assert d.names == ["microstructure003"]
            assert d.load_volume("microstructure003").shape == (4, 4, 4)
            assert d.excluded() == {}
            with pytest.raises(MicrolibError):
                d.entry("microstructure999")
    with pytest.raises(MicrolibError, match="not a MicroLib dataset"):
        Dataset(tmp_path / "microlibDataset" / "microstructure003")
    assert json.loads((ds / "data_anns.json").read_text())["1"]["data_type"] == "twophase"


def test_two_builds_give_identical_zip_bytes_and_checksums_verify(tmp_path):
    import shutil
    import subprocess
    import time

    from dataset_builder import build

    first = tmp_path / "a"
    build(first)
    time.sleep(1.1)  # later mtimes: they must not reach the archive
    second = tmp_path / "b"
    build(second)
    one = (first / "microlibDataset.zip").read_bytes()
    two = (second / "microlibDataset.zip").read_bytes()
    assert one == two
    assert (first / "SHA256SUMS").read_text() == (second / "SHA256SUMS").read_text()
    with zipfile.ZipFile(first / "microlibDataset.zip") as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    for required in ("SHA256SUMS", "README", "CREDITS", "index.html", "data_anns.json"):
        assert f"microlibDataset/{required}" in names
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (coreutils) not installed")
    # beside the zip: covers the zip
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=first, check=True, capture_output=True)
    # inside: covers every other member
    out = tmp_path / "x"
    safe_extract(first / "microlibDataset.zip", out)
    listed = (out / "microlibDataset/SHA256SUMS").read_text().splitlines()
    assert len(listed) == len(names) - 1
    proc = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"],
        cwd=out / "microlibDataset",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and the check can fail: one changed byte is caught
    tif = out / "microlibDataset/microstructure003/microstructure003.tif"
    tif.write_bytes(tif.read_bytes()[:-1] + b"\x01")
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out / "microlibDataset")
    assert proc.returncode != 0


def test_source_date_epoch_sets_the_member_timestamps(tmp_path, monkeypatch):
    ds = _dataset(tmp_path, ("microstructure003",))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 22:13:20 UTC
    write_zip(ds, tmp_path / "e.zip", ["microstructure003"])
    with zipfile.ZipFile(tmp_path / "e.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_readme_and_credits_name_every_entry_its_contributor_and_licence(tmp_path):
    from dataset_builder import ENTRIES, build

    ds = build(tmp_path, zip_name=None)
    credits = (ds / "CREDITS").read_text()
    readme = (ds / "README").read_text()
    assert "CC BY-NC-SA 2.0 UK" in credits
    for ident, *_ in ENTRIES:
        assert f"microstructure{ident:03d} (DoITPoMS record {ident})" in credits
        assert f"Dr Contributor {ident}" in credits
    assert credits.count("Demo University") >= len(ENTRIES)
    assert "microlib dataset synthesise microlibDataset.zip microstructure003" in readme
    anns = io.read_json(ds / "data_anns.json")
    text = json.dumps(anns)
    assert "\\u001b" not in text and "\\u0007" not in text  # control characters stripped
    assert "[31mred" in text
    svg = (tmp_path / "report/summary.svg").read_text()
    assert svg.count("<circle") == 2 * len(ENTRIES) + len(ENTRIES)  # vf per phase + surface
    assert "mean volume-fraction error" in svg
    excluded = (tmp_path / "report/excluded.html").read_text()
    assert "&lt;i&gt;" in excluded and "<i>" not in excluded and "\x1b" not in excluded
