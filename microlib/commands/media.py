"""``microlib media``: preview image, rotation and slicing GIFs, in-painting figure.

Writes into ``--out-dir`` (``media/{name}``): ``{name}_preview.png``,
``{name}_rotation.gif``, ``{name}_slicing.gif`` and, with ``--segmented``/``--mask``,
``{name}_inpaint.png``. CPU only; a 320^3 volume takes seconds.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from microlib import io as mio
from microlib import media as M
from microlib.datatypes import NPHASE_TYPES, infer_data_type
from microlib.errors import MicrolibError

log = logging.getLogger("microlib.media")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--volume", required=True, type=Path, help="volumes/{name}.tif")
    parser.add_argument("--image", required=True, type=Path, help="training/{name}.png")
    parser.add_argument("--out-dir", required=True, type=Path, help="media/{name}")
    parser.add_argument("--name", required=True, help="entry name, e.g. microstructure237")
    parser.add_argument("--segmented", type=Path, default=None, help="segmented/{id}.png")
    parser.add_argument("--mask", type=Path, default=None, help="masks/{id}.png")
    parser.add_argument("--frames", type=int, default=36, help="frames per animation (default 36)")
    parser.add_argument(
        "--size",
        type=int,
        default=256,
        help="animation frame edge and preview cube edge in px; preview slices are zoomed "
        "by the largest integer factor that fits the volume in it (default 256)",
    )
    parser.add_argument("--duration", type=int, default=80, help="ms per GIF frame (default 80)")
    parser.add_argument("--elevation", type=float, default=30.0, help="camera elevation in degrees")


def _read(path: Path, what: str, entry: str, reader) -> np.ndarray:
    if not path.is_file():
        raise MicrolibError(f"{what} not found: {path}", entry=entry)
    try:
        return reader(path)
    except (OSError, ValueError) as exc:
        raise MicrolibError(f"cannot read {what} {path}: {exc}", entry=entry) from exc


def run(args: argparse.Namespace) -> int:
    entry = args.name
    if (args.segmented is None) != (args.mask is None):
        raise MicrolibError("--segmented and --mask go together", entry=entry)
    if args.frames < 1 or args.size < 16:
        raise MicrolibError("--frames must be >= 1 and --size >= 16", entry=entry)
    volume = _read(args.volume, "volume", entry, mio.read_tif)
    image = _read(args.image, "training image", entry, mio.read_image)
    meta = mio.read_png_meta(args.image)
    vol_meta = mio.read_tif_meta(args.volume)
    data_type, n_phases = meta.get("data_type"), meta.get("n_phases")
    if not data_type:
        data_type, n_phases = infer_data_type(image)
    n_phases = int(n_phases or 1)
    expected_ndim = 4 if data_type == "colour" else 3
    if volume.ndim != expected_ndim or volume.dtype != np.uint8 or min(volume.shape[:3]) < 2:
        raise MicrolibError(
            f"volume must be a uint8 {'(Z, Y, X, 3)' if expected_ndim == 4 else '(Z, Y, X)'}"
            f" array, got {volume.dtype} {volume.shape}",
            entry=entry,
        )
    colour = M.colouriser(data_type, n_phases)
    nearest = data_type in NPHASE_TYPES
    # one pixel = one voxel: the training image's size is the volume's voxel size
    voxel = meta.get("voxel_size_um") or vol_meta.get("voxel_size_um")
    out = args.out_dir
    t0 = time.perf_counter()

    mio.write_png(
        out / f"{entry}_preview.png",
        M.preview(image, volume, colour, size=args.size, nearest=nearest, voxel_size_um=voxel),
    )
    frames = M.rotation_frames(
        volume, colour, frames=args.frames, size=args.size, elevation=args.elevation
    )
    mio.write_bytes(out / f"{entry}_rotation.gif", M.encode_gif(frames, args.duration))
    frames = M.slicing_frames(
        volume, colour, frames=args.frames, size=args.size, elevation=args.elevation
    )
    mio.write_bytes(out / f"{entry}_slicing.gif", M.encode_gif(frames, args.duration))
    written = ["preview.png", "rotation.gif", "slicing.gif"]

    if args.segmented is not None:
        segmented = _read(args.segmented, "segmented image", entry, mio.read_image)
        mask = _read(args.mask, "mask", entry, mio.read_image)
        if mask.ndim == 3:
            mask = mask[..., 0]
        if segmented.shape != image.shape or mask.shape != image.shape[:2]:
            raise MicrolibError(
                f"segmented {segmented.shape}, mask {mask.shape} and training image "
                f"{image.shape} differ in size",
                entry=entry,
            )
        mio.write_png(out / f"{entry}_inpaint.png", M.inpaint_panel(segmented, mask, image, colour))
        written.append("inpaint.png")
    log.info(
        "%s: wrote %s in %s (%.1f s)", entry, ", ".join(written), out, time.perf_counter() - t0
    )
    return 0
