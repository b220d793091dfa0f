"""``microlib scrape``: download DoITPoMS record pages and large images, politely.

Writes ``OUT/{id6}.jpg`` (bytes as served), ``OUT/{id6}.json`` (record metadata) and
``OUT/index.json`` (present / missing / failed per id), resumably and with conditional
requests on a rerun; see :mod:`microlib.scrape.crawl` for the bookkeeping and
:mod:`microlib.scrape.fetch` for the networking rules. This module only parses the
flags, shows progress and reports.

Usage::

    microlib scrape --base-url https://www.doitpoms.ac.uk/miclib/ --ids 1-1100 --out data/raw
    microlib scrape --serve data/demo_site --ids 1-40 --out data/raw
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from microlib import io as mio
from microlib.errors import MicrolibError
from microlib.scrape import ScrapeOptions, ScrapeReport, scrape
from microlib.serve import serve_site

log = logging.getLogger("microlib.scrape")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ScrapeOptions()
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--base-url",
        metavar="URL",
        help="the site's /miclib/ folder, e.g. https://www.doitpoms.ac.uk/miclib/",
    )
    src.add_argument(
        "--serve",
        metavar="DIR",
        type=Path,
        help="serve a DoITPoMS-shaped folder on 127.0.0.1 and scrape it",
    )
    parser.add_argument(
        "--ids", required=True, metavar="SPEC", help="ids to visit, e.g. 1-1100,1205"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder ({id6}.jpg, {id6}.json, index.json)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=d.rate,
        metavar="REQ_PER_S",
        help=f"maximum requests per second (default {d.rate:g})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=d.connect_timeout,
        metavar="S",
        help=f"default {d.connect_timeout:g} s",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=d.read_timeout,
        metavar="S",
        help=f"longest silence while reading (default {d.read_timeout:g} s)",
    )
    parser.add_argument(
        "--request-deadline",
        type=float,
        default=d.request_deadline,
        metavar="S",
        help="longest time for one whole request, body included; a slower "
        f"transfer counts as a timeout (default {d.request_deadline:g} s)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=d.retries,
        metavar="N",
        help=f"retries on timeouts, connection errors, 429, 5xx (default {d.retries})",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=d.backoff,
        metavar="S",
        help=f"first retry wait, doubled each time (default {d.backoff:g} s)",
    )
    parser.add_argument(
        "--max-retry-after",
        type=float,
        default=d.max_retry_after,
        metavar="S",
        help="longest Retry-After honoured; beyond it the id "
        f"fails (default {d.max_retry_after:g} s)",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=d.max_bytes,
        metavar="N",
        help=f"largest response body (default {d.max_bytes})",
    )
    parser.add_argument(
        "--user-agent", default=d.user_agent, metavar="UA", help=f"default {d.user_agent!r}"
    )
    parser.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="exit 1 when any id failed (default: record them and exit 0)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        ids = mio.parse_id_spec(args.ids)
    except ValueError as exc:
        raise MicrolibError(f"bad --ids {args.ids!r}: {exc}") from None
    if not ids:
        raise MicrolibError(f"--ids {args.ids!r} names no id")
    options = ScrapeOptions(
        rate=args.rate,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        request_deadline=args.request_deadline,
        retries=args.retries,
        backoff=args.backoff,
        max_retry_after=args.max_retry_after,
        max_bytes=args.max_bytes,
        user_agent=args.user_agent,
    )
    options.check()  # before the site is served or a progress bar is drawn
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if args.serve is not None:
            try:
                base_url = stack.enter_context(serve_site(args.serve))
            except FileNotFoundError as exc:
                raise MicrolibError(str(exc), entry=str(args.serve)) from None
        bar = stack.enter_context(
            tqdm(
                total=len(ids),
                desc="scrape",
                unit="id",
                file=sys.stderr,
                mininterval=0.5,
                dynamic_ncols=True,
            )
        )

        def progress(report: ScrapeReport) -> None:
            # a dict keeps this order; keyword arguments would be sorted by name
            bar.set_postfix(
                {
                    "fetched": report.downloaded,
                    "cached": report.cached,
                    "missing": report.missing,
                    "failed": report.failed,
                },
                refresh=False,
            )
            bar.update(1)

        report = scrape(base_url, ids, args.out, options, ids_spec=args.ids, progress=progress)
    print(report.summary())
    if report.failed:
        shown = ", ".join(f"{k} ({v})" for k, v in list(report.failures.items())[:5])
        more = f" and {report.failed - 5} more" if report.failed > 5 else ""
        log.warning("failed ids (retried next run): %s%s", shown, more)
    return 1 if args.strict and report.failed else 0
