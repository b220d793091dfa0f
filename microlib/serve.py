"""A loopback HTTP server for a DoITPoMS-shaped static site (the demo library).

The directory layout mirrors the real site's URLs::

    DIR/robots.txt
    DIR/miclib/full_record/{N}.html           <- /miclib/full_record.php?id=N
                                                 /miclib/micrograph_record.php?id=N
    DIR/miclib/micrographs/large/{N:06d}.jpg  <- same path

Static files get ``ETag`` and ``Last-Modified`` headers and honour conditional
requests (304), like the Apache server in front of the real site, so the scraper's
cache logic is exercised by the demo run too. The server only ever binds 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

RECORD_PAGES = ("full_record.php", "micrograph_record.php")


def resolve(root: Path, raw_path: str) -> Path | None:
    """Map a request path (with query) to a file under ``root``; None if not served."""
    parts = urlsplit(raw_path)
    path = parts.path
    name = path.rsplit("/", 1)[-1]
    if name in RECORD_PAGES:
        ids = parse_qs(parts.query).get("id", [])
        if len(ids) != 1 or not ids[0].isdigit():
            return None
        candidate = (
            root / path.lstrip("/").rsplit("/", 1)[0] / "full_record" / f"{int(ids[0])}.html"
        )
    else:
        candidate = root / path.lstrip("/")
    try:
        resolved = candidate.resolve()
        resolved.relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return resolved if resolved.is_file() else None


class _Handler(BaseHTTPRequestHandler):
    server_version = "microlib-demo/1"
    root: Path

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: the scraper logs what matters

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        target = resolve(self.root, self.path)
        if target is None:
            self._send(HTTPStatus.NOT_FOUND, b"<html><body>Not found</body></html>", "text/html")
            return
        data = target.read_bytes()
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        mtime = target.stat().st_mtime
        last_mod = email.utils.formatdate(mtime, usegmt=True)
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        not_modified = False
        if inm is not None:
            not_modified = etag in [t.strip() for t in inm.split(",")]
        elif ims is not None:
            with contextlib.suppress(TypeError, ValueError):
                not_modified = int(mtime) <= email.utils.parsedate_to_datetime(ims).timestamp()
        ctype = {
            ".html": "text/html; charset=utf-8",
            ".jpg": "image/jpeg",
            ".png": "image/png",
            ".txt": "text/plain; charset=utf-8",
        }.get(target.suffix, "application/octet-stream")
        headers = {"ETag": etag, "Last-Modified": last_mod}
        if not_modified:
            self._send(HTTPStatus.NOT_MODIFIED, b"", ctype, headers, body=False)
        else:
            self._send(HTTPStatus.OK, data, ctype, headers, body=body)

    def _send(
        self, status, data: bytes, ctype: str, headers: dict | None = None, body: bool = True
    ):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and data:
            self.wfile.write(data)


@contextlib.contextmanager
def serve_site(root: str | Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (free port) in a thread; yield the ``/miclib/`` base URL."""
    root = Path(root)
    if not (root / "miclib").is_dir():
        raise FileNotFoundError(f"{root} is not a DoITPoMS-shaped site (no miclib/ folder)")
    handler = type("SiteHandler", (_Handler,), {"root": root})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="microlib-site",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/miclib/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
