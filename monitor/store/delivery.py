"""The delivery side of the store: what each route has not yet told each channel, the durable
outbox, the notification log and each route's timing state.

A message is queued in one transaction with the log rows of the stories it covers and its route's
new state; a sender claims it with a lease, sends, and marks it. A crash before the commit leaves
the stories unsent (they are queued again), after it leaves the message pending (sent once the
lease lapses): nothing is lost, and nothing is sent twice beyond the send that a crash interrupts
between the channel accepting it and the commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store.schema import (
    article_sources,
    articles,
    feed_alerts,
    feeds,
    matches,
    notification_log,
    outbox,
    outlets,
    routes,
)


@dataclass(frozen=True)
class RouteState:
    route: str
    channel: str
    created_at: datetime  # matches before this are not sent on this route
    last_message_at: datetime | None
    digest_until: datetime | None  # a digest covers matches up to here
    # the oldest message of the route that the channel refused or held and that is still
    # pending: nothing more is queued behind it (see _waiting)
    waiting: int | None = None


@dataclass(frozen=True)
class Story:
    """A matched story as a message shows it (through its first matched article), with every
    outlet that carried any of its articles and what the channel was told before."""

    story_id: int  # stories.id, or the article's id when it has no story
    article_id: int  # the article the entry shows: the story's first the watch matched
    title: str
    url: str
    outlets: tuple[str, ...]  # display names of the story's outlets, first carrier first
    published_at: datetime | None
    first_seen_at: datetime
    score: float
    terms: tuple[str, ...]
    snippet: str
    marks: tuple[tuple[int, int], ...]
    matched_at: datetime
    sent_outlets: int | None  # outlets when last sent to this channel; None: never sent
    sent_terms: tuple[str, ...] | None  # the terms it was sent with (None: not recorded)
    # (matched_at is the match's last update: a revision that matched again moves it)
    last_sent_at: datetime | None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    channel: str
    route: str
    kind: str
    stories: list[int]
    title: str
    content: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def route_state(
    c: Connection, route: str, channel: str, now: datetime, created: datetime | None = None
) -> RouteState:
    """The route's state, created the first time it is asked for as of `created` (default
    `now`; pass the time its watch was first seen, so the matches made since are not skipped).
    On PostgreSQL the row stays locked until the transaction ends, so two workers never plan
    one route."""
    waiting = _waiting(route, channel).scalar_subquery().label("waiting")
    query = select(routes, waiting).where(routes.c.route == route, routes.c.channel == channel)
    if c.dialect.name == "postgresql":
        query = query.with_for_update(of=routes)
    row = c.execute(query).first()
    if row is None:
        # Two workers planning a new route at once: the second waits for the first's row and
        # then locks it, instead of failing on the primary key.
        first = created or now
        values = {"route": route, "channel": channel, "created_at": first, "digest_until": first}
        c.execute(_insert_ignoring_conflicts(c).values(**values))
        row = c.execute(query).one()
    waits = row.waiting
    if waits is not None and _refused_alone(c, waits, channel, now):
        waits = None  # its own retries go on; new stories do not wait for it
    return RouteState(
        row.route, row.channel, row.created_at, row.last_message_at, row.digest_until, waits
    )


def _insert_ignoring_conflicts(c: Connection) -> Any:
    dialect = postgresql if c.dialect.name == "postgresql" else sqlite
    return dialect.insert(routes).on_conflict_do_nothing(
        index_elements=[routes.c.route, routes.c.channel]
    )


def _story_of(table: Any) -> Any:
    """An article's story: its own id when it has none (grouping off, or too old)."""
    return func.coalesce(table.c.story_id, table.c.id)


def stories_to_send(
    c: Connection, state: RouteState, recent: datetime, until: datetime | None = None
) -> list[Story]:
    """The route's matched stories (matches up to `until`) that the channel may need to hear
    about: those never sent to it since the route exists, and those matched since `recent`
    (sent before: the planner decides whether they changed). Only articles that may alert.
    A story matched through several articles is one Story (notification_log is per story)."""
    log = notification_log
    story = _story_of(articles).label("story")
    query = (
        select(
            story,
            matches.c.article_id,
            matches.c.score,
            matches.c.hits,
            matches.c.snippet,
            matches.c.marks,
            matches.c.updated_at,
            articles.c.title,
            articles.c.canonical_url,
            articles.c.published_at,
            articles.c.first_seen_at,
            log.c.outlets.label("sent_outlets"),
            log.c.terms.label("sent_terms"),
            log.c.last_sent_at,
        )
        .join(articles, articles.c.id == matches.c.article_id)
        .outerjoin(
            log,
            and_(
                log.c.route == matches.c.watch,
                log.c.story == _story_of(articles),
                log.c.channel == state.channel,
            ),
        )
        .where(
            matches.c.watch == state.route,
            matches.c.updated_at >= state.created_at,
            articles.c.backlog.is_(False),  # a feed's first poll never alerts
            or_(
                log.c.last_sent_at.is_(None),
                log.c.last_sent_at >= recent,  # it may have gained outlets since
                matches.c.updated_at >= recent,  # matched again (a revision)
            ),
        )
        .order_by(matches.c.updated_at, matches.c.article_id)
    )
    if until is not None:
        query = query.where(matches.c.updated_at <= until)
    by_story: dict[int, list[Any]] = defaultdict(list)
    for r in c.execute(query):
        by_story[r.story].append(r)
    carriers = _carriers(c, list(by_story))
    found = [_story(key, rows, carriers.get(key, ())) for key, rows in by_story.items()]
    return sorted(found, key=lambda s: (s.matched_at, s.story_id))


def _story(key: int, rows: list[Any], outlets: tuple[str, ...]) -> Story:
    """One story from its matched articles' rows: the first article shown, the best score."""
    first = min(rows, key=lambda r: r.article_id)
    terms = dict.fromkeys(h["term"] for r in rows for h in r.hits)
    return Story(
        story_id=key,
        article_id=first.article_id,
        title=first.title,
        url=first.canonical_url,
        outlets=outlets,
        published_at=first.published_at,
        first_seen_at=min(r.first_seen_at for r in rows),
        score=max(r.score for r in rows),
        terms=tuple(terms),
        snippet=first.snippet,
        marks=tuple((int(s), int(e)) for s, e in first.marks),
        matched_at=max(r.updated_at for r in rows),
        sent_outlets=first.sent_outlets,
        sent_terms=tuple(first.sent_terms) if first.sent_terms is not None else None,
        last_sent_at=first.last_sent_at,
    )


def _carriers(c: Connection, story_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Each story's outlets by display name, in the order they first carried any of its
    articles (a near-duplicate copy is a source of its article, so its outlet counts too)."""
    found: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(story_ids), 500):
        chunk = story_ids[start : start + 500]
        in_chunk = or_(
            articles.c.story_id.in_(chunk),
            and_(articles.c.story_id.is_(None), articles.c.id.in_(chunk)),
        )
        query = (
            select(_story_of(articles), outlets.c.name)
            .select_from(article_sources)
            .join(articles, articles.c.id == article_sources.c.article_id)
            .join(outlets, outlets.c.id == article_sources.c.outlet_id)
            .where(in_chunk)
            .order_by(article_sources.c.first_seen_at, article_sources.c.id)
        )
        for story_id, name in c.execute(query):
            if name not in found[story_id]:
                found[story_id].append(name)
    return {k: tuple(v) for k, v in found.items()}


def enqueue(
    c: Connection,
    state: RouteState,
    kind: str,
    stories: Sequence[Story],
    title: str,
    content: dict[str, Any],
    now: datetime,
    digest_until: datetime | None = None,
) -> int:
    """Queue one message and record, in the same transaction, the stories it tells the channel
    about and the route's new state. Returns the outbox id."""
    row = {
        "channel": state.channel,
        "route": state.route,
        "kind": kind,
        "stories": [s.story_id for s in stories],
        "title": title,
        "content": content,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    outbox_id = int(c.execute(insert(outbox).returning(outbox.c.id), row).scalar_one())
    for story in stories:
        _log_sent(c, state, story, outbox_id, now)
    values: dict[str, Any] = {"last_message_at": now}
    if digest_until is not None:
        values["digest_until"] = digest_until
    c.execute(
        update(routes)
        .where(routes.c.route == state.route, routes.c.channel == state.channel)
        .values(**values)
    )
    return outbox_id


def _log_sent(
    c: Connection, state: RouteState, story: Story, outbox_id: int, now: datetime
) -> None:
    log = notification_log
    key = and_(
        log.c.route == state.route, log.c.story == story.story_id, log.c.channel == state.channel
    )
    values = {
        "outlets": len(story.outlets),
        "terms": list(story.terms),
        "last_sent_at": now,
        "outbox_id": outbox_id,
    }
    if c.execute(update(log).where(key).values(**values)).rowcount == 0:
        first = {"route": state.route, "story": story.story_id, "channel": state.channel}
        c.execute(insert(log).values(**first, first_sent_at=now, **values))


Change = tuple[str, str, int, datetime]  # (watch, "match" or "source", row id, when)


def changes_since(c: Connection, since: datetime) -> set[Change]:
    """Matches made or updated at or after `since`, and sources added then to matched articles
    or to other articles of their stories (an update may be owed), each as (watch, what, row
    id, when): the planner compares one look's set with the last to find what is new, late
    commits included."""
    matched = select(matches.c.watch, literal("match"), matches.c.id, matches.c.updated_at).where(
        matches.c.updated_at >= since
    )
    carried = (
        select(
            matches.c.watch,
            literal("source"),
            article_sources.c.id,
            article_sources.c.first_seen_at,
        )
        .join(article_sources, article_sources.c.article_id == matches.c.article_id)
        .where(article_sources.c.first_seen_at >= since)
    )
    member, matched_member = articles.alias("member"), articles.alias("matched_member")
    in_story = (
        select(
            matches.c.watch,
            literal("source"),
            article_sources.c.id,
            article_sources.c.first_seen_at,
        )
        .select_from(article_sources)
        .join(member, member.c.id == article_sources.c.article_id)
        .join(matched_member, matched_member.c.story_id == member.c.story_id)
        .join(matches, matches.c.article_id == matched_member.c.id)
        .where(article_sources.c.first_seen_at >= since)
    )
    everything = matched.union_all(carried, in_story)
    return {(w, what, i, when) for w, what, i, when in c.execute(everything)}


def advance_digest(c: Connection, state: RouteState, until: datetime) -> None:
    """A digest fell due with nothing to say: the next one starts from here."""
    c.execute(
        update(routes)
        .where(routes.c.route == state.route, routes.c.channel == state.channel)
        .values(digest_until=until)
    )


# --------------------------------------------------------------------------------------------------
# Sending


def claim_outbox(
    c: Connection, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[OutboxRow]:
    """Pending messages due now and not leased by another sender, oldest first; leased to
    `owner` until now + lease (PostgreSQL: rows another sender is claiming are skipped)."""
    query = (
        select(outbox)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at <= now,
            or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )
    if c.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = c.execute(query).all()
    if rows:
        c.execute(
            update(outbox)
            .where(outbox.c.id.in_([r.id for r in rows]))
            .values(lease_owner=owner, lease_until=now + lease)
        )
    return [_outbox_row(r) for r in rows]


def renew_lease(c: Connection, outbox_id: int, owner: str, until: datetime) -> bool:
    """Extend `owner`'s lease on a pending message to `until`, just before sending it; False
    when it is no longer ours to send (its lease lapsed and another sender claimed it, or that
    sender has already finished it)."""
    result = c.execute(
        update(outbox)
        .where(
            outbox.c.id == outbox_id,
            outbox.c.lease_owner == owner,
            outbox.c.status == "pending",
        )
        .values(lease_until=until)
    )
    return result.rowcount == 1


def finish_send(
    c: Connection,
    outbox_id: int,
    owner: str,
    now: datetime,
    *,
    error: str | None,
    retry_at: datetime | None,
    counts: bool = True,
    content: dict[str, Any] | None = None,
) -> bool:
    """Record a send: sent (no error), failed for good (error, no retry_at), or pending again at
    retry_at. `counts` False (quiet hours, rate limit) does not count an attempt; `content`
    replaces the message's (what part of it was delivered). Returns False when the lease was
    lost (another sender took the message over)."""
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
    if content is not None:
        values["content"] = content
    if counts:
        values["attempts"] = outbox.c.attempts + 1
    if error is None and retry_at is None:
        values.update(status="sent", sent_at=now, last_error=None)
    elif retry_at is None:
        values.update(status="failed", last_error=error)
    else:
        values.update(next_attempt_at=retry_at, last_error=error)
    result = c.execute(
        update(outbox)
        .where(outbox.c.id == outbox_id, outbox.c.lease_owner == owner)
        .values(**values)
    )
    return result.rowcount == 1


# A message its channel still refuses this long after the channel took another one is refused
# for itself (its content, not an outage): its route stops waiting behind it.
REFUSED_ALONE_AFTER = timedelta(minutes=10)


def _waiting(route: str, channel: str) -> Select[Any]:
    """The route's oldest message to the channel that the channel refused or held (it waits
    for a retry, or for quiet hours or a rate limit to end) and that is still pending: what the
    route matched since waits in the store behind it, to go out as one message once it is sent
    (a channel down for an hour gets a few messages, not one per group_interval). A message
    queued and not yet tried does not count (nor, see _refused_alone, one refused for itself)."""
    return (
        select(outbox.c.id)
        .where(
            outbox.c.status == "pending",
            outbox.c.route == route,
            outbox.c.channel == channel,
            or_(outbox.c.attempts > 0, outbox.c.next_attempt_at > outbox.c.created_at),
        )
        .order_by(outbox.c.id)
        .limit(1)
    )


def _refused_alone(c: Connection, outbox_id: int, channel: str, now: datetime) -> bool:
    """Whether the channel took another message, queued after this one, at least
    REFUSED_ALONE_AFTER ago: then the sender retried this one at once (see retry_now), and it is
    refused for itself, not for an outage. Asked only of a route that waits (one query)."""
    mine = outbox.alias("mine")
    query = (
        select(outbox.c.id)
        .where(
            mine.c.id == outbox_id,
            outbox.c.channel == channel,
            outbox.c.status == "sent",
            outbox.c.sent_at > mine.c.created_at,
            outbox.c.sent_at <= now - REFUSED_ALONE_AFTER,
        )
        .limit(1)
    )
    return c.execute(query).first() is not None


def still_pending(c: Connection, outbox_ids: Sequence[int]) -> set[int]:
    """Those of these messages that are still pending (the others were sent, failed for good
    or were discarded)."""
    query = select(outbox.c.id).where(
        outbox.c.id.in_(list(outbox_ids)), outbox.c.status == "pending"
    )
    return {int(i) for i in c.execute(query).scalars()}


def retry_now(c: Connection, channel: str, now: datetime) -> int:
    """The channel took a message, so it is back: its messages waiting out a retry's backoff
    are due now rather than up to retry_max later. Returns how many."""
    result = c.execute(
        update(outbox)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at > now,
            outbox.c.channel == channel,
            outbox.c.attempts > 0,
        )
        .values(next_attempt_at=now)
    )
    return int(result.rowcount)


def sent_in(c: Connection, channel: str, since: datetime) -> int:
    """Messages sent to a channel since `since` (for its rate limit)."""
    query = select(func.count()).where(
        outbox.c.channel == channel, outbox.c.status == "sent", outbox.c.sent_at >= since
    )
    return int(c.execute(query).scalar_one())


def outbox_rows(c: Connection, status: str | None, limit: int) -> list[OutboxRow]:
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(outbox.c.status == status)
    return [_outbox_row(r) for r in c.execute(query)]


def set_status(c: Connection, outbox_id: int, status: str, now: datetime) -> bool:
    """Retry a failed message (status pending, due now) or discard it (status discarded). A
    retry asks again of the email recipients refused for good (the address may be fixed now);
    those that have the message do not get it again."""
    values: dict[str, Any] = {"status": status}
    if status == "pending":
        values.update(next_attempt_at=now, attempts=0)
        content = c.execute(select(outbox.c.content).where(outbox.c.id == outbox_id)).scalar()
        if isinstance(content, dict) and content.get("recipients_refused"):
            values["content"] = {**content, "recipients_refused": {}}
    result = c.execute(update(outbox).where(outbox.c.id == outbox_id).values(**values))
    return result.rowcount == 1


def _outbox_row(r: Any) -> OutboxRow:
    return OutboxRow(
        id=r.id,
        channel=r.channel,
        route=r.route,
        kind=r.kind,
        stories=list(r.stories),
        title=r.title,
        content=dict(r.content),
        status=r.status,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        last_error=r.last_error,
        created_at=r.created_at,
        sent_at=r.sent_at,
    )


# --------------------------------------------------------------------------------------------------
# Feed health


@dataclass(frozen=True)
class FeedTrouble:
    feed_id: int
    name: str
    failing_since: datetime | None  # None: the feed works now
    failures: int
    last_error: str | None


def feeds_failing_since(c: Connection, before: datetime) -> list[FeedTrouble]:
    """Active feeds failing since before `before`."""
    query = select(feeds).where(
        feeds.c.active.is_(True),
        feeds.c.consecutive_failures > 0,
        feeds.c.failing_since <= before,
    )
    return [_trouble(r) for r in c.execute(query)]


def open_feed_alerts(c: Connection) -> list[tuple[str, FeedTrouble, datetime]]:
    """(channel, the feed as it is now, the failing spell alerted) for alerts not yet followed
    by a recovery message."""
    query = (
        select(
            feed_alerts.c.channel,
            feed_alerts.c.failing_since.label("alerted_since"),
            feeds.c.id,
            feeds.c.name,
            feeds.c.failing_since,
            feeds.c.consecutive_failures,
            feeds.c.last_error,
        )
        .join(feeds, feeds.c.id == feed_alerts.c.feed_id)
        .where(feed_alerts.c.recovered_at.is_(None))
    )
    return [(r.channel, _trouble(r), r.alerted_since) for r in c.execute(query)]


def alerted(c: Connection, feed_id: int, channel: str, failing_since: datetime) -> bool:
    query = select(func.count()).where(
        feed_alerts.c.feed_id == feed_id,
        feed_alerts.c.channel == channel,
        feed_alerts.c.failing_since == failing_since,
    )
    return bool(c.execute(query).scalar_one())


def record_feed_alert(
    c: Connection, feed_id: int, channel: str, failing_since: datetime, now: datetime
) -> None:
    c.execute(
        insert(feed_alerts).values(
            feed_id=feed_id, channel=channel, failing_since=failing_since, alerted_at=now
        )
    )


def record_feed_recovery(
    c: Connection, feed_id: int, channel: str, failing_since: datetime, now: datetime
) -> None:
    c.execute(
        update(feed_alerts)
        .where(
            feed_alerts.c.feed_id == feed_id,
            feed_alerts.c.channel == channel,
            feed_alerts.c.failing_since == failing_since,
        )
        .values(recovered_at=now)
    )


def _trouble(r: Any) -> FeedTrouble:
    return FeedTrouble(r.id, r.name, r.failing_since, r.consecutive_failures, r.last_error)
