"""Assemble the MicroLib-style dataset: records, ``data_anns.json``, README, CREDITS, the zip.

Pure functions build the records and the text files from the stages' JSON outputs; the
only file-system helper here is the zip writer, which is deterministic (sorted members,
fixed timestamps and permissions) so the same inputs give the same bytes and checksum.
The safe extractor it pairs with lives in :mod:`microlib.dataset.extract`.
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from microlib.dataset.extract import check_member, safe_extract
from microlib.dataset.read import DATASET_DIR, clean_text
from microlib.errors import MicrolibError
from microlib.io import atomic_path, entry_id, entry_name

__all__ = [
    "DATASET_DIR",
    "check_member",
    "credits_text",
    "data_anns",
    "entry_record",
    "excluded_records",
    "readme_text",
    "safe_extract",
    "sha256sums",
    "write_zip",
]
DOITPOMS_CREDIT = "DoITPoMS Micrograph Library, University of Cambridge"

# MicroLib's data_anns.json fields, in its order, then ours
MICROLIB_FIELDS = (
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
)

# already-compressed members are stored, the rest deflated
_STORED_SUFFIXES = {".pt", ".png", ".gif", ".jpg", ".jpeg", ".mp4", ".zip", ".data"}


def credit_line(meta: Mapping[str, Any]) -> str:
    """Attribution required by DoITPoMS: contributor, organisation, library.

    Examples
    --------
    >>> credit_line({"contributor": "Dr A N Other", "organisation": "Uni X"})
    'Dr A N Other, Uni X; DoITPoMS Micrograph Library, University of Cambridge'
    """
    who = ", ".join(v for v in (meta.get("contributor"), meta.get("organisation")) if v)
    return f"{who}; {DOITPOMS_CREDIT}" if who else DOITPOMS_CREDIT


def _summary_of_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not metrics:
        return None
    summary = metrics.get("summary")
    if isinstance(summary, Mapping):
        return dict(summary)
    return None


def entry_record(
    name: str,
    raw_meta: Mapping[str, Any],
    annotation: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    files: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``data_anns.json`` record of one entry.

    Parameters
    ----------
    name : str
        ``microstructureNNN``.
    raw_meta : mapping
        The scrape stage's ``raw/{id}.json`` (DoITPoMS record fields).
    annotation : mapping
        The annotate stage's ``annotations/{id}.json``.
    params : mapping, optional
        The trained model's ``{name}_params.json``.
    metrics : mapping, optional
        The validate stage's ``metrics/{name}.json``.
    files : iterable of str
        File names inside the entry folder.

    Returns
    -------
    dict
        MicroLib's fields first (name, data_type, brief_descr, keywords, category,
        element, technique, long desc, contributor, organisation), then provenance,
        licence and credit, voxel size, phases, generator facts and a metrics summary.
    """
    ident = entry_id(name)
    params = params or {}
    # scraped text is stored without control characters (ESC, BEL... reach terminals)
    raw_meta = clean_text(dict(raw_meta))
    record: dict[str, Any] = {
        "name": name,
        "data_type": annotation.get("data_type") or params.get("image_type"),
        "brief_descr": raw_meta.get("brief_descr"),
        "keywords": list(raw_meta.get("keywords") or []),
        "category": list(raw_meta.get("category") or []),
        "element": list(raw_meta.get("element") or []),
        "technique": raw_meta.get("technique"),
        "long desc": raw_meta.get("long desc"),
        "contributor": raw_meta.get("contributor"),
        "organisation": raw_meta.get("organisation"),
        "doitpoms_id": int(ident),
        "doitpoms_url": raw_meta.get("record_url"),
        "image_url": raw_meta.get("image_url"),
        "licence": raw_meta.get("licence"),
        "licence_url": raw_meta.get("licence_url"),
        "credit": credit_line(raw_meta),
        "retrieved": raw_meta.get("retrieved"),
        "original_sha256": raw_meta.get("image_sha256"),
        "voxel_size_um": annotation.get("voxel_size_um", params.get("voxel_size_um")),
        "n_phases": params.get("nc") if params else None,
        "phase_grey_values": params.get("phase_grey_values"),
        "annotation_source": annotation.get("source"),
        "generator": _generator_facts(params),
        "metrics": _summary_of_metrics(metrics),
        "files": sorted(files),
    }
    return record


def _generator_facts(params: Mapping[str, Any]) -> dict[str, Any] | None:
    if not params:
        return None
    training = params.get("training") or {}
    keep = ("preset", "iterations", "seed", "device", "wall_time_s")
    return {
        "format_version": params.get("format_version"),
        "image_type": params.get("image_type"),
        "nz": params.get("nz"),
        "lz": params.get("lz"),
        "training": {k: training[k] for k in keep if k in training},
        "size_formula": params.get("size_formula") or params.get("output_size_formula"),
    }


def data_anns(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """MicroLib's ``data_anns.json``: records keyed ``"1"``, ``"2"``… by DoITPoMS id order."""
    ordered = sorted(records, key=lambda r: int(r["doitpoms_id"]))
    names = [r["name"] for r in ordered]
    if len(set(names)) != len(names):
        raise MicrolibError(f"duplicate entry names in the dataset: {names}")
    # records packaged by an older version may still hold scraped control characters
    return {str(i): clean_text(dict(r)) for i, r in enumerate(ordered, start=1)}


def excluded_records(
    selection: Mapping[str, Any], index: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Every id left out of the dataset with its reasons, keyed by 6-digit id.

    Filter exclusions come from the ``select`` checkpoint; ids the scraper could not
    fetch (status ``failed``) are listed too. Ids the site simply does not have
    (``missing``) are not entries and are not listed.
    """
    out: dict[str, dict[str, Any]] = {}
    for ident, info in (selection.get("excluded") or {}).items():
        out[entry_id(ident)] = {
            "name": info.get("name") or entry_name(ident),
            "stage": "select",
            "reasons": clean_text(list(info.get("reasons") or [])),
            "criteria": list(info.get("criteria") or []),
        }
    for ident, info in ((index or {}).get("entries") or {}).items():
        if info.get("status") == "failed":
            out.setdefault(
                entry_id(ident),
                {
                    "name": entry_name(ident),
                    "stage": "scrape",
                    "reasons": [
                        clean_text(f"scrape failed: {info.get('reason') or 'unknown reason'}")
                    ],
                    "criteria": ["scrape"],
                },
            )
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- zip


def zip_timestamp() -> tuple[int, int, int, int, int, int]:
    """The fixed member timestamp: ``SOURCE_DATE_EPOCH`` if set, else 1980-01-01 00:00.

    File modification times differ between two builds of the same data; a fixed stamp
    makes the archive's bytes (and its checksum) a function of the contents only.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        stamp = time.gmtime(max(int(epoch), 315532800))  # zip cannot store dates before 1980
        return (
            stamp.tm_year,
            stamp.tm_mon,
            stamp.tm_mday,
            stamp.tm_hour,
            stamp.tm_min,
            stamp.tm_sec,
        )
    return (1980, 1, 1, 0, 0, 0)


def dataset_files(
    dataset_dir: Path, entries: Iterable[str], families: Iterable[str] = ()
) -> list[Path]:
    """The files that make the dataset: top-level files, the listed entries' folders and
    the listed families' folders (``families/{family}/``).

    Hidden files (temporary ``.part`` files of an interrupted writer) are left out.
    """
    if not dataset_dir.is_dir():
        raise MicrolibError(f"no dataset folder at {dataset_dir}")
    files = [p for p in dataset_dir.iterdir() if p.is_file()]
    folders = [(name, dataset_dir / name) for name in entries]
    folders += [(name, dataset_dir / "families" / name) for name in families]
    for name, folder in folders:
        if not folder.is_dir():
            raise MicrolibError("folder missing from the dataset", entry=name)
        files += [p for p in folder.rglob("*") if p.is_file()]
    return sorted(
        (p for p in files if not p.name.startswith(".")),
        key=lambda p: p.relative_to(dataset_dir).as_posix(),
    )


def sha256sums(root: Path, files: Iterable[Path]) -> str:
    """``sha256sum``-format lines (hash, two spaces, path relative to ``root``)."""
    lines = []
    for path in files:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        lines.append(f"{h.hexdigest()}  {path.relative_to(root).as_posix()}\n")
    return "".join(lines)


def write_zip(
    dataset_dir: str | os.PathLike,
    archive: str | os.PathLike,
    entries: Iterable[str],
    families: Iterable[str] = (),
) -> list[str]:
    """Zip the dataset atomically and deterministically; return the member names.

    Members sit under the dataset folder's name: its top-level files and the folders of
    ``entries`` and ``families`` only, so an entry excluded since an earlier run never
    leaks into the archive. They are sorted, stamped with :func:`zip_timestamp`, mode
    0644, deflated at a fixed level unless already compressed.
    """
    dataset_dir = Path(dataset_dir)
    files = dataset_files(dataset_dir, entries, families)
    stamp = zip_timestamp()
    names: list[str] = []
    with atomic_path(archive) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for path in files:
            arcname = str(PurePosixPath(dataset_dir.name, *path.relative_to(dataset_dir).parts))
            info = zipfile.ZipInfo(arcname, date_time=stamp)
            info.create_system = 3  # unix, so the mode below is honoured
            info.external_attr = 0o100644 << 16
            stored = path.suffix.lower() in _STORED_SUFFIXES
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            size = path.stat().st_size
            with open(path, "rb") as src, zf.open(info, "w", force_zip64=size > 2**31) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            names.append(arcname)
    return names


# --------------------------------------------------------------------------- text files

LICENCE_TERMS = (
    "Creative Commons Attribution-NonCommercial-ShareAlike 2.0 UK: England & Wales "
    "(CC BY-NC-SA 2.0 UK). You may copy, share and adapt the material for non-commercial "
    "purposes, giving credit to the contributor, organisation and the DoITPoMS Micrograph "
    "Library, and sharing adaptations under the same licence."
)


def _is_cc_by_nc_sa(licence: str | None, url: str | None) -> bool:
    text = f"{licence or ''} {url or ''}".lower()
    return "by-nc-sa" in text or ("noncommercial" in text and "share alike" in text)


def credits_text(records: Iterable[Mapping[str, Any]]) -> str:
    """The ``CREDITS`` file: every entry's contributor, organisation and licence."""
    recs = list(records)
    out = [
        "CREDITS",
        "=======",
        "",
        "Every micrograph in this dataset comes from the DoITPoMS Micrograph Library,",
        "University of Cambridge (https://www.doitpoms.ac.uk/miclib/). The generated",
        "volumes and trained generators are derived works and carry the same licence.",
        "",
    ]
    if any(_is_cc_by_nc_sa(r.get("licence"), r.get("licence_url")) for r in recs):
        out += ["Licence terms where stated as CC BY-NC-SA 2.0 UK:", LICENCE_TERMS, ""]
    for rec in recs:
        out += [
            f"{rec['name']} (DoITPoMS record {rec.get('doitpoms_id')})",
            f"  description:  {rec.get('brief_descr') or '-'}",
            f"  contributor:  {rec.get('contributor') or 'not stated'}",
            f"  organisation: {rec.get('organisation') or 'not stated'}",
            f"  licence:      {rec.get('licence') or 'not stated'}"
            + (f" <{rec['licence_url']}>" if rec.get("licence_url") else ""),
            f"  source:       {rec.get('doitpoms_url') or '-'}",
            f"  credit:       {rec.get('credit') or DOITPOMS_CREDIT}",
            "",
        ]
    return clean_text("\n".join(out))


def readme_text(
    records: Iterable[Mapping[str, Any]], n_excluded: int, families: Iterable[str] = ()
) -> str:
    """The dataset's ``README``: what is in it and the exact commands to use it."""
    recs = list(records)
    fams = sorted(families)
    first = recs[0]["name"] if recs else "microstructureNNN"
    lines = [
        "MicroLib-style dataset",
        "======================",
        "",
        f"{len(recs)} entries, each a 2D DoITPoMS micrograph turned into a 3D microstructure",
        f"by a SliceGAN generator; {n_excluded} ids left out, with reasons, in excluded.json.",
        "",
        "Contents",
        "--------",
        "data_anns.json        one record per entry: description, category, element,",
        "                      technique, data type, contributor, licence, metrics summary",
        "excluded.json         ids left out and why",
        "index.html            offline catalogue: open it in a browser (no network needed)",
        "CREDITS               contributor, organisation and licence of every entry",
        "SHA256SUMS            checksums of every other file: sha256sum -c SHA256SUMS",
        "{name}/{name}.tif              example 3D volume (uint8 labels, grey or RGB)",
        "{name}/{name}_Gen.pt           trained generator weights (SliceGAN format)",
        "{name}/{name}_params.data      SliceGAN parameters; _params.json: the same and more",
        "{name}/{name}_original.png     the micrograph as published",
        "{name}/{name}_inpainted.png    the 2D training image (scale bar in-painted)",
        "{name}/{name}_metrics.json     2D vs 3D volume fraction, surface area, S2 ...",
        "{name}/{name}_preview.png      preview; _rotation.gif, _slicing.gif: animations",
        "",
    ]
    if fams:
        lines += [
            f"Families ({', '.join(fams)}): one generator for several entries, each with a code;",
            "any code in between gives an intermediate structure (families.json lists the",
            "members, their codes, credits and licences, and feature size by code):",
            "families/{family}/{family}_Gen.pt, _Disc.pt, _params.json   the generator",
            "families/{family}/{family}_metrics.json   feature size vs code",
            "families/{family}/{family}_sweep.png, _sweep.gif   one slice per code",
            "microlib dataset list microlibDataset.zip --families",
            f"microlib dataset synthesise microlibDataset.zip {fams[0]} --code C --out new.tif",
            "",
        ]
    lines += [
        "Use it (with the microlib package installed)",
        "--------------------------------------------",
        "sha256sum -c SHA256SUMS                       # inside this folder",
        "microlib dataset list microlibDataset.zip",
        "microlib dataset list microlibDataset.zip --excluded",
        f"microlib dataset show microlibDataset.zip {first}",
        f"microlib dataset synthesise microlibDataset.zip {first} --size 256 --seed 1"
        " --out new.tif",
        "microlib dataset extract microlibDataset.zip somewhere/",
        "",
        "From Python:",
        "",
        "    from microlib.dataset import Dataset",
        "    with Dataset('microlibDataset.zip') as ds:",
        f"        vol = ds.load_volume('{first}')",
        f"        new = ds.synthesise('{first}', size=256, seed=1)",
        "",
        "Licence: see CREDITS. The micrographs are not for commercial use.",
        "",
    ]
    return "\n".join(lines)
