"""``microlib package entry|dataset``: the MicroLib-style dataset folder and its zip."""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
from pathlib import Path

from microlib import io
from microlib.dataset.catalogue import catalogue_html
from microlib.errors import MicrolibError
from microlib.package import (
    credits_text,
    data_anns,
    dataset_files,
    entry_record,
    excluded_records,
    readme_text,
    sha256sums,
    write_zip,
)
from microlib.package_family import (
    FAMILIES_DIR,
    FAMILIES_FILE,
    FAMILY_MEDIA,
    FAMILY_MODEL_SUFFIXES,
    families_index,
    family_record,
)
from microlib.package_report import excluded_html, summary_points, summary_svg

log = logging.getLogger("microlib.package")

MEDIA_KINDS = ("preview.png", "rotation.gif", "slicing.gif", "inpaint.png")
MODEL_SUFFIXES = ("_Gen.pt", "_Disc.pt", "_params.data", "_params.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    e = sub.add_parser("entry", help="one entry's folder (microlibDataset/{name}/)")
    e.add_argument("--name", required=True, help="microstructureNNN")
    e.add_argument("--raw-image", required=True, type=Path, help="raw/{id}.jpg")
    e.add_argument("--raw-meta", required=True, type=Path, help="raw/{id}.json")
    e.add_argument("--annotation", required=True, type=Path, help="annotations/{id}.json")
    e.add_argument("--training", required=True, type=Path, help="training/{name}.png")
    e.add_argument("--model-dir", required=True, type=Path, help="models/{name}/")
    e.add_argument("--volume", required=True, type=Path, help="volumes/{name}.tif")
    e.add_argument("--metrics", required=True, type=Path, help="metrics/{name}.json")
    e.add_argument("--media-dir", required=True, type=Path, help="media/{name}/")
    e.add_argument("--out-dir", required=True, type=Path, help="microlibDataset/{name}/")
    f = sub.add_parser("family", help="one family's folder (microlibDataset/families/{family}/)")
    f.add_argument("--name", required=True, help="family name")
    f.add_argument("--model-dir", required=True, type=Path, help="the family generator's folder")
    f.add_argument("--metrics", required=True, type=Path, help="`microlib family metrics` JSON")
    f.add_argument("--media-dir", required=True, type=Path, help="holds {family}_sweep.png/.gif")
    f.add_argument(
        "--raw-meta", required=True, nargs="+", type=Path, help="raw/{id}.json of each member"
    )
    f.add_argument(
        "--individual",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="whether the members are also packaged as entries (default yes)",
    )
    f.add_argument("--out-dir", required=True, type=Path, help="microlibDataset/families/{family}/")
    d = sub.add_parser("dataset", help="data_anns.json, excluded.json and the zip")
    d.add_argument("--selection", required=True, type=Path, help="annotations/selection.json")
    d.add_argument("--index", type=Path, help="raw/index.json (lists ids that failed to scrape)")
    d.add_argument("--dataset-dir", required=True, type=Path, help="microlibDataset/")
    z = d.add_mutually_exclusive_group(required=True)
    z.add_argument("--zip", type=Path, help="write the zip here (microlibDataset.zip)")
    z.add_argument("--no-zip", action="store_true", help="folder only")
    d.add_argument(
        "--report-dir",
        type=Path,
        help="write the run report's summary figure (summary.svg) and excluded.html here",
    )
    d.add_argument(
        "--families",
        nargs="+",
        default=[],
        metavar="FAMILY",
        help="packaged families (families/{family}/) to list in families.json and zip",
    )
    d.add_argument("names", nargs="*", help="included entries (microstructureNNN)")


def run(args: argparse.Namespace) -> int:
    if args.mode == "entry":
        return _entry(args)
    if args.mode == "family":
        return _family(args)
    return _dataset(args)


def _place(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` atomically.

    Never a hard link: Snakemake touches every output after a job, and touching a link
    would also touch the pipeline file it shares an inode with, making that file look
    newer than its consumers (a rerun would then redo validate and media).
    ``shutil.copyfile`` uses the kernel's copy_file_range/sendfile where available.
    """
    if not src.is_file():
        raise MicrolibError(f"missing input {src}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _entry(args: argparse.Namespace) -> int:
    name = args.name
    out: Path = args.out_dir
    raw_meta = io.read_json(args.raw_meta)
    annotation = io.read_json(args.annotation)
    metrics = io.read_json(args.metrics)
    params_json = args.model_dir / f"{name}_params.json"
    params = io.read_json(params_json) if params_json.is_file() else {}

    _place(args.volume, out / f"{name}.tif")
    for suffix in MODEL_SUFFIXES:
        _place(args.model_dir / f"{name}{suffix}", out / f"{name}{suffix}")
    _place(args.training, out / f"{name}_inpainted.png")
    _place(args.metrics, out / f"{name}_metrics.json")
    for kind in MEDIA_KINDS:
        _place(args.media_dir / f"{name}_{kind}", out / f"{name}_{kind}")
    # MicroLib ships the raw micrograph as PNG; the served JPEG bytes stay in raw/
    try:
        original = io.read_image(args.raw_image)
    except OSError as exc:
        raise MicrolibError(
            f"cannot read the raw image {args.raw_image}: {exc}", entry=name
        ) from exc
    io.write_png(
        out / f"{name}_original.png",
        original,
        {"id": io.entry_id(name), "source_sha256": raw_meta.get("image_sha256")},
    )

    files = sorted(
        {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
        | {f"{name}_metadata.json"}
    )
    record = entry_record(name, raw_meta, annotation, params, metrics, files)
    metadata = {
        "record": record,
        "provenance": {
            "raw": {
                k: raw_meta.get(k) for k in ("record_url", "image_url", "image_sha256", "retrieved")
            },
            "annotation": {
                k: annotation.get(k)
                for k in ("source", "crop", "scale_bar", "data_type", "phases", "filters")
            },
            "training": params.get("training"),
        },
    }
    io.write_json(out / f"{name}_metadata.json", metadata)
    log.info("%s: packaged %d files in %s", name, len(files), out)
    return 0


def _family(args: argparse.Namespace) -> int:
    name = args.name
    out: Path = args.out_dir
    params = io.read_json(args.model_dir / f"{name}_params.json")
    metrics = io.read_json(args.metrics)
    members = [io.read_json(p) for p in args.raw_meta]
    for suffix in FAMILY_MODEL_SUFFIXES:
        _place(args.model_dir / f"{name}{suffix}", out / f"{name}{suffix}")
    _place(args.metrics, out / f"{name}_metrics.json")
    for kind in FAMILY_MEDIA:
        _place(args.media_dir / f"{name}_{kind}", out / f"{name}_{kind}")
    files = sorted(
        {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
        | {f"{name}_metadata.json"}
    )
    record = family_record(name, params, metrics, members, files, args.individual)
    io.write_json(out / f"{name}_metadata.json", {"record": record})
    log.info("%s: packaged a %d-member family in %s", name, len(record["members"]), out)
    return 0


def _family_records(ds_dir: Path, families: list[str]) -> list[dict]:
    records = []
    for fam in families:
        path = ds_dir / FAMILIES_DIR / fam / f"{fam}_metadata.json"
        if not path.is_file():
            raise MicrolibError(f"family not packaged (no {path.name})", entry=fam)
        records.append(io.read_json(path)["record"])
    return records


def _dataset(args: argparse.Namespace) -> int:
    selection = io.read_json(args.selection)
    index = io.read_json(args.index) if args.index else None
    included = {io.entry_name(i) for i in selection.get("included", [])}
    names = list(dict.fromkeys(args.names))
    unknown = sorted(set(names) - included)
    if unknown:
        raise MicrolibError(f"not included by the selection: {', '.join(unknown)}")
    records = []
    for name in names:
        path = args.dataset_dir / name / f"{name}_metadata.json"
        if not path.is_file():
            raise MicrolibError(f"entry not packaged (no {path.name})", entry=name)
        records.append(io.read_json(path)["record"])
    anns = data_anns(records)
    excluded = excluded_records(selection, index)
    ds_dir: Path = args.dataset_dir
    families = list(dict.fromkeys(args.families))
    fams = families_index(_family_records(ds_dir, families))
    io.write_json(ds_dir / "data_anns.json", anns)
    io.write_json(ds_dir / "excluded.json", excluded)
    if fams:
        io.write_json(ds_dir / FAMILIES_FILE, fams)
    else:
        with contextlib.suppress(FileNotFoundError):
            (ds_dir / FAMILIES_FILE).unlink()  # no family left: no stale index either
    ordered = list(anns.values())
    # members packaged only in a family are credited too
    credited = ordered + [
        m for f in fams.values() for m in f["members"] if not m["packaged_individually"]
    ]
    io.write_text(ds_dir / "README", readme_text(ordered, len(excluded), families))
    io.write_text(ds_dir / "CREDITS", credits_text(credited))
    io.write_text(ds_dir / "index.html", catalogue_html(ordered, fams))
    # the checksums cover every other file that goes into the zip
    sums = ds_dir / "SHA256SUMS"
    files = [p for p in dataset_files(ds_dir, names, families) if p != sums]
    io.write_text(sums, sha256sums(ds_dir, files))
    keep = set(names) | {FAMILIES_DIR}
    stale = sorted(p.name for p in ds_dir.iterdir() if p.is_dir() and p.name not in keep)
    fam_dir = ds_dir / FAMILIES_DIR
    if fam_dir.is_dir():
        stale += sorted(
            f"{FAMILIES_DIR}/{p.name}"
            for p in fam_dir.iterdir()
            if p.is_dir() and p.name not in set(families)
        )
    if stale:
        log.warning(
            "left out of data_anns.json and the zip (no longer included): %s", ", ".join(stale)
        )
    if args.zip:
        with contextlib.suppress(FileNotFoundError):
            args.zip.unlink()  # never leave an old archive that looks current
        members = write_zip(ds_dir, args.zip, names, families)
        io.write_text(args.zip.parent / "SHA256SUMS", sha256sums(args.zip.parent, [args.zip]))
        log.info(
            "wrote %s (%d members, %.1f MB)", args.zip, len(members), args.zip.stat().st_size / 1e6
        )
    if args.report_dir:
        metrics = {}
        for name in names:
            path = ds_dir / name / f"{name}_metrics.json"
            if path.is_file():
                metrics[name] = io.read_json(path)
        io.write_text(args.report_dir / "summary.svg", summary_svg(summary_points(metrics)))
        io.write_text(args.report_dir / "excluded.html", excluded_html(excluded))
    print(
        f"package: {len(anns)} entries in data_anns.json, {len(fams)} families, "
        f"{len(excluded)} excluded"
    )
    return 0
