"""``microlib dataset list|show|extract|synthesise``: use a downloaded dataset."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from microlib import io
from microlib.dataset import Dataset
from microlib.errors import MicrolibError
from microlib.package import safe_extract

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
    parts = [int(p) for p in text.split(",")]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 3:
        return (parts[0], parts[1], parts[2])
    raise MicrolibError(f"--size takes N or Z,Y,X; got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    p = sub.add_parser("list", help="entries with type, description and licence")
    p.add_argument("dataset", type=Path, help="microlibDataset.zip or its folder")
    p.add_argument("--excluded", action="store_true", help="list excluded ids with reasons")
    p = sub.add_parser("show", help="one entry's data_anns.json record")
    p.add_argument("dataset", type=Path)
    p.add_argument("name", help="microstructureNNN")
    p = sub.add_parser("extract", help="unzip safely (paths outside the target are refused)")
    p.add_argument("archive", type=Path)
    p.add_argument("target", type=Path)
    p = sub.add_parser("synthesise", help="a new volume from an entry's trained generator")
    p.add_argument("dataset", type=Path)
    p.add_argument("name", help="microstructureNNN")
    p.add_argument("--size", default="320", help="edge length N, or Z,Y,X (default 320)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--periodic", help="periodic axes, e.g. x,y")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", required=True, type=Path, help="output .tif")


def run(args: argparse.Namespace) -> int:
    if args.mode == "extract":
        written = safe_extract(args.archive, args.target)
        print(f"extracted {len(written)} files into {args.target}")
        return 0
    with Dataset(args.dataset) as ds:
        if args.mode == "list":
            if args.excluded:
                for ident, info in ds.excluded().items():
                    print(f"{ident}  {info['name']}  {'; '.join(info['reasons'])}")
                return 0
            for name in ds.names:
                rec = ds.entry(name)
                print(
                    f"{name}  {rec.get('data_type') or '?':<10}  "
                    f"{(rec.get('brief_descr') or '')[:60]:<60}  {rec.get('licence') or ''}"
                )
            return 0
        if args.mode == "show":
            print(json.dumps(ds.entry(args.name), indent=2, ensure_ascii=False))
            return 0
        rec = ds.entry(args.name)
        vol = ds.synthesise(
            args.name,
            _size(args.size),
            seed=args.seed,
            periodic=_periodic(args.periodic),
            device=args.device,
        )
        io.write_tif(
            args.out,
            vol,
            rec.get("voxel_size_um"),
            {
                "name": args.name,
                "seed": args.seed,
                "data_type": rec.get("data_type"),
                "n_phases": rec.get("n_phases"),
                "phase_grey_values": rec.get("phase_grey_values"),
            },
        )
        print(f"{args.name}: wrote {args.out} with shape {tuple(vol.shape)}")
    return 0
