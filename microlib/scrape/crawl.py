"""The resumable crawl over DoITPoMS ids, and its ``index.json`` bookkeeping.

For every requested id this writes ``OUT/{id6}.jpg`` (the bytes exactly as served)
and ``OUT/{id6}.json`` (the record's metadata), and keeps ``OUT/index.json`` with the
status of every id (present / missing / failed, with the reason) and the HTTP cache
validators. The index is rewritten atomically after every id, so an interrupted run
resumes where it stopped; a rerun revalidates with conditional requests and leaves
unchanged files untouched (their mtimes too, so Snakemake rebuilds nothing).
robots.txt (rules and Crawl-delay) is honoured; the HTTP client is
:class:`microlib.scrape.fetch.Fetcher`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from microlib import io as mio
from microlib.errors import MicrolibError
from microlib.scrape.fetch import PRODUCT, Fetcher, FetchError, FetchStats, Response, ScrapeOptions
from microlib.scrape.images import validate_image
from microlib.scrape.parse import parse_record
from microlib.scrape.robots import RobotsRules, parse_robots
from microlib.scrape.urls import image_url, record_url, robots_url

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: runs go unlocked
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("microlib.scrape")

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
INDEX_NAME = "index.json"
# A copy of the index that Snakemake does not know about: it deletes a checkpoint's declared
# output (index.json) before running it again, and the cache validators must survive that.
CACHE_NAME = ".scrape-cache.json"
LOCK_NAME = ".scrape.lock"
# metadata that describes one retrieval rather than the record; a rerun that finds
# the same content elsewhere (a new loopback port) keeps the file as it is
VOLATILE_FIELDS = ("retrieved", "record_url", "image_url")


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
    if fcntl is None:  # pragma: no cover
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
    progress: Callable[[ScrapeReport], None] | None = None,
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
    progress : callable, optional
        Called as ``progress(report)`` after each id (the command's progress bar).

    Returns
    -------
    ScrapeReport

    Raises
    ------
    MicrolibError
        Bad options, an unusable base URL, robots.txt unreachable after retries, or an
        unreadable index. Per-id problems never raise: they are recorded in the index.
    """
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
            for n in ids:
                id6 = mio.entry_id(n)
                prev = entries.get(id6) or {}
                outcome = _scrape_one(fetcher, robots, base_url, n, out, prev, report)
                entry = _index_entry(id6, outcome, report)
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
                if progress is not None:
                    progress(report)
                if on_entry is not None:
                    on_entry(id6, entry)
        finally:
            fetcher.close()
    return report


_VALIDATORS = (
    "record_etag",
    "record_last_modified",
    "image_etag",
    "image_last_modified",
    "image_sha256",
)


def _index_entry(id6: str, outcome: _Outcome, report: ScrapeReport) -> dict[str, Any]:
    """The index entry of one visited id; counts it in ``report``."""
    entry: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason}
    if outcome.status == "present":
        report.present += 1
        entry.update({k: outcome.extra[k] for k in _VALIDATORS})
        how = "downloaded" if outcome.extra["downloaded"] else "cached"
        log.debug("%s: present (%s)", id6, how)
    elif outcome.status == "missing":
        report.missing += 1
        log.debug("%s: missing (%s)", id6, outcome.reason)
    else:
        report.failed += 1
        report.failures[id6] = outcome.reason or ""
        log.warning("%s: failed: %s", id6, outcome.reason)
    entry["checked"] = _now()
    return entry


def _spec_of(ids: list[int]) -> str:
    """Compact ``1-3,7`` form of an id list."""
    runs: list[list[int]] = []
    for n in sorted(set(ids)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
