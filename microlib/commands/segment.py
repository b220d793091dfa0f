"""``microlib segment``: crop, threshold into phase labels, write the scale-bar mask.

::

    microlib segment --image raw/000237.jpg --annotation annotations/000237.json \\
        --out-image segmented/000237.png --out-mask masks/000237.png \\
        [--denoise median|gaussian|none] [--denoise-size 3] [--no-halos]

Both PNGs are cropped to the annotation's crop box and carry the pipeline's image
metadata (``microlib.io.write_png``): ``id``, ``data_type``, ``n_phases``,
``phase_grey_values``, ``voxel_size_um``. Masked pixels keep their segmented values; the
inpaint stage replaces them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from microlib.errors import MicrolibError
from microlib.io import (
    UnsupportedImageError,
    entry_id,
    read_image,
    read_json,
    write_png,
)
from microlib.segment import DENOISE_METHODS, SegmentSettings, segment_image

log = logging.getLogger("microlib.segment")


def add_segment_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The :class:`~microlib.segment.SegmentSettings` flags (the ``segment:`` config keys).

    ``microlib annotate entry`` takes the same flags, so its predicted phase fractions
    come from the settings the segment stage runs with.
    """
    d = SegmentSettings()
    parser.add_argument(
        "--denoise",
        choices=DENOISE_METHODS,
        default=d.denoise,
        help=f"light denoising before thresholding (n-phase only; default {d.denoise})",
    )
    parser.add_argument(
        "--denoise-size",
        type=float,
        default=d.denoise_size,
        help=f"median window or three Gaussian sigmas, px (default {d.denoise_size:g})",
    )
    parser.add_argument(
        "--halos",
        action=argparse.BooleanOptionalAction,
        default=d.halos,
        help="remove blurred-transition rims of intermediate phases (3+ phases; default on)",
    )


def segment_settings(args: argparse.Namespace) -> SegmentSettings:
    """The settings given by :func:`add_segment_arguments`' flags."""
    return SegmentSettings(denoise=args.denoise, denoise_size=args.denoise_size, halos=args.halos)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", type=Path, required=True, help="raw image (raw/{id}.jpg)")
    parser.add_argument("--annotation", type=Path, required=True, help="annotations/{id}.json")
    parser.add_argument("--out-image", type=Path, required=True, help="segmented/{id}.png to write")
    parser.add_argument("--out-mask", type=Path, required=True, help="masks/{id}.png to write")
    add_segment_arguments(parser)


def _read_raw(path: Path, ident: str) -> np.ndarray:
    try:
        return read_image(path)
    except FileNotFoundError as exc:
        raise MicrolibError(f"image {path} not found", entry=ident) from exc
    except UnsupportedImageError as exc:
        raise MicrolibError(f"{path}: {exc}", entry=ident) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise MicrolibError(f"cannot decode {path}: {exc}", entry=ident) from exc


def run(args: argparse.Namespace) -> int:
    settings = segment_settings(args)
    try:
        ann = read_json(args.annotation)
    except (OSError, ValueError) as exc:
        raise MicrolibError(f"cannot read annotation {args.annotation}: {exc}") from exc
    try:
        ident = entry_id(ann.get("id") or args.annotation.stem)
    except (ValueError, AttributeError) as exc:
        raise MicrolibError(f"annotation {args.annotation} names no valid entry id") from exc
    if not ann.get("included", False):
        log.warning(
            "%s: segmenting an entry the annotation excludes (%s)",
            ident,
            "; ".join(ann.get("reasons") or []),
        )
    made_with = ann.get("segment_settings")
    if made_with is not None and made_with != settings.as_dict():
        log.warning(
            "%s: the annotation predicted its phase fractions with segment settings %s, "
            "this run uses %s; re-annotate with the same flags",
            ident,
            made_with,
            settings.as_dict(),
        )
    img = _read_raw(args.image, ident)
    try:
        res = segment_image(img, ann, settings=settings, entry=ident)
    except ValueError as exc:
        raise MicrolibError(str(exc), entry=ident) from exc
    meta = {
        "id": ident,
        "data_type": res["data_type"],
        "n_phases": res["n_phases"],
        "phase_grey_values": res["phase_grey_values"],
        "voxel_size_um": ann.get("voxel_size_um"),
    }
    write_png(args.out_image, res["image"], meta)
    write_png(
        args.out_mask,
        res["mask"],
        {
            "id": ident,
            "kind": "scale_bar_mask",
            "dilation_px": (ann.get("scale_bar") or {}).get("dilation_px", 1),
        },
    )
    masked = float((res["mask"] > 0).mean())
    extra = f", fractions {res['fractions']}" if res["fractions"] else ""
    log.info(
        "%s: %s %dx%d, %.2f%% masked%s",
        ident,
        res["data_type"],
        res["image"].shape[1],
        res["image"].shape[0],
        100 * masked,
        extra,
    )
    return 0
