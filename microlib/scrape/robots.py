"""robots.txt rules for one crawler (RFC 9309)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass
class RobotsRules:
    """The robots.txt group that applies to one crawler (RFC 9309).

    ``rules`` are ``(allow, pattern)`` pairs; the longest matching pattern decides and
    ``Allow`` wins a tie. ``crawl_delay`` is the group's ``Crawl-delay`` in seconds.
    """

    rules: list[tuple[bool, str]] = field(default_factory=list)
    crawl_delay: float | None = None

    def allowed(self, url: str) -> bool:
        """Whether the crawler may fetch ``url`` (path and query are matched)."""
        parts = urlsplit(url)
        path = unquote(parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if path == "/robots.txt":
            return True
        best: tuple[int, bool] | None = None
        for allow, pattern in self.rules:
            if not pattern:
                continue  # "Disallow:" with no path allows everything
            if _robots_match(pattern, path):
                key = (len(pattern), allow)
                if best is None or key > best:
                    best = key
        return True if best is None else best[1]


def _robots_match(pattern: str, path: str) -> bool:
    anchored = pattern.endswith("$")
    body = unquote(pattern[:-1] if anchored else pattern)
    regex = ".*".join(re.escape(p) for p in body.split("*"))
    return re.match(regex + ("$" if anchored else ""), path) is not None


def parse_robots(text: str, product: str) -> RobotsRules:
    """Rules of ``text`` (a robots.txt) for the crawler whose product token is ``product``.

    Groups naming ``product`` (case-insensitive) are merged; when there is none the
    ``*`` group applies; with neither everything is allowed.
    """
    product = product.lower()
    groups: list[tuple[list[str], RobotsRules]] = []
    agents: list[str] = []
    current: RobotsRules | None = None
    in_agents = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        key = key.lower()
        if key == "user-agent":
            if not in_agents:
                agents, current = [], RobotsRules()
                groups.append((agents, current))
                in_agents = True
            agents.append(value.lower())
            continue
        in_agents = False
        if current is None:
            continue  # rules before any User-agent line belong to nobody
        if key in ("allow", "disallow"):
            current.rules.append((key == "allow", value))
        elif key == "crawl-delay":
            try:
                current.crawl_delay = max(0.0, float(value))
            except ValueError:
                pass
    # a group line may carry a version ("microlib/0.1"); only the product token counts
    mine = [r for a, r in groups if any(ag.split("/", 1)[0].strip() == product for ag in a)]
    if not mine:
        mine = [r for a, r in groups if "*" in a]
    merged = RobotsRules()
    for r in mine:
        merged.rules.extend(r.rules)
        if r.crawl_delay is not None:
            merged.crawl_delay = max(merged.crawl_delay or 0.0, r.crawl_delay)
    return merged
