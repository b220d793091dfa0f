"""``microlib scrape``: download DoITPoMS record pages and large images, politely.

For every requested id this writes ``OUT/{id6}.jpg`` (the bytes exactly as served)
and ``OUT/{id6}.json`` (the record's metadata), and keeps ``OUT/index.json`` with the
status of every id (present / missing / failed, with the reason) and the HTTP cache
validators. The index is rewritten atomically after every id, so an interrupted run
resumes where it stopped; a rerun revalidates with conditional requests and leaves
unchanged files untouched (their mtimes too, so Snakemake rebuilds nothing).

Networking rules: one ``requests.Session`` with TLS verification always on, a
User-Agent naming the project, robots.txt (rules and Crawl-delay) honoured, a minimum
interval between request starts (``--rate``), (connect, read) timeouts, retries with
deterministic exponential backoff on timeouts, connection errors, 429 and 5xx
(``Retry-After`` honoured up to ``--max-retry-after``), a byte cap enforced while
streaming, and redirects followed by hand, only on the same host.

Usage::

    microlib scrape --base-url https://www.doitpoms.ac.uk/miclib/ --ids 1-1100 --out data/raw
    microlib scrape --serve data/demo_site --ids 1-40 --out data/raw
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from microlib import __version__
from microlib import io as mio
from microlib.errors import MicrolibError
from microlib.scrape import (
    RobotsRules,
    image_url,
    parse_record,
    parse_retry_after,
    parse_robots,
    record_url,
    robots_url,
    same_site,
    validate_image,
)

log = logging.getLogger("microlib.scrape")

PRODUCT = "microlib"
DEFAULT_USER_AGENT = (
    f"{PRODUCT}/{__version__} (MicroLib 3D microstructure dataset builder; research use)"
)
MAX_REDIRECTS = 5
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
INDEX_NAME = "index.json"
# A copy of the index that Snakemake does not know about: it deletes a checkpoint's declared
# output (index.json) before running it again, and the cache validators must survive that.
CACHE_NAME = ".scrape-cache.json"
LOCK_NAME = ".scrape.lock"
# metadata that describes one retrieval rather than the record; a rerun that finds
# the same content elsewhere (a new loopback port) keeps the file as it is
VOLATILE_FIELDS = ("retrieved", "record_url", "image_url")


# --------------------------------------------------------------------------- options


@dataclass
class ScrapeOptions:
    """Politeness and robustness knobs (the CLI flags of the same names)."""

    rate: float = 1.0  # requests per second (minimum start interval 1/rate)
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 30.0  # seconds between bytes
    retries: int = 4  # extra attempts after the first
    backoff: float = 1.0  # first retry wait; doubles every attempt
    max_retry_after: float = 300.0  # longest Retry-After we wait for
    max_bytes: int = 64 * 1024 * 1024  # per response body
    user_agent: str = DEFAULT_USER_AGENT

    def check(self) -> None:
        """Raise :class:`MicrolibError` for values that make no sense."""
        if not self.rate > 0:
            raise MicrolibError(f"--rate must be > 0 requests/s, got {self.rate}")
        if not (self.connect_timeout > 0 and self.read_timeout > 0):
            raise MicrolibError("--connect-timeout and --read-timeout must be > 0")
        if self.retries < 0 or self.backoff < 0 or self.max_retry_after < 0:
            raise MicrolibError("--retries, --backoff and --max-retry-after must be >= 0")
        if self.max_bytes <= 0:
            raise MicrolibError(f"--max-bytes must be > 0, got {self.max_bytes}")
        if not self.user_agent.strip():
            raise MicrolibError("--user-agent must not be empty")


# --------------------------------------------------------------------------- fetching


class FetchError(Exception):
    """A request that did not produce a usable response; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


@dataclass
class FetchStats:
    requests: int = 0
    bytes: int = 0
    retries: int = 0


class Fetcher:
    """Rate-limited, retrying GET with a byte cap and same-host redirects only.

    Parameters
    ----------
    options : ScrapeOptions
    crawl_delay : float, optional
        robots.txt ``Crawl-delay``; the start interval is the larger of it and 1/rate.
    """

    def __init__(
        self, options: ScrapeOptions, crawl_delay: float | None = None, trust_env: bool = True
    ):
        import requests

        self.options = options
        self.session = requests.Session()
        # TLS verification stays at requests' default (on); there is no switch for it
        self.session.headers["User-Agent"] = options.user_agent
        # a loopback site must never be sent through a proxy from the environment
        self.session.trust_env = trust_env
        self.interval = 1.0 / options.rate
        self.set_crawl_delay(crawl_delay)
        self._last_start: float | None = None
        self.stats = FetchStats()

    def set_crawl_delay(self, delay: float | None) -> None:
        self.interval = max(1.0 / self.options.rate, float(delay or 0.0))

    def close(self) -> None:
        self.session.close()

    def _wait_turn(self) -> None:
        if self._last_start is not None:
            wait = self._last_start + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_start = time.monotonic()

    def get(
        self, url: str, headers: dict[str, str] | None = None, max_bytes: int | None = None
    ) -> Response:
        """GET ``url`` with retries; any final HTTP status is returned, not raised.

        Raises
        ------
        FetchError
            Retries exhausted (timeouts, connection errors, 429, 5xx), a Retry-After
            beyond ``max_retry_after``, an oversized body, a redirect off the host or
            too many redirects, or a TLS failure.
        """
        opts = self.options
        attempts = opts.retries + 1
        last = ""
        for attempt in range(attempts):
            wait = min(opts.backoff * (2**attempt), 600.0)
            try:
                resp = self._follow(url, headers or {}, max_bytes or opts.max_bytes)
            except _Transient as exc:
                last = exc.reason
            else:
                if resp.status != 429 and resp.status < 500:
                    return resp
                last = f"HTTP {resp.status}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is not None:
                    if retry_after > opts.max_retry_after:
                        raise FetchError(
                            f"HTTP {resp.status} with Retry-After {retry_after:.0f} s "
                            f"(> --max-retry-after {opts.max_retry_after:g} s)"
                        )
                    wait = max(wait, retry_after)
                    last += f" (Retry-After {retry_after:g} s)"
            if attempt + 1 < attempts:
                self.stats.retries += 1
                log.debug(
                    "%s: %s; retry %d/%d in %.2f s", url, last, attempt + 1, opts.retries, wait
                )
                time.sleep(wait)
        raise FetchError(f"{last} after {attempts} attempt{'s' * (attempts > 1)}")

    def _follow(self, url: str, headers: dict[str, str], max_bytes: int) -> Response:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            resp, location = self._once(current, headers, max_bytes)
            if location is None:
                return resp
            target = urljoin(current, location)
            # checked before any connection is made to the target
            if not same_site(current, target):
                host = urlsplit(target).hostname or target
                raise FetchError(f"redirect to another host refused: {host} ({target})")
            log.debug("%s: %d -> %s", current, resp.status, target)
            current = target
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")

    def _once(
        self, url: str, headers: dict[str, str], max_bytes: int
    ) -> tuple[Response, str | None]:
        import requests

        opts = self.options
        self._wait_turn()
        self.stats.requests += 1
        try:
            with self.session.get(
                url,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(opts.connect_timeout, opts.read_timeout),
            ) as r:
                hdrs = dict(r.headers)
                if r.is_redirect:
                    return Response(r.status_code, hdrs, b"", url), r.headers["Location"]
                length = r.headers.get("Content-Length")
                if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                    raise FetchError(
                        f"response too large: Content-Length {int(length)} "
                        f"> --max-bytes {max_bytes}"
                    )
                body = bytearray()
                for chunk in r.iter_content(chunk_size=64 * 1024):
                    body += chunk
                    self.stats.bytes += len(chunk)
                    if len(body) > max_bytes:
                        raise FetchError(
                            f"response too large: more than {max_bytes} bytes (--max-bytes)"
                        )
                return Response(r.status_code, hdrs, bytes(body), url), None
        except requests.exceptions.SSLError as exc:
            raise FetchError(f"TLS error: {_short(exc)}") from None
        except requests.exceptions.Timeout as exc:
            kind = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "read"
            raise _Transient(f"{kind} timeout") from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            # a read timeout while streaming the body surfaces as ConnectionError
            text = _short(exc)
            reason = "read timeout" if "timed out" in text.lower() else f"connection error: {text}"
            raise _Transient(reason) from None
        except requests.exceptions.InvalidURL as exc:
            raise FetchError(f"invalid URL: {_short(exc)}") from None
        except requests.exceptions.ContentDecodingError as exc:
            raise FetchError(f"undecodable response body: {_short(exc)}") from None


class _Transient(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- index


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_index(path: Path) -> dict[str, Any]:
    """Read ``index.json``; an absent file gives an empty index."""
    if not path.exists():
        return {"entries": {}}
    try:
        index = mio.read_json(path)
    except (OSError, ValueError) as exc:
        raise MicrolibError(
            f"unreadable index ({exc}); move it away to start afresh", entry=str(path)
        ) from None
    if not isinstance(index, dict) or not isinstance(index.get("entries", {}), dict):
        raise MicrolibError("not a scrape index (no 'entries' object)", entry=str(path))
    index.setdefault("entries", {})
    return index


def index_counts(entries: dict[str, dict]) -> dict[str, int]:
    """Number of entries per status."""
    counts = {"present": 0, "missing": 0, "failed": 0}
    for e in entries.values():
        status = e.get("status")
        if status in counts:
            counts[status] += 1
    return counts


# --------------------------------------------------------------------------- scraping


@dataclass
class ScrapeReport:
    """Outcome of one run over the requested ids (not the whole index)."""

    present: int = 0
    downloaded: int = 0  # images transferred (200) and kept or found identical
    cached: int = 0  # images revalidated without a transfer (304)
    missing: int = 0
    failed: int = 0
    written: int = 0  # ids whose .jpg or .json was (re)written
    failures: dict[str, str] = field(default_factory=dict)
    stats: FetchStats = field(default_factory=FetchStats)

    def summary(self) -> str:
        return (
            f"scrape: {self.present} present ({self.downloaded} images downloaded, "
            f"{self.cached} cached), {self.missing} missing, {self.failed} failed"
        )


def _conditional(entry: dict, prefix: str) -> dict[str, str]:
    headers = {}
    if entry.get(f"{prefix}_etag"):
        headers["If-None-Match"] = entry[f"{prefix}_etag"]
    if entry.get(f"{prefix}_last_modified"):
        headers["If-Modified-Since"] = entry[f"{prefix}_last_modified"]
    return headers


def _read_meta(path: Path) -> dict | None:
    try:
        meta = mio.read_json(path)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _same_content(a: dict | None, b: dict) -> bool:
    if a is None:
        return False
    strip = lambda d: {k: v for k, v in d.items() if k not in VOLATILE_FIELDS}  # noqa: E731
    return strip(a) == strip(b)


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _fetch_robots(fetcher: Fetcher, base_url: str) -> RobotsRules:
    url = robots_url(base_url)
    try:
        resp = fetcher.get(url, max_bytes=ROBOTS_MAX_BYTES)
    except FetchError as exc:
        raise MicrolibError(f"cannot read robots.txt: {exc.reason}", entry=url) from None
    if resp.status == 200:
        rules = parse_robots(resp.body.decode("utf-8", errors="replace"), PRODUCT)
        log.info("robots.txt: %d rule(s), crawl-delay %s", len(rules.rules), rules.crawl_delay)
        return rules
    if 400 <= resp.status < 500:
        # RFC 9309: an unavailable robots.txt (4xx) means no restrictions
        log.info("robots.txt: HTTP %d, no restrictions", resp.status)
        return RobotsRules()
    raise MicrolibError(f"cannot read robots.txt: HTTP {resp.status}", entry=url)


@contextlib.contextmanager
def _out_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT so two scrapers never interleave writes."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(out / LOCK_NAME, "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise MicrolibError(
                "another `microlib scrape` is writing this folder", entry=str(out)
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_stale_temps(out: Path) -> None:
    # temp files of microlib.io.atomic_path left by a killed run (SIGKILL skips cleanup)
    for p in out.glob(".*.part"):
        with contextlib.suppress(OSError):
            p.unlink()
            log.info("removed stale temporary file %s", p.name)


class _Outcome:
    def __init__(self, status: str, reason: str | None = None, **extra: Any):
        self.status, self.reason, self.extra = status, reason, extra


def _scrape_one(
    fetcher: Fetcher,
    robots: RobotsRules,
    base_url: str,
    n: int,
    out: Path,
    prev: dict,
    report: ScrapeReport,
) -> _Outcome:
    id6 = mio.entry_id(n)
    jpg, js = out / f"{id6}.jpg", out / f"{id6}.json"
    rurl, iurl = record_url(base_url, n), image_url(base_url, n)
    old_meta = _read_meta(js) if js.exists() else None
    have_local = prev.get("status") == "present" and old_meta is not None and jpg.exists()

    # ---- record page
    if not robots.allowed(rurl):
        return _Outcome("failed", f"disallowed by robots.txt: {urlsplit(rurl).path}")
    try:
        page = fetcher.get(rurl, _conditional(prev, "record") if have_local else None)
    except FetchError as exc:
        return _Outcome("failed", f"record page: {exc.reason}")
    if page.status in (404, 410):
        if jpg.exists() or js.exists():
            log.warning("%s: record page now HTTP %d; earlier files kept", id6, page.status)
        return _Outcome("missing", f"record page HTTP {page.status}")
    if page.status == 304 and have_local:
        record = {k: old_meta.get(k) for k in _RECORD_FIELDS}
    elif page.status == 200:
        record = parse_record(page.body, rurl, page.headers.get("Content-Type"))
        if record is None:
            return _Outcome("missing", "record page has no record")
    else:
        return _Outcome("failed", f"record page: HTTP {page.status}")

    # ---- image
    if not robots.allowed(iurl):
        return _Outcome("failed", f"disallowed by robots.txt: {urlsplit(iurl).path}")
    # revalidate only an intact local copy; anything else is fetched in full
    conditional = (
        have_local and prev.get("image_sha256") and mio.sha256_file(jpg) == prev["image_sha256"]
    )
    try:
        img = fetcher.get(iurl, _conditional(prev, "image") if conditional else None)
    except FetchError as exc:
        return _Outcome("failed", f"image: {exc.reason}")
    if img.status == 304 and conditional:
        image_fields = {k: old_meta.get(k) for k in _IMAGE_FIELDS}
        data = None
    elif img.status == 200:
        ctype = img.headers.get("Content-Type", "")
        if ctype.lower().startswith("text/") or "html" in ctype.lower():
            return _Outcome(
                "failed", f"image: {ctype.split(';')[0]} served where an image was expected"
            )
        try:
            info = validate_image(img.body)
        except MicrolibError as exc:
            return _Outcome("failed", f"image: {exc.reason}")
        data = img.body
        image_fields = {
            "image_sha256": mio.sha256_bytes(data),
            "image_bytes": len(data),
            "image_width": info.width,
            "image_height": info.height,
            "image_format": info.format,
        }
        report.downloaded += 1
    else:
        return _Outcome("failed", f"image: HTTP {img.status}")
    if data is None:
        report.cached += 1

    meta: dict[str, Any] = {
        "id": int(n),
        "id6": id6,
        "name": mio.entry_name(n),
        "record_url": rurl,
        "image_url": iurl,
        **{k: record.get(k) for k in _RECORD_FIELDS},
        **image_fields,
        "retrieved": _now(),
    }
    wrote = False
    same_bytes = jpg.exists() and mio.sha256_file(jpg) == image_fields["image_sha256"]
    if data is not None and not same_bytes:
        # image first, JSON second: a .json on disk vouches for the .jpg next to it
        mio.write_bytes(jpg, data)
        wrote = True
    if wrote or not _same_content(old_meta, meta):
        mio.write_json(js, meta)
        wrote = True
    report.written += wrote

    def validators(resp: Response, prefix: str) -> dict[str, str | None]:
        if resp.status == 304:  # keep what we had unless the server sent new ones
            return {
                f"{prefix}_etag": resp.headers.get("ETag") or prev.get(f"{prefix}_etag"),
                f"{prefix}_last_modified": resp.headers.get("Last-Modified")
                or prev.get(f"{prefix}_last_modified"),
            }
        return {
            f"{prefix}_etag": resp.headers.get("ETag"),
            f"{prefix}_last_modified": resp.headers.get("Last-Modified"),
        }

    return _Outcome(
        "present",
        None,
        **validators(page, "record"),
        **validators(img, "image"),
        image_sha256=image_fields["image_sha256"],
        downloaded=data is not None,
    )


_RECORD_FIELDS = (
    "brief_descr",
    "keywords",
    "category",
    "element",
    "composition",
    "technique",
    "long desc",
    "contributor",
    "organisation",
    "licence",
    "licence_url",
)
_IMAGE_FIELDS = ("image_sha256", "image_bytes", "image_width", "image_height", "image_format")


def scrape(
    base_url: str,
    ids: list[int],
    out_dir: str | Path,
    options: ScrapeOptions | None = None,
    *,
    ids_spec: str | None = None,
    on_entry: Callable[[str, dict], None] | None = None,
    progress: bool = False,
) -> ScrapeReport:
    """Scrape ``ids`` from the DoITPoMS-shaped site at ``base_url`` into ``out_dir``.

    Parameters
    ----------
    base_url : str
        The ``/miclib/`` folder (``https://www.doitpoms.ac.uk/miclib/``).
    ids : list of int
        DoITPoMS ids to visit, in order.
    out_dir : path
        Output folder (``{id6}.jpg``, ``{id6}.json``, ``index.json``).
    options : ScrapeOptions, optional
    ids_spec : str, optional
        The id spec as given, recorded in the index.
    on_entry : callable, optional
        Called as ``on_entry(id6, index_entry)`` after each id has been committed to
        the index. An exception raised here stops the run at that point, exactly like
        an interruption (used by tests; also a hook for external monitoring).
    progress : bool
        Show a tqdm bar on stderr with fetched / cached / missing / failed counts.

    Returns
    -------
    ScrapeReport

    Raises
    ------
    MicrolibError
        Bad options, an unusable base URL, robots.txt unreachable after retries, or an
        unreadable index. Per-id problems never raise: they are recorded in the index.
    """
    from tqdm import tqdm

    options = options or ScrapeOptions()
    options.check()
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MicrolibError(f"base URL must be http(s)://host/...: {base_url!r}")
    if not base_url.endswith("/"):
        base_url += "/"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX_NAME
    report = ScrapeReport()

    with _out_lock(out):
        _remove_stale_temps(out)
        cache_path = out / CACHE_NAME
        index = load_index(index_path if index_path.exists() else cache_path)
        entries: dict[str, dict] = index["entries"]
        fetcher = Fetcher(options, trust_env=not _is_loopback(base_url))
        report.stats = fetcher.stats
        try:
            robots = _fetch_robots(fetcher, base_url)
            if robots.crawl_delay:
                fetcher.set_crawl_delay(robots.crawl_delay)
            bar = tqdm(
                total=len(ids),
                desc="scrape",
                unit="id",
                file=sys.stderr,
                disable=not progress,
                mininterval=0.5,
                dynamic_ncols=True,
            )
            with bar:
                for n in ids:
                    id6 = mio.entry_id(n)
                    prev = entries.get(id6) or {}
                    outcome = _scrape_one(fetcher, robots, base_url, n, out, prev, report)
                    entry: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason}
                    if outcome.status == "present":
                        report.present += 1
                        entry.update(
                            {
                                k: outcome.extra[k]
                                for k in (
                                    "record_etag",
                                    "record_last_modified",
                                    "image_etag",
                                    "image_last_modified",
                                    "image_sha256",
                                )
                            }
                        )
                        log.debug(
                            "%s: present (%s)",
                            id6,
                            "downloaded" if outcome.extra["downloaded"] else "cached",
                        )
                    elif outcome.status == "missing":
                        report.missing += 1
                        log.debug("%s: missing (%s)", id6, outcome.reason)
                    else:
                        report.failed += 1
                        report.failures[id6] = outcome.reason or ""
                        log.warning("%s: failed: %s", id6, outcome.reason)
                    entry["checked"] = _now()
                    entries[id6] = entry
                    current = {
                        "base_url": base_url,
                        "ids": ids_spec or _spec_of(ids),
                        "updated": entry["checked"],
                        "counts": index_counts(entries),
                        "entries": entries,
                    }
                    mio.write_json(index_path, current)
                    mio.write_json(cache_path, current)
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
                    if on_entry is not None:
                        on_entry(id6, entry)
        finally:
            fetcher.close()
    return report


def _spec_of(ids: list[int]) -> str:
    """Compact ``1-3,7`` form of an id list."""
    runs: list[list[int]] = []
    for n in sorted(set(ids)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# --------------------------------------------------------------------------- CLI


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
        retries=args.retries,
        backoff=args.backoff,
        max_retry_after=args.max_retry_after,
        max_bytes=args.max_bytes,
        user_agent=args.user_agent,
    )
    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if args.serve is not None:
            from microlib.serve import serve_site

            try:
                base_url = stack.enter_context(serve_site(args.serve))
            except FileNotFoundError as exc:
                raise MicrolibError(str(exc), entry=str(args.serve)) from None
        report = scrape(base_url, ids, args.out, options, ids_spec=args.ids, progress=True)
    print(report.summary())
    if report.failed:
        shown = ", ".join(f"{k} ({v})" for k, v in list(report.failures.items())[:5])
        more = f" and {report.failed - 5} more" if report.failed > 5 else ""
        log.warning("failed ids (retried next run): %s%s", shown, more)
    return 1 if args.strict and report.failed else 0
