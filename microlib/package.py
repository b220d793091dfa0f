"""Assemble the MicroLib-style dataset: per-entry records, ``data_anns.json``, the zip.

Pure functions build the records from the stages' JSON outputs; the only file-system
helpers here are the zip writer and the safe extractor, which must be shared by the
``package`` and ``dataset`` commands and are tested directly.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from microlib.errors import MicrolibError
from microlib.io import atomic_path, entry_id, entry_name

DATASET_DIR = "microlibDataset"
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
    return {str(i): dict(r) for i, r in enumerate(ordered, start=1)}


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
            "reasons": list(info.get("reasons") or []),
            "criteria": list(info.get("criteria") or []),
        }
    for ident, info in ((index or {}).get("entries") or {}).items():
        if info.get("status") == "failed":
            out.setdefault(
                entry_id(ident),
                {
                    "name": entry_name(ident),
                    "stage": "scrape",
                    "reasons": [f"scrape failed: {info.get('reason') or 'unknown reason'}"],
                    "criteria": ["scrape"],
                },
            )
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- zip


def write_zip(
    dataset_dir: str | os.PathLike, archive: str | os.PathLike, entries: Iterable[str]
) -> list[str]:
    """Zip the dataset atomically; return the member names.

    Members sit under the dataset folder's name: its top-level files (``data_anns.json``,
    ``excluded.json``) and the folders of ``entries`` only, so an entry excluded since an
    earlier run never leaks into the archive.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise MicrolibError(f"no dataset folder at {dataset_dir}")
    files = [p for p in dataset_dir.iterdir() if p.is_file()]
    for name in entries:
        folder = dataset_dir / name
        if not folder.is_dir():
            raise MicrolibError("entry folder missing from the dataset", entry=name)
        files += [p for p in folder.rglob("*") if p.is_file()]
    files = sorted(p for p in files if not p.name.startswith("."))
    names: list[str] = []
    with atomic_path(archive) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for path in files:
            arcname = str(PurePosixPath(dataset_dir.name, *path.relative_to(dataset_dir).parts))
            compress = (
                zipfile.ZIP_STORED
                if path.suffix.lower() in _STORED_SUFFIXES
                else zipfile.ZIP_DEFLATED
            )
            zf.write(path, arcname, compress_type=compress)
            names.append(arcname)
    return names


def check_member(name: str, target: Path) -> Path:
    """Where a zip member would land under ``target``; raise if it would leave it.

    Rejects absolute paths, drive letters, ``..`` components and anything whose
    resolved path is outside ``target``.
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if (
        pure.is_absolute()
        or ".." in pure.parts
        or (pure.parts and ":" in pure.parts[0])
        or not pure.parts
    ):
        raise MicrolibError(f"zip member {name!r} would be written outside {target}")
    dest = (target / Path(*pure.parts)).resolve()
    root = target.resolve()
    if dest != root and root not in dest.parents:
        raise MicrolibError(f"zip member {name!r} would be written outside {target}")
    return dest


def safe_extract(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    members: Iterable[str] | None = None,
    max_bytes: int = 200 * 1024**3,
) -> list[Path]:
    """Extract ``archive`` (or only ``members``) into ``target`` without leaving it.

    Every member is checked before anything is written: paths outside the target,
    symbolic links and archives that would expand beyond ``max_bytes`` are refused.
    Files are written atomically.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if members is not None:
            wanted = set(members)
            infos = [i for i in infos if i.filename in wanted]
            missing = wanted - {i.filename for i in infos}
            if missing:
                raise MicrolibError(f"not in {archive}: {', '.join(sorted(missing))}")
        total = 0
        plan: list[tuple[zipfile.ZipInfo, Path]] = []
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise MicrolibError(f"zip member {info.filename!r} is a symbolic link; refused")
            dest = check_member(info.filename, target)
            total += info.file_size
            plan.append((info, dest))
        if total > max_bytes:
            raise MicrolibError(
                f"{archive} would expand to {total / 1e9:.1f} GB (> {max_bytes / 1e9:.1f} GB limit)"
            )
        written: list[Path] = []
        for info, dest in plan:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            written.append(dest)
    return written
