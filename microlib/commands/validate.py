"""``microlib validate``: 2D training image vs 3D generated volume, side by side.

Writes ``metrics/{name}.json`` (layout: ``workflow/schemas/metrics.schema.yaml``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from microlib import io as mio
from microlib import validate as V
from microlib.datatypes import infer_data_type
from microlib.device import resolve_device
from microlib.errors import MicrolibError

log = logging.getLogger("microlib.validate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, type=Path, help="training/{name}.png")
    parser.add_argument("--volume", required=True, type=Path, help="volumes/{name}.tif")
    parser.add_argument("--out", required=True, type=Path, help="metrics/{name}.json")
    parser.add_argument(
        "--tortuosity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="tortuosity factor per phase with taufactor (n-phase; default on)",
    )
    parser.add_argument(
        "--max-lag",
        type=int,
        default=None,
        help="largest two-point-correlation lag (default: min(64, smallest edge // 2))",
    )
    parser.add_argument(
        "--tau-size",
        type=int,
        default=64,
        help="edge of the centred sub-cube the tortuosity solver runs on (default 64)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device of the tortuosity solver",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    # torch is only needed for the thread count and the solver: keep --help fast
    import torch

    entry = args.out.stem
    for what, path in (("training image", args.image), ("volume", args.volume)):
        if not path.is_file():
            raise MicrolibError(f"{what} not found: {path}", entry=entry)
    meta = mio.read_png_meta(args.image)
    if meta.get("id"):
        try:
            entry = mio.entry_name(meta["id"])
        except ValueError:
            pass
    try:
        image = mio.read_image(args.image)
        volume = mio.read_tif(args.volume)
        vol_meta = mio.read_tif_meta(args.volume)
    except (OSError, ValueError) as exc:
        raise MicrolibError(f"cannot read input: {exc}", entry=entry) from exc
    if volume.dtype != np.uint8:
        raise MicrolibError(f"volume must be uint8, got {volume.dtype}", entry=entry)

    data_type, n_phases = meta.get("data_type"), meta.get("n_phases")
    if not data_type:
        data_type, n_phases = infer_data_type(image)
        log.warning(
            "%s: %s has no microlib metadata; treating it as %s", entry, args.image, data_type
        )
    n_phases = int(n_phases or 1)
    if data_type in V.NPHASE_TYPES and volume.ndim != 3:
        raise MicrolibError(
            f"{data_type} volume must be (Z, Y, X) labels, got shape {volume.shape}", entry=entry
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    device = resolve_device(args.device).type

    t0 = time.perf_counter()
    try:
        doc = V.compare(
            image,
            volume,
            data_type=data_type,
            n_phases=n_phases,
            max_lag=args.max_lag,
            tortuosity_size=args.tau_size if args.tortuosity else None,
            device=device,
        )
    except MicrolibError as exc:
        raise MicrolibError(exc.reason, entry=entry) from exc
    seconds = time.perf_counter() - t0
    header = {
        "name": entry,
        "id": meta.get("id"),
        "voxel_size_um": meta.get("voxel_size_um") or vol_meta.get("voxel_size_um"),
        "image": str(args.image),
        "volume": str(args.volume),
    }
    doc = {**header, **doc}
    doc["timings_s"]["total"] = round(seconds, 3)
    mio.write_json(args.out, doc)
    s = doc["summary"]
    if data_type in V.NPHASE_TYPES:
        log.info(
            "%s: vf error %.2f points, surface error %s %%, S2 curve error %s, "
            "anisotropy 3D %s, checkerboard 3D/2D %s, flags: %s (%.1f s)",
            entry,
            s["vf_max_abs_error_points"],
            s["surface_area_pct_error"],
            s["s2_curve_error"],
            s["sa_anisotropy_3d"],
            s["checkerboard_ratio"],
            ", ".join(s["flags"]) or "none",
            seconds,
        )
    else:
        log.info(
            "%s: grey mean error %.2f, Wasserstein-1 %.2f, autocovariance error %.4f, flags: %s (%.1f s)",
            entry,
            s["grey_mean_abs_error"],
            s["grey_w1"],
            s["autocov_mean_abs_error"],
            ", ".join(s["flags"]) or "none",
            seconds,
        )
    return 0
