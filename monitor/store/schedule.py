"""Feeds and their schedule: syncing them with the config, leasing due feeds to a worker, and
ending each poll (its outcome, its next poll, the lease given back). Functions of a connection,
called by the Store inside its transactions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from monitor.config import FeedSpec
from monitor.store.schema import article_sources, feeds, outlets
from monitor.store.sql import one_of


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


def sync_feeds(
    c: Connection, specs: Iterable[FeedSpec], now: datetime, retire: bool = True
) -> None:
    """Make feeds match the config: add new ones (due now), update changed, and retire
    those no longer configured. Only the daemon retires: a one-off command run with
    another config must not stop feeds a running daemon polls."""
    specs = list(specs)
    outlet_ids = _sync_outlets(c, specs, now)
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


def _sync_outlets(c: Connection, specs: Sequence[FeedSpec], now: datetime) -> dict[str, int]:
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


def claim_due(
    c: Connection,
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
            select(feeds, outlets.c.slug).join(outlets).where(one_of(c, feeds.c.id, claimed))
        ).all()
        if claimed
        else []
    )
    return [_feed_state(r) for r in rows]


def finish_not_modified(
    c: Connection, polls: Sequence[tuple[FeedState, datetime]], owner: str, now: datetime
) -> None:
    """Feeds that answered 304 (feed, next poll): their leases released, next polls set."""
    c.execute(_FINISH, [_finish_params(feed, owner, now, at, 304, now) for feed, at in polls])


def finish_success(c: Connection, polls: Sequence[PolledOk], owner: str, now: datetime) -> None:
    """Feeds fetched and processed. Validators are saved only now, after every entry is
    stored: a crash mid-feed means a full re-fetch next time, never a 304 that hides entries."""
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
    for poll in polls:
        params = _success_params(poll, owner, now)
        by_columns.setdefault(frozenset(params), []).append(params)
    for rows in by_columns.values():  # one statement updates the same columns
        c.execute(_FINISH, rows)


def finish_failure(
    c: Connection,
    feed: FeedState,
    owner: str,
    now: datetime,
    next_poll_at: datetime,
    error: str,
    status: int | None,
) -> None:
    """A poll that failed: counted, and the first failure of a run kept."""
    # Fenced on the owner: if our lease expired and another worker took the feed, its
    # bookkeeping wins and ours is dropped. The counters are SQL expressions, so this
    # statement is built for each failure (the others are built once).
    failure = {
        "consecutive_failures": feeds.c.consecutive_failures + 1,
        "failing_since": func.coalesce(feeds.c.failing_since, now),
    }
    params = _polled(feed, owner, now, next_poll_at) | {
        "last_status": status,
        "last_error": error,
        "last_error_at": now,
    }
    c.execute(_FINISH.values(**failure), params)


def renew_leases(c: Connection, feed_ids: Sequence[int], owner: str, until: datetime) -> int:
    """Extend every lease this owner still holds among these feeds; how many it holds."""
    return c.execute(
        update(feeds)
        .where(feeds.c.id.in_(list(feed_ids)), feeds.c.lease_owner == owner)
        .values(lease_until=until)
    ).rowcount


def release(c: Connection, feed: FeedState, owner: str) -> None:
    """Give a lease back untouched (shutdown before the feed was fetched)."""
    c.execute(
        update(feeds)
        .where(feeds.c.id == feed.id, feeds.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def feed_health(c: Connection) -> list[FeedHealth]:
    """Every feed's schedule and last outcomes, with how many entries it brought."""
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
