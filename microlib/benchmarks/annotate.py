"""``microlib bench annotate``: calibrate the annotation filters on real and demo data.

Four parts, printed with figures (the filter, type and demo parts with a ratio against a
baseline run in-process):

1. Real data (``../shared/realdata`` or ``--realdata``): the 60 final MicroLib training
   images, which MicroLib all included. Prints each filter's pass rate with the default
   thresholds, the data-type agreement with the CSV's ``category`` (baseline: MicroLib's
   ``len(np.unique(img)) == 2`` rule), the dark-phase fraction error against ``vf_dark``
   (baseline: plain Otsu), the x/y correlation-length ratio against
   ``iso_ratio_x_over_y``, and the time per image against plain Otsu. These images are
   already cropped and segmented (two-phase ones are exactly 0/255), so they test the
   filters' false-exclusion rate, not the thresholding of raw micrographs.
2. Scale bars rendered on every real micrograph (``--bars-per-image`` each; PIL's
   bitmap font and the TrueType fonts under /usr/share/fonts, sizes, white / black /
   grey, corners, overlay and band styles; two-phase images at their raw phase greys),
   see :mod:`microlib.benchmarks.annotate_bars`: bars found, bar-length error, band crops,
   mask recall and precision against the exact rendered pixels, with the worst cases.
3. ``inpainter_examples``: data type and scale-bar detector on four raw-ish images.
4. The demo library (``--demo-seed``): verdict, failing criterion, data type, crop,
   scale-bar recall, segmentation accuracy and phase fractions against ground truth.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from microlib import annotate as A
from microlib import demo_site
from microlib.benchmarks.annotate_bars import _fmt, bench_bars
from microlib.io import read_image
from microlib.segment import segment_image

HELP = "annotation filters and type decision on real data and the demo library (agreement + ratios)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--realdata",
        type=Path,
        default=None,
        help="real reference data folder (default: $MICROLIB_REALDATA or ../shared/realdata)",
    )
    parser.add_argument(
        "--demo-seed", type=int, default=0, help="seed of the demo library (default 0)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N real images (quick look)"
    )
    parser.add_argument(
        "--entries",
        default=None,
        help="only these real images, comma-separated DoITPoMS ids (e.g. 277,630); each keeps "
        "the bar styles it gets in the full run",
    )
    parser.add_argument("--no-demo", action="store_true", help="skip the demo-library part")
    parser.add_argument(
        "--bars-per-image",
        type=int,
        default=3,
        help="scale bars rendered on each real micrograph (0 skips the scale-bar part; default 3)",
    )


def _realdata_dir(given: Path | None) -> Path | None:
    if given is not None:
        return given if given.is_dir() else None
    env = os.environ.get("MICROLIB_REALDATA")
    cands = [Path(env)] if env else []
    cands.append(Path(__file__).resolve().parents[3] / "shared" / "realdata")
    for c in cands:
        if c.is_dir():
            return c
    return None


def _otsu_vf_dark(grey: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    if np.ptp(grey) == 0:
        return 0.0
    t = threshold_otsu(grey)
    return float((grey <= t).mean())


def _otsu_type(img: np.ndarray) -> str:
    """Baseline type rule for raw images: plain two-class Otsu on the luminance,
    two-phase when its separability reaches 0.85, else grayscale (no colour, no
    three-phase: what a threshold-only pipeline such as MicroLib's can express)."""

    hist = A.grey_histogram(A.to_grey(img).ravel())
    th = A.otsu_thresholds(hist, 2)
    return "twophase" if th and A.separability(hist, th) >= 0.85 else "grayscale"


def bench_realdata(
    root: Path, limit: int | None = None, entries: set[str] | None = None
) -> dict[str, Any]:

    rows = list(csv.DictReader(open(root / "micrographs.csv", encoding="utf-8")))
    if limit:
        rows = rows[:limit]
    if entries:
        rows = [r for r in rows if r["entry"] in entries]
    th = A.FilterThresholds()
    per: list[dict[str, Any]] = []
    t_ours = t_base = 0.0
    print(f"\n== real MicroLib training images ({len(rows)}, all included by MicroLib) ==")
    print(
        f"{'id':>4} {'csv type':>9} {'ours':>10} {'unique2':>9} {'vf csv':>7} {'vf ours':>7} {'vf otsu':>7} "
        f"{'xy csv':>6} {'xy ours':>7} {'iso':>5} {'repr':>6} {'expo':>5} {'qual':>5}  failed"
    )
    for r in rows:
        img = read_image(root / "micrographs" / r["name"])
        t0 = time.perf_counter()
        typed = A.decide_data_type(img)
        sc = A.filter_scores(img, typed)
        sc.pop("acf")
        filters, reasons = A.evaluate_filters(sc, th)
        t1 = time.perf_counter()
        grey = A.to_grey(img)
        vf_otsu = _otsu_vf_dark(grey)
        t2 = time.perf_counter()
        # MicroLib's rule (run_slicegan.py): two unique values -> twophase, else grayscale
        flat = img.reshape(-1, img.shape[-1]) if img.ndim == 3 else img.reshape(-1, 1)
        base_type = "twophase" if len(np.unique(flat, axis=0)) == 2 else "grayscale"
        t_ours += t1 - t0
        t_base += t2 - t1
        csv_type = {"two-phase": "twophase", "grayscale": "grayscale"}.get(
            r["category"], r["category"]
        )
        vf_ours = typed["fractions"][0] if typed.get("fractions") else None
        xy = filters["isotropy"]["detail"]["ratio_x_over_y"]
        failed = [k for k in A.FILTERS if filters[k]["passed"] is False]
        per.append(
            dict(
                id=r["entry"],
                csv_type=csv_type,
                ours=typed["data_type"],
                base=base_type,
                vf_csv=float(r["vf_dark"]) if r["vf_dark"] else None,
                vf_ours=vf_ours,
                vf_otsu=vf_otsu,
                xy_csv=float(r["iso_ratio_x_over_y"]),
                xy_ours=xy,
                filters=filters,
                failed=failed,
                reasons=reasons,
            )
        )
        print(
            f"{r['entry']:>4} {csv_type:>9} {typed['data_type']:>10} {base_type:>9} "
            f"{_fmt(per[-1]['vf_csv']):>7} {_fmt(vf_ours):>7} {_fmt(vf_otsu):>7} {_fmt(per[-1]['xy_csv']):>6} "
            f"{_fmt(xy):>7} {_fmt(filters['isotropy']['score'], 2):>5} "
            f"{_fmt(filters['representativity']['score'], 1):>6} {_fmt(filters['exposure']['score'], 2):>5} "
            f"{_fmt(filters['quality']['score'], 2):>5}  {'; '.join(reasons)}"
        )
    n = len(per)
    print("\npass rate per filter (default thresholds; every image was included by MicroLib):")
    for k in A.FILTERS:
        ok = sum(1 for p in per if p["filters"][k]["passed"] is not False)
        scores = [p["filters"][k]["score"] for p in per if p["filters"][k]["score"] is not None]
        print(
            f"  {k:<17} {ok}/{n} = {ok / n:.1%}   threshold {getattr(th, A.FILTER_RULES[k][0]) if k in A.FILTER_RULES else 1.0:g}"
            f"   scores min {min(scores):.3f} median {float(np.median(scores)):.3f} max {max(scores):.3f}"
        )
    for comp in A.QUALITY_COMPONENTS:
        vals = [
            p["filters"]["quality"]["components"][comp]["score"]
            for p in per
            if p["filters"]["quality"]["components"][comp]["applicable"]
        ]
        vals = [v for v in vals if v is not None]
        if vals:
            print(
                f"    quality.{comp:<11} applicable {len(vals)}  min {min(vals):.3f} max {max(vals):.3f}"
                f"  (threshold {getattr(th, A.QUALITY_RULES[comp][0]):g} {A.QUALITY_RULES[comp][1]})"
            )
    all_ok = sum(1 for p in per if not p["failed"])
    print(f"  all filters       {all_ok}/{n} = {all_ok / n:.1%}")
    false_ex = [f"{p['id']} ({'; '.join(p['reasons'])})" for p in per if p["failed"]]
    print(
        f"  false exclusions among MicroLib-included images: {len(false_ex)}"
        + (f": {', '.join(false_ex)}" if false_ex else "")
    )
    agree = sum(p["ours"] == p["csv_type"] for p in per)
    base_agree = sum(p["base"] == p["csv_type"] for p in per)
    print(
        f"\ndata type agreement with the CSV category: ours {agree}/{n}, MicroLib unique-value rule "
        f"{base_agree}/{n} (ratio {agree / max(base_agree, 1):.2f})"
    )
    for p in per:
        if p["ours"] != p["csv_type"]:
            print(f"  {p['id']}: csv {p['csv_type']}, ours {p['ours']}")
    vf = [
        (p["vf_ours"], p["vf_csv"], p["vf_otsu"])
        for p in per
        if p["vf_ours"] is not None and p["vf_csv"] is not None
    ]
    if vf:
        mae = float(np.mean([abs(a - b) for a, b, _ in vf]))
        mae_b = float(np.mean([abs(c - b) for _, b, c in vf]))
        print(
            f"dark-phase fraction vs vf_dark ({len(vf)} n-phase images): MAE ours {mae:.5f}, plain Otsu {mae_b:.5f}"
        )
    xy = [(p["xy_ours"], p["xy_csv"]) for p in per if p["xy_ours"]]
    a, b = np.array([x for x, _ in xy]), np.array([y for _, y in xy])
    r = float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 else float("nan")
    print(
        f"x/y correlation-length ratio vs iso_ratio_x_over_y: Pearson r {r:.4f}, MAE {float(np.mean(np.abs(a - b))):.4f}, "
        f"max |diff| {float(np.max(np.abs(a - b))):.4f}"
    )
    print(
        f"time per image: ours {1000 * t_ours / n:.1f} ms (type + every filter), plain Otsu {1000 * t_base / n:.2f} ms, "
        f"ratio {t_ours / max(t_base, 1e-9):.0f}x (wall clock, noisy on a shared machine)"
    )
    return {"n": n, "type_agree": agree, "base_agree": base_agree, "all_pass": all_ok}


def bench_examples(root: Path) -> None:

    d = root / "inpainter_examples"
    if not d.is_dir():
        return
    print("\n== inpainter_examples (raw-ish micrographs) ==")
    for f in sorted(d.glob("*.png")):
        img = read_image(f)
        typed = A.decide_data_type(img)
        print(f"  {f.name:<28} baseline (Otsu-2 rule) type {_otsu_type(img)}")
        crop = A.detect_crop(img)
        bar = A.detect_scale_bar(A.crop_image(img, crop["box"]))
        s = typed["scores"]
        print(
            f"  {f.name:<28} {img.shape[1]}x{img.shape[0]}  type {typed['data_type']:<10} "
            f"chroma {s['chroma']:.1f}  separability {s['separability']}  crop removed {crop['removed']}  "
            f"scale bar {'none' if bar is None else bar['box']}"
        )


def bench_demo(seed: int) -> dict[str, Any]:
    from PIL import Image

    files, truth = demo_site.build_site(seed)
    print(f"\n== demo library (seed {seed}) against its ground truth ==")
    anns: dict[str, Any] = {}
    t_ours = t_base = 0.0
    rows = []
    for ident, tr in truth["entries"].items():
        img = np.asarray(Image.open(io.BytesIO(files[f"miclib/micrographs/large/{ident}.jpg"])))
        meta = _record_meta(files[f"miclib/full_record/{int(ident)}.html"])
        t0 = time.perf_counter()
        ann = A.annotate_image(img, meta=meta)
        t1 = time.perf_counter()
        _otsu_vf_dark(A.to_grey(img))
        t2 = time.perf_counter()
        t_ours += t1 - t0
        t_base += t2 - t1
        ann["id"] = ident
        anns[ident] = ann
        seg = segment_image(img, ann)
        x0, y0, x1, y1 = tr["crop_box"]
        bar_truth = np.asarray(Image.open(io.BytesIO(files[tr["bar_mask"]]))) > 0
        bar_truth = bar_truth[y0:y1, x0:x1]
        ours_mask = seg["mask"] > 0
        same_shape = ours_mask.shape == bar_truth.shape
        recall = (
            float((ours_mask & bar_truth).sum() / bar_truth.sum())
            if same_shape and bar_truth.any()
            else None
        )
        fp = float((ours_mask & ~bar_truth).sum() / ours_mask.size) if same_shape else None
        acc = vf_err = None
        if tr["labels"] and seg["data_type"] == tr["data_type"] and same_shape:
            lab = np.asarray(Image.open(io.BytesIO(files[tr["labels"]])))
            keep = ~bar_truth & ~ours_mask
            acc = float((seg["image"][keep] == lab[keep]).mean())
            vf_err = float(
                np.max(np.abs(np.asarray(seg["fractions"]) - np.asarray(tr["phase_fractions"])))
            )
        rows.append(
            dict(
                id=ident,
                ann=ann,
                tr=tr,
                recall=recall,
                fp=fp,
                acc=acc,
                vf_err=vf_err,
                crop_ok=ann["crop"]["box"] == tr["crop_box"],
            )
        )
    base_ok = sum(
        _otsu_type(np.asarray(Image.open(io.BytesIO(files[f"miclib/micrographs/large/{i}.jpg"]))))
        == tr["data_type"]
        for i, tr in truth["entries"].items()
    )
    sel = A.select_entries(anns)
    print(
        f"{'id':>6} {'kind':<26} {'type':>10} {'truth':>10} {'verdict':>8} {'truth':>8} {'crop':>5} "
        f"{'bar rec':>7} {'bar fp':>7} {'acc':>6} {'vf err':>6}  reasons"
    )
    n_ok = n_type = n_crop = 0
    for r in rows:
        ident, tr = r["id"], r["tr"]
        inc = ident in sel["included"]
        reasons = sel["excluded"].get(ident, {}).get("reasons", [])
        crits = sel["excluded"].get(ident, {}).get("criteria", [])
        ok = inc == tr["included"] and (inc or crits == [tr["criterion"]])
        n_ok += ok
        n_type += r["ann"]["data_type"] == tr["data_type"]
        n_crop += r["crop_ok"]
        print(
            f"{ident:>6} {tr['kind'][:26]:<26} {r['ann']['data_type']:>10} {tr['data_type']:>10} "
            f"{'in' if inc else 'out':>8} {'in' if tr['included'] else 'out':>8} {'ok' if r['crop_ok'] else 'NO':>5} "
            f"{_fmt(r['recall']):>7} {_fmt(r['fp'], 4):>7} {_fmt(r['acc'], 4):>6} {_fmt(r['vf_err'], 4):>6}  "
            f"{'; '.join(reasons)}"
        )
    n = len(rows)
    print(
        f"\nverdict + criterion agreement {n_ok}/{n}; data type {n_type}/{n} (baseline Otsu-2 rule {base_ok}/{n}, "
        f"ratio {n_type / max(base_ok, 1):.2f}); crop box exact {n_crop}/{n}"
    )
    accs = [r["acc"] for r in rows if r["acc"] is not None]
    if accs:
        print(
            f"segmentation pixel accuracy: min {min(accs):.4f}, mean {float(np.mean(accs)):.4f}; "
            f"max phase-fraction error {max(r['vf_err'] for r in rows if r['vf_err'] is not None):.4f}"
        )
    recs = [r["recall"] for r in rows if r["recall"] is not None]
    if recs:
        print(
            f"scale-bar mask recall (bars on the data): min {min(recs):.4f}; false-positive area max "
            f"{max(r['fp'] for r in rows if r['fp'] is not None):.4%} of the image"
        )
    print(
        f"time per entry: annotate {1000 * t_ours / n:.0f} ms vs plain Otsu {1000 * t_base / n:.2f} ms "
        f"(ratio {t_ours / max(t_base, 1e-9):.0f}x; wall clock, noisy)"
    )
    return {"n": n, "verdicts_ok": n_ok, "types_ok": n_type}


def _record_meta(html_bytes: bytes) -> dict[str, str]:
    """The dt/dd pairs of a record page (what a scraper would store)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_bytes.decode("utf-8"), "html.parser")
    div = soup.find("div", class_="col-md-8")
    out: dict[str, str] = {}
    if div is None:
        return out
    for dt in div.find_all("dt"):
        dd = dt.find_next_sibling("dd")
        if dd is not None:
            out[dt.get_text(strip=True)] = dd.get_text(" ", strip=True)
    return out


def _entry_ids(text: str | None) -> set[str] | None:
    """``"277, 630"`` -> ``{"277", "630"}`` (ids zero-padded to three digits, as the files)."""
    if not text:
        return None
    return {t.strip().zfill(3) for t in text.split(",") if t.strip()}


def run(args: argparse.Namespace) -> int:
    root = _realdata_dir(args.realdata)
    if root is None:
        print(
            "real data not found (pass --realdata or set MICROLIB_REALDATA); real-data part skipped"
        )
    else:
        entries = _entry_ids(args.entries)
        bench_realdata(root, args.limit, entries)
        if args.bars_per_image > 0:
            bench_bars(root, args.bars_per_image, args.limit, entries)
        bench_examples(root)
    if not args.no_demo:
        bench_demo(args.demo_seed)
    return 0
