"""Build a small packaged dataset from synthetic entries with the package stage's own code:
records by ``entry_record``, the top-level files and zip by ``microlib package dataset``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from microlib import io
from microlib.cli import main
from microlib.package import entry_record

LICENCE = "Creative Commons Attribution-Noncommercial-Share Alike 2.0 UK"
LICENCE_URL = "http://creativecommons.org/licenses/by-nc-sa/2.0/uk/"

# (id, data type, category, elements, technique, description, keywords)
ENTRIES = [
    (
        3,
        "twophase",
        "Metal or alloy",
        ["Fe", "C"],
        "Light microscopy",
        "Pearlite in steel",
        ["pearlite", "steel"],
    ),
    (5, "twophase", "Ceramic", ["Al", "O"], "SEM", "Porous alumina", ["pores", "alumina"]),
    (
        7,
        "grayscale",
        "Metal or alloy",
        ["Cu", "Zn"],
        "Light microscopy",
        "Brass dendrites",
        ["dendrites", "brass"],
    ),
    (
        9,
        "threephase",
        "Composite",
        ["Si", "C"],
        "SEM",
        "Hostile <script>window.__pwned = 1; alert(1)</script> \x1b[31mred\x07 record",
        ["<img src=x onerror=window.__pwned2=1>", "escape"],
    ),
]


def build(root: Path, zip_name: str | None = "microlibDataset.zip") -> Path:
    """Write ``root/microlibDataset/`` (four entries) and, if asked, ``root/zip_name``."""
    ds = root / "microlibDataset"
    names = []
    rng = np.random.default_rng(0)
    for ident, dtype, category, elements, technique, descr, keywords in ENTRIES:
        name = io.entry_name(ident)
        names.append(name)
        folder = ds / name
        preview = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        preview[:, : 8 * (ident % 7 + 1)] = (40 * ident % 255, 120, 200)
        io.write_png(folder / f"{name}_preview.png", preview)
        io.write_tif(folder / f"{name}.tif", (rng.random((8, 8, 8)) > 0.5).astype(np.uint8))
        io.write_bytes(folder / f"{name}_Gen.pt", b"weights of " + name.encode())
        metrics = {
            "name": name,
            "phases": [
                {"label": 0, "vf_2d": 0.4 + ident / 100, "vf_3d": 0.41 + ident / 100},
                {"label": 1, "vf_2d": 0.6 - ident / 100, "vf_3d": 0.59 - ident / 100},
            ],
            "surface_area_density": {"2d": 0.02 * ident, "3d": 0.021 * ident},
            "summary": {"vf_mean_abs_pct_error": 1.5 + ident, "surface_area_pct_error": 4.0},
        }
        io.write_json(folder / f"{name}_metrics.json", metrics)
        raw = {
            "brief_descr": descr,
            "keywords": keywords,
            "category": [category],
            "element": elements,
            "technique": technique,
            "long desc": f"Long description of {name}.\x1b]0;title\x07",
            "contributor": f"Dr Contributor {ident}",
            "organisation": "Demo University",
            "licence": LICENCE,
            "licence_url": LICENCE_URL,
            "record_url": f"http://127.0.0.1/miclib/full_record.php?id={ident}",
        }
        files = [p.name for p in folder.iterdir()] + [f"{name}_metadata.json"]
        record = entry_record(name, raw, {"data_type": dtype}, None, metrics, files)
        io.write_json(folder / f"{name}_metadata.json", {"record": record})
    selection = {
        "included": [io.entry_id(n) for n in names],
        "excluded": {
            "000024": {
                "name": "microstructure024",
                "reasons": ["uniqueness: near-duplicate of 000003 <i>\x1b</i>"],
                "criteria": ["uniqueness"],
            }
        },
    }
    io.write_json(root / "selection.json", selection)
    archive = ["--zip", str(root / zip_name)] if zip_name else ["--no-zip"]
    rc = main(
        [
            "package",
            "dataset",
            "--selection",
            str(root / "selection.json"),
            "--dataset-dir",
            str(ds),
            "--report-dir",
            str(root / "report"),
            *archive,
            *names,
        ]
    )
    assert rc == 0
    return ds
