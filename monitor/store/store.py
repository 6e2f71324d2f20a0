"""The Store: transactions around the stages' statements (feeds' schedule: monitor.store.schedule;
ingest, matching, delivery: their modules), articles with sources and revisions, learned
boilerplate. Connecting and creating the schema: monitor.store.engine."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from monitor.config import FeedSpec
from monitor.store import delivery, learned, matching, schedule
from monitor.store.delivery import OutboxRow
from monitor.store.engine import (
    connect,
    create_if_empty,
    is_transient,
    revision,
    serialise_schema_changes,
)
from monitor.store.ingest import EntryToStore, Ingest, Ingested, NewArticle, ingest_batch
from monitor.store.matching import ArticleToMatch, MatchFn, StoredMatch
from monitor.store.schedule import FeedHealth, FeedState, PolledOk
from monitor.store.schema import (
    HEAD_REVISION,
    article_revisions,
    article_sources,
    articles,
    feeds,
    outlets,
    stories,
)
from monitor.store.sql import chunks, pairs_of

log = logging.getLogger(__name__)

T = TypeVar("T")

ATOMIC_ATTEMPTS = 3  # tries of a transaction that a concurrent one got in the way of


class _Unit:
    """What the store calls of one atomic() share: its connection, the feeds' batches stored
    in it (lookups and queued rows), and each outlet's learned boilerplate as read in it (a
    batch of every feed asks)."""

    def __init__(self, c: Connection) -> None:
        self.c = c
        self.ingest = Ingest(c)
        self.learned: dict[tuple[int, int], frozenset[str]] = {}  # (outlet, min pages) -> keys


@dataclass(frozen=True)
class ArticleView:
    id: int
    title: str
    canonical_url: str
    author: str | None
    published_at: datetime | None
    first_seen_at: datetime
    language: str | None
    outlets: tuple[str, ...]
    revision: int
    backlog: bool
    text_source: str
    text: str
    story_id: int | None = None  # the story it reports (see monitor.store.clusters)
    story_reason: str | None = None  # why it was put there


@dataclass(frozen=True)
class StoryView:
    """A story as `monitor stories` lists it: its span, its articles and every outlet."""

    id: int
    first_at: datetime
    last_at: datetime
    articles: int
    title: str  # its first stored article's
    outlets: tuple[str, ...]


class Store:
    """Open with Store.open(url); every method is one short transaction, or a part of the
    transaction of the atomic() call it runs in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._unit = threading.local()  # .current: the atomic() call running on this thread

    # -- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, migrate: bool = True) -> Store:
        """Connect (creating the SQLite file's folder) and migrate the schema to the newest."""
        engine = connect(url)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    def migrate(self) -> None:
        """Bring the schema to the newest revision.

        A database already there is left alone, and an empty one gets the tables of schema.py
        and the newest revision's stamp at once (Alembic's recipe for a new database); only a
        database at an older revision runs the migrations. Alembic, imported for those alone,
        costs about 11 MB that the daemon (and the extract workers it forks) would keep."""
        with self.engine.begin() as conn:
            serialise_schema_changes(conn)
            if create_if_empty(conn) or revision(conn) == HEAD_REVISION:
                return
        self.upgrade("head")

    def upgrade(self, revision: str) -> None:
        """Run the Alembic migrations up to this revision."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "monitor.store:migrations")
        with self.engine.begin() as conn:
            serialise_schema_changes(conn)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- transactions ---------------------------------------------------------------------------
    def atomic(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args), made of store calls, in one transaction of this thread.

        A feed's batch makes several store calls; one transaction for them all saves a BEGIN
        and COMMIT each (and on PostgreSQL a connection check and the round trips). A deadlock
        or serialization failure on PostgreSQL runs fn again from the start; any other error
        rolls everything back and is raised."""
        for attempt in range(1, ATOMIC_ATTEMPTS + 1):
            try:
                with self.engine.begin() as c:
                    self._unit.current = unit = _Unit(c)
                    try:
                        done = fn(*args)
                        unit.ingest.send()  # the rows it still holds back, before COMMIT
                        return done
                    finally:
                        self._unit.current = None
            except DBAPIError as err:
                if attempt == ATOMIC_ATTEMPTS or not is_transient(err):
                    raise
                log.info("transaction collided with another (%s); running it again", err.orig)
        raise AssertionError("unreachable")

    def _current(self) -> _Unit | None:
        return getattr(self._unit, "current", None)

    @contextmanager
    def _write(self, articles_too: bool = True) -> Iterator[Connection]:
        """A transaction of its own, or the atomic() one this call is part of. There, a call
        that reads or writes articles or sources first sends the rows the unit holds back."""
        unit = self._current()
        if unit is not None:
            yield unit.ingest.send() if articles_too else unit.c
            return
        with self.engine.begin() as c:
            yield c

    @contextmanager
    def _read(self, articles_too: bool = True) -> Iterator[Connection]:
        """A connection for reading only: on SQLite its transaction is deferred, so it reads a
        WAL snapshot without waiting for (or holding up) a writer. Inside atomic(), the unit's
        connection, which sees the unit's own writes (see _write)."""
        unit = self._current()
        if unit is not None:
            yield unit.ingest.send() if articles_too else unit.c
            return
        with self.engine.connect().execution_options(monitor_read_only=True) as c:
            yield c

    # -- feeds and their schedule (monitor.store.schedule) --------------------------------------
    def sync_feeds(self, specs: Iterable[FeedSpec], now: datetime, retire: bool = True) -> None:
        """Make feeds match the config: add new ones (due now), update changed, and retire
        those no longer configured. Only the daemon retires: a one-off command run with
        another config must not stop feeds a running daemon polls."""
        with self.engine.begin() as c:
            serialise_schema_changes(c)
            schedule.sync_feeds(c, specs, now, retire)

    def claim_due_feeds(
        self,
        owner: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        names: Sequence[str] | None = None,
        ignore_schedule: bool = False,
        exclude: Sequence[int] = (),
    ) -> list[FeedState]:
        """Lease up to `limit` due feeds to `owner` (see schedule.claim_due)."""
        with self._write() as c:
            return schedule.claim_due(c, owner, now, lease, limit, names, ignore_schedule, exclude)

    def record_not_modified(
        self, feed: FeedState, owner: str, now: datetime, next_poll_at: datetime
    ) -> None:
        self.record_not_modified_many([(feed, next_poll_at)], owner, now)

    def record_not_modified_many(
        self, polls: Sequence[tuple[FeedState, datetime]], owner: str, now: datetime
    ) -> None:
        """record_not_modified for several feeds (feed, next poll) in one transaction."""
        with self._write() as c:
            schedule.finish_not_modified(c, polls, owner, now)

    def record_success(
        self,
        feed: FeedState,
        owner: str,
        now: datetime,
        next_poll_at: datetime,
        status: int,
        etag: str | None,
        last_modified: str | None,
        problem: str | None,
    ) -> None:
        """A fetched and processed feed (see schedule.finish_success)."""
        poll = PolledOk(feed, next_poll_at, status, etag, last_modified, problem)
        self.record_success_many([poll], owner, now)

    def record_success_many(self, polls: Sequence[PolledOk], owner: str, now: datetime) -> None:
        """record_success for several feeds in one transaction."""
        with self._write() as c:
            schedule.finish_success(c, polls, owner, now)

    def record_failure(
        self,
        feed: FeedState,
        owner: str,
        now: datetime,
        next_poll_at: datetime,
        error: str,
        status: int | None,
    ) -> None:
        with self._write() as c:
            schedule.finish_failure(c, feed, owner, now, next_poll_at, error, status)

    def renew_lease(self, feed: FeedState, owner: str, until: datetime) -> bool:
        """Extend our lease while a long feed is still being processed; False if we lost it."""
        return self.renew_leases([feed.id], owner, until) == 1

    def renew_leases(self, feed_ids: Sequence[int], owner: str, until: datetime) -> int:
        """Extend every lease this owner still holds among these feeds; how many it holds."""
        with self._write() as c:
            return schedule.renew_leases(c, feed_ids, owner, until)

    def release(self, feed: FeedState, owner: str) -> None:
        """Give a lease back untouched (shutdown before the feed was fetched)."""
        with self._write() as c:
            schedule.release(c, feed, owner)

    def feed_health(self) -> list[FeedHealth]:
        with self._read() as c:
            return schedule.feed_health(c)

    # -- entries and articles -------------------------------------------------------------------
    def entry_hashes(self, feed_id: int, guids: Sequence[str]) -> dict[str, str]:
        """guid -> entry_hash for the entries of this feed already stored."""
        return self.entry_hashes_many([(feed_id, guids)])[0]

    def entry_hashes_many(self, asks: Sequence[tuple[int, Sequence[str]]]) -> list[dict[str, str]]:
        """entry_hashes for several (feed id, GUIDs) in one query per FEEDS_PER_QUERY feeds."""
        found: dict[tuple[int, str], str] = {}
        lookups = [(feed_id, list(guids)) for feed_id, guids in asks if guids]
        if lookups:
            with self._read() as c:
                for chunk in chunks(lookups, FEEDS_PER_QUERY):
                    for r in c.execute(_ENTRY_HASHES.where(_of_feeds(c, chunk))):
                        found[(r.feed_id, r.guid)] = r.entry_hash
        return [
            {g: found[(feed_id, g)] for g in guids if (feed_id, g) in found}
            for feed_id, guids in asks
        ]

    def ingest(
        self,
        feed: FeedState,
        guid: str,
        entry_hash: str,
        link: str | None,
        article: NewArticle,
        now: datetime,
    ) -> Ingested:
        """Store one entry: a new article, another source of a known one, or a new revision."""
        return self.ingest_many(feed, [EntryToStore(guid, entry_hash, link, article)], now)[0]

    def ingest_many(
        self, feed: FeedState, entries: Sequence[EntryToStore], now: datetime
    ) -> list[Ingested]:
        """Store a batch of one feed's entries in one transaction (see monitor.store.ingest).

        A race with another worker inserting the same URL is retried once: the second attempt
        finds the other worker's row and records this entry as a source of it. Inside atomic()
        the error is raised instead: what the batch wrote is still in the unit's transaction,
        so only the unit's caller can start again.
        """
        unit = self._current()
        if unit is not None:
            return unit.ingest.store(feed, entries, now)
        try:
            with self._write() as c:
                return ingest_batch(c, feed, entries, now)
        except IntegrityError:
            with self._write() as c:
                return ingest_batch(c, feed, entries, now)

    def expect_ingest(self, batches: Sequence[tuple[FeedState, Sequence[EntryToStore]]]) -> None:
        """Inside atomic(): look up at once what these feeds' ingest_many calls will ask (see
        monitor.store.ingest.Ingest.expect). Elsewhere it does nothing."""
        unit = self._current()
        if unit is not None:
            unit.ingest.expect(batches)

    def touch_sources(self, feed_id: int, guids: Sequence[str], now: datetime) -> None:
        """These entries are still in the feed: retention keeps their articles."""
        self.touch_sources_many([(feed_id, guids)], now)

    def touch_sources_many(
        self, listed: Sequence[tuple[int, Sequence[str]]], now: datetime
    ) -> None:
        """touch_sources for several (feed id, GUIDs) in one transaction."""
        touched = [(feed_id, list(guids)) for feed_id, guids in listed if guids]
        if not touched:
            return
        with self._write() as c:
            for chunk in chunks(touched, FEEDS_PER_QUERY):
                c.execute(
                    update(article_sources).where(_of_feeds(c, chunk)).values(last_seen_at=now)
                )

    def articles(
        self,
        search: str | None = None,
        outlet: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        include_backlog: bool = True,
        story: int | None = None,
    ) -> list[ArticleView]:
        """Newest first; `search` matches title or text (case-insensitive substring); `story`:
        only the articles of that story."""
        query = select(articles).order_by(articles.c.first_seen_at.desc(), articles.c.id.desc())
        if story is not None:
            query = query.where(articles.c.story_id == story)
        if search:  # autoescape: a % or _ in the search is a character, not a wildcard
            needle = search.lower()
            query = query.where(
                or_(
                    func.lower(articles.c.title).contains(needle, autoescape=True),
                    func.lower(articles.c.text).contains(needle, autoescape=True),
                )
            )
        if since is not None:
            query = query.where(articles.c.first_seen_at >= since)
        if not include_backlog:
            query = query.where(articles.c.backlog.is_(False))
        if outlet:
            query = query.where(
                articles.c.id.in_(
                    select(article_sources.c.article_id)
                    .join(outlets)
                    .where(outlets.c.slug == outlet)
                )
            )
        with self._read() as c:
            rows = c.execute(query.limit(limit)).all()
            sources = _outlets_of(c, [r.id for r in rows])
        return [
            ArticleView(
                id=r.id,
                title=r.title,
                canonical_url=r.canonical_url,
                author=r.author,
                published_at=r.published_at,
                first_seen_at=r.first_seen_at,
                language=r.language,
                outlets=sources.get(r.id, ()),
                revision=r.revision,
                backlog=r.backlog,
                text_source=r.text_source,
                text=r.text,
                story_id=r.story_id,
                story_reason=r.story_reason,
            )
            for r in rows
        ]

    def stories(self, since: datetime | None = None, limit: int = 50) -> list[StoryView]:
        """Stories with more than one article first, then by their latest article, newest
        first; `since`: only stories with an article published since then."""
        query = (
            select(stories.c.id, stories.c.first_at, stories.c.last_at, stories.c.articles)
            .order_by((stories.c.articles > 1).desc(), stories.c.last_at.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(stories.c.last_at >= since)
        with self._read() as c:
            rows = c.execute(query).all()
            ids = [r.id for r in rows]
            members = c.execute(
                select(articles.c.story_id, articles.c.id, articles.c.title)
                .where(articles.c.story_id.in_(ids))
                .order_by(articles.c.id)
            ).all()
            sources = _outlets_of(c, [m.id for m in members])
        titles: dict[int, str] = {}
        outlets_of: dict[int, list[str]] = {}
        for m in members:
            titles.setdefault(m.story_id, m.title)
            found = outlets_of.setdefault(m.story_id, [])
            found.extend(o for o in sources.get(m.id, ()) if o not in found)
        return [
            StoryView(
                r.id,
                r.first_at,
                r.last_at,
                r.articles,
                titles.get(r.id, ""),
                tuple(outlets_of.get(r.id, ())),
            )
            for r in rows
        ]

    def counts(self) -> dict[str, int]:
        with self._read() as c:
            return {
                "articles": c.execute(select(func.count()).select_from(articles)).scalar_one(),
                "sources": c.execute(
                    select(func.count()).select_from(article_sources)
                ).scalar_one(),
                "revisions": c.execute(
                    select(func.count()).select_from(article_revisions)
                ).scalar_one(),
                "feeds": c.execute(select(func.count()).select_from(feeds)).scalar_one(),
            }

    def purge(self, older_than: datetime) -> int:
        """Delete articles first seen before `older_than` that no feed has listed since (a feed
        still carrying one would bring it back as news), with their sources and revisions."""
        with self._write() as c:
            still_listed = select(article_sources.c.article_id).where(
                article_sources.c.last_seen_at >= older_than
            )
            old = select(articles.c.id).where(
                articles.c.first_seen_at < older_than, articles.c.id.not_in(still_listed)
            )
            ids = list(c.execute(old).scalars())
            matching.delete_matches_of(c, ids)
            for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
                c.execute(delete(article_sources).where(article_sources.c.article_id.in_(chunk)))
                c.execute(
                    delete(article_revisions).where(article_revisions.c.article_id.in_(chunk))
                )
                c.execute(delete(articles).where(articles.c.id.in_(chunk)))
            # stories none of whose articles is left (their keys go with them)
            members = select(articles.c.story_id).where(articles.c.story_id.is_not(None))
            c.execute(
                delete(stories).where(stories.c.last_at < older_than, stories.c.id.not_in(members))
            )
            return len(ids)

    # -- watch rules and matches --------------------------------------------------------------
    def register_watches(self, definitions: dict[str, str], now: datetime) -> dict[str, datetime]:
        """Record the current watches (name -> canonical definition); returns when each was
        first seen, which is the oldest article it may match."""
        with self.engine.begin() as c:
            return matching.register_watches(c, definitions, now)

    def match_pending(self, match_fn: MatchFn, now: datetime, limit: int = 200) -> tuple[int, int]:
        """Match up to `limit` queued articles with `match_fn` and store what it found, in one
        transaction; returns (articles matched, matches written)."""
        with self.engine.begin() as c:
            pending = matching.claim_pending(c, limit)
            if not pending:
                return 0, 0
            found = match_fn(pending)
            written = matching.save_matches(c, zip(pending, found, strict=True), now)
            return len(pending), written

    def pending_matches(self) -> int:
        """How many articles wait for the match stage."""
        query = select(func.count()).select_from(articles).where(articles.c.match_pending)
        with self._read() as c:
            return int(c.execute(query).scalar_one())

    def articles_to_replay(
        self, since: datetime | None, after_id: int = 0, limit: int = 500
    ) -> list[ArticleToMatch]:
        """Stored articles in id order, for replaying watches over them (`monitor test-rules`)."""
        with self._read() as c:
            return matching.articles_between(c, since, after_id, limit)

    def count_articles(self, since: datetime | None = None) -> int:
        query = select(func.count()).select_from(articles)
        if since is not None:
            query = query.where(articles.c.first_seen_at >= since)
        with self._read() as c:
            return int(c.execute(query).scalar_one())

    def matches(
        self, watch: str | None = None, since: datetime | None = None, limit: int = 50
    ) -> list[StoredMatch]:
        with self._read() as c:
            return matching.stored_matches(c, watch, since, limit)

    # -- delivery -------------------------------------------------------------------------------
    def plan(self, fn: Callable[[Connection], T]) -> T:
        """Run a routing decision (see monitor.dispatch.plan_route) in one write transaction."""
        with self.engine.begin() as c:
            return fn(c)

    def claim_outbox(
        self, owner: str, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxRow]:
        with self.engine.begin() as c:
            return delivery.claim_outbox(c, owner, now, lease, limit)

    def finish_send(
        self,
        outbox_id: int,
        owner: str,
        now: datetime,
        *,
        error: str | None,
        retry_at: datetime | None,
        counts: bool = True,
        content: dict[str, Any] | None = None,
    ) -> bool:
        with self.engine.begin() as c:
            return delivery.finish_send(
                c,
                outbox_id,
                owner,
                now,
                error=error,
                retry_at=retry_at,
                counts=counts,
                content=content,
            )

    def sent_in(self, channel: str, since: datetime) -> int:
        with self._read() as c:
            return delivery.sent_in(c, channel, since)

    def outbox(self, status: str | None = None, limit: int = 50) -> list[OutboxRow]:
        with self._read() as c:
            return delivery.outbox_rows(c, status, limit)

    def set_outbox_status(self, outbox_id: int, status: str, now: datetime) -> bool:
        with self.engine.begin() as c:
            return delivery.set_status(c, outbox_id, status, now)

    # -- per-outlet boilerplate (monitor.store.learned) -------------------------------------------
    def learned_boilerplate(self, outlet_id: int, min_pages: int) -> frozenset[str]:
        return self.learned_boilerplate_many([outlet_id], min_pages)[0]

    def learned_boilerplate_many(
        self, outlet_ids: Sequence[int], min_pages: int
    ) -> list[frozenset[str]]:
        """Each outlet's learned boilerplate (line keys seen on >= min_pages pages), in one
        query: a first cycle meets hundreds of outlets at once. Inside atomic(), kept for
        the unit (every feed's batch asks)."""
        unit = self._current()
        cached = unit.learned if unit is not None else {}
        missing = [o for o in dict.fromkeys(outlet_ids) if (o, min_pages) not in cached]
        found: dict[int, frozenset[str]] = {}
        if missing:
            with self._read(articles_too=False) as c:
                found = learned.lines_of(c, missing, min_pages)
        if unit is not None:
            unit.learned.update({(o, min_pages): keys for o, keys in found.items()})
        return [found[o] if o in found else cached[(o, min_pages)] for o in outlet_ids]

    def pages_new_to_outlet(self, outlet_id: int, urls: Sequence[str]) -> set[str]:
        """The URLs the outlet has no source at yet (see learned.pages_new_to_outlet)."""
        with self._read() as c:
            return learned.pages_new_to_outlet(c, outlet_id, urls)

    def learn_boilerplate(
        self, outlet_id: int, pages: Sequence[dict[str, str]], min_pages: int
    ) -> frozenset[str]:
        """Count one more page for each line key of each page (key -> a sample line); return
        the keys that just became boilerplate."""
        if not any(pages):
            return frozenset()
        unit = self._current()
        if unit is not None:  # the counts change: the unit's copy of what is learned is stale
            unit.learned = {key: v for key, v in unit.learned.items() if key[0] != outlet_id}
        with self._write(articles_too=False) as c:
            return learned.count_pages(c, outlet_id, pages, min_pages)

    def rewrite_outlet_texts(
        self,
        outlet_id: int,
        rewrite: Callable[[str], str],
        hash_text: Callable[[str], str],
        limit: int = 1000,
    ) -> int:
        """Re-clean the outlet's recent stored texts after it learned new boilerplate lines
        (cleaning, not an edit by the outlet: not a new revision)."""
        with self._write() as c:
            changed = learned.rewrite_texts(c, outlet_id, rewrite, hash_text, limit)
        unit = self._current()
        if unit is not None and changed:
            unit.ingest.texts_rewritten()
        return changed


# Feeds whose entries one statement looks up; each adds a term to the statement.
FEEDS_PER_QUERY = 100

_ENTRY_HASHES = select(
    article_sources.c.feed_id, article_sources.c.guid, article_sources.c.entry_hash
)


def _of_feeds(c: Connection, asks: Sequence[tuple[int, list[str]]]) -> ColumnElement[bool]:
    """Rows of these (feed id, GUIDs)."""
    pairs = [(feed_id, guid) for feed_id, guids in asks for guid in guids]
    return pairs_of(c, article_sources.c.feed_id, article_sources.c.guid, pairs)


def _outlets_of(c: Connection, article_ids: list[int]) -> dict[int, tuple[str, ...]]:
    if not article_ids:
        return {}
    rows = c.execute(
        select(article_sources.c.article_id, outlets.c.slug)
        .distinct()
        .join(outlets, outlets.c.id == article_sources.c.outlet_id)
        .where(article_sources.c.article_id.in_(article_ids))
        .order_by(article_sources.c.article_id, outlets.c.slug)
    )
    result: dict[int, tuple[str, ...]] = {}
    for r in rows:
        result[r.article_id] = (*result.get(r.article_id, ()), r.slug)
    return result
