"""Dedupe and store a feed's entries: a new article, another source of a known one, or a revision.

An entry is the same article as a stored one when it has the same canonical URL (or its link is
a URL some source already had), when this feed gave the same GUID before (a story whose link
changed), or when its text is identical (across outlets; within one outlet only under the same
headline, since identical text under another headline is a wall every page shows).

A batch of one feed's entries is stored in one transaction, and so may the batches of several
feeds (see Ingest). The lookups they need are fetched up front (one query instead of about ten
statements an entry) and kept current as the batches write; any lookup not fetched up front, or
that a write made stale, is asked of the database again. The new rows are held back and sent as
one multi-row statement per table (see _Writes). So each batch sees exactly what the batches
before it wrote, and a cold poll of a thousand feeds stays cheap without a second,
faster-but-different dedupe path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Connection,
    Integer,
    ScalarSelect,
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

from monitor.clustering import Features
from monitor.store.clusters import Copies, Stories
from monitor.store.schema import article_revisions, article_sources, articles
from monitor.store.sql import insert_rows, one_of, pairs_of

if TYPE_CHECKING:
    from monitor.store.schedule import FeedState

K = TypeVar("K")

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
    # its near-duplicate fingerprint and story signature (monitor.clustering), if worked out
    features: Features | None = None

    def without_nul(self) -> NewArticle:
        """PostgreSQL refuses NUL in text; a stray one must not make an entry unstorable."""
        if not any(
            "\x00" in (v or "") for v in (self.title, self.text, self.author, self.canonical_url)
        ):
            return self
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

    outcome: str  # "new", "duplicate" (another source of a stored article), "revision",
    # "unchanged", "near-duplicate" (another source of the stored article it is a copy of)
    article_id: int


def ingest_batch(
    c: Connection, feed: FeedState, entries: Sequence[EntryToStore], now: datetime
) -> list[Ingested]:
    """Store one feed's entries in order inside the caller's transaction."""
    ingest = Ingest(c)
    done = ingest.store(feed, entries, now)
    ingest.send()
    return done


class Ingest:
    """Batches of several feeds stored in one transaction, in order: the lookups they share and
    the rows they queue. Each batch sees what the batches before it wrote."""

    def __init__(self, c: Connection) -> None:
        self.writes = _Writes(c)
        self.seen = _Lookups(self.writes)
        self.copies = Copies(self.writes.sent)
        self.stories = Stories(self.writes.sent)
        self.now: datetime | None = None

    def expect(self, batches: Sequence[tuple[FeedState, Sequence[EntryToStore]]]) -> None:
        """Look up at once what these batches will ask. Only a saving: a batch that comes with
        other entries (re-cleaned meanwhile), or finds an answer gone stale, asks again."""
        batches = [(feed, [_storable(e) for e in entries]) for feed, entries in batches]
        self.seen.prefetch(batches)
        self._prefetch_clusters([e for _, entries in batches for e in entries])
        self.writes.rows_expected = sum(len(entries) for _, entries in batches)

    def _prefetch_clusters(self, entries: Sequence[EntryToStore]) -> None:
        features = [e.article.features for e in entries if e.article.features is not None]
        self.copies.prefetch(features)
        dated = [(f.published, f.keys) for f in features if f.published is not None]
        if dated:
            self.stories.prefetch(dated)

    def store(
        self, feed: FeedState, entries: Sequence[EntryToStore], now: datetime
    ) -> list[Ingested]:
        """Store one feed's entries in order; their rows are queued (see send)."""
        entries = [_storable(e) for e in entries]
        self.seen.prefetch([(feed, entries)])  # whatever expect() did not ask
        self._prefetch_clusters(entries)
        self.writes.rows_expected = max(self.writes.rows_expected, len(entries))
        self.now = now
        done = []
        for entry in entries:
            done.append(_ingest_one(self, feed, entry, now))
            self.writes.rows_expected -= 1
        return done

    def send(self) -> Connection:
        """The connection, once every queued row is in the database (before any statement
        of the caller's that reads or writes articles or sources, and before COMMIT)."""
        c = self.writes.sent()
        self.copies.flush()
        if self.now is not None:
            self.stories.flush(self.now)
        return c

    def texts_rewritten(self) -> None:
        """Stored texts were re-cleaned: which article comes first under a hash must be asked
        again."""
        self.seen.by_hash.clear()


def _storable(entry: EntryToStore) -> EntryToStore:
    article = entry.article.without_nul()
    return entry if article is entry.article else replace(entry, article=article)


def _ingest_one(ingest: Ingest, feed: FeedState, entry: EntryToStore, now: datetime) -> Ingested:
    w, seen = ingest.writes, ingest.seen
    new, link, features = entry.article, entry.link, entry.article.features
    article_id = seen.known_article(feed, entry)
    copy_of = None
    if article_id is None and features is not None:
        copy_of = ingest.copies.canonical(features, feed.outlet_id)
    if copy_of is not None:
        # Another outlet's copy of a stored text: a source of the earliest copy, never a new
        # article (so never matched or alerted again, only counted as one more outlet).
        article_id, outcome = copy_of, "near-duplicate"
    elif article_id is None:
        article_id = _insert_article(w, feed, entry.guid, new, now)
        seen.article_inserted(feed, new, article_id)
        if features is not None:
            _place(ingest, w, feed, article_id, new, features, now)
        outcome = "new"
    else:
        revised = _maybe_revise(w, article_id, feed.outlet_id, link, new, now)
        if revised:
            seen.article_revised(revised)
            if features is not None:
                ingest.copies.revised(article_id, feed.outlet_id, features)
        outcome = "revision" if revised else "duplicate"
    title = new.entry_title or new.title
    known = _upsert_source(w, feed, seen, entry, title, article_id, now)
    if known and outcome == "duplicate":
        outcome = "unchanged"  # the feed edited the entry, the article text is the same
    return Ingested(outcome, article_id)


def _place(
    ingest: Ingest,
    w: _Writes,
    feed: FeedState,
    article_id: int,
    new: NewArticle,
    features: Features,
    now: datetime,
) -> None:
    """A new article's fingerprint goes to the index, and the article to its story."""
    ingest.copies.inserted(article_id, feed.outlet_id, features)
    features = features.published_at(new.published_at or now)
    signature = features.signature
    if signature is not None:
        story_id, why = ingest.stories.place(article_id, signature, features.keys)
        w.amend(articles, article_id, story_id=story_id, story_reason=why)


class _Lookups:
    """What the transaction's batches know is stored: each map is a cache of one query, keyed
    by its parameter; a key that is missing has not been asked yet (None means asked, not
    found). Every write of the batches updates the maps as the database would answer."""

    def __init__(self, c: _Writes) -> None:
        self.c = c
        self.article_at_url: dict[str, int | None] = {}  # articles.canonical_url -> id
        self.source_at_url: dict[str, int | None] = {}  # article_sources.url -> article_id
        self.by_guid: dict[tuple[int, str], tuple[int, int] | None] = {}  # (feed, guid) -> ids
        self.by_hash: dict[str, tuple[int, int] | None] = {}  # hash -> (first id, its outlet)

    def prefetch(self, batches: Sequence[tuple[FeedState, Sequence[EntryToStore]]]) -> None:
        """Ask what these entries will need and was not asked yet, in one statement (four
        queries in a UNION ALL, each row tagged with the map it answers)."""
        entries = [e for _, batch in batches for e in batch]
        urls = _unasked(
            (u for e in entries for u in (e.article.canonical_url, e.link) if u),
            self.article_at_url,
            self.source_at_url,
        )
        guids = _unasked(((feed.id, e.guid) for feed, b in batches for e in b), self.by_guid)
        hashes = _unasked(
            (e.article.content_hash for e in entries if e.article.content_hash), self.by_hash
        )
        if not (urls or guids or hashes):
            return
        self.article_at_url.update(dict.fromkeys(urls))
        self.source_at_url.update(dict.fromkeys(urls))
        self.by_guid.update(dict.fromkeys(guids))
        self.by_hash.update(dict.fromkeys(hashes))
        c, a, s = self.c.sent(), articles.c, article_sources.c
        none = cast(null(), Integer)  # typed, or PostgreSQL takes a bare NULL for text
        query = union_all(
            select(literal("article_at_url"), a.canonical_url, a.id, none, none).where(
                one_of(c, a.canonical_url, urls)
            ),
            select(literal("source_at_url"), s.url, func.min(s.article_id), none, none)
            .where(one_of(c, s.url, urls))
            .group_by(s.url),
            select(literal("by_guid"), s.guid, s.id, s.article_id, s.feed_id).where(
                pairs_of(c, s.feed_id, s.guid, guids)
            ),
            select(literal("by_hash"), a.content_hash, a.id, a.outlet_id, none).where(
                one_of(c, a.content_hash, hashes)
            ),
        )
        for kind, key, first, second, feed_id in c.execute(query):
            if kind == "article_at_url":
                self.article_at_url[key] = first
            elif kind == "source_at_url":
                self.source_at_url[key] = first
            elif kind == "by_guid":
                self.by_guid[(feed_id, key)] = (first, second)
            else:  # the article first stored with this text, and its outlet
                stored = self.by_hash[key]
                if stored is None or first < stored[0]:
                    self.by_hash[key] = (first, second)

    # -- reads --------------------------------------------------------------------------------

    def known_article(self, feed: FeedState, entry: EntryToStore) -> int | None:
        """The stored article this entry is another copy of: by canonical URL, by the feed's own
        GUID (a story whose link changed), else by identical text."""
        new = entry.article
        found = self._article_at(new.canonical_url)
        if found is None and entry.link:
            found = self._article_at(entry.link)
        if found is None:
            by_guid = self.source_of_guid(feed, entry.guid)
            found = by_guid[1] if by_guid else None
        if found is None and len(new.text) >= MIN_CHARS_FOR_HASH_DEDUPE:
            found = self._same_text(feed, new)
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

    def source_of_guid(self, feed: FeedState, guid: str) -> tuple[int, int] | None:
        """(source id, article id) of the feed's entry with this GUID."""
        if (feed.id, guid) not in self.by_guid:
            row = (
                self.c.sent()
                .execute(
                    select(article_sources.c.id, article_sources.c.article_id).where(
                        article_sources.c.feed_id == feed.id, article_sources.c.guid == guid
                    )
                )
                .first()
            )
            self.by_guid[(feed.id, guid)] = (row.id, row.article_id) if row else None
        return self.by_guid[(feed.id, guid)]

    def _same_text(self, feed: FeedState, new: NewArticle) -> int | None:
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
        if outlet_id != feed.outlet_id or not new.entry_title:
            return article_id
        headlines = (
            self.c.sent()
            .execute(
                select(article_sources.c.title).where(
                    article_sources.c.article_id == article_id,
                    article_sources.c.outlet_id == feed.outlet_id,
                )
            )
            .scalars()
        )
        same = any(_fold(h or "") == _fold(new.entry_title) for h in headlines)
        return article_id if same else None

    # -- what the batch wrote -----------------------------------------------------------------

    def article_inserted(self, feed: FeedState, new: NewArticle, article_id: int) -> None:
        # A key that is absent was never asked: leave it to the database, which knows better.
        # (A new article's id is above every stored one, so a hash found stays first.)
        self.article_at_url[new.canonical_url] = article_id
        if new.content_hash in self.by_hash and self.by_hash[new.content_hash] is None:
            self.by_hash[new.content_hash] = (article_id, feed.outlet_id)

    def article_revised(self, hashes: tuple[str, str]) -> None:
        # The article's text (and perhaps owner) changed: which article comes first under the
        # old or new hash must be asked again.
        for digest in hashes:
            self.by_hash.pop(digest, None)

    def source_written(
        self, feed: FeedState, entry: EntryToStore, source_id: int, article_id: int
    ) -> None:
        self.by_guid[(feed.id, entry.guid)] = (source_id, article_id)
        if entry.link in self.source_at_url:  # the lowest article id of the URL's sources
            known = self.source_at_url[entry.link]
            self.source_at_url[entry.link] = article_id if known is None else min(known, article_id)

    def source_moved(self) -> None:
        # An existing source got a new URL or article: every URL answer may have changed.
        self.source_at_url.clear()


class NewIds:
    """Ids for new articles and sources, taken ahead of their rows (see _Writes): on SQLite
    with one query a transaction, on PostgreSQL as many as its entries may need."""

    def __init__(self, c: Connection) -> None:
        self.c = c
        self._next: dict[Table, int] = {}  # SQLite: the table's next id
        self._left: dict[Table, deque[int]] = {articles: deque(), article_sources: deque()}

    def take(self, table: Table, rows_at_most: int) -> int:
        """An id for a new row of `table` (articles or article_sources). The caller may insert
        up to rows_at_most more rows of each (this one included): on PostgreSQL that many ids
        of both tables are taken at once."""
        if self.c.dialect.name == "postgresql":
            if not self._left[table]:
                self._from_sequences(rows_at_most)
            return self._left[table].popleft()
        # SQLite gives a new row max(id) + 1; the transaction holds the write lock (BEGIN
        # IMMEDIATE), so nobody else can take those ids before it commits.
        if not self._next:
            row = self.c.execute(select(*(_max_id(t) for t in self._left))).one()
            self._next = {t: (last or 0) + 1 for t, last in zip(self._left, row, strict=True)}
        self._next[table] += 1
        return self._next[table] - 1

    def _from_sequences(self, n: int) -> None:
        # Each table's own sequence. An id taken but not used is only a gap; at most one is
        # lost per entry stored, so ids last as long as they would if every entry were new.
        nextval = [func.nextval(literal(self._sequence(t))) for t in self._left]
        series = func.generate_series(1, n).table_valued("i")
        for row in self.c.execute(select(*nextval).select_from(series)):
            for table, row_id in zip(self._left, row, strict=True):
                self._left[table].append(row_id)

    def _sequence(self, table: Table) -> str:
        """The table's id sequence, asked once per process: pg_get_serial_sequence in the
        select list ran its catalog lookup for every id taken (6 ms for a batch's ids)."""
        if table.name not in _SEQUENCES:
            query = select(func.pg_get_serial_sequence(table.name, "id"))
            _SEQUENCES[table.name] = self.c.execute(query).scalar_one()
        return _SEQUENCES[table.name]


_SEQUENCES: dict[str, str] = {}  # table -> its id sequence (PostgreSQL)


def _max_id(table: Table) -> ScalarSelect[Any]:
    return select(func.max(table.c.id)).scalar_subquery()


class _Writes:
    """The transaction's connection, holding back the INSERTs of new rows.

    Inserting row by row cost two statements an entry (a round trip each on PostgreSQL). New
    articles and sources are queued instead, with ids taken up front, and sent as one
    multi-row statement per table the moment any other statement runs, or the transaction
    ends. The database thus sees the same rows in the same order before every read, and a
    constraint a row breaks still fails the transaction (whose caller then retries or stores
    the entries one by one)."""

    def __init__(self, c: Connection) -> None:
        self.c, self.ids = c, NewIds(c)
        self.rows_expected = 0  # entries of the transaction not stored yet, the current included
        self._queued: dict[Table, list[dict[str, Any]]] = {articles: [], article_sources: []}

    def sent(self) -> Connection:
        """The connection, once every queued row is in the database: for any other statement."""
        self.flush()
        return self.c

    def insert(self, table: Table, row: dict[str, Any]) -> int:
        """Queue a new row of `table` (articles or article_sources); returns its id. An entry
        inserts at most one row of each."""
        row_id = self.ids.take(table, max(self.rows_expected, 1))
        self._queued[table].append({"id": row_id, **row})
        return row_id

    def amend(self, table: Table, row_id: int, **values: Any) -> None:
        """Set these values in a queued row of `table` (the last one queued, as a rule)."""
        for row in reversed(self._queued[table]):
            if row["id"] == row_id:
                row.update(values)
                return
        raise KeyError(f"no queued {table.name} row {row_id}")

    def flush(self) -> None:
        for table, rows in self._queued.items():  # articles first: sources refer to them
            if rows:
                insert_rows(self.c, table, rows)
                rows.clear()


def _unasked(keys: Iterable[K], *asked: dict[K, Any]) -> list[K]:
    """The distinct keys that some of the maps have not been asked."""
    return [k for k in dict.fromkeys(keys) if any(k not in m for m in asked)]


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
        "match_pending": True,  # queued for the match stage in the same transaction
        "story_id": None,  # see _place
        "story_reason": None,
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
            match_pending=True,  # a revision is matched again (it may say something new)
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
    existing = seen.source_of_guid(feed, entry.guid)
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
        seen.source_written(feed, entry, source_id, article_id)
        return True
    row = {
        "feed_id": feed.id,
        "outlet_id": feed.outlet_id,
        "guid": entry.guid,
        "first_seen_at": now,
        **values,
    }
    source_id = w.insert(article_sources, row)
    seen.source_written(feed, entry, source_id, article_id)
    return False
