"""Parse stage: a fetched feed document into entries, recovering what it can from broken ones."""

from __future__ import annotations

import calendar
import hashlib
import html
import re
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import feedparser
import feedparser.api

from monitor.canonical import canonical_url
from monitor.domain import FeedEntry, ParsedFeed

# Problems feedparser reports that lose nothing: a feed served as text/plain, or an encoding
# declaration that disagrees with the HTTP header when the bytes decode fine either way.
_HARMLESS = (feedparser.NonXMLContentType,)
_TAG = re.compile(r"<[^>]*>")

# feedparser asks xml.sax for the libxml2 driver first. It is not installed, and a failed import
# is not cached: every parse searched sys.path for it again (a twentieth of the parse time).
# Without it xml.sax picks expat, which is what every parse ended up using anyway.
feedparser.api.PREFERRED_XML_PARSERS[:] = []


def parse(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Entries of an RSS 0.9x/2.0, RSS 1.0/RDF or Atom document; problems recorded, not raised."""
    # No content-location: with it feedparser joins every URL-ish element to the feed's address
    # (a quarter of the parse time); entry links are made absolute against `url` here instead,
    # and an xml:base in the document still applies. Links inside the content are not resolved
    # either: the text extracted from it has no links.
    headers = {"content-type": content_type} if content_type else {}
    doc = feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    entries = _distinct_guids([e for e in (_entry(raw, url) for raw in doc.entries) if e])
    is_feed = bool(doc.get("version")) or bool(entries)
    problem = _problem(doc, len(entries), is_feed, _looks_like_html(body))
    return ParsedFeed(doc.feed.get("title"), entries, problem, is_feed)


def _problem(doc: feedparser.FeedParserDict, kept: int, is_feed: bool, html: bool) -> str | None:
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
    link = _absolute(raw.get("link") or "", feed_url)
    title = _clean(raw.get("title"))
    content = _content(raw)
    if not (link or title or content):
        return None  # nothing to identify or show
    # Without a GUID the link identifies the entry; its canonical form, so a tracking parameter
    # that changes between builds of the feed does not make the entry look new.
    guid = _clean(raw.get("id")) or canonical_url(link or "") or _digest(title, content)
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


def _distinct_guids(entries: list[FeedEntry]) -> tuple[FeedEntry, ...]:
    """Entries of one document that share a GUID but point elsewhere get the link added to it.

    Some CMSs put the site's home page in every <guid>; taking it at its word would store one
    story and drop the rest. Entries sharing both GUID and link are one entry listed twice."""
    listed = Counter(entry.guid for entry in entries)
    links: dict[str, set[str | None]] = {}
    for entry in entries:
        if listed[entry.guid] > 1:  # canonical forms cost: only where a GUID repeats
            links.setdefault(entry.guid, set()).add(canonical_url(entry.link or ""))
    return tuple(
        replace(entry, guid=f"{entry.guid} {canonical_url(entry.link or '') or entry.entry_hash}")
        if len(links.get(entry.guid, ())) > 1
        else entry
        for entry in entries
    )


def _absolute(link: str, base: str) -> str | None:
    """The entry's link made absolute, otherwise as the feed gave it (the page is fetched at
    exactly this address: some sites need their own parameters)."""
    link = link.strip()
    if not link:
        return None
    try:
        absolute = urljoin(base, link)
    except ValueError:
        return None
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


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
    """Plain one-line text: feeds put markup and character references in CDATA titles, and a
    NUL (which PostgreSQL refuses in text) now and then."""
    text = value or ""
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", text))
    return " ".join(text.replace("\x00", "").split())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
