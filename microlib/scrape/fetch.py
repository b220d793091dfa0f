"""The polite HTTP client of the scraper: rate limit, retries, byte cap, deadlines.

One ``requests.Session`` with TLS verification always on and a User-Agent naming the
project; a minimum interval between request starts (``rate``, or robots.txt's
Crawl-delay when larger); (connect, read) timeouts plus a total deadline per request;
retries with deterministic exponential backoff on timeouts, connection errors, 429 and
5xx (``Retry-After`` honoured up to ``max_retry_after``); a byte cap enforced while
streaming; redirects followed by hand, only on the same host.

The read timeout bounds the silence between two reads; the request deadline bounds the
whole request (connect, headers and body), so a server that drips a few bytes just
often enough to beat the read timeout still loses the request.
"""

from __future__ import annotations

import email.utils
import logging
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urljoin, urlsplit

from microlib import __version__
from microlib.errors import MicrolibError
from microlib.scrape.urls import same_site

log = logging.getLogger("microlib.scrape")

PRODUCT = "microlib"
DEFAULT_USER_AGENT = (
    f"{PRODUCT}/{__version__} (MicroLib 3D microstructure dataset builder; research use)"
)
MAX_REDIRECTS = 5
CHUNK = 64 * 1024


@dataclass
class ScrapeOptions:
    """Politeness and robustness knobs (the CLI flags of the same names)."""

    rate: float = 1.0  # requests per second (minimum start interval 1/rate)
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 30.0  # seconds between bytes
    request_deadline: float = 120.0  # seconds for one whole request, body included
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
        if not self.request_deadline > 0:
            raise MicrolibError(f"--request-deadline must be > 0 s, got {self.request_deadline}")
        if self.retries < 0 or self.backoff < 0 or self.max_retry_after < 0:
            raise MicrolibError("--retries, --backoff and --max-retry-after must be >= 0")
        if self.max_bytes <= 0:
            raise MicrolibError(f"--max-bytes must be > 0, got {self.max_bytes}")
        if not self.user_agent.strip():
            raise MicrolibError("--user-agent must not be empty")


class FetchError(Exception):
    """A request that did not produce a usable response; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Transient(FetchError):
    """A failure worth another attempt (timeouts, connection errors, the deadline)."""


@dataclass
class Response:
    """A final response: status, headers, the whole body, the URL it came from."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str


@dataclass
class FetchStats:
    """Requests sent, body bytes received and retries made by one :class:`Fetcher`."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns ``None`` for a missing or unparseable header, ``0.0`` for a date in the past.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Fetcher:
    """Rate-limited, retrying GET with a byte cap, a deadline and same-host redirects only.

    Parameters
    ----------
    options : ScrapeOptions
    crawl_delay : float, optional
        robots.txt ``Crawl-delay``; the start interval is the larger of it and 1/rate.
    trust_env : bool
        Whether proxies from the environment apply (never for a loopback site).
    """

    def __init__(
        self, options: ScrapeOptions, crawl_delay: float | None = None, trust_env: bool = True
    ):
        import requests

        self.options = options
        self.session = requests.Session()
        # TLS verification stays at requests' default (on); there is no switch for it
        self.session.headers["User-Agent"] = options.user_agent
        self.session.trust_env = trust_env
        self.interval = 1.0 / options.rate
        self.set_crawl_delay(crawl_delay)
        self._last_start: float | None = None
        self.stats = FetchStats()

    def set_crawl_delay(self, delay: float | None) -> None:
        """Space request starts by at least ``delay`` seconds (robots.txt Crawl-delay)."""
        self.interval = max(1.0 / self.options.rate, float(delay or 0.0))

    def close(self) -> None:
        """Close the session's connections."""
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
            Retries exhausted (timeouts, the request deadline, connection errors, 429,
            5xx), a Retry-After beyond ``max_retry_after``, an oversized body, a
            redirect off the host or too many redirects, or a TLS failure.
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
        import urllib3

        opts = self.options
        self._wait_turn()
        self.stats.requests += 1
        clock = _Clock(opts)
        try:
            with self.session.get(
                url,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(clock.connect_timeout, clock.read_timeout),
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
                for chunk in clock.body_chunks(r.raw):
                    body += chunk
                    self.stats.bytes += len(chunk)
                    if len(body) > max_bytes:
                        raise FetchError(
                            f"response too large: more than {max_bytes} bytes (--max-bytes)"
                        )
                return Response(r.status_code, hdrs, bytes(body), url), None
        except _Deadline:
            raise _Transient(clock.overdue) from None
        except (requests.exceptions.SSLError, urllib3.exceptions.SSLError) as exc:
            raise FetchError(f"TLS error: {_short(exc)}") from None
        except requests.exceptions.ConnectTimeout:
            raise _Transient(clock.overdue if clock.connect_capped else "connect timeout") from None
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
            raise _Transient(clock.overdue if clock.read_capped() else "read timeout") from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError,
        ) as exc:
            # a read timeout while streaming the body can surface as a connection error
            text = _short(exc)
            if "timed out" in text.lower():
                raise _Transient(clock.overdue if clock.read_capped() else "read timeout") from None
            raise _Transient(f"connection error: {text}") from None
        except requests.exceptions.InvalidURL as exc:
            raise FetchError(f"invalid URL: {_short(exc)}") from None
        except (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError) as exc:
            raise FetchError(f"undecodable response body: {_short(exc)}") from None


class _Deadline(Exception):
    pass


class _Clock:
    """The time budget of one request: read timeouts shortened to the time left.

    Records whether the timeout last armed was the deadline rather than the read
    timeout, so a timeout is reported as what it was without comparing clocks.
    """

    def __init__(self, opts: ScrapeOptions):
        self.deadline_at = time.monotonic() + opts.request_deadline
        self.connect_capped = opts.request_deadline < opts.connect_timeout
        self.connect_timeout = min(opts.connect_timeout, opts.request_deadline)
        self.full_read_timeout = opts.read_timeout
        self.read_timeout = min(opts.read_timeout, opts.request_deadline)
        self._capped = opts.request_deadline < opts.read_timeout
        self.overdue = f"request deadline {opts.request_deadline:g} s exceeded"

    def read_capped(self) -> bool:
        return self._capped or time.monotonic() >= self.deadline_at

    def body_chunks(self, raw: Any) -> Iterator[bytes]:
        """Yield the (decoded) body as it arrives, never waiting past the deadline.

        ``requests``' ``iter_content`` blocks until a whole chunk has arrived, so a
        slow drip would be looked at once per chunk. ``read1`` returns what one read
        of the socket gives, and the socket's timeout is shortened to the time left,
        so a request is abandoned at its deadline even while bytes keep trickling in.
        """
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        while True:
            left = self.deadline_at - time.monotonic()
            if left <= 0:
                raise _Deadline
            self._capped = left < self.full_read_timeout
            if isinstance(sock, socket.socket):
                sock.settimeout(min(self.full_read_timeout, left))
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                return
            yield chunk
