"""``microlib dataset list|show|extract|fetch|synthesise``: use a downloaded dataset."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tqdm import tqdm

from microlib import io
from microlib.dataset import Dataset, clean_text, extract_archive
from microlib.dataset.extract import MAX_BYTES, MAX_RATIO
from microlib.dataset.fetch import fetch_archive
from microlib.dataset.read import MAX_JSON_BYTES
from microlib.errors import MicrolibError

log = logging.getLogger("microlib.dataset")


def _periodic(text: str | None) -> tuple[bool, bool, bool]:
    if not text:
        return (False, False, False)
    axes = {a.strip().lower() for a in text.split(",") if a.strip()}
    bad = axes - {"x", "y", "z"}
    if bad:
        raise MicrolibError(f"--periodic takes axes among x,y,z; got {', '.join(sorted(bad))}")
    # volumes are (Z, Y, X): the first array axis is z
    return ("z" in axes, "y" in axes, "x" in axes)


def _size(text: str) -> int | tuple[int, int, int]:
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise MicrolibError(f"--size takes N or Z,Y,X (integers); got {text!r}") from None
    if any(p <= 0 for p in parts):
        raise MicrolibError(f"--size takes positive integers; got {text!r}")
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 3:
        return (parts[0], parts[1], parts[2])
    raise MicrolibError(f"--size takes N or Z,Y,X; got {text!r}")


def _caps(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-gb",
        type=float,
        default=MAX_BYTES / 1e9,
        help=f"refuse archives inflating beyond this many GB (default {MAX_BYTES / 1e9:.0f})",
    )
    p.add_argument(
        "--max-ratio",
        type=float,
        default=MAX_RATIO,
        help=f"refuse members compressed more than this, N:1 (default {MAX_RATIO:g})",
    )


def _json_cap(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-json-mb",
        type=float,
        default=MAX_JSON_BYTES / 1e6,
        help=f"refuse a data_anns.json larger than this (default {MAX_JSON_BYTES / 1e6:.0f} MB)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    p = sub.add_parser("list", help="entries with type, description and licence")
    p.add_argument("dataset", type=Path, help="microlibDataset.zip or its folder")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--excluded", action="store_true", help="list excluded ids with reasons")
    which.add_argument(
        "--families", action="store_true", help="list families (one generator, several entries)"
    )
    _json_cap(p)
    p = sub.add_parser("show", help="one entry's data_anns.json record (or a family's)")
    p.add_argument("dataset", type=Path)
    p.add_argument("name", help="microstructureNNN, or a family name")
    _json_cap(p)
    p = sub.add_parser(
        "extract", help="unzip safely (outside paths, links, bombs refused; all or nothing)"
    )
    p.add_argument("archive", type=Path)
    p.add_argument("target", type=Path)
    _caps(p)
    p = sub.add_parser("fetch", help="download (resumable), verify and extract a dataset zip")
    p.add_argument("source", help="http(s) URL or local path of microlibDataset.zip")
    p.add_argument("--sha256", help="expected SHA-256 of the zip (refused on mismatch)")
    p.add_argument("--dest", required=True, type=Path, help="folder for the zip and its contents")
    _caps(p)
    p = sub.add_parser("synthesise", help="a new volume from an entry's trained generator")
    p.add_argument("dataset", type=Path)
    p.add_argument("name", help="microstructureNNN, or a family name (with --code)")
    _json_cap(p)
    p.add_argument("--code", type=float, help="families: the code to generate at")
    p.add_argument(
        "--extrapolate", action="store_true", help="allow a --code outside the trained range"
    )
    p.add_argument("--size", default="320", help="edge length N, or Z,Y,X (default 320)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--periodic", help="periodic axes, e.g. x,y")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", required=True, type=Path, help="output .tif")


def _one_line(value: object, width: int) -> str:
    # scraped text may hold control characters or line breaks; one tidy line per entry
    text = " ".join(str(clean_text(value if value is not None else "")).split())
    return text[:width]


def _fetch(args: argparse.Namespace) -> int:
    if not args.sha256:
        log.warning("no --sha256 given: the download is not verified against a checksum")
    with tqdm(unit="B", unit_scale=True, desc="download", disable=None) as bar:

        def progress(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        archive = fetch_archive(args.source, args.dest, args.sha256, progress)
    log.info("verified %s", archive)
    written = extract_archive(
        archive, args.dest, max_bytes=int(args.max_gb * 1e9), max_ratio=args.max_ratio
    )
    print(f"fetched {archive} and extracted {len(written)} files into {args.dest}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.mode == "extract":
        written = extract_archive(
            args.archive, args.target, max_bytes=int(args.max_gb * 1e9), max_ratio=args.max_ratio
        )
        print(f"extracted {len(written)} files into {args.target}")
        return 0
    if args.mode == "fetch":
        return _fetch(args)
    size = _size(args.size) if args.mode == "synthesise" else None
    with Dataset(args.dataset, max_json_bytes=int(args.max_json_mb * 1e6)) as ds:
        if args.mode == "list":
            if args.excluded:
                for ident, info in ds.excluded().items():
                    reasons = "; ".join(map(str, info.get("reasons") or []))
                    print(
                        f"{_one_line(ident, 12)}  {_one_line(info['name'], 40)}  "
                        f"{_one_line(reasons, 200)}"
                    )
                return 0
            if args.families:
                for fam, rec in ds.families.items():
                    members = ", ".join(
                        f"{m.get('name')}@{m.get('code'):g}" for m in rec["members"]
                    )
                    print(
                        f"{_one_line(fam, 40)}  {_one_line(rec.get('data_type') or '?', 10):<10}  "
                        f"{_one_line(members, 200)}"
                    )
                return 0
            for name in ds.names:
                rec = ds.entry(name)
                print(
                    f"{_one_line(name, 40)}  {_one_line(rec.get('data_type') or '?', 10):<10}  "
                    f"{_one_line(rec.get('brief_descr'), 60):<60}  "
                    f"{_one_line(rec.get('licence'), 100)}"
                )
            return 0
        if args.mode == "show":
            rec = ds.family(args.name) if args.name in ds.families else ds.entry(args.name)
            print(json.dumps(clean_text(rec), indent=2, ensure_ascii=False))
            return 0
        if args.name in ds.families:
            return _synthesise_family(ds, args, size)
        if args.code is not None:
            raise MicrolibError("--code is for families; this is one entry", entry=args.name)
        rec = ds.entry(args.name)
        vol = ds.synthesise(
            args.name,
            size,
            seed=args.seed,
            periodic=_periodic(args.periodic),
            device=args.device,
        )
        _write_volume(args, vol, rec)
        print(f"{args.name}: wrote {args.out} with shape {tuple(vol.shape)}")
    return 0


def _write_volume(args: argparse.Namespace, vol, rec: dict, **extra) -> None:
    """The synthesised volume as a TIFF carrying the record's voxel size and phase metadata."""
    meta = {
        "name": args.name,
        "seed": args.seed,
        "data_type": rec.get("data_type"),
        "n_phases": rec.get("n_phases"),
        "phase_grey_values": rec.get("phase_grey_values"),
        **extra,
    }
    io.write_tif(args.out, vol, rec.get("voxel_size_um"), meta)


def _synthesise_family(ds: Dataset, args: argparse.Namespace, size) -> int:
    if args.code is None:
        lo, hi = ds.family(args.name).get("code_range") or (None, None)
        raise MicrolibError(f"a family: give --code (trained range [{lo}, {hi}])", entry=args.name)
    rec = ds.family(args.name)
    vol = ds.synthesise_family(
        args.name,
        args.code,
        size,
        seed=args.seed,
        periodic=_periodic(args.periodic),
        device=args.device,
        extrapolate=args.extrapolate,
    )
    _write_volume(args, vol, rec, generator={"code": args.code})
    print(f"{args.name}: wrote {args.out} at code {args.code:g} with shape {tuple(vol.shape)}")
    return 0
