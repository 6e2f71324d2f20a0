"""The Store: feeds' schedule state, articles with sources and revisions, learned boilerplate."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from monitor.config import FeedSpec
from monitor.store import delivery, matching
from monitor.store.delivery import OutboxRow
from monitor.store.ingest import EntryToStore, Ingest, Ingested, NewArticle, ingest_batch
from monitor.store.matching import ArticleToMatch, MatchFn, StoredMatch
from monitor.store.schema import (
    HEAD_REVISION,
    article_revisions,
    article_sources,
    articles,
    boilerplate_lines,
    feeds,
    metadata,
    outlets,
    stories,
)
from monitor.store.sql import one_of, pairs_of

log = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL's answers to two transactions that got in each other's way (deadlock_detected,
# serialization_failure): nothing is wrong with the data, and the same work done again succeeds.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
ATOMIC_ATTEMPTS = 3


@dataclass(frozen=True)
class FeedState:
    """A claimed feed: what the fetch/parse stages need, and the state that shapes the next poll."""

    id: int
    name: str
    url: str
    outlet_id: int
    outlet: str
    interval: timedelta
    language: str | None
    etag: str | None
    last_modified: str | None
    consecutive_failures: int
    first_poll: bool  # never polled successfully: its current entries are backlog


class _Unit:
    """What the store calls of one atomic() share: its connection, the feeds' batches stored
    in it (lookups and queued rows), and each outlet's learned boilerplate as read in it (a
    batch of every feed asks)."""

    def __init__(self, c: Connection) -> None:
        self.c = c
        self.ingest = Ingest(c)
        self.learned: dict[tuple[int, int], frozenset[str]] = {}  # (outlet, min pages) -> keys


@dataclass(frozen=True)
class PolledOk:
    """A feed fetched and processed: what record_success_many writes for it."""

    feed: FeedState
    next_poll_at: datetime
    status: int
    etag: str | None
    last_modified: str | None
    problem: str | None  # this poll's problems; None clears the last ones


@dataclass(frozen=True)
class FeedHealth:
    name: str
    outlet: str
    url: str
    active: bool
    next_poll_at: datetime
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_status: int | None
    consecutive_failures: int
    failing_since: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_problem: str | None
    last_problem_at: datetime | None
    articles: int


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
        engine = _engine(url)
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
            _serialise_schema_changes(conn)
            if _create_if_empty(conn) or _revision(conn) == HEAD_REVISION:
                return
        self.upgrade("head")

    def upgrade(self, revision: str) -> None:
        """Run the Alembic migrations up to this revision."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "monitor.store:migrations")
        with self.engine.begin() as conn:
            _serialise_schema_changes(conn)
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

    # -- feeds and their schedule ---------------------------------------------------------------
    def sync_feeds(self, specs: Iterable[FeedSpec], now: datetime, retire: bool = True) -> None:
        """Make feeds match the config: add new ones (due now), update changed, and retire
        those no longer configured. Only the daemon retires: a one-off command run with
        another config must not stop feeds a running daemon polls."""
        specs = list(specs)
        with self.engine.begin() as c:
            _serialise_schema_changes(c)
            outlet_ids = self._sync_outlets(c, specs, now)
            known = {r.name: r for r in c.execute(select(feeds.c.id, feeds.c.name, feeds.c.url))}
            for spec in specs:
                values = {
                    "outlet_id": outlet_ids[spec.outlet],
                    "url": spec.url,
                    "interval_s": int(spec.interval.total_seconds()),
                    "language": spec.language,
                    "tags": list(spec.tags),
                    "active": True,
                }
                row = known.get(spec.name)
                if row is None:
                    c.execute(
                        insert(feeds).values(
                            name=spec.name,
                            next_poll_at=now,
                            created_at=now,
                            consecutive_failures=0,
                            **values,
                        )
                    )
                    continue
                if row.url != spec.url:  # another address: a new feed, whose backlog is backlog
                    values |= {
                        "etag": None,
                        "last_modified": None,
                        "next_poll_at": now,
                        "first_success_at": None,
                    }
                c.execute(update(feeds).where(feeds.c.id == row.id).values(**values))
            if retire:
                names = [s.name for s in specs]
                c.execute(update(feeds).where(feeds.c.name.not_in(names)).values(active=False))

    def _sync_outlets(
        self, c: Connection, specs: Sequence[FeedSpec], now: datetime
    ) -> dict[str, int]:
        ids = {r.slug: r.id for r in c.execute(select(outlets.c.id, outlets.c.slug))}
        for spec in specs:
            if spec.outlet not in ids:
                ids[spec.outlet] = c.execute(
                    insert(outlets)
                    .values(
                        slug=spec.outlet,
                        name=spec.outlet_name,
                        language=spec.language,
                        tags=list(spec.tags),
                        created_at=now,
                    )
                    .returning(outlets.c.id)
                ).scalar_one()
            else:
                c.execute(
                    update(outlets)
                    .where(outlets.c.id == ids[spec.outlet])
                    .values(name=spec.outlet_name)
                )
        return ids

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
        """Lease up to `limit` due feeds to `owner`; a feed leased to someone else is skipped.

        On PostgreSQL the candidate rows are locked FOR UPDATE SKIP LOCKED, so concurrent workers
        take disjoint sets without waiting; on every backend the conditional UPDATE re-checks the
        lease, so a feed is never held by two owners at once.
        """
        # A feed leased to this very owner and not in `exclude` was left by a poll that died
        # before it could release it (the database refused the write: disk full, read-only):
        # it is this worker's to take again at once rather than after the lease runs out.
        free = or_(
            feeds.c.lease_until.is_(None), feeds.c.lease_until < now, feeds.c.lease_owner == owner
        )
        due = and_(feeds.c.active.is_(True), free)
        if not ignore_schedule:
            due = and_(due, feeds.c.next_poll_at <= now)
        if names:
            due = and_(due, feeds.c.name.in_(list(names)))
        if exclude:  # feeds this worker is still polling: its own lease must not re-admit them
            due = and_(due, feeds.c.id.not_in(list(exclude)))
        candidates = (
            select(feeds.c.id)
            .where(due)
            .order_by(feeds.c.next_poll_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as c:
            ids = list(c.execute(candidates).scalars())
            # One UPDATE for them all (one a feed cost 0.3 s a thousand feeds on PostgreSQL);
            # RETURNING says which ones it really leased.
            claimed = (
                list(
                    c.execute(
                        update(feeds)
                        .where(one_of(c, feeds.c.id, ids), free)
                        .values(lease_owner=owner, lease_until=now + lease)
                        .returning(feeds.c.id)
                    ).scalars()
                )
                if ids
                else []
            )
            rows = (
                c.execute(
                    select(feeds, outlets.c.slug)
                    .join(outlets)
                    .where(one_of(c, feeds.c.id, claimed))
                ).all()
                if claimed
                else []
            )
        return [_feed_state(r) for r in rows]

    def record_not_modified(
        self, feed: FeedState, owner: str, now: datetime, next_poll_at: datetime
    ) -> None:
        self.record_not_modified_many([(feed, next_poll_at)], owner, now)

    def record_not_modified_many(
        self, polls: Sequence[tuple[FeedState, datetime]], owner: str, now: datetime
    ) -> None:
        """record_not_modified for several feeds (feed, next poll) in one transaction."""
        with self._write() as c:
            c.execute(
                _FINISH, [_finish_params(feed, owner, now, at, 304, now) for feed, at in polls]
            )

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
        """A fetched and processed feed. Validators are saved only now, after every entry is
        stored: a crash mid-feed means a full re-fetch next time, never a 304 that hides entries."""
        poll = PolledOk(feed, next_poll_at, status, etag, last_modified, problem)
        self.record_success_many([poll], owner, now)

    def record_success_many(self, polls: Sequence[PolledOk], owner: str, now: datetime) -> None:
        """record_success for several feeds in one transaction."""
        by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
        for poll in polls:
            params = _success_params(poll, owner, now)
            by_columns.setdefault(frozenset(params), []).append(params)
        with self._write() as c:
            for rows in by_columns.values():  # one statement updates the same columns
                c.execute(_FINISH, rows)

    def record_failure(
        self,
        feed: FeedState,
        owner: str,
        now: datetime,
        next_poll_at: datetime,
        error: str,
        status: int | None,
    ) -> None:
        self._finish(
            feed,
            owner,
            now,
            next_poll_at,
            last_status=status,
            last_error=error,
            last_error_at=now,
            consecutive_failures=feeds.c.consecutive_failures + 1,
            failing_since=func.coalesce(feeds.c.failing_since, now),
        )

    def renew_lease(self, feed: FeedState, owner: str, until: datetime) -> bool:
        """Extend our lease while a long feed is still being processed; False if we lost it."""
        return self.renew_leases([feed.id], owner, until) == 1

    def renew_leases(self, feed_ids: Sequence[int], owner: str, until: datetime) -> int:
        """Extend every lease this owner still holds among these feeds; how many it holds."""
        with self._write() as c:
            return c.execute(
                update(feeds)
                .where(feeds.c.id.in_(list(feed_ids)), feeds.c.lease_owner == owner)
                .values(lease_until=until)
            ).rowcount

    def release(self, feed: FeedState, owner: str) -> None:
        """Give a lease back untouched (shutdown before the feed was fetched)."""
        with self._write() as c:
            c.execute(
                update(feeds)
                .where(feeds.c.id == feed.id, feeds.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def _finish(
        self, feed: FeedState, owner: str, now: datetime, next_poll_at: datetime, **values: Any
    ) -> None:
        # Fenced on the owner: if our lease expired and another worker took the feed, its
        # bookkeeping wins and ours is dropped.
        sql = {k: v for k, v in values.items() if isinstance(v, ColumnElement)}
        params = _polled(feed, owner, now, next_poll_at) | {
            k: v for k, v in values.items() if k not in sql
        }
        # Plain values use one statement built once (most polls end there); SQL expressions
        # (failure counters) need a statement of their own.
        with self._write() as c:
            c.execute(_FINISH.values(**sql) if sql else _FINISH, params)

    def feed_health(self) -> list[FeedHealth]:
        counts = (
            select(article_sources.c.feed_id, func.count().label("n"))
            .group_by(article_sources.c.feed_id)
            .subquery()
        )
        query = (
            select(feeds, outlets.c.slug, func.coalesce(counts.c.n, 0).label("n"))
            .join(outlets)
            .outerjoin(counts, counts.c.feed_id == feeds.c.id)
            .order_by(outlets.c.slug, feeds.c.name)
        )
        with self._read() as c:
            return [
                FeedHealth(
                    name=r.name,
                    outlet=r.slug,
                    url=r.url,
                    active=r.active,
                    next_poll_at=r.next_poll_at,
                    last_polled_at=r.last_polled_at,
                    last_success_at=r.last_success_at,
                    last_status=r.last_status,
                    consecutive_failures=r.consecutive_failures,
                    failing_since=r.failing_since,
                    last_error=r.last_error,
                    last_error_at=r.last_error_at,
                    last_problem=r.last_problem,
                    last_problem_at=r.last_problem_at,
                    articles=r.n,
                )
                for r in c.execute(query)
            ]

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
                for chunk in _chunks(lookups, FEEDS_PER_QUERY):
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
            for chunk in _chunks(touched, FEEDS_PER_QUERY):
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

    # -- per-outlet boilerplate ---------------------------------------------------------------
    def learned_boilerplate(self, outlet_id: int, min_pages: int) -> frozenset[str]:
        return self.learned_boilerplate_many([outlet_id], min_pages)[0]

    def learned_boilerplate_many(
        self, outlet_ids: Sequence[int], min_pages: int
    ) -> list[frozenset[str]]:
        """Each outlet's learned boilerplate (line keys seen on >= min_pages pages), in one
        query: a first cycle meets hundreds of outlets at once."""
        unit = self._current()
        cached = unit.learned if unit is not None else {}
        missing = [o for o in dict.fromkeys(outlet_ids) if (o, min_pages) not in cached]
        found: dict[int, set[str]] = {o: set() for o in missing}
        if missing:
            b = boilerplate_lines.c
            with self._read(articles_too=False) as c:
                for chunk in _chunks(missing, OUTLETS_PER_QUERY):
                    query = select(b.outlet_id, b.line_key).where(
                        one_of(c, b.outlet_id, chunk), b.pages >= min_pages
                    )
                    for outlet_id, key in c.execute(query):
                        found[outlet_id].add(key)
        learned = {o: frozenset(keys) for o, keys in found.items()}
        if unit is not None:
            unit.learned.update({(o, min_pages): keys for o, keys in learned.items()})
        return [learned[o] if o in learned else cached[(o, min_pages)] for o in outlet_ids]

    def pages_new_to_outlet(self, outlet_id: int, urls: Sequence[str]) -> set[str]:
        """The URLs the outlet has no source at yet: pages whose lines the learner has not
        counted (a page counted twice would make its own text look like boilerplate)."""
        query = select(article_sources.c.url).where(
            article_sources.c.outlet_id == outlet_id, article_sources.c.url.in_(list(urls))
        )
        with self._read() as c:
            return set(urls) - set(c.execute(query).scalars())

    def learn_boilerplate(
        self, outlet_id: int, pages: Sequence[dict[str, str]], min_pages: int
    ) -> frozenset[str]:
        """Count one more page for each line key of each page (key -> a sample line); return
        the keys that just became boilerplate."""
        seen_in = Counter(k for page in pages for k in page)
        samples = {k: s for page in pages for k, s in page.items()}
        if not seen_in:
            return frozenset()
        unit = self._current()
        if unit is not None:  # the counts change: the unit's copy of what is learned is stale
            unit.learned = {key: v for key, v in unit.learned.items() if key[0] != outlet_id}
        with self._write(articles_too=False) as c:
            counts = dict(
                c.execute(
                    select(boilerplate_lines.c.line_key, boilerplate_lines.c.pages).where(
                        boilerplate_lines.c.outlet_id == outlet_id,
                        boilerplate_lines.c.line_key.in_(list(seen_in)),
                    )
                ).all()
            )
            fresh = [
                {"outlet_id": outlet_id, "line_key": k, "pages": n, "sample": samples[k][:500]}
                for k, n in seen_in.items()
                if k not in counts
            ]
            if fresh:
                c.execute(insert(boilerplate_lines), fresh)
            by_increment: dict[int, list[str]] = {}
            for k, n in seen_in.items():
                if k in counts:
                    by_increment.setdefault(n, []).append(k)
            for n, keys in by_increment.items():
                c.execute(
                    update(boilerplate_lines)
                    .where(
                        boilerplate_lines.c.outlet_id == outlet_id,
                        boilerplate_lines.c.line_key.in_(keys),
                    )
                    .values(pages=boilerplate_lines.c.pages + n)
                )
        return frozenset(
            k for k, n in seen_in.items() if counts.get(k, 0) < min_pages <= counts.get(k, 0) + n
        )

    def rewrite_outlet_texts(
        self,
        outlet_id: int,
        rewrite: Callable[[str], str],
        hash_text: Callable[[str], str],
        limit: int = 1000,
    ) -> int:
        """Re-clean the outlet's recent stored texts after it learned new boilerplate lines.

        This is cleaning, not an edit by the outlet, so it is not a new revision."""
        changed = 0
        with self._write() as c:
            rows = c.execute(
                select(articles.c.id, articles.c.text)
                .where(articles.c.outlet_id == outlet_id)
                .order_by(articles.c.id.desc())
                .limit(limit)
            )
            for row in rows.all():
                text = rewrite(row.text)
                if text != row.text:
                    c.execute(
                        update(articles)
                        .where(articles.c.id == row.id)
                        .values(text=text, content_hash=hash_text(text))
                    )
                    changed += 1
        unit = self._current()
        if unit is not None and changed:
            unit.ingest.texts_rewritten()
        return changed


# Feeds whose entries one statement looks up; each adds a term to the statement.
FEEDS_PER_QUERY = 100
OUTLETS_PER_QUERY = 1000

_ENTRY_HASHES = select(
    article_sources.c.feed_id, article_sources.c.guid, article_sources.c.entry_hash
)


def _of_feeds(c: Connection, asks: Sequence[tuple[int, list[str]]]) -> ColumnElement[bool]:
    """Rows of these (feed id, GUIDs)."""
    pairs = [(feed_id, guid) for feed_id, guids in asks for guid in guids]
    return pairs_of(c, article_sources.c.feed_id, article_sources.c.guid, pairs)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _polled(feed: FeedState, owner: str, now: datetime, next_poll_at: datetime) -> dict[str, Any]:
    """_FINISH's parameters every poll ends with: the lease released, the next poll set."""
    return {
        "feed_id": feed.id,
        "owner": owner,
        "lease_owner": None,
        "lease_until": None,
        "last_polled_at": now,
        "next_poll_at": next_poll_at,
    }


def _finish_params(
    feed: FeedState, owner: str, now: datetime, next_poll_at: datetime, status: int, ok: datetime
) -> dict[str, Any]:
    """_FINISH's parameters for a poll that succeeded (a 304 or a processed 200)."""
    return _polled(feed, owner, now, next_poll_at) | {
        "last_status": status,
        "last_success_at": ok,
        "consecutive_failures": 0,
        "failing_since": None,
    }


def _success_params(poll: PolledOk, owner: str, now: datetime) -> dict[str, Any]:
    """_FINISH's parameters for a fetched and processed feed."""
    params = _finish_params(poll.feed, owner, now, poll.next_poll_at, poll.status, now)
    params |= {"etag": poll.etag, "last_modified": poll.last_modified}
    if poll.feed.first_poll:
        params["first_success_at"] = now
    # The last poll's problems; a clean poll clears them, so `monitor feeds` shows what
    # is wrong now, not a parse error fixed weeks ago.
    params |= {"last_problem": poll.problem, "last_problem_at": now if poll.problem else None}
    return params


# Ends a poll: the SET clause comes from the parameters' keys (column names).
_FINISH = update(feeds).where(
    feeds.c.id == bindparam("feed_id"), feeds.c.lease_owner == bindparam("owner")
)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        _create_private_file(Path(url.removeprefix("sqlite:///")).expanduser())
    # The pipeline runs store calls on a thread of their own while commands run them on the
    # main thread; each connection is used by one thread at a time (the pool hands it out).
    sqlite = url.startswith("sqlite")
    connect_args = {"check_same_thread": False} if sqlite else {}
    engine = create_engine(url, pool_pre_ping=not sqlite, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _create_private_file(path: Path) -> None:
    """Creates the SQLite file (and its folder) readable by its owner only, if it is missing.

    The store holds every article, match and outbox message, and the outbox holds rendered
    messages; SQLite gives its -wal and -shm files the database file's permissions. A file
    that exists already keeps the permissions its owner chose."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def is_transient(err: DBAPIError) -> bool:
    """Whether the database refused this only because of a concurrent transaction."""
    return getattr(err.orig, "sqlstate", None) in TRANSIENT_SQLSTATES


_VERSION_TABLE = "alembic_version"


def _create_if_empty(c: Connection) -> bool:
    """An empty database gets every table and the newest revision's stamp; False if not empty."""
    if inspect(c).get_table_names():
        return False
    metadata.create_all(c)
    stamp = Table(
        _VERSION_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),  # as Alembic names it
    )
    stamp.create(c)
    c.execute(stamp.insert().values(version_num=HEAD_REVISION))
    return True


def _revision(c: Connection) -> str | None:
    if not inspect(c).has_table(_VERSION_TABLE):
        return None
    return c.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()


def _serialise_schema_changes(c: Connection) -> None:
    """Workers starting together must not both create tables or insert the same feeds.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction already holds the
    write lock from its first statement (BEGIN IMMEDIATE, see _engine)."""
    if c.dialect.name == "postgresql":
        c.exec_driver_sql("SELECT pg_advisory_xact_lock(7206318)")


def _sqlite_begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is locked"
    # when another process wrote in between (WAL snapshot rule); taking the write lock up front
    # makes a second process (`monitor poll --once` beside `monitor run`) wait its turn instead.
    # Store._read connections never write, so they read a snapshot without the lock.
    read_only = conn.get_execution_options().get("monitor_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" event issue BEGIN IMMEDIATE
    cur = dbapi_conn.cursor()
    # WAL lets readers (monitor articles) run while the daemon writes; busy_timeout makes a
    # second process wait for the write lock instead of failing at once.
    # A new database frees deleted pages on `PRAGMA incremental_vacuum` (daily maintenance);
    # on an existing one this is a no-op until a full VACUUM.
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _feed_state(r: Any) -> FeedState:
    return FeedState(
        id=r.id,
        name=r.name,
        url=r.url,
        outlet_id=r.outlet_id,
        outlet=r.slug,
        interval=timedelta(seconds=r.interval_s),
        language=r.language,
        etag=r.etag,
        last_modified=r.last_modified,
        consecutive_failures=r.consecutive_failures,
        first_poll=r.first_success_at is None,
    )


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
