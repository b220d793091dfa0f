"""The ``scrape`` stage: DoITPoMS record pages and large images, fetched politely.

- :mod:`microlib.scrape.urls`: where a record and its image live; same-host redirects.
- :mod:`microlib.scrape.parse`: record page -> metadata (text, elements, licence).
- :mod:`microlib.scrape.images`: is a served body a complete, plausible image?
- :mod:`microlib.scrape.robots`: robots.txt rules (RFC 9309).
- :mod:`microlib.scrape.fetch`: the HTTP client (rate limit, retries, byte cap, deadlines).
- :mod:`microlib.scrape.crawl`: the resumable crawl over ids and its ``index.json``.

The command line is :mod:`microlib.commands.scrape`.
"""

from __future__ import annotations

from microlib.scrape.crawl import (
    CACHE_NAME,
    INDEX_NAME,
    ScrapeReport,
    index_counts,
    load_index,
    scrape,
)
from microlib.scrape.fetch import (
    DEFAULT_USER_AGENT,
    PRODUCT,
    Fetcher,
    FetchError,
    FetchStats,
    Response,
    ScrapeOptions,
    parse_retry_after,
)
from microlib.scrape.images import IMAGE_FORMATS, ImageInfo, validate_image
from microlib.scrape.parse import (
    ELEMENTS,
    clean_text,
    find_licence,
    parse_elements,
    parse_record,
    split_list,
)
from microlib.scrape.robots import RobotsRules, parse_robots
from microlib.scrape.urls import image_url, record_url, robots_url, same_site

__all__ = [
    "CACHE_NAME",
    "DEFAULT_USER_AGENT",
    "ELEMENTS",
    "IMAGE_FORMATS",
    "INDEX_NAME",
    "PRODUCT",
    "FetchError",
    "FetchStats",
    "Fetcher",
    "ImageInfo",
    "Response",
    "RobotsRules",
    "ScrapeOptions",
    "ScrapeReport",
    "clean_text",
    "find_licence",
    "image_url",
    "index_counts",
    "load_index",
    "parse_elements",
    "parse_record",
    "parse_retry_after",
    "parse_robots",
    "record_url",
    "robots_url",
    "same_site",
    "scrape",
    "split_list",
    "validate_image",
]
