"""Dedupe and store a feed's entries: a new article, another source of a known one, or a revision.

An entry is the same article as a stored one when it has the same canonical URL (or its link is
a URL some source already had), when this feed gave the same GUID before (a story whose link
changed), or when its text is identical (across outlets; within one outlet only under the same
headline, since identical text under another headline is a wall every page shows).

A batch of one feed's entries is stored in one transaction. The lookups it needs are fetched for
the whole batch up front (a handful of IN queries instead of about ten statements an entry) and
kept current as the batch writes; any lookup the batch did not prefetch, or that a write made
stale, is asked of the database again. The new rows the batch inserts are held back and sent
as one multi-row statement per table (see _Writes). That keeps a cold poll of a thousand feeds
cheap without a second, faster-but-different dedupe path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Integer,
    Table,
    bindparam,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)

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
    c: Connection,
    feed: FeedState,
    entries: Sequence[EntryToStore],
    now: datetime,
    ids: NewIds | None = None,
) -> list[Ingested]:
    """Store one feed's entries in order inside the caller's transaction (whose NewIds, if it
    has one, new rows take their ids from)."""
    entries = [replace(e, article=e.article.without_nul()) for e in entries]
    w = _Writes(c, ids or NewIds(c))
    seen = _Lookups(w, feed)
    seen.prefetch(entries)
    done = []
    for i, entry in enumerate(entries):
        w.entries_left = len(entries) - i
        done.append(_ingest_one(w, feed, seen, entry, now))
    w.flush()
    return done


def _ingest_one(
    w: _Writes, feed: FeedState, seen: _Lookups, entry: EntryToStore, now: datetime
) -> Ingested:
    new, link = entry.article, entry.link
    article_id = seen.known_article(entry)
    if article_id is None:
        article_id = _insert_article(w, feed, entry.guid, new, now)
        seen.article_inserted(new, article_id)
        outcome = "new"
    else:
        revised = _maybe_revise(w, article_id, feed.outlet_id, link, new, now)
        if revised:
            seen.article_revised(revised)
        outcome = "revision" if revised else "duplicate"
    title = new.entry_title or new.title
    known = _upsert_source(w, feed, seen, entry, title, article_id, now)
    if known and outcome == "duplicate":
        outcome = "unchanged"  # the feed edited the entry, the article text is the same
    return Ingested(outcome, article_id)


class _Lookups:
    """The batch's view of what is stored: each map is a cache of one query, keyed by its
    parameter; a key that is missing has not been asked yet (None means asked, not found)."""

    def __init__(self, c: _Writes, feed: FeedState) -> None:
        self.c, self.feed = c, feed
        self.article_at_url: dict[str, int | None] = {}  # articles.canonical_url -> id
        self.source_at_url: dict[str, int | None] = {}  # article_sources.url -> article_id
        self.by_guid: dict[str, tuple[int, int] | None] = {}  # this feed's guid -> (source, art.)
        self.by_hash: dict[str, tuple[int, int] | None] = {}  # hash -> (first id, its outlet)

    def prefetch(self, entries: Sequence[EntryToStore]) -> None:
        """Ask every lookup the batch will need in one statement (four queries in a UNION ALL,
        each row tagged with the map it answers)."""
        urls = _distinct(u for e in entries for u in (e.article.canonical_url, e.link) if u)
        guids = _distinct(e.guid for e in entries)
        hashes = _distinct(e.article.content_hash for e in entries if e.article.content_hash)
        self.article_at_url = dict.fromkeys(urls)
        self.source_at_url = dict.fromkeys(urls)
        self.by_guid = dict.fromkeys(guids)
        self.by_hash = dict.fromkeys(hashes)
        a, s = articles.c, article_sources.c
        none = cast(null(), Integer)  # typed, or PostgreSQL takes a bare NULL for text
        query = union_all(
            select(literal("article_at_url"), a.canonical_url, a.id, none).where(
                a.canonical_url.in_(urls)
            ),
            select(literal("source_at_url"), s.url, func.min(s.article_id), none)
            .where(s.url.in_(urls))
            .group_by(s.url),
            select(literal("by_guid"), s.guid, s.id, s.article_id).where(
                s.feed_id == self.feed.id, s.guid.in_(guids)
            ),
            select(literal("by_hash"), a.content_hash, a.id, a.outlet_id).where(
                a.content_hash.in_(hashes)
            ),
        )
        for kind, key, first, second in self.c.sent().execute(query):
            if kind == "article_at_url":
                self.article_at_url[key] = first
            elif kind == "source_at_url":
                self.source_at_url[key] = first
            elif kind == "by_guid":
                self.by_guid[key] = (first, second)
            else:  # the article first stored with this text, and its outlet
                stored = self.by_hash[key]
                if stored is None or first < stored[0]:
                    self.by_hash[key] = (first, second)

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
            self.article_at_url[url] = (
                self.c.sent()
                .execute(select(articles.c.id).where(articles.c.canonical_url == url))
                .scalar()
            )
        found = self.article_at_url[url]
        if found is None:
            if url not in self.source_at_url:
                self.source_at_url[url] = (
                    self.c.sent()
                    .execute(
                        select(func.min(article_sources.c.article_id)).where(
                            article_sources.c.url == url
                        )
                    )
                    .scalar()
                )
            found = self.source_at_url[url]
        return found

    def _source_of_guid(self, guid: str) -> tuple[int, int] | None:
        if guid not in self.by_guid:
            row = (
                self.c.sent()
                .execute(
                    select(article_sources.c.id, article_sources.c.article_id).where(
                        article_sources.c.feed_id == self.feed.id, article_sources.c.guid == guid
                    )
                )
                .first()
            )
            self.by_guid[guid] = (row.id, row.article_id) if row else None
        return self.by_guid[guid]

    def _same_text(self, new: NewArticle) -> int | None:
        """An article with identical text. Within one outlet, identical text under another
        headline is not the same story but a wall every page shows (consent, paywall, error)."""
        if new.content_hash not in self.by_hash:
            row = (
                self.c.sent()
                .execute(
                    select(articles.c.id, articles.c.outlet_id)
                    .where(articles.c.content_hash == new.content_hash)
                    .order_by(articles.c.id)
                    .limit(1)
                )
                .first()
            )
            self.by_hash[new.content_hash] = (row.id, row.outlet_id) if row else None
        found = self.by_hash[new.content_hash]
        if found is None:
            return None
        article_id, outlet_id = found
        if outlet_id != self.feed.outlet_id or not new.entry_title:
            return article_id
        headlines = (
            self.c.sent()
            .execute(
                select(article_sources.c.title).where(
                    article_sources.c.article_id == article_id,
                    article_sources.c.outlet_id == self.feed.outlet_id,
                )
            )
            .scalars()
        )
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


class NewIds:
    """Ids for new articles and sources, taken ahead of their rows (see _Writes). One serves a
    whole transaction, so a transaction that stores many feeds' batches asks once."""

    def __init__(self, c: Connection) -> None:
        self.c = c
        self._next: dict[Table, int] = {}  # SQLite: the table's next id
        self._left: dict[Table, deque[int]] = {}  # PostgreSQL: ids taken from the sequence

    def take(self, table: Table, rows_at_most: int) -> int:
        """An id for a new row of `table`; the caller may insert up to rows_at_most more rows
        (this one included), which is how many a PostgreSQL sequence is asked for at once."""
        if self.c.dialect.name == "postgresql":  # an id taken but not used is only a gap
            if not self._left.get(table):
                self._left[table] = deque(self._from_sequence(table, rows_at_most))
            return self._left[table].popleft()
        # SQLite gives a new row max(id) + 1; the transaction holds the write lock (BEGIN
        # IMMEDIATE), so nobody else can take those ids before it commits.
        if table not in self._next:
            self._next[table] = (self.c.execute(select(func.max(table.c.id))).scalar() or 0) + 1
        self._next[table] += 1
        return self._next[table] - 1

    def _from_sequence(self, table: Table, n: int) -> list[int]:
        sequence = func.nextval(func.pg_get_serial_sequence(table.name, "id"))
        series = func.generate_series(1, n).table_valued("i")
        return list(self.c.execute(select(sequence).select_from(series)).scalars())


class _Writes:
    """The batch's connection, holding back the INSERTs of new rows.

    Inserting row by row cost two statements an entry (a round trip each on PostgreSQL). New
    articles and sources are queued instead, with ids taken up front, and sent as one
    multi-row statement per table the moment the batch runs any other statement, or ends. The
    database thus sees the same rows in the same order before every read, and a constraint a
    row breaks still fails the batch's transaction (whose caller then retries or stores the
    entries one by one)."""

    def __init__(self, c: Connection, ids: NewIds) -> None:
        self.c, self.ids = c, ids
        self.entries_left = 0  # entries of the batch not stored yet, the current one included
        self._queued: dict[Table, list[dict[str, Any]]] = {articles: [], article_sources: []}

    def sent(self) -> Connection:
        """The connection, once every queued row is in the database: for any other statement."""
        self.flush()
        return self.c

    def insert(self, table: Table, row: dict[str, Any]) -> int:
        """Queue a new row of `table` (articles or article_sources); returns its id. An entry
        inserts at most one row of each."""
        row_id = self.ids.take(table, self.entries_left)
        self._queued[table].append({"id": row_id, **row})
        return row_id

    def flush(self) -> None:
        for table, rows in self._queued.items():  # articles first: sources refer to them
            if rows:
                self.c.execute(insert(table), rows)
                rows.clear()


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


# Built once: building a statement afresh for each row cost more CPU than SQLite spent running it.
_UPDATE_SOURCE = update(article_sources).where(article_sources.c.id == bindparam("source_id"))


def _insert_article(w: _Writes, feed: FeedState, guid: str, new: NewArticle, now: datetime) -> int:
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
    }
    return w.insert(articles, row)


def _maybe_revise(
    w: _Writes,
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
    c = w.sent()
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
        )
    )
    return cur.content_hash, new.content_hash


def _upsert_source(
    w: _Writes,
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
        w.sent().execute(_UPDATE_SOURCE, {"source_id": source_id, **values})
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
    source_id = w.insert(article_sources, row)
    seen.source_written(entry, source_id, article_id)
    return False
