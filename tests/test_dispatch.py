"""Routing and sending on SQLite and PostgreSQL: group_wait and group_interval, never the same
story twice, updates for new outlets, digests on cron (missed ones sent at start), the outbox
sender with retries, permanent failures, quiet hours and a loopback webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import event

from monitor.config import DeliverySettings
from monitor.cron import digest_due
from monitor.demo.server import LoopbackServer, Route
from monitor.dispatch import Planner, plan_all
from monitor.notify import SendResult, redact, send
from monitor.rules.active import ActiveRules, definitions, match_stored
from monitor.rules.compiler import compile_rules
from monitor.rules.query import parse_query
from monitor.rules.spec import ActorSpec, Alias, ChannelSpec, Delivery, RuleSet, WatchSpec
from monitor.sender import quiet_until, send_due
from tests.test_store import article, claim_one, spec

DEFAULTS = DeliverySettings()
ACTORS = {"russia": ActorSpec("russia", (Alias("Russia"),))}
CONSOLE = ChannelSpec("desk", "console://", "text")


def text_render(message, fmt):
    """A stand-in renderer: these tests are about timing and bookkeeping, not formats."""
    lines = [message.title] + [
        f"- {e.title} ({', '.join(e.outlets)}) {e.update or ''}" for e in message.entries
    ]
    return {"subject": message.title, "text": "\n".join(lines)}


def rules_with(delivery: Delivery, channel: ChannelSpec = CONSOLE) -> RuleSet:
    watch = WatchSpec("troops", parse_query("troops"), delivery=delivery)
    return RuleSet(ACTORS, (watch,), {channel.name: channel})


class Desk:
    """A store with one feed, watches that match, and helpers to add stories and plan.

    `incremental`: plan as the daemon does, with a Planner that started when the desk did and
    never sweeps again (so each decision below is made from what changed and what it
    remembered); otherwise plan_all, every route each time."""

    incremental = False  # set by the `planning` fixture

    def __init__(self, store, clock, rules: RuleSet) -> None:
        self.store, self.clock, self.rules = store, clock, rules
        store.sync_feeds([spec("rferl"), spec("ap", outlet="ap")], clock())
        self.feed = claim_one(store, "rferl", clock)
        self.other = claim_one(store, "ap", clock)
        since = store.register_watches(definitions(rules), clock())
        self.active = ActiveRules(compile_rules(rules), since)
        self.n = 0
        self.planner = Planner(sweep_every=timedelta(days=3650)) if self.incremental else None
        if self.planner is not None:
            assert self.plan() == []  # the daemon's first tick: every route, nothing due yet

    def story(self, text: str = "Russia moved troops to the border.", feed=None) -> None:
        self.n += 1
        url = f"https://x/{self.n}"
        body = f"{text} Story number {self.n}. " * 5
        self.store.ingest(
            feed or self.feed, f"g{self.n}", "h", url, article(url, text=body), self.clock()
        )
        self.store.match_pending(lambda arts: match_stored(self.active, arts), self.clock())

    def plan(self) -> list[int]:
        since = self.active.since
        if self.planner is not None:
            return self.planner.plan(
                self.store, self.rules, DEFAULTS, self.clock(), text_render, since
            )
        return plan_all(self.store, self.rules, DEFAULTS, self.clock(), text_render, since)


@pytest.fixture(params=["every route", "incremental"])
def planning(request, monkeypatch):
    """Plan with plan_all, and again with the daemon's incremental Planner."""
    monkeypatch.setattr(Desk, "incremental", request.param == "incremental")


both_planners = pytest.mark.usefixtures("planning")


@pytest.fixture
def immediate(store, clock, planning):
    return Desk(store, clock, rules_with(Delivery(("desk",), group_wait=timedelta(seconds=30))))


def test_a_burst_waits_group_wait_and_goes_out_as_one_message(immediate, clock):
    immediate.story()
    clock.advance(seconds=10)
    immediate.story()
    assert immediate.plan() == []  # the first match is 10 s old: group_wait is 30 s
    clock.advance(seconds=21)
    (queued,) = immediate.plan()
    (row,) = immediate.store.outbox()
    assert (row.id, row.kind, row.title, len(row.stories)) == (
        queued,
        "alert",
        "troops: 2 new stories",
        2,
    )
    assert immediate.plan() == []  # never the same stories twice


def test_later_matches_wait_group_interval_after_a_message(immediate, clock):
    immediate.story()
    clock.advance(seconds=31)
    assert len(immediate.plan()) == 1
    clock.advance(seconds=40)
    immediate.story()
    clock.advance(seconds=40)  # group_wait passed, but the last message was 80 s ago (< 5 min)
    assert immediate.plan() == []
    clock.advance(minutes=4)
    assert len(immediate.plan()) == 1
    assert [len(r.stories) for r in immediate.store.outbox()] == [1, 1]


def test_a_story_that_gains_an_outlet_is_sent_again_as_an_update(immediate, clock):
    immediate.story("Russia moved troops.")
    clock.advance(minutes=1)
    immediate.plan()
    clock.advance(minutes=10)
    # the same text on another outlet: another source of the same article
    immediate.store.ingest(
        immediate.other,
        "o1",
        "h",
        "https://ap/1",
        article("https://ap/1", text="Russia moved troops. Story number 1. " * 5),
        clock(),
    )
    (queued,) = immediate.plan()
    update = immediate.store.outbox()[0]
    assert (update.id, update.kind, update.title) == (queued, "update", "troops: 1 update")
    assert "+1 source: AP" in update.content["text"]


@both_planners
def test_updates_can_be_turned_off(store, clock):
    desk = Desk(
        store, clock, rules_with(Delivery(("desk",), group_wait=timedelta(0), updates=False))
    )
    desk.story("Russia moved troops.")
    desk.plan()
    clock.advance(minutes=10)
    desk.store.ingest(
        desk.other,
        "o1",
        "h",
        "https://ap/1",
        article("https://ap/1", text="Russia moved troops. Story number 1. " * 5),
        clock(),
    )
    assert desk.plan() == []


def test_a_first_poll_never_alerts(immediate, clock):
    immediate.store.ingest(
        immediate.feed,
        "old",
        "h",
        "https://x/old",
        article("https://x/old", text="Russia troops, backlog. " * 5, backlog=True),
        clock(),
    )
    immediate.store.match_pending(lambda a: match_stored(immediate.active, a), clock())
    clock.advance(minutes=5)
    assert immediate.plan() == [] and immediate.store.matches()  # matched, never sent


@both_planners
def test_a_digest_covers_what_matched_since_the_previous_one(store, clock):
    clock.now = datetime(2022, 1, 20, 6, 0, tzinfo=UTC)
    desk = Desk(store, clock, rules_with(Delivery(("desk",), digest="0 7 * * *")))
    desk.story()
    clock.now = datetime(2022, 1, 20, 6, 59, tzinfo=UTC)
    assert desk.plan() == []
    clock.now = datetime(2022, 1, 20, 7, 0, 5, tzinfo=UTC)
    (queued,) = desk.plan()
    digest = desk.store.outbox()[0]
    assert (digest.kind, digest.title) == ("digest", "troops digest: 1 new story")
    clock.now = datetime(2022, 1, 21, 7, 0, 5, tzinfo=UTC)
    assert desk.plan() == []  # nothing new: no empty digest


@both_planners
def test_a_digest_due_while_the_daemon_was_down_is_sent_at_start_once(store, clock):
    clock.now = datetime(2022, 1, 20, 6, 0, tzinfo=UTC)
    desk = Desk(store, clock, rules_with(Delivery(("desk",), digest="0 * * * *")))
    desk.plan()  # the route starts here
    desk.story()
    clock.now = datetime(2022, 1, 20, 11, 30, tzinfo=UTC)  # down through five fire times
    assert len(desk.plan()) == 1
    assert desk.plan() == []


def test_digest_times_follow_the_channel_timezone_across_a_dst_change():
    kyiv = "Europe/Kyiv"  # EET -> EEST on 2022-03-27 at 03:00 local
    before = datetime(2022, 3, 26, 5, 0, tzinfo=UTC)  # 07:00 EET
    fired = digest_due("0 7 * * *", kyiv, before, datetime(2022, 3, 27, 4, 30, tzinfo=UTC))
    assert fired == datetime(2022, 3, 27, 4, 0, tzinfo=UTC)  # 07:00 EEST is 04:00 UTC
    assert digest_due("0 7 * * *", kyiv, fired, fired + timedelta(hours=23)) is None


# --------------------------------------------------------------------------------------------------
# Sending


@pytest.fixture
def hook():
    with LoopbackServer() as server:
        server.routes["/hook"] = Route(body=b"{}")
        yield server


def webhook(server, path="/hook", **kw) -> ChannelSpec:
    return ChannelSpec("hook", f"json://127.0.0.1:{server.port}{path}", "text", **kw)


def test_a_message_goes_to_a_webhook_and_is_marked_sent(store, clock, hook):
    channel = webhook(hook)
    desk = Desk(store, clock, rules_with(Delivery(("hook",), group_wait=timedelta(0)), channel))
    desk.story()
    desk.plan()
    assert send_due(store, {"hook": channel}, DEFAULTS, "w1", clock(), send) == (1, 0)
    (row,) = store.outbox()
    assert row.status == "sent" and row.attempts == 1
    (request,) = [h for h in hook.hits if h.path == "/hook"]
    body = json.loads(request.body)
    assert body["title"] == "troops: 1 new story" and "Blinken in Kyiv (RFERL)" in body["message"]


def test_a_channel_that_is_down_is_retried_with_backoff_until_it_is_back(store, clock, hook):
    channel = webhook(hook)
    hook.routes["/hook"] = Route(status=503, body=b"down")
    desk = Desk(store, clock, rules_with(Delivery(("hook",), group_wait=timedelta(0)), channel))
    desk.story()
    desk.plan()
    assert send_due(store, {"hook": channel}, DEFAULTS, "w1", clock(), send) == (0, 1)
    (row,) = store.outbox()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock() + DEFAULTS.retry_base and "503" in row.last_error
    assert send_due(store, {"hook": channel}, DEFAULTS, "w1", clock(), send) == (0, 0)  # not due
    hook.routes["/hook"] = Route(body=b"{}")
    clock.advance(seconds=31)
    assert send_due(store, {"hook": channel}, DEFAULTS, "w1", clock(), send) == (1, 0)


def test_a_channel_that_does_not_exist_fails_for_good_without_showing_secrets(store, clock, hook):
    channel = webhook(hook, path="/hook/SECRET-TOKEN-123")
    hook.routes["/hook/SECRET-TOKEN-123"] = Route(status=404, body=b"no such hook")
    desk = Desk(store, clock, rules_with(Delivery(("hook",), group_wait=timedelta(0)), channel))
    desk.story()
    desk.plan()
    send_due(store, {"hook": channel}, DEFAULTS, "w1", clock(), send)
    (row,) = store.outbox()
    assert row.status == "failed" and "404" in row.last_error
    assert "SECRET-TOKEN-123" not in row.last_error


def test_quiet_hours_hold_a_message_until_they_end_without_counting_an_attempt(store, clock):
    channel = ChannelSpec("desk", "console://", "text", "UTC", (time(22, 0), time(7, 0)))
    clock.now = datetime(2022, 1, 20, 23, 0, tzinfo=UTC)
    desk = Desk(store, clock, rules_with(Delivery(("desk",), group_wait=timedelta(0)), channel))
    desk.story()
    desk.plan()
    sent = []
    record = lambda ch, content: sent.append(content) or SendResult(True)  # noqa: E731
    assert send_due(store, {"desk": channel}, DEFAULTS, "w1", clock(), record) == (0, 1)
    (row,) = store.outbox()
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.next_attempt_at == datetime(2022, 1, 21, 7, 0, tzinfo=UTC)
    clock.now = datetime(2022, 1, 21, 7, 0, tzinfo=UTC)
    assert send_due(store, {"desk": channel}, DEFAULTS, "w1", clock(), record) == (1, 0)
    assert len(sent) == 1


def test_quiet_hours_are_read_in_the_channels_timezone():
    channel = ChannelSpec("d", "console://", "text", "Europe/Kyiv", (time(22, 0), time(7, 0)))
    assert quiet_until(channel, datetime(2022, 1, 20, 19, 0, tzinfo=UTC)) is None  # 21:00 EET
    assert quiet_until(channel, datetime(2022, 1, 20, 21, 0, tzinfo=UTC)) == datetime(
        2022, 1, 21, 5, 0, tzinfo=UTC
    )


def test_a_rate_limit_holds_what_exceeds_it(store, clock):
    channel = ChannelSpec("desk", "console://", "text", rate_limit=(1, timedelta(hours=1)))
    desk = Desk(
        store,
        clock,
        rules_with(
            Delivery(("desk",), group_wait=timedelta(0), group_interval=timedelta(seconds=1)),
            channel,
        ),
    )
    record = lambda ch, content: SendResult(True)  # noqa: E731
    desk.story()
    desk.plan()
    clock.advance(seconds=2)
    desk.story()
    desk.plan()
    assert send_due(store, {"desk": channel}, DEFAULTS, "w1", clock(), record) == (1, 1)
    held = [r for r in store.outbox() if r.status == "pending"]
    assert len(held) == 1 and held[0].next_attempt_at == clock() + timedelta(hours=1)


def test_secrets_are_redacted_from_error_text():
    url = "mailtos://user:hunter2pass@smtp.example.org?to=desk@example.org"
    text = "login failed for user with hunter2pass at smtp.example.org"
    assert "hunter2pass" not in redact(text, url) and "smtp.example.org" not in redact(text, url)


def test_a_feed_failing_for_long_alerts_once_and_once_more_when_it_recovers(store, clock):
    from monitor.dispatch import plan_feed_health
    from monitor.render import render

    settings = DeliverySettings(feed_health=("ops",), feed_failing_after="1h")
    channels = {"ops": ChannelSpec("ops", "console://", "text")}
    store.sync_feeds([spec("rferl")], clock())

    def fail() -> None:
        feed = claim_one(store, "rferl", clock)
        store.record_failure(feed, "w1", clock(), clock(), "http://x/rferl.xml: HTTP 503", 503)

    def plan() -> list[int]:
        return store.plan(lambda c: plan_feed_health(c, channels, settings, clock(), render))

    fail()
    clock.advance(minutes=30)
    fail()
    assert plan() == []  # failing for 30 minutes: not yet
    clock.advance(minutes=31)
    fail()
    assert len(plan()) == 1 and plan() == []  # one alert for this failing spell
    alert = store.outbox()[0]
    assert alert.title == "Feed rferl is failing" and "HTTP 503" in alert.content["text"]
    clock.advance(minutes=10)
    feed = claim_one(store, "rferl", clock)
    store.record_success(feed, "w1", clock(), clock(), 200, None, None, None)
    assert len(plan()) == 1 and plan() == []
    recovery = store.outbox()[0]
    assert recovery.title == "Feed rferl works again" and "about 1h11m" in recovery.content["text"]


def test_parts_of_a_message_already_delivered_are_not_sent_again(store, clock):
    desk = Desk(store, clock, rules_with(Delivery(("desk",), group_wait=timedelta(0))))
    desk.story()
    desk.plan()
    seen = []

    def two_of_three(channel, content):
        seen.append(content.get("parts_sent"))
        if len(seen) == 1:
            return SendResult(False, "HTTP 500; 2 of 3 parts sent", parts_sent=2)
        return SendResult(True)

    send_due(store, {"desk": CONSOLE}, DEFAULTS, "w1", clock(), two_of_three)
    clock.advance(minutes=1)
    send_due(store, {"desk": CONSOLE}, DEFAULTS, "w1", clock(), two_of_three)
    assert seen == [None, 2] and store.outbox()[0].status == "sent"


@both_planners
def test_a_revision_that_matches_new_terms_is_sent_again_as_an_update(store, clock):
    watch = WatchSpec(
        "troops",
        parse_query("troops OR tanks"),
        delivery=Delivery(("desk",), group_wait=timedelta(0)),
    )
    desk = Desk(store, clock, RuleSet(ACTORS, (watch,), {"desk": CONSOLE}))
    desk.story("Russia moved troops.")
    desk.plan()
    clock.advance(minutes=10)
    # the same page, edited: now it also mentions tanks
    edited = article("https://x/1", text="Russia moved troops and tanks. Story number 1. " * 5)
    store.ingest(desk.feed, "g1", "h2", "https://x/1", edited, clock())
    store.match_pending(lambda arts: match_stored(desk.active, arts), clock())
    (queued,) = desk.plan()
    update = store.outbox()[0]
    assert (update.kind, update.title) == ("update", "troops: 1 update")
    assert "now also matches tanks" in update.content["text"]
    clock.advance(minutes=10)
    assert desk.plan() == []  # the update is not sent twice


def test_two_senders_never_claim_the_same_message(store, clock):
    from monitor.store.delivery import enqueue, route_state

    with store.engine.begin() as c:
        state = route_state(c, "troops", "desk", clock())
        ids = [enqueue(c, state, "alert", [], f"m{i}", {"text": "x"}, clock()) for i in range(10)]
    lease = timedelta(minutes=2)
    first = store.claim_outbox("a", clock(), lease, 6)
    second = store.claim_outbox("b", clock(), lease, 10)
    assert {r.id for r in first} | {r.id for r in second} == set(ids)
    assert not {r.id for r in first} & {r.id for r in second}
    assert store.claim_outbox("c", clock(), lease, 10) == []  # everything is leased
    # a sender that lost its lease cannot mark the message: the new holder decides
    clock.advance(minutes=3)
    (taken, *_) = store.claim_outbox("c", clock(), lease, 1)
    assert not store.finish_send(taken.id, "a", clock(), error=None, retry_at=None)
    assert store.finish_send(taken.id, "c", clock(), error=None, retry_at=None)


@pytest.mark.postgres
def test_two_workers_creating_one_route_at_once_both_go_on(pg_url, clock):
    import threading

    from monitor.store import Store
    from monitor.store.delivery import route_state

    store = Store.open(pg_url)
    errors: list[BaseException] = []
    try:
        with store.engine.begin() as first:
            route_state(first, "troops", "desk", clock())  # inserted, not yet committed

            def second() -> None:
                try:
                    with store.engine.begin() as c:
                        route_state(c, "troops", "desk", clock())  # waits for the first
                except BaseException as err:  # noqa: BLE001 (reported by the assertion)
                    errors.append(err)

            other = threading.Thread(target=second)
            other.start()
            other.join(0.5)
            assert other.is_alive()  # blocked on the first worker's row
        other.join(10)
        assert not other.is_alive() and errors == []
    finally:
        store.close()


@both_planners
def test_a_story_matched_again_is_repeated_only_after_repeat_interval(store, clock):
    desk = Desk(store, clock, rules_with(Delivery(("desk",), group_wait=timedelta(0))))
    desk.story("Russia moved troops.")
    assert len(desk.plan()) == 1
    clock.advance(hours=1)
    # the page changed and changed back: matched again, with nothing new to tell
    blank = article("https://x/1", text="x" * 300)
    store.ingest(desk.feed, "g1", "h2", "https://x/1", blank, clock())
    edited = article("https://x/1", text="Russia moved troops. Story number 1. " * 5)
    store.ingest(desk.feed, "g1", "h3", "https://x/1", edited, clock())
    store.match_pending(lambda arts: match_stored(desk.active, arts), clock())
    assert desk.plan() == []  # sent an hour ago: repeat_interval is 4 h
    clock.advance(hours=2, minutes=59)
    assert desk.plan() == []
    clock.advance(minutes=1)  # 4 h after it was sent, and nothing else happened meanwhile
    (queued,) = desk.plan()
    assert store.outbox()[0].kind == "alert" and desk.plan() == []


class Statements:
    """Counts what a store's engine sends to the database."""

    def __init__(self, store) -> None:
        self.texts: list[str] = []
        self.routes: set[tuple[str, ...]] = set()
        event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.texts.append(statement)
        if "FROM routes" in statement:  # planning a route reads (and locks) its row
            values = parameters.values() if isinstance(parameters, dict) else parameters
            self.routes.add(tuple(values))

    def routes_planned(self) -> int:
        """Routes planned since the last call."""
        planned = len(self.routes)
        self.texts.clear()
        self.routes.clear()
        return planned

    def count(self) -> int:
        n = len(self.texts)
        self.texts.clear()
        return n


def test_a_quiet_tick_plans_no_route_and_a_new_match_still_goes_out_on_time(store, clock):
    many = tuple(
        WatchSpec(f"watch-{i}", parse_query(f"keyword{i}"), delivery=Delivery(("desk",)))
        for i in range(40)
    )
    troops = WatchSpec("troops", parse_query("troops"), delivery=Delivery(("desk",)))
    digests = tuple(
        WatchSpec(
            f"daily-{i}", parse_query(f"topic{i}"), delivery=Delivery(("desk",), digest="0 9 * * *")
        )
        for i in range(10)
    )
    desk = Desk(store, clock, RuleSet(ACTORS, (*many, troops, *digests), {"desk": CONSOLE}))
    desk.planner = Planner()
    statements = Statements(store)

    assert desk.plan() == []  # the first tick plans every route
    assert statements.routes_planned() == 51
    for _ in range(5):  # quiet ticks: one query for changes, no route planned
        clock.advance(seconds=2)
        assert desk.plan() == []
        assert statements.count() <= 2
    desk.story()  # matches troops only
    matched = clock()
    queued, planned = [], []
    while clock() < matched + timedelta(seconds=40):
        clock.advance(seconds=2)
        queued += [clock() - matched for _ in desk.plan()]
        planned.append(statements.routes_planned())
    # group_wait is 30 s: the tick at 30 s queues the alert, once
    assert queued == [DEFAULTS.group_wait]
    # the troops route alone, when its match is seen (2 s) and when its group is due (30 s)
    assert planned == [1 if tick in (0, 14) else 0 for tick in range(20)]
    (row,) = store.outbox()
    assert (row.route, row.kind) == ("troops", "alert")


def test_a_digest_goes_out_at_its_fire_time_without_any_route_planned_before(store, clock):
    clock.now = datetime(2022, 1, 20, 8, 58, tzinfo=UTC)
    desk = Desk(store, clock, rules_with(Delivery(("desk",), digest="0 9 * * *")))
    desk.planner = Planner()
    assert desk.plan() == []  # start: every route
    desk.story()
    statements = Statements(store)
    while clock() < datetime(2022, 1, 20, 8, 59, 58, tzinfo=UTC):
        clock.advance(seconds=2)
        assert desk.plan() == []
    assert statements.routes_planned() == 0  # a new match does not make a digest plan
    clock.advance(seconds=2)  # 09:00:00
    (queued,) = desk.plan()
    assert store.outbox()[0].kind == "digest"
