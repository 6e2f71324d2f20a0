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

from monitor.canonical import MAX_URL_BYTES, canonical_url
from monitor.domain import MAX_AUTHOR, MAX_TITLE, FeedEntry, ParsedFeed, cut

# Problems feedparser reports that lose nothing: a feed served as text/plain, or an encoding
# declaration that disagrees with the HTTP header when the bytes decode fine either way.
_HARMLESS = (feedparser.NonXMLContentType,)
# `[^<>]`, not `[^>]`: with the latter a title of 100,000 '<' and no '>' costs 5·10⁹ steps (each
# '<' scans to the end); stopping at the next '<' keeps the scan linear.
_TAG = re.compile(r"<[^<>]*>")
_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*>")
# C0 and C1 controls and DEL: terminal escapes, NULs (which PostgreSQL refuses in text) and the
# like are not part of a headline; they become spaces and are then collapsed.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Bounds on what one feed document may put in the store (the hostile-input issue). The fetch
# stage caps a document at polling.max_bytes (5 MB), which still holds 100,000 tiny entries or a
# 5 MB headline. Real feeds list tens of entries, and headlines run to a few hundred characters.
MAX_ENTRIES = 1000  # entries read from one document, in document order (newest first, usually)
MAX_LINK = MAX_URL_BYTES  # UTF-8 bytes; a longer "link" is no article address
MAX_GUID = 500  # characters (2,000 bytes at most); a longer GUID is replaced by its hash, as it
# must fit a unique index (PostgreSQL's B-tree takes about 2,700 bytes)

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
    notes = []
    try:
        doc = _feedparser(body, headers)
    except Exception as err:  # found by fuzzing: encoding="\x00utf-8" raises from feedparser
        notes.append(f"unreadable XML declaration ({type(err).__name__}), read without it")
        try:
            doc = _feedparser(_XML_DECLARATION.sub(b"", body, count=1), headers)
        except Exception as again:
            unreadable = f"not an RSS/Atom feed: unreadable ({type(again).__name__}: {again})"
            return ParsedFeed(None, (), unreadable, is_feed=False)
    raw_entries = doc.entries[:MAX_ENTRIES]
    entries = _distinct_guids([e for e in (_entry(raw, url) for raw in raw_entries) if e])
    is_feed = bool(doc.get("version")) or bool(entries)
    problem = _problem(doc, len(entries), is_feed, _looks_like_html(body))
    if len(doc.entries) > MAX_ENTRIES:
        notes.append(
            f"the feed lists {len(doc.entries)} entries; only the first {MAX_ENTRIES} were read"
        )
    if is_feed and notes:
        problem = "; ".join([problem, *notes] if problem else notes)
    title = _clean(doc.feed.get("title"), MAX_TITLE) or None
    return ParsedFeed(title, entries, problem, is_feed)


def _feedparser(body: bytes, headers: dict[str, str]) -> feedparser.FeedParserDict:
    return feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )


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
    title = _clean(raw.get("title"), MAX_TITLE)
    content = _content(raw)
    if not (link or title or content):
        return None  # nothing to identify or show
    # Without a GUID the link identifies the entry; its canonical form, so a tracking parameter
    # that changes between builds of the feed does not make the entry look new.
    guid = _clean(raw.get("id")) or canonical_url(link or "") or _digest(title, content)
    published = _datetime(raw.get("published_parsed") or raw.get("updated_parsed"))
    entry_hash = _digest(title, link or "", content, raw.get("updated") or "")
    return FeedEntry(
        guid=_bounded(guid),
        link=link,
        title=title,
        author=_clean(raw.get("author"), MAX_AUTHOR) or None,
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
        replace(
            entry,
            guid=_bounded(f"{entry.guid} {canonical_url(entry.link or '') or entry.entry_hash}"),
        )
        if len(links.get(entry.guid, ())) > 1
        else entry
        for entry in entries
    )


def _bounded(guid: str) -> str:
    return guid if len(guid) <= MAX_GUID else f"sha256:{_digest(guid)}"


def _absolute(link: str, base: str) -> str | None:
    """The entry's link made absolute, otherwise as the feed gave it (the page is fetched at
    exactly this address: some sites need their own parameters)."""
    link = link.strip()
    if not link or len(link.encode()) > MAX_LINK:
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


def _clean(value: str | None, limit: int | None = None) -> str:
    """Plain one-line text, cut to `limit` characters with "…": feeds put markup and character
    references in CDATA titles, and control characters (a NUL, a terminal escape) now and then."""
    text = value or ""
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", text))
    text = " ".join(_CONTROL.sub(" ", text).split())
    return cut(text, limit) if limit is not None else text


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
