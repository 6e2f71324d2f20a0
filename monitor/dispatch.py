"""Route matches to channels: when an immediate alert or a digest is due, which stories it
carries, and the message that tells them (Alertmanager's timing: group_wait, group_interval,
repeat_interval).

The decisions are pure functions of the store's rows and the clock; `plan_route` runs them for
one (watch, channel) in one transaction, so the message, the record of what it told the channel
and the route's new state are written together."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection

from monitor.config import DeliverySettings, duration_text
from monitor.render.model import Entry, Message
from monitor.rules.snippet import Snippet
from monitor.rules.spec import ChannelSpec, Delivery, RuleSet, WatchSpec
from monitor.store import Store, delivery
from monitor.store.delivery import RouteState, Story, advance_digest, enqueue, route_state
from monitor.store.delivery import stories_to_send as read_stories

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=2)  # how long after a story is sent its new outlets still update it
MAX_MISSED_DIGESTS = 100_000  # fire times skipped while looking for the last one due


@dataclass(frozen=True)
class Timing:
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    updates: bool


def timing(delivery: Delivery, defaults: DeliverySettings) -> Timing:
    """A watch's timing, monitor.yaml's `delivery` section filling what it leaves out."""
    return Timing(
        delivery.group_wait if delivery.group_wait is not None else defaults.group_wait,
        delivery.group_interval or defaults.group_interval,
        delivery.repeat_interval or defaults.repeat_interval,
        delivery.updates,
    )


def select_stories(
    stories: Sequence[Story], t: Timing, now: datetime
) -> tuple[list[Story], list[Story]]:
    """The stories to tell the channel now: (new ones, updated ones). A story sent before is
    sent again only if it changed (it gained outlets, or a revision matched new terms: an update,
    when the watch wants updates), or if it was matched again after repeat_interval."""
    new, updated = [], []
    for story in stories:
        if story.sent_outlets is None or story.last_sent_at is None:
            new.append(story)
        elif t.updates and (len(story.outlets) > story.sent_outlets or _new_terms(story)):
            updated.append(story)
        elif (
            story.matched_at > story.last_sent_at and story.last_sent_at <= now - t.repeat_interval
        ):
            new.append(story)
    return new, updated


def immediate_due(state: RouteState, pending: Sequence[Story], t: Timing, now: datetime) -> bool:
    """A burst waits group_wait from its first match; after a message, the next waits until
    group_interval has passed."""
    if not pending:
        return False
    due = min(s.matched_at for s in pending) + t.group_wait
    if state.last_message_at is not None:
        due = max(due, state.last_message_at + t.group_interval)
    return now >= due


def digest_due(cron: str, timezone: str, covered_until: datetime, now: datetime) -> datetime | None:
    """The latest time the digest's cron fired after `covered_until` and not after `now` (the
    digest then covers everything up to it), or None when it has not fired since. One digest
    makes up for any number of fire times missed while the daemon was down."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))
    fire = trigger.get_next_fire_time(None, covered_until + timedelta(microseconds=1))
    last = None
    for _ in range(MAX_MISSED_DIGESTS):
        if fire is None or fire > now:
            break
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return last


def compose(
    watch: str,
    channel: ChannelSpec,
    kind: str,
    new: Sequence[Story],
    updated: Sequence[Story],
    now: datetime,
) -> Message:
    """The message for these stories: best first (score, then newest), capped at the
    channel's max_entries with the rest counted."""
    entries = [_entry(watch, s, None) for s in new]
    entries += [_entry(watch, s, _what_changed(s)) for s in updated]
    entries.sort(key=lambda e: (-e.score, -(e.published or now).timestamp()))
    shown = entries[: channel.max_entries]
    return Message(
        kind=kind,  # type: ignore[arg-type]
        route=watch,
        title=_title(watch, kind, len(new), len(updated)),
        entries=tuple(shown),
        more=len(entries) - len(shown),
        timezone=channel.timezone,
        created_at=now,
    )


def _entry(watch: str, story: Story, update: str | None) -> Entry:
    return Entry(
        title=story.title,
        url=story.url,
        outlets=story.outlets,
        published=story.published_at or story.first_seen_at,
        watch=watch,
        score=story.score,
        terms=story.terms,
        snippet=Snippet(story.snippet, story.marks),
        update=update,
    )


def _new_terms(story: Story) -> list[str]:
    """Terms a revision of the story matched that it was not sent with."""
    if story.sent_terms is None:
        return []
    return [term for term in story.terms if term not in story.sent_terms]


def _what_changed(story: Story) -> str:
    changes = []
    added = story.outlets[story.sent_outlets or 0 :]
    if added:
        changes.append(f"+{len(added)} source{'s' if len(added) != 1 else ''}: {', '.join(added)}")
    if terms := _new_terms(story):
        changes.append(f"now also matches {', '.join(terms)}")
    return "; ".join(changes)


def _title(watch: str, kind: str, new: int, updated: int) -> str:
    parts = []
    if new:
        parts.append(f"{new} new article{'s' if new != 1 else ''}")
    if updated:
        parts.append(f"{updated} update{'s' if updated != 1 else ''}")
    what = ", ".join(parts) or "nothing new"
    return f"{watch} digest: {what}" if kind == "digest" else f"{watch}: {what}"


# --------------------------------------------------------------------------------------------------
# Against the store


Render = Callable[[Message, str], Any]


def plan_route(
    c: Connection,
    watch: WatchSpec,
    channel: ChannelSpec,
    defaults: DeliverySettings,
    now: datetime,
    render: Render,
    since: datetime | None = None,
) -> int | None:
    """Queue the message this route owes its channel now, if any; returns its outbox id.
    `since`: when the watch was first seen (a new route starts there, not at its first plan)."""
    state = route_state(c, watch.name, channel.name, min(since or now, now))
    t = timing(watch.delivery, defaults)
    cron = watch.delivery.digest
    if cron is not None:
        fired = digest_due(cron, channel.timezone, state.digest_until or state.created_at, now)
        if fired is None:
            return None
        new, updated = select_stories(read_stories(c, state, now - LOOKBACK, fired), t, now)
        if not new and not updated:
            advance_digest(c, state, fired)
            return None
        kind, until = "digest", fired
    else:
        new, updated = select_stories(read_stories(c, state, now - LOOKBACK), t, now)
        if not immediate_due(state, [*new, *updated], t, now):
            return None
        kind, until = ("alert" if new else "update"), None
    message = compose(watch.name, channel, kind, new, updated, now)
    content = _content(render(message, channel.format), channel.format)
    return enqueue(c, state, kind, [*new, *updated], message.title, content, now, until)


def _content(rendered: Any, fmt: str) -> dict[str, Any]:
    is_instance = is_dataclass(rendered) and not isinstance(rendered, type)
    values = asdict(rendered) if is_instance else dict(rendered)
    return {"format": fmt, **values}


def _plan(
    watch: WatchSpec,
    channel: ChannelSpec,
    defaults: DeliverySettings,
    now: datetime,
    render: Render,
    since: datetime | None,
    c: Connection,
) -> int | None:
    return plan_route(c, watch, channel, defaults, now, render, since)


def plan_all(
    store: Store,
    rules: RuleSet,
    defaults: DeliverySettings,
    now: datetime,
    render: Render,
    since: dict[str, datetime] | None = None,
) -> list[int]:
    """Every route's due message queued, each route in its own transaction; returns the new
    outbox ids. A route that fails is logged and tried again next time."""
    queued = []
    for watch in rules.watches:
        for name in watch.delivery.channels:
            channel = rules.channels.get(name)
            if channel is None:
                continue  # the config check refuses this; a reload may be under way
            try:
                outbox_id = store.plan(
                    functools.partial(
                        _plan, watch, channel, defaults, now, render, (since or {}).get(watch.name)
                    )
                )
            except Exception:
                log.exception("route %s -> %s: could not plan its message", watch.name, name)
                continue
            if outbox_id is not None:
                queued.append(outbox_id)
    return queued


# --------------------------------------------------------------------------------------------------
# Feed health


def plan_feed_health(
    c: Connection,
    channels: dict[str, ChannelSpec],
    defaults: DeliverySettings,
    now: datetime,
    render: Render,
) -> list[int]:
    """One message to each feed-health channel when a feed has been failing for
    `feed_failing_after`, and one when it works again."""
    queued = []
    wanted = [channels[name] for name in defaults.feed_health if name in channels]
    for feed in delivery.feeds_failing_since(c, now - defaults.feed_failing_after):
        assert feed.failing_since is not None
        for channel in wanted:
            if delivery.alerted(c, feed.feed_id, channel.name, feed.failing_since):
                continue
            since = feed.failing_since.astimezone(ZoneInfo(channel.timezone))
            text = (
                f"Failing since {since:%Y-%m-%d %H:%M %Z} ({feed.failures} attempts in a row); "
                f"it is retried with backoff.\nLast error: {feed.last_error or 'unknown'}"
            )
            title = f"Feed {feed.name} is failing"
            queued.append(_health(c, channel, title, text, now, render))
            delivery.record_feed_alert(c, feed.feed_id, channel.name, feed.failing_since, now)
    for name, feed, alerted_since in delivery.open_feed_alerts(c):
        recovered = channels.get(name)
        if recovered is None or feed.failing_since == alerted_since:
            continue  # still the same failing spell
        # whole minutes: a recovery noticed 4,261.3 s later reads 1h11m
        down = duration_text(timedelta(minutes=(now - alerted_since) // timedelta(minutes=1)))
        title = f"Feed {feed.name} works again"
        text = f"It had been failing for about {down} before this recovery."
        queued.append(_health(c, recovered, title, text, now, render))
        delivery.record_feed_recovery(c, feed.feed_id, name, alerted_since, now)
    return queued


def _health(
    c: Connection, channel: ChannelSpec, title: str, text: str, now: datetime, render: Render
) -> int:
    message = Message(
        kind="health",
        route="feed-health",
        title=title,
        entries=(),
        more=0,
        timezone=channel.timezone,
        created_at=now,
        text=text,
    )
    state = route_state(c, "feed-health", channel.name, now)
    content = _content(render(message, channel.format), channel.format)
    return enqueue(c, state, "health", [], title, content, now)
