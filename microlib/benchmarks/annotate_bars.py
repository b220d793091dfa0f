"""Part 2 of ``microlib bench annotate``: scale bars rendered on the real micrographs.

Each real micrograph gets ``--bars-per-image`` bars (:mod:`microlib.benchmarks.bar_render`:
fonts, sizes, colours, corners, overlay and band styles); :func:`_detect_rendered` runs
what the annotate stage does on the result (crop, detect, mask) and :func:`bench_bars`
prints bars found, bar-length error, band crops (exact: the band gone and the micrograph
cropped as without it, its own frame lines included), mask recall and precision against
the exact rendered pixels, with the worst cases.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from microlib import annotate as A
from microlib.annotate.entry import bar_outside_crop
from microlib.benchmarks.bar_render import available_fonts, render, styles_for
from microlib.image import box_outside, shift_box
from microlib.io import read_image

# the in-paint mask's dilation, as the annotate stage records it (MicroLib used 1 px)
BAR_DILATION_PX = 1


def _fmt(x: float | None, nd: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _detect_rendered(img: np.ndarray) -> dict[str, Any]:
    """What the annotate stage does with a raw image's scale bar: crop, detect on the
    cropped image (or, when none is left there, outside the crop), build the mask."""
    crop = A.detect_crop(img)["box"]
    cropped = A.crop_image(img, crop)
    found = A.detect_scale_bar(cropped)
    mask = np.zeros(img.shape[:2], bool)
    bar_box = length = None
    if found is not None:
        cx, cy = crop[0], crop[1]
        bar = {
            "box": shift_box(found["box"], cx, cy),
            "label_box": shift_box(found["label_box"], cx, cy),
            "colour": found["colour"],
            "tolerance": found["tolerance"],
            "bar_box": shift_box(found["bar_box"], cx, cy),
            "dilation_px": BAR_DILATION_PX + found["edge_blur_px"],
        }
        sub = A.scale_bar_mask(cropped, **A.bar_mask_args(bar, crop))
        mask[crop[1] : crop[3], crop[0] : crop[2]] = sub
        bar_box, length = shift_box(found["bar_box"], cx, cy), found["length_px"]
    else:
        outside = bar_outside_crop(img, list(crop))
        if outside is not None:
            bar_box, length = outside["bar_box"], outside["length_px"]
    return {"crop": list(crop), "mask": mask, "bar_box": bar_box, "length_px": length}


def bench_bars(
    root: Path, per_image: int, limit: int | None = None, entries: set[str] | None = None
) -> dict[str, Any]:
    """Scale bars rendered on every real micrograph: found, length, mask recall/precision.

    Two-phase images are drawn on at their phases' raw grey levels (the CSV's
    ``ann_phases``, MicroLib's annotation of the served micrograph; 64/192 where it has
    none or they are closer than 40 levels), as a bar is drawn on the raw micrograph.
    ``entries`` (DoITPoMS ids) keeps only those images, each with the styles it gets in
    the full run.
    """
    files = sorted((root / "micrographs").glob("*.png"))
    if limit:
        files = files[:limit]
    phases = {}
    with open(root / "micrographs.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            vals = [float(v) for v in (r.get("ann_phases") or "").split(";") if v.strip()]
            if len(vals) == 2 and abs(vals[1] - vals[0]) >= 40:
                phases[r["name"]] = sorted(vals)
    fonts = available_fonts()
    rng = np.random.default_rng(0)
    print(
        f"\n== scale bars rendered on the real micrographs "
        f"({len(entries) if entries else len(files)} images x {per_image}; "
        f"fonts: {', '.join(Path(f).stem for f in fonts)}) =="
    )
    rows: list[dict[str, Any]] = []
    false_bars = []
    for i, f in enumerate(files):
        styles = styles_for(i, fonts, per_image, rng)  # drawn for every image: same styles
        if entries and f.stem.replace("micro", "") not in entries:
            continue
        img = read_image(f)
        if img.ndim == 3 and np.ptp(img.astype(np.int16), axis=2).max() == 0:
            img = img[..., 0]  # R=G=B: work on grey, as the pipeline would
        kind = "twophase" if len(np.unique(img)) == 2 else "grayscale"
        if kind == "twophase":
            # as served: the phases at their raw grey levels (MicroLib's hand annotation),
            # not the 0/255 of the segmented training image
            lo, hi = phases.get(f.name, [64.0, 192.0])
            img = np.where(img > 127, hi, lo).round().astype(np.uint8)
        # the data's own frame lines (277's border) go with or without a band below
        clean_crop = A.detect_crop(img)["box"]
        clean = A.detect_scale_bar(A.crop_image(img, clean_crop))
        if clean is not None:  # a few MicroLib images keep a bar leftover (189, 217)
            false_bars.append(f"{f.stem.replace('micro', '')} {clean['bar_box']}")
        for st in styles:
            r = render(img, st)
            got = _detect_rendered(r["image"])
            truth = r["truth"]
            tb = r["bar_box"]
            hit = got["bar_box"] is not None and not box_outside(got["bar_box"], tb)
            row = {
                "id": f.stem.replace("micro", ""),
                "kind": kind,
                "style": st,
                "drawn": r["colour"],
                "found": hit,
                "len_err": abs(got["length_px"] - r["length_px"]) if hit else None,
                "crop_ok": got["crop"] == clean_crop if st.style == "band" else None,
                "recall": None,
                "precision": None,
            }
            if st.style == "overlay":
                m = got["mask"]
                inter = float((m & truth).sum())
                row["recall"] = inter / max(float(truth.sum()), 1.0)
                row["precision"] = inter / float(m.sum()) if m.any() else 0.0
            rows.append(row)
    n = len(rows)
    found = sum(r["found"] for r in rows)
    over = [r for r in rows if r["recall"] is not None]
    band = [r for r in rows if r["crop_ok"] is not None]
    errs = [r["len_err"] for r in rows if r["len_err"] is not None]
    rec = [r["recall"] for r in over]
    prec = [r["precision"] for r in over]
    print(
        f"bars found {found}/{n} (overlay {sum(r['found'] for r in over)}/{len(over)}, band "
        f"{sum(r['found'] for r in band)}/{len(band)}); band crop exact "
        f"{sum(bool(r['crop_ok']) for r in band)}/{len(band)}"
    )
    print(
        f"bars found on the clean images (leftovers or false positives): {len(false_bars)} "
        f"{'; '.join(false_bars)}"
    )
    if errs:
        print(f"bar length error: mean {np.mean(errs):.2f} px, max {max(errs)} px")
    if over:
        print(
            f"mask recall mean {np.mean(rec):.4f} (min {min(rec):.4f}); precision mean "
            f"{np.mean(prec):.4f} (min {min(prec):.4f}); dilation {BAR_DILATION_PX} px + measured edge blur"
        )
        for kind in ("twophase", "grayscale"):
            sub = [r for r in over if r["kind"] == kind]
            if sub:
                print(
                    f"  {kind:<9} {len(sub):>3} overlays: found {sum(r['found'] for r in sub)}, recall "
                    f"{np.mean([r['recall'] for r in sub]):.4f}, precision "
                    f"{np.mean([r['precision'] for r in sub]):.4f}"
                )
    worst = sorted(over, key=lambda r: min(r["recall"], r["precision"] / 0.8 * 0.99))[:8]
    missed = [r for r in rows if not r["found"] or r["crop_ok"] is False]
    print("worst cases (recall / precision):")
    for r in missed + worst:
        print(
            f"  {r['id']} {r['kind']:<9} {r['style'].describe():<58} drawn {r['drawn']:>3} "
            f"found {r['found']!s:<5} "
            f"crop {r['crop_ok']!s:<5} recall {_fmt(r['recall'])} precision {_fmt(r['precision'])} "
            f"len err {r['len_err']}"
        )
    return {
        "n": n,
        "found": found,
        "band": len(band),
        "band_crop_ok": sum(bool(r["crop_ok"]) for r in band),
        "recall": float(np.mean(rec)) if rec else None,
        "precision": float(np.mean(prec)) if prec else None,
    }
