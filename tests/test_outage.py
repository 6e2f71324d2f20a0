"""Delivery over hours of a simulated clock, on SQLite and PostgreSQL, against a loopback Slack
webhook: a channel down for an hour (HTTP 503, then connection refused) gets every alert once it
is back, batched and none twice; quiet hours and a rate limit hold messages and deliver them
afterwards, never dropping one. Each tick plans and sends as the daemon's delivery job does."""

from __future__ import annotations

import json
import re
import socket
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import pytest

from monitor.config import DeliverySettings
from monitor.demo.server import LoopbackServer, Route
from monitor.dispatch import Planner
from monitor.notify import SendResult, send, slack
from monitor.render import render
from monitor.rules.query import parse_query
from monitor.rules.spec import ChannelSpec, Delivery, RuleSet, WatchSpec
from monitor.sender import send_due
from tests.test_dispatch import ACTORS, Desk

DEFAULTS = DeliverySettings()  # Alertmanager's timing: group_wait 30 s, group_interval 5 m
TICK = timedelta(seconds=10)
HOOK = "/services/T000/B000/XXXX"

# what arrives, in turn, and the watches each text matches
STORIES = [
    ("Russia moved troops to the border.", {"troops"}),
    ("Lavrov met Blinken in Geneva.", {"lavrov"}),
    ("New sanctions were announced.", {"sanctions"}),
    (
        "Lavrov said the troops would stay whatever the sanctions.",
        {"troops", "lavrov", "sanctions"},
    ),
]
WATCHES = ("troops", "lavrov", "sanctions")
_LINK = re.compile(r"<https://x/(\d+)\|")


@dataclass
class Webhook:
    """A loopback Slack webhook that can answer 503, refuse connections, or work."""

    server: LoopbackServer
    closed_port: int
    tries: dict[int, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    # outbox id -> each delivered post's story numbers (from the payload's own text)
    delivered: dict[int, list[set[int]]] = field(default_factory=dict)
    delivered_at: dict[int, datetime] = field(default_factory=dict)

    def down(self, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
        if how == "503":
            self.server.routes[HOOK] = Route(status=503, body=b"service_unavailable")
            base = self.server.url("/services/")
        elif how == "refused":
            base = f"http://127.0.0.1:{self.closed_port}/services/"
        else:
            self.server.routes[HOOK] = Route(body=b"ok", content_type="text/plain")
            base = self.server.url("/services/")
        monkeypatch.setattr(slack, "SLACK_WEBHOOK_BASE", base)

    def send(self, clock):
        """monitor.notify.send, watched: when each message was tried, and what got through."""

        def observed(channel: ChannelSpec, content: dict) -> SendResult:
            outbox_id = int(content["key"].removeprefix("outbox-"))
            self.tries[outbox_id].append(clock())
            before = len(self.server.hits)
            result = send(channel, content)
            if result.ok:
                assert outbox_id not in self.delivered, f"message #{outbox_id} delivered twice"
                posts = [json.loads(h.body) for h in self.server.hits[before:]]
                self.delivered[outbox_id] = [
                    {int(n) for n in _LINK.findall(p["text"])} for p in posts
                ]
                self.delivered_at[outbox_id] = clock()
            return result

        return observed


@pytest.fixture
def webhook(monkeypatch) -> Iterator[Webhook]:
    # bound, never listening: connecting to it is refused, and no one else can take the port
    with socket.socket() as unused, LoopbackServer() as server:
        unused.bind(("127.0.0.1", 0))
        hook = Webhook(server, unused.getsockname()[1])
        hook.down(monkeypatch, "up")
        yield hook


@pytest.fixture(params=["planner", "every route"])
def incremental(request) -> bool:
    return request.param == "planner"


def desk_for(store, clock, channel: ChannelSpec, incremental: bool) -> Desk:
    watches = tuple(
        WatchSpec(name, parse_query(name), delivery=Delivery((channel.name,))) for name in WATCHES
    )
    desk = Desk(store, clock, RuleSet(ACTORS, watches, {channel.name: channel}))
    desk.planner = Planner() if incremental else None  # the daemon's, sweeping every 5 minutes
    return desk


def plan(desk: Desk) -> None:
    if desk.planner is not None:
        desk.planner.plan(desk.store, desk.rules, DEFAULTS, desk.clock(), render, desk.active.since)
    else:
        from monitor.dispatch import plan_all

        plan_all(desk.store, desk.rules, DEFAULTS, desk.clock(), render, desk.active.since)


def tell_next_story(
    desk: Desk, expected: dict[str, list[int]], matched_at: dict[int, datetime] | None = None
) -> None:
    """The next of STORIES arrives and is matched; `expected` gains it under each of its
    watches, `matched_at` when it came."""
    text, watches = STORIES[desk.n % len(STORIES)]
    desk.story(text)
    if matched_at is not None:
        matched_at[desk.n] = desk.clock()
    for watch in watches:
        expected[watch].append(desk.n)


def tick(store, desk: Desk, channel: ChannelSpec, send_fn) -> None:
    """One delivery tick as the daemon's job runs it: plan, then send what is due."""
    plan(desk)
    send_due(store, {"desk": channel}, DEFAULTS, "w1", desk.clock(), send_fn, clock=desk.clock)


def by_route(store, webhook: Webhook) -> dict[str, list[tuple[datetime, set[int]]]]:
    """Each route's delivered messages in the order they went out: when, and the stories each
    told (read from what the webhook received)."""
    routes = {r.id: r.route for r in store.outbox(limit=10_000)}
    found: dict[str, list[tuple[datetime, set[int]]]] = defaultdict(list)
    for outbox_id in sorted(webhook.delivered, key=lambda i: (webhook.delivered_at[i], i)):
        told = set().union(*webhook.delivered[outbox_id])
        found[routes[outbox_id]].append((webhook.delivered_at[outbox_id], told))
    return found


def assert_each_story_told_once(
    store, webhook: Webhook, expected: dict[str, list[int]]
) -> dict[str, list[tuple[datetime, set[int]]]]:
    told = by_route(store, webhook)
    assert set(told) == set(WATCHES)
    for route in WATCHES:
        numbers = [n for _, message in told[route] for n in message]
        assert sorted(numbers) == sorted(expected[route]), route  # all of them, none twice
    return told


def test_a_channel_down_for_an_hour_gets_every_alert_batched_once_it_is_back(
    store, clock, webhook, incremental, monkeypatch
):
    channel = ChannelSpec("desk", "slack://T000/B000/XXXX", "slack")
    desk = desk_for(store, clock, channel, incremental)
    observed = webhook.send(clock)
    start = clock()
    refused_at, back_at = start + timedelta(minutes=30), start + timedelta(minutes=60)
    last_story, end = start + timedelta(minutes=75), start + timedelta(minutes=105)
    expected: dict[str, list[int]] = defaultdict(list)
    matched_at: dict[int, datetime] = {}
    at_recovery = None
    webhook.down(monkeypatch, "503")
    while clock() < end:
        now = clock()
        if now == refused_at:
            webhook.down(monkeypatch, "refused")
        if now == back_at:
            at_recovery = store.outbox(limit=10_000)
            webhook.down(monkeypatch, "up")
        if now <= last_story and (now - start) % timedelta(minutes=2) == timedelta(0):
            tell_next_story(desk, expected, matched_at)
        tick(store, desk, channel, observed)
        clock.advance(seconds=TICK.total_seconds())

    # While it was down: one message per route waited, the rest of its stories stayed in the
    # store; the waiting ones retried with capped exponential backoff and none was given up on.
    assert at_recovery is not None
    assert sorted(r.route for r in at_recovery) == sorted(WATCHES)
    assert all(r.status == "pending" and r.attempts >= 6 for r in at_recovery)
    assert all("could not reach Slack" in (r.last_error or "") for r in at_recovery)
    for row in at_recovery:
        tried = [t for t in webhook.tries[row.id] if t < back_at]
        gaps = [later - earlier for earlier, later in zip(tried, tried[1:], strict=False)]
        owed = [min(DEFAULTS.retry_base * 2**i, DEFAULTS.retry_max) for i in range(len(gaps))]
        assert all(o <= g < o + TICK for g, o in zip(gaps, owed, strict=True)), (gaps, owed)
        # the next try waits the cap (30 s doubled 6 times would be 32 m)
        assert len(tried) == 7 and row.next_attempt_at - tried[-1] == DEFAULTS.retry_max
    assert min(webhook.delivered_at.values()) >= back_at  # nothing got through while down

    # Back: everything arrived, each story once per watch, in few messages.
    rows = store.outbox(limit=10_000)
    assert {r.status for r in rows} == {"sent"}
    told = assert_each_story_told_once(store, webhook, expected)
    for route in WATCHES:
        (waited_at, waited), (piled_at, piled), *later = told[route]
        before = {n for n in expected[route] if matched_at[n] < back_at}
        # the message that waited, then at once one with everything that piled up behind it
        assert before <= waited | piled and piled_at - waited_at <= 2 * TICK
        # then stories matched since it came back, grouped as usual (group_interval apart)
        times = [piled_at] + [at for at, _ in later]
        assert all(b - a >= DEFAULTS.group_interval for a, b in zip(times, times[1:], strict=False))
        assert not before & set().union(*(told for _, told in later))
    matches = sum(len(v) for v in expected.values())
    after = len([n for n, at in matched_at.items() if at >= back_at])
    assert matches >= 50 and len(rows) <= 2 * len(WATCHES) + after
    # The first retry after it came back got through, within the capped backoff; the other
    # waiting messages went out right after it, not each at the end of its own backoff.
    first = min(webhook.delivered_at.values())
    assert first <= back_at + DEFAULTS.retry_max
    assert all(webhook.delivered_at[r.id] <= first + 2 * TICK for r in at_recovery)


def test_quiet_hours_and_a_rate_limit_hold_messages_and_deliver_every_one_afterwards(
    store, clock, webhook, incremental
):
    channel = ChannelSpec(
        "desk",
        "slack://T000/B000/XXXX",
        "slack",
        timezone="Europe/Kyiv",
        quiet_hours=(time(22, 0), time(7, 0)),
        rate_limit=(2, timedelta(hours=1)),
    )
    clock.now = datetime(2022, 1, 20, 19, 0, tzinfo=UTC)  # 21:00 in Kyiv
    desk = desk_for(store, clock, channel, incremental)
    observed = webhook.send(clock)
    quiet_from = datetime(2022, 1, 20, 20, 0, tzinfo=UTC)
    quiet_until = datetime(2022, 1, 21, 5, 0, tzinfo=UTC)
    last_story = datetime(2022, 1, 21, 6, 0, tzinfo=UTC)
    end = datetime(2022, 1, 21, 10, 0, tzinfo=UTC)
    expected: dict[str, list[int]] = defaultdict(list)
    matched_at: dict[int, datetime] = {}
    while clock() < end:
        now = clock()
        if now <= last_story and now.minute % 30 == 0:
            tell_next_story(desk, expected, matched_at)
        tick(store, desk, channel, observed)
        clock.advance(minutes=1)  # holds end on whole minutes

    sent = sorted(webhook.delivered_at.values())
    assert not [t for t in sent if quiet_from <= t < quiet_until]  # nothing at night
    # never more than 2 messages in any hour
    assert all(len([u for u in sent if t - timedelta(hours=1) < u <= t]) <= 2 for t in sent)
    rows = store.outbox(limit=10_000)
    assert {r.status for r in rows} == {"sent"} and all(r.attempts == 1 for r in rows)
    told = assert_each_story_told_once(store, webhook, expected)
    for route in WATCHES:  # the night's stories: the message held since the evening, and one more
        night = {n for n in expected[route] if quiet_from <= matched_at[n] < quiet_until}
        assert len([at for at, stories in told[route] if stories & night]) <= 2


def test_a_message_refused_for_itself_stops_holding_back_its_route(
    store, clock, webhook, incremental
):
    """The channel works, but keeps answering 503 to one message (its content, say): once the
    channel has taken other messages for a while, that route's new stories go out without it,
    and the refused message keeps retrying on its own."""
    channel = ChannelSpec("desk", "slack://T000/B000/XXXX", "slack")
    desk = desk_for(store, clock, channel, incremental)
    observed = webhook.send(clock)
    poisoned: set[int] = set()

    def refusing_one(channel: ChannelSpec, content: dict) -> SendResult:
        outbox_id = int(content["key"].removeprefix("outbox-"))
        if not poisoned:
            poisoned.add(outbox_id)  # the first message of all is the one refused
        if outbox_id in poisoned:
            webhook.tries[outbox_id].append(clock())
            return SendResult(False, "HTTP 503 for this payload")
        return observed(channel, content)

    start = clock()
    expected: dict[str, list[int]] = defaultdict(list)
    while clock() < start + timedelta(minutes=45):
        now = clock()
        if (now - start) % timedelta(minutes=3) == timedelta(0):
            tell_next_story(desk, expected)
        tick(store, desk, channel, refusing_one)
        clock.advance(seconds=TICK.total_seconds())

    (stuck,) = poisoned
    rows = {r.id: r for r in store.outbox(limit=10_000)}
    assert rows[stuck].status == "pending" and len(webhook.tries[stuck]) >= 4  # still retried
    route = rows[stuck].route
    # its route's later stories went out in messages of their own, not held behind it
    delivered_for_route = [i for i in webhook.delivered if rows[i].route == route]
    assert delivered_for_route, "the route waited behind a message only it was refused"
    told = {n for i in delivered_for_route for post in webhook.delivered[i] for n in post}
    held = set(rows[stuck].stories)
    assert told and not told & held and told | held >= set(expected[route][len(held) :])
