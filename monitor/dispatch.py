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

from sqlalchemy import Connection

from monitor.config import DeliverySettings, duration_text
from monitor.cron import digest_due, next_digest
from monitor.render.model import Entry, Message
from monitor.rules.snippet import Snippet
from monitor.rules.spec import ChannelSpec, Delivery, RuleSet, WatchSpec
from monitor.store import Store, delivery
from monitor.store.delivery import RouteState, Story, advance_digest, enqueue, route_state
from monitor.store.delivery import stories_to_send as read_stories

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=2)  # how long after a story is sent its new outlets still update it


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
    due = immediate_due_at(state, pending, t)
    return due is not None and now >= due


def immediate_due_at(state: RouteState, pending: Sequence[Story], t: Timing) -> datetime | None:
    """When the pending stories' message falls due (None: nothing pending)."""
    if not pending:
        return None
    due = min(s.matched_at for s in pending) + t.group_wait
    if state.last_message_at is not None:
        due = max(due, state.last_message_at + t.group_interval)
    return due


def repeat_due_at(stories: Sequence[Story], chosen: Sequence[Story], t: Timing) -> datetime | None:
    """The earliest time a story matched again since it was sent, and not chosen now, may be
    sent again (repeat_interval after it was sent); None if there is none."""
    taken = {s.story_id for s in chosen}
    times = [
        s.last_sent_at + t.repeat_interval
        for s in stories
        if s.story_id not in taken and s.last_sent_at is not None and s.matched_at > s.last_sent_at
    ]
    return min(times, default=None)


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
    """ "troops: 3 new stories, 1 update": an entry is a story, however many outlets and
    articles it has (with stories off, each article is its own)."""
    parts = []
    if new:
        parts.append(f"{new} new {'stories' if new != 1 else 'story'}")
    if updated:
        parts.append(f"{updated} update{'s' if updated != 1 else ''}")
    what = ", ".join(parts) or "nothing new"
    return f"{watch} digest: {what}" if kind == "digest" else f"{watch}: {what}"


# --------------------------------------------------------------------------------------------------
# Against the store


Render = Callable[[Message, str], Any]


@dataclass(frozen=True)
class Planned:
    """What planning a route did: the message it queued, if any, and when the route must be
    looked at again even if nothing changes (a group waiting, a digest's next fire time, a story
    matched again that may be repeated); None: only a change can make it owe something."""

    outbox_id: int | None
    wake: datetime | None
    waiting: int | None = None  # the message the route's new stories wait behind, if any


def plan_route(
    c: Connection,
    watch: WatchSpec,
    channel: ChannelSpec,
    defaults: DeliverySettings,
    now: datetime,
    render: Render,
    since: datetime | None = None,
) -> Planned:
    """Queue the message this route owes its channel now, if any.
    `since`: when the watch was first seen (a new route starts there, not at its first plan).

    Nothing is queued while the channel has refused or held (quiet hours, a rate limit) the
    route's last message: the stories matched since stay in the store, unsent, and go out
    together in one message once that one is sent (or given up on)."""
    state = route_state(c, watch.name, channel.name, now, created=min(since or now, now))
    if state.waiting is not None:
        return Planned(None, None, state.waiting)
    t = timing(watch.delivery, defaults)
    cron = watch.delivery.digest
    if cron is not None:
        covered = state.digest_until or state.created_at
        fired = digest_due(cron, channel.timezone, covered, now)
        if fired is None:
            return Planned(None, next_digest(cron, channel.timezone, covered))
        wake = next_digest(cron, channel.timezone, fired)
        new, updated = select_stories(read_stories(c, state, now - LOOKBACK, fired), t, now)
        if not new and not updated:
            advance_digest(c, state, fired)
            return Planned(None, wake)
        kind, until = "digest", fired
    else:
        stories = read_stories(c, state, now - LOOKBACK)
        new, updated = select_stories(stories, t, now)
        due = immediate_due_at(state, [*new, *updated], t)
        if due is None or now < due:
            return Planned(
                None, min(filter(None, (due, repeat_due_at(stories, [], t))), default=None)
            )
        wake = repeat_due_at(stories, [*new, *updated], t)
        kind, until = ("alert" if new else "update"), None
    message = compose(watch.name, channel, kind, new, updated, now)
    content = _content(render(message, channel.format), channel.format)
    outbox_id = enqueue(c, state, kind, [*new, *updated], message.title, content, now, until)
    return Planned(outbox_id, wake)


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
) -> Planned:
    return plan_route(c, watch, channel, defaults, now, render, since)


Route = tuple[WatchSpec, ChannelSpec]


def _routes(rules: RuleSet) -> dict[tuple[str, str], Route]:
    """Every (watch, channel) of the rules, by name."""
    found = {}
    for watch in rules.watches:
        for name in watch.delivery.channels:
            channel = rules.channels.get(name)
            if channel is not None:  # the config check refuses this; a reload may be under way
                found[(watch.name, name)] = (watch, channel)
    return found


def _plan_routes(
    store: Store,
    routes: Sequence[Route],
    defaults: DeliverySettings,
    now: datetime,
    render: Render,
    since: dict[str, datetime] | None,
) -> list[tuple[Route, Planned | None]]:
    """Each route planned in its own transaction; a route that fails is logged (None)."""
    done: list[tuple[Route, Planned | None]] = []
    for watch, channel in routes:
        plan = functools.partial(
            _plan, watch, channel, defaults, now, render, (since or {}).get(watch.name)
        )
        try:
            done.append(((watch, channel), store.plan(plan)))
        except Exception:
            log.exception("route %s -> %s: could not plan its message", watch.name, channel.name)
            done.append(((watch, channel), None))
    return done


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
    planned = _plan_routes(store, list(_routes(rules).values()), defaults, now, render, since)
    return [p.outbox_id for _, p in planned if p is not None and p.outbox_id is not None]


SWEEP_EVERY = timedelta(minutes=5)  # the planner's safety net: every route looked at
CHANGE_MARGIN = timedelta(seconds=30)  # matches committed this late are still noticed


class Planner:
    """Plans only the routes that may owe a message, so a tick costs what changed, not what
    is configured: at start, after a reload and every `sweep_every` every route (a safety net,
    and how another worker's leftovers are found); in between, one query for the matches made
    or updated and the sources added to matched articles since the last tick (looking `margin`
    further back, for transactions that committed late; a change already seen by the last look
    does not count twice), whose watches' routes are planned, plus the routes whose time has come
    (a group's group_wait or group_interval, a digest's cron fire time, a repeat), remembered
    in memory from the last time each was planned, and the routes whose stories waited behind
    a message the channel refused or held, once that message is no longer pending (one more
    query, only while some route waits).

    Several workers may each run one: a route planned by two is still planned once at a time
    (its row is locked) and the notification log keeps a story from going out twice."""

    def __init__(self, sweep_every: timedelta = SWEEP_EVERY, margin: timedelta = CHANGE_MARGIN):
        self.sweep_every = sweep_every
        self.margin = margin
        self._rules: RuleSet | None = None
        self._defaults: DeliverySettings | None = None
        self._swept_at: datetime | None = None
        self._looked_at: datetime | None = None  # changes since then (- margin) not yet seen
        self._wake: dict[tuple[str, str], datetime] = {}  # route -> when to plan it anyway
        self._seen: set[delivery.Change] = set()  # the changes found by the last look
        self._waiting: dict[tuple[str, str], int] = {}  # route -> the message it waits behind

    def plan(
        self,
        store: Store,
        rules: RuleSet,
        defaults: DeliverySettings,
        now: datetime,
        render: Render,
        since: dict[str, datetime] | None = None,
    ) -> list[int]:
        """Queue the messages due now; returns the new outbox ids."""
        routes = _routes(rules)
        if self._sweep_due(rules, defaults, now):
            chosen = list(routes)
            self._wake.clear()
            self._waiting.clear()
            self._seen = set()  # every route is planned now: what changed before is covered
            self._rules, self._defaults, self._swept_at = rules, defaults, now
        else:
            assert self._looked_at is not None
            # a read-only connection: on SQLite it reads a snapshot without the write lock
            with store.engine.connect().execution_options(monitor_read_only=True) as c:
                seen = delivery.changes_since(c, self._looked_at - self.margin)
                blocking = set(self._waiting.values())
                pending = delivery.still_pending(c, list(blocking)) if blocking else set()
            changed = {watch for watch, *_ in seen - self._seen}
            self._seen = seen
            chosen = [
                key
                for key, (watch, _) in routes.items()
                # a digest's stories wait for its fire time, whatever changes
                if (key[0] in changed and watch.delivery.digest is None)
                or ((wake := self._wake.get(key)) is not None and wake <= now)
                or ((waits := self._waiting.get(key)) is not None and waits not in pending)
            ]
        self._looked_at = now
        queued = []
        planned = _plan_routes(store, [routes[k] for k in chosen], defaults, now, render, since)
        for (watch, channel), done in planned:
            key = (watch.name, channel.name)
            wake = now if done is None else done.wake  # a route that failed: again next tick
            if wake is None:
                self._wake.pop(key, None)
            else:
                self._wake[key] = wake
            if done is not None and done.waiting is not None:
                self._waiting[key] = done.waiting
            else:
                self._waiting.pop(key, None)
            if done is not None and done.outbox_id is not None:
                queued.append(done.outbox_id)
        return queued

    def _sweep_due(self, rules: RuleSet, defaults: DeliverySettings, now: datetime) -> bool:
        return (
            self._swept_at is None
            or self._looked_at is None
            or rules is not self._rules
            or defaults is not self._defaults
            or now < self._swept_at  # the clock went back
            or now - self._swept_at >= self.sweep_every
        )


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
