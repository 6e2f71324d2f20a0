"""Housekeeping of a long-running store: dropping old article text, database maintenance, and
the figures `monitor status` shows.

No schema change: an article whose text is dropped keeps its row with an empty text, its URL,
GUIDs, content hash, sources and near-duplicate fingerprint, so dedupe recognises it when a feed
carries it again; only the words are gone (and `monitor test-rules` can no longer replay them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, func, select, text, update

from monitor.store.schema import article_revisions, articles, feeds, matches, outbox

DROPPED = ""  # the text of an article whose text retention has dropped


def drop_old_text(engine: Engine, older_than: datetime) -> int:
    """Empty the text of articles last updated before `older_than` (and of their old
    revisions); an article still waiting to be matched keeps its text. Returns the articles
    emptied."""
    with engine.begin() as c:
        emptied = c.execute(
            update(articles)
            .where(
                articles.c.updated_at < older_than,
                articles.c.text != DROPPED,
                articles.c.match_pending.is_(False),
            )
            .values(text=DROPPED)
        ).rowcount
        c.execute(
            update(article_revisions)
            .where(article_revisions.c.replaced_at < older_than, article_revisions.c.text != "")
            .values(text=DROPPED)
        )
    return int(emptied or 0)


def maintain(engine: Engine) -> str:
    """Keep the query planner's statistics fresh and give freed pages back; says what it did.

    SQLite: `PRAGMA optimize` (ANALYZE where it helps), a WAL checkpoint that truncates the
    log, and an incremental vacuum (which frees pages on databases created with
    auto_vacuum=INCREMENTAL, as new ones are). PostgreSQL: ANALYZE; autovacuum does the rest."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as c:
            # outside a transaction: checkpoint and vacuum cannot run inside one
            raw = c.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA optimize")
            raw.execute("PRAGMA incremental_vacuum")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return "PRAGMA optimize, incremental_vacuum, wal_checkpoint(TRUNCATE)"
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")
        return "ANALYZE"
    return "nothing (unknown backend)"


@dataclass(frozen=True)
class StoreStatus:
    """What `monitor status` shows and /metrics' store gauges come from."""

    backend: str
    size_bytes: int | None
    articles: int
    articles_without_text: int | None  # None unless asked (a scan of every text)
    matches: int
    feeds_active: int
    feeds_failing: int
    last_poll_at: datetime | None
    last_success_at: datetime | None
    outbox: dict[str, int]  # status -> messages


def status(engine: Engine, texts: bool = False) -> StoreStatus:
    """The store's size, counts, last poll and outbox, in one read-only transaction; with
    `texts`, also how many articles had their text dropped (this reads every article)."""
    with engine.connect().execution_options(monitor_read_only=True) as c:
        count = func.count()
        feed_row = c.execute(
            select(
                func.count().filter(feeds.c.active),
                func.count().filter(and_(feeds.c.active, feeds.c.consecutive_failures > 0)),
                func.max(feeds.c.last_polled_at),
                func.max(feeds.c.last_success_at),
            )
        ).one()
        by_status = {
            str(row[0]): int(row[1])
            for row in c.execute(select(outbox.c.status, count).group_by(outbox.c.status))
        }
        return StoreStatus(
            backend=engine.dialect.name,
            size_bytes=_size(c, engine),
            articles=c.execute(select(count).select_from(articles)).scalar_one(),
            articles_without_text=c.execute(
                select(count).select_from(articles).where(articles.c.text == DROPPED)
            ).scalar_one()
            if texts
            else None,
            matches=c.execute(select(count).select_from(matches)).scalar_one(),
            feeds_active=feed_row[0],
            feeds_failing=feed_row[1],
            last_poll_at=feed_row[2],  # max() keeps the column's type: UTC-aware
            last_success_at=feed_row[3],
            outbox=by_status,
        )


def _size(c: Connection, engine: Engine) -> int | None:
    if engine.dialect.name == "postgresql":
        return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        # the main file and its write-ahead log: both are disk the store takes
        return sum(os.path.getsize(p) for p in (database, database + "-wal") if os.path.exists(p))
    return None


def cannot_open(url: str, err: BaseException) -> str:
    """One line saying which database could not be opened (password masked) and why."""
    from monitor.logs import redact

    reason = str(getattr(err, "orig", None) or err).strip().splitlines() or [type(err).__name__]
    return redact(f"cannot open the database {url}: {reason[0]}")
