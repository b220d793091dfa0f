"""A scriptable, fault-injecting HTTP server on 127.0.0.1 for network tests.

Each path (with its query string) gets a script: a sequence of :class:`Reply` objects
served in order, the last one repeating. A reply can delay its response (to trigger
read timeouts), declare a ``Content-Length`` other than the body's (truncated
transfers), omit the length, drip the body a few bytes at a time (slow transfers
that never trip a read timeout), redirect, or act as a static file with ``ETag`` and
``Last-Modified`` that answers conditional requests with 304. Every request is
recorded as a :class:`Hit` (arrival time, path, headers, status sent), so tests can
count downloads and measure request spacing.

Unknown paths get 404. The server binds 127.0.0.1 on a free port and never talks to
anything else.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OMIT = -1  # Reply.content_length value: send no Content-Length (body ends at close)


@dataclass
class Reply:
    """One scripted response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line is sent
    content_length: int | None = None  # None: len(body); OMIT: no header
    validators: bool = False  # ETag/Last-Modified + 304 on a matching request
    mtime: float = 1_600_000_000.0  # Last-Modified time when validators is on
    drip: float = 0.0  # seconds between pieces of the body (0: all at once)
    drip_bytes: int = 64  # size of one piece when dripping


@dataclass
class Hit:
    time: float
    method: str
    path: str
    headers: dict[str, str]
    status: int  # 0 while the reply is still pending (delayed)
    sent: int = 0  # body bytes written so far


class FaultServer:
    """Threaded loopback HTTP server with per-path scripted replies.

    Use as a context manager; ``base`` is ``http://127.0.0.1:PORT``.
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.served: dict[str, int] = {}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # set on stop: ends every pending delay at once
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        # short poll interval: shutdown() waits up to one interval
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True, name="faultserver"
        )

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    # ------------------------------------------------------------------ scripting
    def script(self, path: str, *replies: Reply) -> None:
        """Serve ``replies`` in order for ``path`` (the last one repeats)."""
        with self.lock:
            self.routes[path] = list(replies)
            self.served[path] = 0

    def static(self, path: str, body: bytes, content_type: str, **kw) -> None:
        """Serve ``body`` like a static file with validators and 304 support."""
        self.script(path, Reply(200, body, content_type, validators=True, **kw))

    def remove(self, path: str) -> None:
        with self.lock:
            self.routes.pop(path, None)

    # ------------------------------------------------------------------ inspection
    def hits_for(self, path: str, status: int | None = None) -> list[Hit]:
        with self.lock:
            return [
                h for h in self.hits if h.path == path and (status is None or h.status == status)
            ]

    def count(self, path_prefix: str = "", status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for h in self.hits
                if h.path.startswith(path_prefix) and (status is None or h.status == status)
            )

    def _next(self, path: str) -> Reply | None:
        with self.lock:
            replies = self.routes.get(path)
            if not replies:
                return None
            i = min(self.served[path], len(replies) - 1)
            self.served[path] += 1
            return replies[i]

    def _record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)


class _Handler(BaseHTTPRequestHandler):
    owner: FaultServer
    server_version = "faultserver/1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        arrived = time.monotonic()
        reply = self.owner._next(self.path)
        if reply is None:
            reply = Reply(404, b"<html><body>Not found</body></html>", "text/html")
        # recorded on arrival (status filled in below) so a stalled request is visible
        hit = Hit(arrived, "GET", self.path, dict(self.headers), 0)
        self.owner._record(hit)
        if reply.delay and self.owner.release.wait(reply.delay):
            return  # server stopping
        status, body, headers = reply.status, reply.body, dict(reply.headers)
        if reply.validators:
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            last_mod = email.utils.formatdate(reply.mtime, usegmt=True)
            headers.update({"ETag": etag, "Last-Modified": last_mod})
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            if inm is not None:
                fresh = etag in [t.strip() for t in inm.split(",")]
            elif ims is not None:
                try:
                    fresh = reply.mtime <= email.utils.parsedate_to_datetime(ims).timestamp()
                except (TypeError, ValueError):
                    fresh = False
            else:
                fresh = False
            if fresh:
                status, body = 304, b""
        hit.status = status
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", reply.content_type)
            if status != 304:
                if reply.content_length is None:
                    self.send_header("Content-Length", str(len(body)))
                elif reply.content_length != OMIT:
                    self.send_header("Content-Length", str(reply.content_length))
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            step = reply.drip_bytes if reply.drip else len(body) or 1
            for i in range(0, len(body), step):
                if i and self.owner.release.wait(reply.drip):
                    return  # server stopping
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
                hit.sent += len(body[i : i + step])
            self.wfile.flush()
        self.close_connection = True
