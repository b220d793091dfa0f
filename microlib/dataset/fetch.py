"""Download a dataset archive: resumable, checksum-verified, TLS verified.

The bytes go to ``{file}.part``; an interrupted download keeps it and the next call asks
the server for the rest (HTTP ``Range``). The finished file is renamed into place only
after its SHA-256 matched, so the destination never holds a partial or wrong archive.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import requests

from microlib.errors import MicrolibError

_CHUNK = 1 << 16
TIMEOUT_S = 60.0

# progress(bytes_so_far, total_or_None): called as bytes arrive (the command draws a bar)
Progress = Callable[[int, "int | None"], None]


def is_url(source: str) -> bool:
    """True when ``source`` is an http(s) URL rather than a local path."""
    return urlparse(source).scheme in ("http", "https")


def file_name(source: str) -> str:
    """The archive's file name from a URL or path (``microlibDataset.zip`` by default)."""
    name = Path(urlparse(source).path if is_url(source) else source).name
    return name or "microlibDataset.zip"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, part: Path, session: requests.Session, progress: Progress | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with session.get(url, headers=headers, stream=True, timeout=TIMEOUT_S) as resp:
            if resp.status_code == 416 and have:
                return  # the server has nothing past what we hold: complete
            if resp.status_code not in (200, 206):
                raise MicrolibError(f"{url}: HTTP {resp.status_code} {resp.reason}")
            if resp.status_code == 200:
                have = 0  # the server ignored Range: start again
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            with open(part, "ab" if have else "wb") as out:
                got = have
                for chunk in resp.iter_content(_CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    if progress:
                        progress(got, total)
    except requests.exceptions.SSLError as exc:
        raise MicrolibError(f"{url}: TLS certificate verification failed ({exc})") from None
    except requests.exceptions.RequestException as exc:
        size = part.stat().st_size if part.exists() else 0
        raise MicrolibError(
            f"download interrupted after {size} bytes ({type(exc).__name__});"
            f" run the same command again to resume from {part.name}"
        ) from None


def fetch_archive(
    source: str,
    dest_dir: str | os.PathLike,
    sha256: str | None = None,
    progress: Progress | None = None,
    session: requests.Session | None = None,
) -> Path:
    """Download (or copy) ``source`` into ``dest_dir`` and verify it.

    Parameters
    ----------
    source : str
        An ``http(s)://`` URL or a local path.
    dest_dir : path
        Folder that receives the archive.
    sha256 : str, optional
        Expected hex SHA-256; a mismatch deletes the download and raises.
    progress : callable, optional
        ``progress(bytes_so_far, total)`` while downloading.
    session : requests.Session, optional
        Reused connection pool (TLS verification stays on).

    Returns
    -------
    Path
        The verified archive, ``dest_dir / file_name(source)``.
    """
    dest_dir = Path(dest_dir)
    if dest_dir.exists() and not dest_dir.is_dir():
        raise MicrolibError(f"{dest_dir} exists and is not a folder")
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / file_name(source)
    part = final.with_name(final.name + ".part")
    if is_url(source):
        own = session is None
        session = session or requests.Session()
        try:
            _download(source, part, session, progress)
        finally:
            if own:
                session.close()
    else:
        src = Path(source)
        if not src.is_file():
            raise MicrolibError(f"{src}: no such file")
        shutil.copyfile(src, part)
    if sha256:
        got = _sha256(part)
        if got.lower() != sha256.strip().lower():
            part.unlink()
            raise MicrolibError(
                f"checksum mismatch for {file_name(source)}: expected {sha256.strip().lower()},"
                f" got {got}; download deleted"
            )
    os.replace(part, final)
    return final
