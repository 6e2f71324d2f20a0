"""Plain frozen values passed between pipeline stages (no I/O, no database rows)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time as a timezone-aware UTC datetime; tests pass a fixed one."""


def utcnow() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


# A headline longer than this is not a headline (the hostile-input issue: a 5 MB <title>); the
# parse and extract stages cut titles to it, so no stage after them handles a huge one.
MAX_TITLE = 500
MAX_AUTHOR = 200


def cut(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first `limit - 1` and "…"."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Conditional:
    """Validators from the previous successful fetch, sent back for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """A completed HTTP exchange (2xx or 304)."""

    url: str
    final_url: str
    status: int
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    bytes_received: int  # bytes on the wire (compressed), for bandwidth accounting

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class FeedEntry:
    """One item of a parsed feed, before its page is fetched."""

    guid: str  # the feed's id, else the link, else a hash of title+link
    link: str | None  # absolute
    title: str
    author: str | None
    published: datetime | None
    content: str  # the feed's own full content (HTML) or summary, '' when none
    entry_hash: str  # changes when the feed edits the entry; triggers a re-fetch


@dataclass(frozen=True)
class ParsedFeed:
    """What parse() recovered from a feed document, with any problem it had to work around."""

    title: str | None
    entries: tuple[FeedEntry, ...]
    problem: str | None = None  # e.g. "malformed XML at line 12: mismatched tag; 3 entries kept"
    is_feed: bool = True  # False when the document was not a feed at all (an HTML page)


@dataclass(frozen=True)
class Extracted:
    """An article's clean text and metadata, from the page or the feed's own content."""

    title: str
    text: str
    author: str | None
    published: datetime | None
    canonical_url: str | None  # from rel=canonical / og:url, normalised
    language: str | None
    source: str  # "page" or "feed" (which input the text came from)
    lines: tuple[str, ...] = field(default=())  # paragraphs before boilerplate removal
