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

from microlib.errors import MicrolibError

log = logging.getLogger("microlib.segment")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from microlib.segment import DENOISE_METHODS

    parser.add_argument("--image", type=Path, required=True, help="raw image (raw/{id}.jpg)")
    parser.add_argument("--annotation", type=Path, required=True, help="annotations/{id}.json")
    parser.add_argument("--out-image", type=Path, required=True, help="segmented/{id}.png to write")
    parser.add_argument("--out-mask", type=Path, required=True, help="masks/{id}.png to write")
    parser.add_argument(
        "--denoise",
        choices=DENOISE_METHODS,
        default="median",
        help="light denoising before thresholding (n-phase only; default median)",
    )
    parser.add_argument(
        "--denoise-size",
        type=float,
        default=3,
        help="median window or three Gaussian sigmas, px (default 3)",
    )
    parser.add_argument(
        "--halos",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="remove blurred-transition rims of intermediate phases (3+ phases; default on)",
    )


def run(args: argparse.Namespace) -> int:
    from microlib.io import entry_id, read_image, read_json, write_png
    from microlib.segment import segment_image

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
    try:
        img = read_image(args.image)
    except FileNotFoundError as exc:
        raise MicrolibError(f"image {args.image} not found", entry=ident) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise MicrolibError(f"cannot decode {args.image}: {exc}", entry=ident) from exc
    try:
        res = segment_image(
            img, ann, method=args.denoise, size=args.denoise_size, halos=args.halos, entry=ident
        )
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
