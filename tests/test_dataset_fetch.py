"""``microlib dataset fetch`` against a real HTTP server on 127.0.0.1 with Range support:
an interrupted download keeps its ``.part`` and resumes, a wrong checksum is refused and
leaves nothing, a verified archive is extracted safely."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from microlib.cli import main


class RangeServer:
    """Serves one file at ``/d/microlibDataset.zip``; honours ``Range: bytes=N-``.

    ``cut_after``: the first response stops after that many body bytes and closes the
    connection (while announcing the full length), like a dropped link.
    """

    def __init__(self, body: bytes, cut_after: int | None = None):
        self.body = body
        self.cut_after = cut_after
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - stdlib signature
                pass

            def do_GET(self):  # noqa: N802 - stdlib name
                if self.path != "/d/microlibDataset.zip":
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                outer.ranges.append(header)
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", header or "")
                if m:
                    start = int(m.group(1))
                    if start >= len(outer.body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(outer.body) - 1}/{len(outer.body)}"
                    )
                else:
                    self.send_response(200)
                chunk = outer.body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(chunk[: outer.cut_after])
                    self.wfile.flush()
                    outer.cut_after = None
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/d/microlibDataset.zip"

    def __enter__(self) -> RangeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _archive(tmp_path: Path) -> bytes:
    path = tmp_path / "src.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(
            "microlibDataset/data_anns.json",
            json.dumps({"1": {"name": "microstructure003", "data_type": "twophase"}}),
        )
        zf.writestr("microlibDataset/excluded.json", "{}")
        # incompressible, so the cut lands mid-file
        zf.writestr("microlibDataset/microstructure003/blob.bin", bytes(range(256)) * 2000)
    return path.read_bytes()


def _fetch(*argv: str) -> int:
    return main(["dataset", "fetch", *argv])


def test_an_interrupted_fetch_resumes_with_range_and_verifies(tmp_path, capsys):
    body = _archive(tmp_path)
    digest = hashlib.sha256(body).hexdigest()
    dest = tmp_path / "dest"
    with RangeServer(body, cut_after=200_000) as srv:
        assert _fetch(srv.url, "--sha256", digest, "--dest", str(dest)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "download interrupted after" in err[0], err
        part = dest / "microlibDataset.zip.part"
        kept = part.stat().st_size
        # whole chunks received before the cut are kept (requests yields 64 KiB chunks)
        assert 0 < kept <= 200_000 < len(body) and f"after {kept} bytes" in err[0]
        assert not (dest / "microlibDataset.zip").exists()
        assert not (dest / "microlibDataset").exists()

        assert _fetch(srv.url, "--sha256", digest, "--dest", str(dest)) == 0
        assert srv.ranges == [None, f"bytes={kept}-"]
    assert (dest / "microlibDataset.zip").read_bytes() == body
    assert not part.exists()
    blob = dest / "microlibDataset/microstructure003/blob.bin"
    assert blob.read_bytes() == bytes(range(256)) * 2000
    assert "extracted 3 files" in capsys.readouterr().out


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(tmp_path, capsys):
    body = _archive(tmp_path)
    dest = tmp_path / "dest"
    with RangeServer(body) as srv:
        assert _fetch(srv.url, "--sha256", "0" * 64, "--dest", str(dest)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checksum mismatch" in err[0], err
    assert list(dest.iterdir()) == []


def test_fetch_from_a_local_path_and_a_missing_url(tmp_path, capsys):
    body = _archive(tmp_path)
    src = tmp_path / "microlibDataset.zip"
    src.write_bytes(body)
    dest = tmp_path / "dest"
    digest = hashlib.sha256(body).hexdigest()
    assert _fetch(str(src), "--sha256", digest, "--dest", str(dest)) == 0
    assert (dest / "microlibDataset/data_anns.json").is_file()
    capsys.readouterr()
    with RangeServer(body) as srv:
        assert _fetch(srv.url.replace(".zip", ".nope"), "--dest", str(tmp_path / "d2")) == 2
    assert "HTTP 404" in capsys.readouterr().err


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs.txt"])
def test_a_verified_but_hostile_archive_is_not_extracted(tmp_path, capsys, evil):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("microlibDataset/data_anns.json", "{}")
        zf.writestr(evil, "x")
    body = path.read_bytes()
    dest = tmp_path / "dest"
    with RangeServer(body) as srv:
        rc = _fetch(srv.url, "--sha256", hashlib.sha256(body).hexdigest(), "--dest", str(dest))
    assert rc == 2 and "outside" in capsys.readouterr().err
    assert sorted(p.name for p in dest.iterdir()) == ["microlibDataset.zip"]
    assert not (tmp_path / "escape.txt").exists()
