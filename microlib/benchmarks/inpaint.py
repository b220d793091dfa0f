"""``microlib bench inpaint``: every in-painting method on hidden real pixels, per type.

Real MicroLib training images (clean, already in-painted) get synthetic scale-bar
masks pasted on them (a bar plus a row of letter-sized blocks, dilated by 1 px as in
MicroLib); each method fills the mask and the statistics of the filled pixels are
compared with those of the true hidden pixels:

- two-phase: interface-density error and volume-fraction error (both decide the
  winner), two-point-correlation error;
- grayscale: grey-texture errors, i.e. neighbour-difference (gradient) RMS and
  autocovariance (these two decide the winner: a per-pixel error rewards blur), and
  the per-pixel mean abs error and histogram distance for reference.

Per data type it prints each method's mean errors and time per image, and the winner:
the method with the lowest mean, over the deciding measures, of its error divided by
the best method's error. ``gan`` runs at the default (demo) budget, ``gan-real`` at the
real run's budget on the first ``--real-limit`` images of each type only (compared with
the others on those images). Times are per image: process CPU seconds (with
``--threads 1`` the time on a dedicated core, whatever else the machine runs) and wall
seconds.
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

#: the real run's GAN budget (``inpaint:`` of ``config/config.yaml``)
REAL_BUDGET = {
    "iterations": 1000,
    "critic_iters": 3,
    "width": 32,
    "opt_steps": 400,
    "opt_restarts": 8,
}

HELP = "every in-painting method on real images with synthetic scale-bar masks, per type"

#: the measures that decide the winner of a data type
DECIDING = {
    "twophase": ("interface_density", "phase_fraction"),
    "grayscale": ("gradient", "autocovariance"),
}


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
    parser.add_argument("--grey", type=int, default=4, help="grayscale images to add")
    parser.add_argument(
        "--methods",
        default="gan,exemplar,telea,ns,biharmonic",
        help="comma-separated methods (gan = default budget; add gan-real for the real budget)",
    )
    parser.add_argument(
        "--real-limit", type=int, default=2, help="images per type that gan-real runs on"
    )
    parser.add_argument("--real-iterations", type=int, default=REAL_BUDGET["iterations"])
    parser.add_argument("--real-opt-steps", type=int, default=REAL_BUDGET["opt_steps"])
    parser.add_argument("--real-opt-restarts", type=int, default=REAL_BUDGET["opt_restarts"])
    parser.add_argument("--names", default=None, help="comma-separated image names (micro017,...)")
    parser.add_argument("--iterations", type=int, default=D["iterations"])
    parser.add_argument("--opt-steps", type=int, default=D["opt_steps"])
    parser.add_argument("--critic-iters", type=int, default=D["critic_iters"])
    parser.add_argument("--batch-size", type=int, default=D["batch_size"])
    parser.add_argument("--width", type=int, default=D["width"])
    parser.add_argument("--opt-restarts", type=int, default=D["opt_restarts"])
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


def _summary(
    rows: list[dict], methods: list[str], dt: str, keys: list[str], label: str
) -> str | None:
    """Print one type's table (mean error per measure, time); return the winner."""
    print(f"# {label}: mean error vs the hidden truth over {len(rows)} images")
    print(
        f"{'method':<12}"
        + "".join(f"{k:>19}" for k in keys)
        + f"{'cpu s/image':>12}{'wall s/image':>13}"
    )
    means = {
        me: {k: float(np.mean([r[me][k] for r in rows])) for k in keys + ["seconds", "cpu_seconds"]}
        for me in methods
    }
    for me in methods:
        print(
            f"{me:<12}"
            + "".join(f"{means[me][k]:>19.4f}" for k in keys)
            + f"{means[me]['cpu_seconds']:>12.2f}{means[me]['seconds']:>13.2f}"
        )
    deciding = DECIDING.get(dt, DECIDING["grayscale"])
    best = {k: min(means[me][k] for me in methods) for k in deciding}
    score = {
        me: float(np.mean([means[me][k] / max(best[k], 1e-12) for k in deciding])) for me in methods
    }
    winner = min(methods, key=lambda me: score[me])
    print(
        f"# {label} score (mean of error / best error over {', '.join(deciding)}): "
        + ", ".join(f"{me} {score[me]:.2f}" for me in sorted(methods, key=score.get))
    )
    return winner


def run(args: argparse.Namespace) -> int:
    import torch

    realdata = args.realdata or default_realdata()
    if realdata is None or not (realdata / "micrographs.csv").is_file():
        print("bench inpaint: no realdata folder (give --realdata DIR)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - (set(ip.METHODS) | {"gan-real"}) | ({"auto"} & set(methods))
    if unknown:
        print(f"bench inpaint: unknown methods {sorted(unknown)}", file=sys.stderr)
        return 2
    params = {
        "iterations": args.iterations,
        "opt_steps": args.opt_steps,
        "opt_restarts": args.opt_restarts,
        "critic_iters": args.critic_iters,
        "batch_size": args.batch_size,
        "width": args.width,
    }
    real = {
        **params,
        **REAL_BUDGET,
        "iterations": args.real_iterations,
        "opt_steps": args.real_opt_steps,
        "opt_restarts": args.real_opt_restarts,
    }
    print(f"# bench inpaint: methods {methods}, threads {args.threads}, seed {args.seed}")
    print(f"# gan: {params}; gan-real: {real} on <= {args.real_limit} images per type")
    results: dict[str, list[dict]] = {}
    for path, grey in _pick(realdata, args.limit, args.grey, args.names):
        img, dt, n = _load(path, grey)
        mask = scale_bar_mask(img.shape, rng)
        truth = ip.region_statistics(img, mask, data_type=dt, n_phases=n, max_lag=args.max_lag)
        done = results.setdefault(dt, [])
        row: dict = {"image": path.stem}
        for method in methods:
            if method == "gan-real" and len(done) >= args.real_limit:
                continue
            kw = {"gan": params, "gan-real": real}.get(method, {})
            t0, c0 = time.perf_counter(), time.process_time()
            out, _ = ip.inpaint(
                img,
                mask,
                data_type=dt,
                n_phases=n,
                method="gan" if method == "gan-real" else method,
                seed=args.seed,
                **kw,
            )
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            if not np.array_equal(out[~mask], img[~mask]):
                print(f"bench inpaint: {method} changed pixels outside the mask", file=sys.stderr)
                return 1
            e = ip.statistics_error(
                ip.region_statistics(out, mask, data_type=dt, n_phases=n, max_lag=args.max_lag),
                truth,
            )
            if dt not in ip.NPHASE_TYPES:
                e["mae"] = float(np.abs(out[mask].astype(float) - img[mask]).mean())
            row[method] = {**e, "seconds": sec, "cpu_seconds": cpu}
        done.append(row)
        cells = "  ".join(
            f"{me} "
            + "/".join(f"{row[me][k]:.3f}" for k in DECIDING.get(dt, DECIDING["grayscale"]))
            + f" {row[me]['cpu_seconds']:.1f}s"
            for me in methods
            if me in row
        )
        print(
            f"{path.stem:<10}{dt:<10}{img.shape[0]}x{img.shape[1]:<5}"
            f"{100 * mask.mean():>5.1f}%  {cells}",
            flush=True,
        )
    if not results:
        print("bench inpaint: no images selected", file=sys.stderr)
        return 2
    full = [m for m in methods if m != "gan-real"]
    for dt, rows in results.items():
        first = rows[0][full[0] if full else methods[0]]
        keys = [k for k in first if k not in ("seconds", "cpu_seconds")]
        if full:
            winner = _summary(rows, full, dt, keys, dt)
            print(f"winner {dt}: {winner}")
        sub = [r for r in rows if "gan-real" in r]
        if "gan-real" in methods and sub:
            _summary(sub, methods, dt, keys, f"{dt}, images with gan-real")
    return 0
