"""Parse stage: a fetched feed document into entries, recovering what it can from broken ones."""

from __future__ import annotations

import calendar
import hashlib
import time
from datetime import UTC, datetime

import feedparser

from monitor.canonical import canonical_url
from monitor.domain import FeedEntry, ParsedFeed

# Problems feedparser reports that lose nothing: a feed served as text/plain, or an encoding
# declaration that disagrees with the HTTP header when the bytes decode fine either way.
_HARMLESS = (feedparser.NonXMLContentType,)


def parse(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Entries of an RSS 0.9x/2.0, RSS 1.0/RDF or Atom document; problems recorded, not raised."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    doc = feedparser.parse(body, response_headers=headers, sanitize_html=False)
    entries = tuple(e for e in (_entry(raw, url) for raw in doc.entries) if e is not None)
    is_feed = bool(doc.get("version")) or bool(entries)
    problem = _problem(doc, len(entries), is_feed, _looks_like_html(body))
    return ParsedFeed(doc.feed.get("title"), entries, problem, is_feed)


def _problem(
    doc: feedparser.FeedParserDict, kept: int, is_feed: bool, html: bool
) -> str | None:
    if not is_feed:
        what = "an HTML page" if html else "no RSS/Atom elements found"
        return f"not an RSS/Atom feed: {what}"
    exc = doc.get("bozo_exception")
    if not doc.get("bozo") or exc is None or isinstance(exc, _HARMLESS):
        return None
    where = f" at line {exc.getLineNumber()}" if hasattr(exc, "getLineNumber") else ""
    return f"{type(exc).__name__}{where}: {_first_line(exc)}; entries kept: {kept}"


def _looks_like_html(body: bytes) -> bool:
    start = body[:2048].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<body" in start


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _entry(raw: feedparser.FeedParserDict, feed_url: str) -> FeedEntry | None:
    link = canonical_url(raw.get("link") or "", base=feed_url)
    title = _clean(raw.get("title"))
    content = _content(raw)
    if not (link or title or content):
        return None  # nothing to identify or show
    guid = _clean(raw.get("id")) or link or _digest(title, content)
    published = _datetime(raw.get("published_parsed") or raw.get("updated_parsed"))
    entry_hash = _digest(title, link or "", content, raw.get("updated") or "")
    return FeedEntry(
        guid=guid,
        link=link,
        title=title,
        author=_clean(raw.get("author")) or None,
        published=published,
        content=content,
        entry_hash=entry_hash,
    )


def _content(raw: feedparser.FeedParserDict) -> str:
    """The fullest text the feed offers: content:encoded / atom:content, else the summary."""
    for item in raw.get("content") or ():
        value = item.get("value") or ""
        if value.strip():
            return value
    return raw.get("summary") or ""


def _datetime(parsed: time.struct_time | None) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError):
        return None


def _clean(value: str | None) -> str:
    return " ".join((value or "").split())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
