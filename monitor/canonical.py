"""Canonical URLs: one spelling per article address, so a story is recognised across feeds."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit, urlunsplit

import courlan

# Longer is no article address (browsers and CDNs stop near 2,000 characters), and the canonical
# URL is a unique key: PostgreSQL's B-tree index refuses a value over about 2,700 bytes, so a
# hostile link or rel=canonical of 100 kB would make its entry fail to store on every poll.
MAX_URL_BYTES = 2000
# Characters RFC 3986 allows nowhere in an authority (found by fuzzing: "http://evil|<!channel>/"
# came out as its own canonical form).
_NOT_IN_HOST = re.compile(r'[\s<>"{}|\\^`]')


def canonical_url(url: str, base: str | None = None) -> str | None:
    """Absolute, lower-case host, default port dropped, no fragment, tracking parameters removed.

    courlan's non-strict mode strips known trackers (utm_*, fbclid, gclid, mc_*, ref …) and sorts
    the query; strict mode is not used because it also drops real parameters such as ?id=.
    Returns None for anything that is not an http(s) URL, or longer than MAX_URL_BYTES.
    """
    if not url or not url.strip() or len(url) > MAX_URL_BYTES:
        return None
    try:  # a malformed address (an unclosed IPv6 bracket, a bad port) is no address at all
        absolute = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        parts = urlsplit(courlan.normalize_url(absolute, strict=False))
    except ValueError:
        return None
    # after courlan: it unescapes HTML entities, so "example.com&lt;" becomes "example.com<"
    if not parts.hostname or _NOT_IN_HOST.search(parts.netloc):
        return None
    result = urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))
    return result if len(result.encode()) <= MAX_URL_BYTES else None
