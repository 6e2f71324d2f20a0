"""Dedupe and store a feed's entries: a new article, another source of a known one, or a revision.

An entry is the same article as a stored one when it has the same canonical URL (or its link is
a URL some source already had), when this feed gave the same GUID before (a story whose link
changed), or when its text is identical (across outlets; within one outlet only under the same
headline, since identical text under another headline is a wall every page shows).

A batch of one feed's entries is stored in one transaction. The lookups it needs are fetched for
the whole batch up front (a handful of IN queries instead of about ten statements an entry) and
kept current as the batch writes; any lookup the batch did not prefetch, or that a write made
stale, is asked of the database again. That keeps a cold poll of a thousand feeds cheap without
a second, faster-but-different dedupe path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from monitor.store.schema import article_revisions, article_sources, articles

if TYPE_CHECKING:
    from monitor.store.store import FeedState

# Texts shorter than this (a bare headline, an empty page) are too generic to prove two articles
# are the same by hash alone; they are deduplicated by URL and GUID only.
MIN_CHARS_FOR_HASH_DEDUPE = 100


@dataclass(frozen=True)
class NewArticle:
    """An extracted article ready to store (built by the pipeline from Extracted)."""

    canonical_url: str
    title: str
    author: str | None
    published_at: datetime | None
    language: str | None
    text: str
    text_source: str
    content_hash: str
    backlog: bool
    entry_title: str = ""  # the feed's title for the entry (the page's may be a consent wall's)

    def without_nul(self) -> NewArticle:
        """PostgreSQL refuses NUL in text; a stray one must not make an entry unstorable."""
        return replace(
            self,
            title=self.title.replace("\x00", ""),
            text=self.text.replace("\x00", ""),
            author=self.author.replace("\x00", "") if self.author else None,
            canonical_url=self.canonical_url.replace("\x00", ""),
        )


@dataclass(frozen=True)
class EntryToStore:
    """One feed entry and the article extracted for it."""

    guid: str
    entry_hash: str  # what the feed said, so an unchanged entry is not extracted again
    link: str | None  # the entry's page, in canonical form
    article: NewArticle


@dataclass(frozen=True)
class Ingested:
    """What storing one feed entry did."""

    outcome: str  # "new", "duplicate" (another source of a stored article), "revision", "unchanged"
    article_id: int


def ingest_batch(
    c: Connection, feed: FeedState, entries: Sequence[EntryToStore], now: datetime
) -> list[Ingested]:
    """Store one feed's entries in order inside the caller's transaction."""
    entries = [replace(e, article=e.article.without_nul()) for e in entries]
    seen = _Lookups(c, feed)
    seen.prefetch(entries)
    return [_ingest_one(c, feed, seen, e, now) for e in entries]


def _ingest_one(
    c: Connection, feed: FeedState, seen: _Lookups, entry: EntryToStore, now: datetime
) -> Ingested:
    new, link = entry.article, entry.link
    article_id = seen.known_article(entry)
    if article_id is None:
        article_id = _insert_article(c, feed, entry.guid, new, now)
        seen.article_inserted(new, article_id)
        outcome = "new"
    else:
        revised = _maybe_revise(c, article_id, feed.outlet_id, link, new, now)
        if revised:
            seen.article_revised(revised)
        outcome = "revision" if revised else "duplicate"
    title = new.entry_title or new.title
    known = _upsert_source(c, feed, seen, entry, title, article_id, now)
    if known and outcome == "duplicate":
        outcome = "unchanged"  # the feed edited the entry, the article text is the same
    return Ingested(outcome, article_id)


class _Lookups:
    """The batch's view of what is stored: each map is a cache of one query, keyed by its
    parameter; a key that is missing has not been asked yet (None means asked, not found)."""

    def __init__(self, c: Connection, feed: FeedState) -> None:
        self.c, self.feed = c, feed
        self.article_at_url: dict[str, int | None] = {}  # articles.canonical_url -> id
        self.source_at_url: dict[str, int | None] = {}  # article_sources.url -> article_id
        self.by_guid: dict[str, tuple[int, int] | None] = {}  # this feed's guid -> (source, art.)
        self.by_hash: dict[str, tuple[int, int] | None] = {}  # hash -> (first id, its outlet)

    def prefetch(self, entries: Sequence[EntryToStore]) -> None:
        c, feed = self.c, self.feed
        urls = _distinct(u for e in entries for u in (e.article.canonical_url, e.link) if u)
        guids = _distinct(e.guid for e in entries)
        hashes = _distinct(e.article.content_hash for e in entries if e.article.content_hash)
        self.article_at_url = dict.fromkeys(urls)
        self.article_at_url.update(
            c.execute(
                select(articles.c.canonical_url, articles.c.id).where(
                    articles.c.canonical_url.in_(urls)
                )
            ).all()
        )
        self.source_at_url = dict.fromkeys(urls)
        for url, article_id in c.execute(
            select(article_sources.c.url, func.min(article_sources.c.article_id))
            .where(article_sources.c.url.in_(urls))
            .group_by(article_sources.c.url)
        ):
            self.source_at_url[url] = article_id
        self.by_guid = dict.fromkeys(guids)
        for guid, source_id, article_id in c.execute(
            select(
                article_sources.c.guid, article_sources.c.id, article_sources.c.article_id
            ).where(article_sources.c.feed_id == feed.id, article_sources.c.guid.in_(guids))
        ):
            self.by_guid[guid] = (source_id, article_id)
        self.by_hash = dict.fromkeys(hashes)
        for digest, article_id, outlet_id in c.execute(
            select(articles.c.content_hash, articles.c.id, articles.c.outlet_id)
            .where(articles.c.content_hash.in_(hashes))
            .order_by(articles.c.id.desc())  # the lowest id is written last, so it stays
        ):
            self.by_hash[digest] = (article_id, outlet_id)

    # -- reads --------------------------------------------------------------------------------

    def known_article(self, entry: EntryToStore) -> int | None:
        """The stored article this entry is another copy of: by canonical URL, by the feed's own
        GUID (a story whose link changed), else by identical text."""
        new = entry.article
        found = self._article_at(new.canonical_url)
        if found is None and entry.link:
            found = self._article_at(entry.link)
        if found is None:
            by_guid = self._source_of_guid(entry.guid)
            found = by_guid[1] if by_guid else None
        if found is None and len(new.text) >= MIN_CHARS_FOR_HASH_DEDUPE:
            found = self._same_text(new)
        return found

    def _article_at(self, url: str) -> int | None:
        if url not in self.article_at_url:
            self.article_at_url[url] = self.c.execute(
                select(articles.c.id).where(articles.c.canonical_url == url)
            ).scalar()
        found = self.article_at_url[url]
        if found is None:
            if url not in self.source_at_url:
                self.source_at_url[url] = self.c.execute(
                    select(func.min(article_sources.c.article_id)).where(
                        article_sources.c.url == url
                    )
                ).scalar()
            found = self.source_at_url[url]
        return found

    def _source_of_guid(self, guid: str) -> tuple[int, int] | None:
        if guid not in self.by_guid:
            row = self.c.execute(
                select(article_sources.c.id, article_sources.c.article_id).where(
                    article_sources.c.feed_id == self.feed.id, article_sources.c.guid == guid
                )
            ).first()
            self.by_guid[guid] = (row.id, row.article_id) if row else None
        return self.by_guid[guid]

    def _same_text(self, new: NewArticle) -> int | None:
        """An article with identical text. Within one outlet, identical text under another
        headline is not the same story but a wall every page shows (consent, paywall, error)."""
        if new.content_hash not in self.by_hash:
            row = self.c.execute(
                select(articles.c.id, articles.c.outlet_id)
                .where(articles.c.content_hash == new.content_hash)
                .order_by(articles.c.id)
                .limit(1)
            ).first()
            self.by_hash[new.content_hash] = (row.id, row.outlet_id) if row else None
        found = self.by_hash[new.content_hash]
        if found is None:
            return None
        article_id, outlet_id = found
        if outlet_id != self.feed.outlet_id or not new.entry_title:
            return article_id
        headlines = self.c.execute(
            select(article_sources.c.title).where(
                article_sources.c.article_id == article_id,
                article_sources.c.outlet_id == self.feed.outlet_id,
            )
        ).scalars()
        same = any(_fold(h or "") == _fold(new.entry_title) for h in headlines)
        return article_id if same else None

    # -- what the batch wrote -----------------------------------------------------------------

    def article_inserted(self, new: NewArticle, article_id: int) -> None:
        # A key that is absent was never asked: leave it to the database, which knows better.
        self.article_at_url[new.canonical_url] = article_id
        if new.content_hash in self.by_hash and self.by_hash[new.content_hash] is None:
            self.by_hash[new.content_hash] = (article_id, self.feed.outlet_id)

    def article_revised(self, hashes: tuple[str, str]) -> None:
        # The article's text (and perhaps owner) changed: which article comes first under the
        # old or new hash must be asked again.
        for digest in hashes:
            self.by_hash.pop(digest, None)

    def source_written(self, entry: EntryToStore, source_id: int, article_id: int) -> None:
        self.by_guid[entry.guid] = (source_id, article_id)
        if entry.link in self.source_at_url and self.source_at_url[entry.link] is None:
            self.source_at_url[entry.link] = article_id

    def source_moved(self) -> None:
        # An existing source got a new URL or article: every URL answer may have changed.
        self.source_at_url.clear()


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


# Statements built once: building insert().values(...) afresh for each row cost more CPU than
# SQLite spent running it.
_INSERT_ARTICLE = insert(articles).returning(articles.c.id)
_INSERT_SOURCE = insert(article_sources).returning(article_sources.c.id)
_UPDATE_SOURCE = update(article_sources).where(article_sources.c.id == bindparam("source_id"))


def _insert_article(
    c: Connection, feed: FeedState, guid: str, new: NewArticle, now: datetime
) -> int:
    row = {
        "canonical_url": new.canonical_url,
        "guid": guid,
        "title": new.title,
        "author": new.author,
        "published_at": new.published_at,
        "first_seen_at": now,
        "updated_at": now,
        "language": new.language,
        "text": new.text,
        "text_source": new.text_source,
        "content_hash": new.content_hash,
        "revision": 1,
        "backlog": new.backlog,
        "outlet_id": feed.outlet_id,
        "match_pending": True,  # queued for the match stage in the same transaction
    }
    return int(c.execute(_INSERT_ARTICLE, row).scalar_one())


def _maybe_revise(
    c: Connection,
    article_id: int,
    outlet_id: int,
    link: str | None,
    new: NewArticle,
    now: datetime,
) -> tuple[str, str] | None:
    """A changed text from the article's own page is a new revision; the old one is kept.
    Returns the old and new content hashes when it revised the article.

    The page is the article's own when its outlet first stored it, or when it sits at the
    article's canonical URL (the original arriving after a syndication partner whose copy
    pointed rel=canonical at it: the original then takes the article over). Any other differing
    copy is just another source and must not overwrite the text."""
    cur = c.execute(select(articles).where(articles.c.id == article_id)).one()
    owner = cur.outlet_id == outlet_id or (link is not None and link == cur.canonical_url)
    if cur.content_hash == new.content_hash or not owner:
        return None
    if len(new.text) < len(cur.text) // 2 and new.text_source == "feed":
        return None  # the page failed this time and the feed summary is shorter: not an edit
    c.execute(
        insert(article_revisions).values(
            article_id=article_id,
            revision=cur.revision,
            title=cur.title,
            text=cur.text,
            content_hash=cur.content_hash,
            replaced_at=now,
        )
    )
    c.execute(
        update(articles)
        .where(articles.c.id == article_id)
        .values(
            title=new.title,
            text=new.text,
            content_hash=new.content_hash,
            updated_at=now,
            revision=cur.revision + 1,
            text_source=new.text_source,
            author=new.author or cur.author,
            outlet_id=outlet_id,
            match_pending=True,  # a revision is matched again (it may say something new)
        )
    )
    return cur.content_hash, new.content_hash


def _upsert_source(
    c: Connection,
    feed: FeedState,
    seen: _Lookups,
    entry: EntryToStore,
    title: str,
    article_id: int,
    now: datetime,
) -> bool:
    """Record that this feed carried the article; True when the entry was already known."""
    existing = seen._source_of_guid(entry.guid)  # noqa: SLF001 (same module)
    values: dict[str, Any] = {
        "entry_hash": entry.entry_hash,
        "last_seen_at": now,
        "url": entry.link,
        "title": title,
        "article_id": article_id,
    }
    if existing is not None:
        source_id = existing[0]
        c.execute(_UPDATE_SOURCE, {"source_id": source_id, **values})
        seen.source_moved()
        seen.source_written(entry, source_id, article_id)
        return True
    row = {
        "feed_id": feed.id,
        "outlet_id": feed.outlet_id,
        "guid": entry.guid,
        "first_seen_at": now,
        **values,
    }
    source_id = c.execute(_INSERT_SOURCE, row).scalar_one()
    seen.source_written(entry, source_id, article_id)
    return False
