"""Time (issue 7): digests across DST changes and a clock that jumps backwards are neither
skipped nor doubled, and no alert is lost or sent twice when the clock goes back."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.cron import digest_due, fire_times
from monitor.rules.spec import ChannelSpec, Delivery
from tests.test_dispatch import Desk, both_planners, planning, rules_with

__all__ = ["planning"]  # the fixture both_planners uses

NEW_YORK = "America/New_York"  # EST -> EDT on 2022-03-13 at 02:00, back on 2022-11-06 at 02:00


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # 01:30 happens twice on the night clocks go back: the digest fires at the first only
        ("30 1 * * *", utc(2022, 11, 5, 12), [utc(2022, 11, 6, 5, 30), utc(2022, 11, 7, 6, 30)]),
        # asked from between the two 01:30s, the next is the following day's
        ("30 1 * * *", utc(2022, 11, 6, 5, 45), [utc(2022, 11, 7, 6, 30)]),
        ("30 1 * * *", utc(2022, 11, 6, 6, 10), [utc(2022, 11, 7, 6, 30)]),
        # 02:30 does not happen on the night clocks go forward: it fires just after the jump
        ("30 2 * * *", utc(2022, 3, 12, 12), [utc(2022, 3, 13, 7, 30), utc(2022, 3, 14, 6, 30)]),
        # hourly across the repeated hour: each wall-clock hour once, in order
        (
            "0 * * * *",
            utc(2022, 11, 6, 3, 30),
            [utc(2022, 11, 6, 4), utc(2022, 11, 6, 5), utc(2022, 11, 6, 7), utc(2022, 11, 6, 8)],
        ),
        # and across the missing hour
        (
            "0 * * * *",
            utc(2022, 3, 13, 5, 30),
            [utc(2022, 3, 13, 6), utc(2022, 3, 13, 7), utc(2022, 3, 13, 8)],
        ),
    ],
)
def test_cron_fire_times_take_each_local_time_once_across_dst(cron, after, expected):
    fires = fire_times(cron, NEW_YORK, after)
    got = [next(fires).astimezone(UTC) for _ in expected]
    assert got == expected
    assert all(earlier < later for earlier, later in zip(got, got[1:], strict=False))


def test_looking_for_a_digest_after_the_repeated_hour_does_not_spin():
    # APScheduler asked directly returns the second 01:30 again when asked for the time after
    # it; the search for the latest fire time then looped 100,000 times (8 s) on every tick.
    fired = digest_due("30 1 * * *", NEW_YORK, utc(2022, 11, 6, 5, 30), utc(2022, 11, 6, 7))
    assert fired is None


def _digests_per_local_day(desk: Desk, timezone: str) -> Counter[str]:
    rows = [r for r in desk.store.outbox(limit=10_000) if r.kind == "digest"]
    zone = ChannelSpec("x", "console://", timezone=timezone)

    return Counter(
        r.created_at.astimezone(ZoneInfo(zone.timezone)).date().isoformat() for r in rows
    )


def _stories_sent(desk: Desk) -> Counter[int]:
    return Counter(s for r in desk.store.outbox(limit=10_000) for s in r.stories)


def _run(desk: Desk, clock, until: datetime, every: timedelta, story_every: int) -> int:
    """Moves the clock to `until` in steps, adding a story every `story_every` steps and
    planning at each; the number of stories added."""
    added, step = 0, 0
    while clock.now < until:
        if step % story_every == 0:
            desk.story()
            added += 1
        desk.plan()
        clock.now += every
        step += 1
    return added


@both_planners
@pytest.mark.parametrize(
    ("cron", "start"),
    [("30 1 * * *", utc(2022, 11, 4, 12)), ("30 2 * * *", utc(2022, 3, 11, 12))],
    ids=["clocks go back", "clocks go forward"],
)
def test_a_daily_digest_across_a_dst_change_goes_out_once_a_day_with_every_story(
    store, clock, cron, start
):
    clock.now = start
    channel = ChannelSpec("desk", "console://", "text", timezone=NEW_YORK)
    desk = Desk(store, clock, rules_with(Delivery(("desk",), digest=cron), channel))
    _run(desk, clock, start + timedelta(days=4), timedelta(minutes=30), story_every=3)
    per_day = _digests_per_local_day(desk, NEW_YORK)
    assert sorted(per_day.values()) == [1, 1, 1, 1] and len(per_day) == 4
    sent = _stories_sent(desk)
    assert set(sent.values()) == {1}  # no story in two digests
    last_digest = max(r.created_at for r in desk.store.outbox(limit=10_000))
    matches = desk.store.matches(limit=10_000)
    assert set(sent) == {m.article_id for m in matches if m.matched_at <= last_digest}  # all in


@both_planners
def test_a_clock_that_jumps_back_after_a_digest_does_not_send_it_again(store, clock):
    clock.now = utc(2022, 1, 20, 5)
    desk = Desk(store, clock, rules_with(Delivery(("desk",), digest="0 7 * * *")))
    desk.story()
    clock.now = utc(2022, 1, 20, 7, 0, 5)
    assert len(desk.plan()) == 1
    # NTP steps the clock back 90 minutes. (Not back past the route's creation at 05:00:
    # matches stamped before a route existed are never sent on it; see docs/reliability.md.)
    clock.now = utc(2022, 1, 20, 5, 30)
    for _ in range(20):  # through 07:00 again, with new stories on the way
        desk.story()
        desk.plan()
        clock.now += timedelta(minutes=5)
    assert clock.now > utc(2022, 1, 20, 7, 0, 5)
    assert [r.kind for r in desk.store.outbox()] == ["digest"]  # 07:00 is not sent twice
    clock.now = utc(2022, 1, 21, 7, 0, 5)
    assert len(desk.plan()) == 1  # the next morning's digest carries the stories since
    sent = _stories_sent(desk)
    assert set(sent.values()) == {1} and len(sent) == 21


@both_planners
def test_alerts_survive_a_clock_that_jumps_back(store, clock):
    start = clock.now
    clock.now = start - timedelta(hours=2)  # the watch and its route exist from here on
    desk = Desk(store, clock, rules_with(Delivery(("desk",), group_wait=timedelta(seconds=30))))
    desk.plan()
    clock.now = start
    added = _run(desk, clock, start + timedelta(minutes=20), timedelta(minutes=1), story_every=3)
    clock.now = start - timedelta(minutes=30)  # back before the first alert went out
    added += _run(desk, clock, start + timedelta(hours=1), timedelta(minutes=1), story_every=3)
    clock.now += timedelta(hours=1)
    desk.plan()
    sent = _stories_sent(desk)
    assert len(sent) == added  # every story reached the channel ...
    assert set(sent.values()) == {1}  # ... once
