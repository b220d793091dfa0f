"""``microlib family metrics|sweep``: measure and show a family generator against its code.

``metrics`` measures the feature size (two-point-correlation length, mean chord length;
:func:`microlib.validate.family_feature_table`) of the volume generated at each code and
of each member's 2D training image, and writes one JSON. ``sweep`` renders the code
sweep (:mod:`microlib.media.sweep`): a PNG montage and a GIF. Each volume's code is read
from its own metadata (``microlib generate --code`` records it), so the volumes can be
given in any order.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from microlib import io as mio
from microlib import media as M
from microlib.datatypes import NPHASE_TYPES
from microlib.errors import MicrolibError
from microlib.validate import family_feature_table

log = logging.getLogger("microlib.family")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="family name")
    p.add_argument(
        "--volumes", required=True, nargs="+", type=Path, help="volumes generated with --code"
    )
    p.add_argument(
        "--members", nargs="+", type=Path, default=[], help="the members' training images"
    )
    p.add_argument("--codes", help="the members' codes, same order (A,B,...)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    m = sub.add_parser("metrics", help="feature size vs code (JSON)")
    _common(m)
    m.add_argument("--out", required=True, type=Path, help="metrics JSON")
    m.add_argument("--max-lag", type=int, help="largest correlation lag (default: min(64, edge/2))")
    s = sub.add_parser("sweep", help="code-sweep montage (PNG) and animation (GIF)")
    _common(s)
    s.add_argument("--out-dir", required=True, type=Path, help="writes NAME_sweep.png/.gif here")
    s.add_argument("--zoom", type=int, default=3, help="screen pixels per voxel (default 3)")
    s.add_argument("--duration", type=int, default=400, help="ms per GIF frame (default 400)")


def _members(args: argparse.Namespace) -> list[tuple[float, np.ndarray, dict]]:
    if not args.members:
        return []
    try:
        codes = [float(c) for c in (args.codes or "").split(",")]
    except ValueError:
        raise MicrolibError(f"--codes {args.codes!r}: not numbers", entry=args.name) from None
    if len(codes) != len(args.members):
        raise MicrolibError(
            f"{len(args.members)} members but {len(codes)} codes (--codes, one each)",
            entry=args.name,
        )
    return [
        (c, mio.read_image(p), mio.read_png_meta(p))
        for c, p in zip(codes, args.members, strict=True)
    ]


def _volumes(args: argparse.Namespace) -> list[tuple[float, np.ndarray, dict]]:
    out = []
    for path in args.volumes:
        meta = mio.read_tif_meta(path).get("info") or {}
        code = (meta.get("generator") or {}).get("code")
        if code is None:
            raise MicrolibError(
                f"{path} records no code: not generated with --code", entry=args.name
            )
        out.append((float(code), mio.read_tif(path), meta))
    codes = [c for c, _, _ in out]
    if len(set(codes)) != len(codes):
        raise MicrolibError(f"two volumes at one code ({sorted(codes)})", entry=args.name)
    return out


def _data_type(args, members, volumes) -> tuple[str, int]:
    meta = (members[0][2] if members else {}) or volumes[0][2]
    data_type, n = meta.get("data_type"), meta.get("n_phases")
    if data_type not in NPHASE_TYPES:
        raise MicrolibError(
            f"feature size vs code needs labelled (n-phase) data, got {data_type}", entry=args.name
        )
    return data_type, int(n or max(int(v.max()) for _, v, _ in volumes) + 1)


def run(args: argparse.Namespace) -> int:
    members, volumes = _members(args), _volumes(args)
    data_type, n_phases = _data_type(args, members, volumes)
    if args.mode == "metrics":
        try:
            table = family_feature_table(
                [(c, a) for c, a, _ in members],
                [(c, v) for c, v, _ in volumes],
                n_phases,
                max_lag=args.max_lag,
            )
        except MicrolibError as exc:
            raise MicrolibError(exc.reason, entry=args.name) from exc
        doc = {
            "name": args.name,
            "data_type": data_type,
            "n_phases": n_phases,
            "measure": "correlation length: lag where the normalised two-point correlation "
            "falls below 1/e (px); mean chord length (px)",
            "members_files": [str(p) for p in args.members],
            "volumes_files": [str(p) for p in args.volumes],
            **table,
        }
        mio.write_json(args.out, doc)
        s = table["summary"]
        log.info(
            "%s: correlation length by code %s (members %s); monotone: %s; max error at "
            "member codes %s %%",
            args.name,
            ", ".join(f"{r['code']:g}: {r['correlation_length_px']}" for r in table["codes"]),
            ", ".join(f"{r['code']:g}: {r['correlation_length_px']}" for r in table["members"]),
            "yes" if s["monotone"] else "no",
            s["max_abs_error_pct"],
        )
        return 0
    colour = M.colouriser(data_type, n_phases)
    slices = [(c, M.mid_slice(v)) for c, v, _ in volumes]
    montage = M.sweep_montage(slices, colour, [(c, a) for c, a, _ in members], factor=args.zoom)
    out = args.out_dir
    mio.write_png(out / f"{args.name}_sweep.png", montage, {"family": args.name})
    frames = M.sweep_frames(slices, colour, factor=args.zoom)
    mio.write_bytes(out / f"{args.name}_sweep.gif", M.encode_gif(frames, args.duration))
    log.info("%s: code sweep of %d volumes written to %s", args.name, len(volumes), out)
    return 0
