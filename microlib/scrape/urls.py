"""Where a DoITPoMS record lives, and which redirects stay on its host."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from microlib.io import entry_id


def record_url(base_url: str, n: int) -> str:
    """Record page of DoITPoMS id ``n`` under ``base_url`` (the ``/miclib/`` folder).

    The id is not zero-padded in the query (``full_record.php?id=237``).
    """
    return urljoin(_folder(base_url), f"full_record.php?id={int(n)}")


def image_url(base_url: str, n: int) -> str:
    """Large image of DoITPoMS id ``n``: ``micrographs/large/{n:06d}.jpg``."""
    return urljoin(_folder(base_url), f"micrographs/large/{entry_id(n)}.jpg")


def robots_url(base_url: str) -> str:
    """``robots.txt`` at the root of ``base_url``'s host."""
    return urljoin(base_url, "/robots.txt")


def _folder(base_url: str) -> str:
    # urljoin drops the last path segment unless the base ends in "/"
    return base_url if base_url.endswith("/") else base_url + "/"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_site(origin_url: str, target_url: str) -> bool:
    """Whether a redirect from ``origin_url`` to ``target_url`` stays on the same host.

    Same scheme, host name and port; the one exception is an upgrade from ``http`` to
    ``https`` on the same host name with default ports (servers commonly redirect to
    TLS). A downgrade to ``http`` or any other host is refused.
    """
    a, b = urlsplit(origin_url), urlsplit(target_url)
    if b.scheme not in ("http", "https") or not b.hostname or not a.hostname:
        return False
    if a.hostname.lower() != b.hostname.lower():
        return False
    pa = a.port or _DEFAULT_PORTS.get(a.scheme)
    pb = b.port or _DEFAULT_PORTS.get(b.scheme)
    if a.scheme == b.scheme:
        return pa == pb
    return (a.scheme, b.scheme) == ("http", "https") and pa == 80 and pb == 443
