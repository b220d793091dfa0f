"""``microlib annotate``: per-entry annotation, the selection checkpoint, MicroLib import.

Modes::

    microlib annotate entry --image raw/000237.jpg --meta raw/000237.json \\
        --out annotations/000237.json [--curation config/curation.yaml] [threshold flags] \\
        [segment flags: --denoise ... --denoise-size ... --[no-]halos]
    microlib annotate select --out annotations/selection.json [threshold flags] ANNOTATION.json...
    microlib annotate import-prelabelled prelabelled_anns.json --out my_curation.yaml

``entry`` never fails on a bad image: an unreadable or corrupt file gives an annotation
with ``included: false`` and the reason, and one log line naming the entry. A pixel
format the pipeline does not read (floating point) is an error instead: the image may
be fine, the user has to convert it. ``entry`` takes the ``microlib segment`` flags
(the workflow passes the ``segment:`` section to both), so the phase fractions it
predicts are those of the segmented image. ``select``
re-decides every verdict from the stored scores (threshold flags given here override
those the annotations were made with), then removes near-duplicates.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import UnidentifiedImageError
from tqdm import tqdm

from microlib.annotate import (
    FilterThresholds,
    TypeParams,
    annotate_image,
    curation_from_prelabelled,
    load_curation,
    select_entries,
    unreadable_annotation,
)
from microlib.commands.segment import add_segment_arguments, segment_settings
from microlib.errors import MicrolibError
from microlib.io import (
    UnsupportedImageError,
    entry_id,
    entry_name,
    read_image,
    read_json,
    sha256_file,
    write_json,
    write_text,
)

log = logging.getLogger("microlib.annotate")

# FilterThresholds field -> help
_THRESHOLD_HELP = {
    "iso_max": "isotropy: largest major/minor correlation-length ratio",
    "repr_min": "representativity: fewest correlation lengths across the shorter side",
    "exposure_max": "even exposure: largest illumination trend as a fraction of contrast",
    "min_size_px": "quality: smallest shorter side of the cropped image (px)",
    "edge_width_max": "quality: largest phase-boundary blur sigma (px, n-phase images)",
    "blur_max": "quality: largest no-reference blur score (grayscale/colour images)",
    "contrast_min": "quality: smallest grey-level range p99-p1",
    "noise_max": "quality: largest noise sigma as a fraction of contrast",
    "jpeg_max": "quality: largest JPEG blockiness ratio",
    "dup_distance_max": "uniqueness: largest fingerprint distance of near-duplicates",
    "dup_meta_min": "uniqueness: smallest metadata similarity of one material",
}


def _add_threshold_flags(
    p: argparse.ArgumentParser, defaults_shown: bool, uniqueness: bool
) -> None:
    d = FilterThresholds()
    g = p.add_argument_group("filter thresholds")
    for name, text in _THRESHOLD_HELP.items():
        if name.startswith("dup_") and not uniqueness:
            continue  # uniqueness compares entries: decided by select only
        default = getattr(d, name)
        suffix = (
            f" (default {default:g})"
            if defaults_shown
            else f" (default: as annotated, else {default:g})"
        )
        g.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=float, default=None, help=text + suffix
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)

    e = sub.add_parser(
        "entry",
        help="annotate one raw micrograph",
        description="Annotate one raw micrograph: crop, scale bar, data type, phases, filters.",
    )
    e.add_argument("--image", type=Path, required=True, help="raw image (raw/{id}.jpg)")
    e.add_argument("--meta", type=Path, default=None, help="scraped record (raw/{id}.json)")
    e.add_argument(
        "--out", type=Path, required=True, help="annotation to write (annotations/{id}.json)"
    )
    e.add_argument(
        "--curation", type=Path, default=None, help="curation YAML (hand overrides per entry)"
    )
    e.add_argument(
        "--id",
        dest="entry_id",
        default=None,
        help="DoITPoMS id (default: from the image file name)",
    )
    _add_threshold_flags(e, defaults_shown=True, uniqueness=False)
    add_segment_arguments(
        e.add_argument_group(
            "segmentation (the segment stage's settings: the predicted phase fractions are "
            "those of the segmented image)"
        )
    )
    t = TypeParams()
    g = e.add_argument_group("data-type decision")
    g.add_argument(
        "--chroma-min",
        type=float,
        default=t.chroma_min,
        help=f"colour if the colour residual reaches this (grey levels RMS; default {t.chroma_min:g})",
    )
    g.add_argument(
        "--sep2-min",
        type=float,
        default=t.sep2_min,
        help=f"two-phase if the Otsu separability reaches this (default {t.sep2_min:g})",
    )
    g.add_argument(
        "--sep-gain-min",
        type=float,
        default=t.sep_gain_min,
        help=f"one more phase if within-class variance shrinks by this factor (default {t.sep_gain_min:g})",
    )
    g.add_argument(
        "--min-phase-fraction",
        type=float,
        default=t.min_phase_fraction,
        help=f"smallest area fraction of a phase (default {t.min_phase_fraction:g})",
    )
    g.add_argument(
        "--max-phases",
        type=int,
        default=t.max_phases,
        choices=(2, 3, 4),
        help=f"most phases considered (default {t.max_phases})",
    )
    g.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=t.refine,
        help="move thresholds to the midpoints between phase modes (default on)",
    )
    g.add_argument(
        "--flat-field",
        action=argparse.BooleanOptionalAction,
        default=t.flat_field,
        help="decide the type after removing within-phase illumination drift (default on)",
    )

    s = sub.add_parser(
        "select",
        help="uniqueness across entries and the final included/excluded lists",
        description="Decide the dataset from annotations (the checkpoint).",
    )
    s.add_argument(
        "--out", type=Path, required=True, help="selection to write (annotations/selection.json)"
    )
    s.add_argument("annotations", nargs="+", type=Path, metavar="ANNOTATION.json")
    _add_threshold_flags(s, defaults_shown=False, uniqueness=True)

    i = sub.add_parser(
        "import-prelabelled",
        help="convert MicroLib's prelabelled_anns.json to a curation file",
        description="Convert MicroLib's hand annotations into this pipeline's curation YAML.",
    )
    i.add_argument("file", type=Path, metavar="FILE", help="prelabelled_anns.json")
    i.add_argument("--out", type=Path, required=True, help="curation YAML to write")


def run(args: argparse.Namespace) -> int:
    if args.mode == "entry":
        return _run_entry(args)
    if args.mode == "select":
        return _run_select(args)
    return _run_import(args)


# --------------------------------------------------------------------------- helpers


def _id_from(path: Path, given: str | None) -> str:
    raw = given if given is not None else path.stem
    try:
        return entry_id(raw)
    except ValueError as exc:
        raise MicrolibError(f"cannot tell the entry id from {path.name!r}; pass --id") from exc


def _read_meta(path: Path | None, ident: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        meta = read_json(path)
    except (OSError, ValueError) as exc:
        log.warning(
            "%s: record metadata %s unreadable (%s); annotating without it", ident, path, exc
        )
        return {}
    return meta if isinstance(meta, dict) else {}


def _read_image(path: Path, ident: str) -> tuple[np.ndarray | None, str | None]:
    """(array, None) or (None, reason): a corrupt image is data (the entry is excluded),
    a pixel format the pipeline does not read is the user's to convert (an error)."""
    try:
        img = read_image(path)
    except FileNotFoundError:
        raise
    except UnsupportedImageError as exc:
        raise MicrolibError(f"{path}: {exc}", entry=ident) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return None, f"cannot decode {path.name}: {exc}"
    if img.ndim not in (2, 3) or min(img.shape[:2]) < 8:
        return None, f"{path.name} is not a usable 2D image (shape {tuple(img.shape)})"
    return img, None


# --------------------------------------------------------------------------- modes


def _run_entry(args: argparse.Namespace) -> int:
    ident = _id_from(args.image, args.entry_id)
    if not args.image.is_file():
        raise MicrolibError(f"image {args.image} not found", entry=ident)
    curation = load_curation(args.curation).get(ident, {}) if args.curation else {}
    thresholds = FilterThresholds().updated(
        {k: getattr(args, k, None) for k in FilterThresholds.names()}
    )
    tparams = TypeParams(
        chroma_min=args.chroma_min,
        sep2_min=args.sep2_min,
        sep_gain_min=args.sep_gain_min,
        min_phase_fraction=args.min_phase_fraction,
        max_phases=args.max_phases,
        refine=args.refine,
        flat_field=args.flat_field,
    )
    meta = _read_meta(args.meta, ident)
    img, problem = _read_image(args.image, ident)
    if img is None:
        log.error("%s: %s; the entry is excluded", ident, problem)
        ann = unreadable_annotation(problem)
    else:
        ann = annotate_image(
            img,
            meta=meta,
            curation=curation,
            thresholds=thresholds,
            type_params=tparams,
            entry=ident,
            segment_settings=segment_settings(args),
        )
    ann = {
        "id": ident,
        "name": entry_name(ident),
        "files": {
            "image": args.image.name,
            "image_sha256": sha256_file(args.image),
            "meta": args.meta.name if args.meta else None,
        },
        **ann,
    }
    write_json(args.out, ann)
    if ann["included"]:
        log.info(
            "%s: %s, %s; passes every filter",
            ident,
            ann["data_type"],
            "scale bar found" if (ann.get("scale_bar") or {}).get("present") else "no scale bar",
        )
    else:
        log.info("%s: excluded: %s", ident, "; ".join(ann["reasons"]))
    return 0


def _run_select(args: argparse.Namespace) -> int:
    overrides = {
        k: getattr(args, k) for k in FilterThresholds.names() if getattr(args, k) is not None
    }
    anns: dict[str, dict[str, Any]] = {}
    broken: dict[str, str] = {}
    for path in tqdm(args.annotations, desc="select", unit="annotation", leave=False):
        try:
            ann = read_json(path)
            ident = entry_id(ann.get("id") or path.stem)
        except (OSError, ValueError, AttributeError) as exc:
            try:
                ident = entry_id(path.stem)
            except ValueError:
                raise MicrolibError(
                    f"annotation {path} is unreadable and its name is not an id: {exc}"
                ) from exc
            log.error("%s: annotation %s unreadable (%s); the entry is excluded", ident, path, exc)
            broken[ident] = f"annotation unreadable: {exc}"
            continue
        if ident in anns:
            raise MicrolibError(f"two annotations for one entry ({path})", entry=ident)
        anns[ident] = ann
    sel = select_entries(anns, overrides)
    for ident, why in broken.items():
        sel["excluded"][ident] = {
            "name": entry_name(ident),
            "reasons": [why],
            "criteria": ["unreadable"],
        }
    sel["excluded"] = dict(sorted(sel["excluded"].items()))
    sel["n_annotations"] = len(args.annotations)
    write_json(args.out, sel)
    log.info("selection: %d included, %d excluded", len(sel["included"]), len(sel["excluded"]))
    for ident, ex in sel["excluded"].items():
        log.info("  %s excluded: %s", ident, "; ".join(ex["reasons"]))
    return 0


def _run_import(args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise MicrolibError(f"cannot read {args.file}: {exc}") from exc
    if not isinstance(data, dict):
        raise MicrolibError(
            f"{args.file} is not a MicroLib prelabelled annotation file (expected an object)"
        )
    try:
        cur = curation_from_prelabelled(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise MicrolibError(f"{args.file}: unexpected entry layout: {exc}") from exc
    header = (
        f"# Curation imported from {args.file.name} (MicroLib's hand annotations) by\n"
        "# `microlib annotate import-prelabelled`. Scale-bar boxes are raw-image pixels\n"
        "# [x0, y0, x1, y1] (half-open); tolerance = MicroLib barcol threshold / 10 grey levels.\n"
    )
    write_text(args.out, header + yaml.safe_dump(cur, sort_keys=False, allow_unicode=True))
    log.info("wrote %d curated entries to %s", len(cur["entries"]), args.out)
    return 0
