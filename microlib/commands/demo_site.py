"""``microlib demo-site DIR [--seed S]``: write the built-in DoITPoMS-shaped demo library.

The site is what ``microlib scrape --serve DIR`` serves on 127.0.0.1; ``DIR/ground_truth.json``
and ``DIR/truth/`` (outside ``miclib/``, so never served as records) hold what every stage
should find. See :mod:`microlib.demo_site`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tqdm import tqdm

from microlib import demo_site
from microlib.errors import MicrolibError
from microlib.io import write_bytes

log = logging.getLogger("microlib.demo_site")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", type=Path, help="folder to write the site into")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; the same seed writes byte-identical files (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    root: Path = args.dir
    if root.exists() and not root.is_dir():
        raise MicrolibError(f"{root} exists and is not a folder")
    files, truth = demo_site.build_site(args.seed)
    for rel, data in tqdm(sorted(files.items()), desc="demo-site", unit="file", leave=False):
        write_bytes(root / rel, data)
    log.info(
        "demo library written to %s (seed %d): %d records, %d empty record page(s), "
        "%d to include, %d to exclude",
        root,
        args.seed,
        len(truth["present"]),
        len(truth["missing"]),
        len(truth["included"]),
        len(truth["excluded"]),
    )
    return 0
