"""``microlib bench inpaint``: GAN in-painting vs OpenCV Telea on hidden real pixels.

Real MicroLib training images (clean, already in-painted) get synthetic scale-bar
masks pasted on them (a bar plus a row of letter-sized blocks, dilated by 1 px as in
MicroLib); both methods fill the mask and the statistics of the filled pixels (phase
fractions, interface density, two-point correlation; grey images: mean, std,
histogram, autocovariance) are compared with those of the true hidden pixels. The
printed ratio is GAN error / Telea error (< 1: the GAN is closer to the truth),
measured in the same run, with the time of each method.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

from microlib import inpaint as ip
from microlib.io import read_image

HELP = "GAN in-painting vs Telea on real images with synthetic scale-bar masks"


def default_realdata() -> Path | None:
    """``$MICROLIB_REALDATA``, else ``shared/realdata`` beside the checkout (as the tests)."""
    env = os.environ.get("MICROLIB_REALDATA")
    cands = [Path(env)] if env else []
    cands.append(Path(__file__).resolve().parents[2].parent / "shared" / "realdata")
    return next((c for c in cands if c.is_dir()), None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    D = ip.GAN_DEFAULTS  # noqa: N806 - read like a constant table below

    parser.add_argument(
        "--realdata",
        type=Path,
        default=None,
        help="the realdata folder (default: $MICROLIB_REALDATA, else shared/realdata "
        "beside the checkout)",
    )
    parser.add_argument(
        "--limit", type=int, default=8, help="two-phase images (spread over the list)"
    )
    parser.add_argument("--grey", type=int, default=2, help="grayscale images to add")
    parser.add_argument("--names", default=None, help="comma-separated image names (micro017,...)")
    parser.add_argument("--iterations", type=int, default=D["iterations"])
    parser.add_argument("--opt-steps", type=int, default=D["opt_steps"])
    parser.add_argument("--critic-iters", type=int, default=D["critic_iters"])
    parser.add_argument("--batch-size", type=int, default=D["batch_size"])
    parser.add_argument("--width", type=int, default=D["width"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-lag", type=int, default=12)


def scale_bar_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A scale-bar-shaped mask: a bar and, above it, a row of letter-sized blocks with
    holes (a label such as ``10 um``), in the lower right, dilated by 1 px."""
    from scipy import ndimage

    h, w = shape
    m = np.zeros(shape, bool)
    bar_h = max(4, h // 50)
    bar_w = max(20, int(w * rng.uniform(0.2, 0.35)))
    y = int(h * rng.uniform(0.82, 0.92))
    x = int(w * rng.uniform(0.45, 0.95)) - bar_w
    x = max(x, 2)
    m[y : y + bar_h, x : x + bar_w] = True
    lh = int(bar_h * 3)
    lw = max(int(lh * 0.6), 3)
    ty = max(y - lh - bar_h, 1)
    tx = x + bar_w // 2 - 2 * (lw + 3)
    for k in range(4):
        x0 = tx + k * (lw + 3)
        if k == 2:  # the space in "10 um"
            continue
        m[ty : ty + lh, x0 : x0 + lw] = True
        m[ty + 2 : ty + lh - 2, x0 + 2 : x0 + lw - 2] = False  # letters are strokes, not blocks
    return ndimage.binary_dilation(m, structure=np.ones((3, 3), bool))


def _load(path: Path, grey: bool) -> tuple[np.ndarray, str, int]:
    img = read_image(path)
    if img.ndim == 3:
        img = (
            img[..., 0] if (img[..., 0] == img[..., 1]).all() else img.mean(axis=2).astype(np.uint8)
        )
    if grey:
        return img, "grayscale", 1
    return (img > 127).astype(np.uint8), "twophase", 2


def _pick(realdata: Path, limit: int, n_grey: int, names: str | None) -> list[tuple[Path, bool]]:
    rows = list(csv.DictReader(open(realdata / "micrographs.csv", encoding="utf-8")))
    if names:
        wanted = {n.strip().removesuffix(".png") for n in names.split(",")}
        return [
            (realdata / "micrographs" / r["name"], r["category"] != "two-phase")
            for r in rows
            if r["name"].removesuffix(".png") in wanted
        ]
    # skip images with known defects (scale-bar leftovers, border lines, false colour)
    ok = [r for r in rows if not r.get("notes")]
    two = [r for r in ok if r["category"] == "two-phase"]
    grey = [r for r in ok if r["category"] != "two-phase" and r.get("colourmap", "") == ""]
    sel = (
        [two[i] for i in np.linspace(0, len(two) - 1, min(limit, len(two))).astype(int)]
        if limit
        else []
    )
    sel += (
        [grey[i] for i in np.linspace(0, len(grey) - 1, min(n_grey, len(grey))).astype(int)]
        if n_grey
        else []
    )
    return [(realdata / "micrographs" / r["name"], r["category"] != "two-phase") for r in sel]


def run(args: argparse.Namespace) -> int:
    import torch

    realdata = args.realdata or default_realdata()
    if realdata is None or not (realdata / "micrographs.csv").is_file():
        print("bench inpaint: no realdata folder (give --realdata DIR)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    params = {
        "iterations": args.iterations,
        "opt_steps": args.opt_steps,
        "critic_iters": args.critic_iters,
        "batch_size": args.batch_size,
        "width": args.width,
    }
    print(f"# bench inpaint: {params}, threads {args.threads}, seed {args.seed}")
    errs: dict[str, dict[str, list[float]]] = {"gan": {}, "telea": {}}
    times: dict[str, list[float]] = {"gan": [], "telea": []}
    header = None
    for path, grey in _pick(realdata, args.limit, args.grey, args.names):
        img, dt, n = _load(path, grey)
        mask = scale_bar_mask(img.shape, rng)
        truth = ip.region_statistics(img, mask, data_type=dt, n_phases=n, max_lag=args.max_lag)
        row = {}
        for method in ("gan", "telea"):
            t0 = time.perf_counter()
            out, _ = ip.inpaint(
                img,
                mask,
                data_type=dt,
                n_phases=n,
                method=method,
                seed=args.seed,
                **(params if method == "gan" else {}),
            )
            times[method].append(time.perf_counter() - t0)
            assert np.array_equal(out[~mask], img[~mask])
            e = ip.statistics_error(
                ip.region_statistics(out, mask, data_type=dt, n_phases=n, max_lag=args.max_lag),
                truth,
            )
            for k, v in e.items():
                errs[method].setdefault(f"{dt[:4]}:{k}", []).append(v)
            row[method] = e
        if header != dt:
            keys = list(row["gan"])
            print(
                f"{'image':<14}{'type':<10}{'size':<10}{'mask%':>6}  "
                + "  ".join(f"{k + ' gan/telea':>27}" for k in keys)
                + f"  {'t_gan':>6} {'t_telea':>7}"
            )
            header = dt
        cells = "  ".join(f"{row['gan'][k]:>13.4f}/{row['telea'][k]:<13.4f}" for k in row["gan"])
        print(
            f"{path.stem:<14}{dt:<10}{img.shape[0]}x{img.shape[1]:<6}{100 * mask.mean():>6.2f}  {cells}"
            f"  {times['gan'][-1]:>6.1f} {times['telea'][-1]:>7.3f}"
        )
    if not times["gan"]:
        print("bench inpaint: no images selected", file=sys.stderr)
        return 2
    print(
        "# mean error over images (vs the hidden true pixels); ratio = GAN / Telea (< 1: GAN better)"
    )
    for key in errs["gan"]:
        g, t = float(np.mean(errs["gan"][key])), float(np.mean(errs["telea"][key]))
        wins = sum(a < b for a, b in zip(errs["gan"][key], errs["telea"][key], strict=True))
        print(
            f"{key:<28} gan {g:.4f}  telea {t:.4f}  ratio {g / t if t else float('inf'):.2f}"
            f"  (GAN closer on {wins}/{len(errs['gan'][key])})"
        )
    tg, tt = float(np.mean(times["gan"])), float(np.mean(times["telea"]))
    print(f"time per image: gan {tg:.1f} s, telea {tt:.3f} s, ratio {tg / tt:.0f}x")
    return 0
