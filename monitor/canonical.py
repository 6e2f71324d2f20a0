"""Canonical URLs: one spelling per article address, so a story is recognised across feeds."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

import courlan


def canonical_url(url: str, base: str | None = None) -> str | None:
    """Absolute, lower-case host, default port dropped, no fragment, tracking parameters removed.

    courlan's non-strict mode strips known trackers (utm_*, fbclid, gclid, mc_*, ref …) and sorts
    the query; strict mode is not used because it also drops real parameters such as ?id=.
    Returns None for anything that is not an http(s) URL.
    """
    if not url or not url.strip():
        return None
    try:  # a malformed address (an unclosed IPv6 bracket, a bad port) is no address at all
        absolute = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        parts = urlsplit(courlan.normalize_url(absolute, strict=False))
    except ValueError:
        return None
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))
