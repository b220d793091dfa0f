"""``microlib bench scrape``: cold scrape vs warm rerun of a generated loopback site.

The cold run is the in-run baseline. The warm rerun over the unchanged site should
revalidate everything with conditional requests: about as many requests, almost no
bytes and no rewritten files. Printed: requests, bytes and wall time of both runs and
the warm/cold ratios (wall time is noisy on a shared machine; bytes are exact).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from microlib.scrape import ScrapeOptions, scrape
from microlib.serve import serve_site

HELP = "cold scrape vs warm rerun of a generated loopback site (requests/bytes ratio)"

_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>DoITPoMS - Micrograph Library - Micrograph {n}</title></head>
<body><div class="container"><div class="row">
<div class="col-md-4"><img src="micrographs/large/{n:06d}.jpg" alt="Micrograph {n}"></div>
<div class="col-md-8"><h2>Micrograph {n}</h2><dl class="dl-horizontal">
<dt>Brief description</dt><dd>Benchmark micrograph {n}</dd>
<dt>Keywords</dt><dd><a href="#">ferrite</a>, <a href="#">pearlite</a></dd>
<dt>Categories</dt><dd>Metal or alloy</dd>
<dt>Composition</dt><dd>Fe 0.{n} wt% C</dd>
<dt>Technique</dt><dd>Light microscopy</dd>
<dt>Further information</dt><dd>Etched in 2% nital.<br>Grain size 20&nbsp;&micro;m.</dd>
<dt>Contributor</dt><dd>Benchmark</dd><dt>Organisation</dt><dd>microlib</dd>
</dl><p class="licence">This micrograph is licensed under a <a rel="license"
href="http://creativecommons.org/licenses/by-nc-sa/2.0/uk/">Creative Commons licence</a>.</p>
</div></div></div></body></html>
"""


def write_site(root: Path, ids: list[int], size: int, seed: int = 0) -> int:
    """Write a DoITPoMS-shaped folder (as served by microlib.serve); return image bytes."""
    rng = np.random.default_rng(seed)
    pages = root / "miclib" / "full_record"
    large = root / "miclib" / "micrographs" / "large"
    pages.mkdir(parents=True)
    large.mkdir(parents=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    total = 0
    for n in ids:
        (pages / f"{n}.html").write_text(_PAGE.format(n=n), encoding="utf-8")
        grey = rng.integers(0, 256, (size, size), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, format="JPEG", quality=90)
        (large / f"{n:06d}.jpg").write_bytes(buf.getvalue())
        total += len(buf.getvalue())
    return total


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ids", type=int, default=40, help="ids visited (default 40)")
    parser.add_argument(
        "--every",
        type=int,
        default=3,
        help="one id in EVERY is missing, like the real sparse ids (default 3)",
    )
    parser.add_argument("--size", type=int, default=512, help="image side in px (default 512)")
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="requests/s for both runs (default 500: measure the scraper, "
        "not the politeness delay)",
    )


def run(args: argparse.Namespace) -> int:
    ids = list(range(1, args.ids + 1))
    present = [n for n in ids if args.every <= 0 or n % args.every]
    opts = ScrapeOptions(rate=args.rate, retries=1, backoff=0.05)
    with tempfile.TemporaryDirectory(prefix="microlib-bench-scrape-") as tmp:
        root, out = Path(tmp) / "site", Path(tmp) / "raw"
        image_total = write_site(root, present, args.size)
        rows = {}
        with serve_site(root) as base:
            for label in ("cold", "warm"):
                t0 = time.perf_counter()
                rep = scrape(base, ids, out, opts)
                rows[label] = (rep, time.perf_counter() - t0)
    cold, warm = rows["cold"][0], rows["warm"][0]
    print(
        f"bench scrape: {len(ids)} ids, {len(present)} present, {args.size}px JPEGs "
        f"({image_total / 1e6:.2f} MB of images), --rate {args.rate:g}"
    )
    for label, (rep, secs) in rows.items():
        print(
            f"  {label}: {rep.stats.requests} requests, {rep.stats.bytes / 1e6:.3f} MB, "
            f"{secs:.2f} s, {rep.downloaded} images downloaded, {rep.cached} cached, "
            f"{rep.written} ids written"
        )
    ratio_req = warm.stats.requests / max(cold.stats.requests, 1)
    ratio_bytes = warm.stats.bytes / max(cold.stats.bytes, 1)
    ratio_time = rows["warm"][1] / max(rows["cold"][1], 1e-9)
    print(
        f"  warm/cold ratio: requests {ratio_req:.2f}, bytes {ratio_bytes:.4f}, "
        f"time {ratio_time:.2f} (noisy)"
    )
    ok = warm.downloaded == 0 and warm.written == 0 and ratio_bytes <= 0.05
    print(
        f"  target: warm run downloads no image, rewrites nothing, bytes ratio <= 0.05: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1
