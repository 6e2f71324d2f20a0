"""When a digest's cron expression fires, in the channel's timezone, once per local fire time.

Cron times are wall-clock times. On the night clocks go back, 01:30 happens twice; on the night
they go forward, 02:30 does not happen at all. Like cron itself, a digest fires once at the first
01:30 and, for the missing 02:30, just after the jump. APScheduler's trigger asked directly gives
both 01:30s, and asked for the time after the second one returns the second one again, so a
digest would be sent twice and the search for the next fire time would spin (issue 7, "Time").
The fire times are therefore worked out as naive wall-clock times, which only ever increase, and
each is placed in the timezone afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

MAX_MISSED_DIGESTS = 100_000  # fire times skipped while looking for the last one due
_TICK = timedelta(microseconds=1)


def digest_due(cron: str, timezone: str, covered_until: datetime, now: datetime) -> datetime | None:
    """The latest time the digest's cron fired after `covered_until` and not after `now` (the
    digest then covers everything up to it), or None when it has not fired since. One digest
    makes up for any number of fire times missed while the daemon was down."""
    last = None
    for fire in islice(fire_times(cron, timezone, covered_until), MAX_MISSED_DIGESTS):
        if fire > now:
            break
        last = fire
    return last


def next_digest(cron: str, timezone: str, after: datetime) -> datetime | None:
    """The digest's first fire time after `after`."""
    return next(fire_times(cron, timezone, after), None)


def fire_times(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The cron expression's fire times in `timezone` strictly after `after`, in UTC, each local
    wall-clock time once (see the module docstring)."""
    zone = ZoneInfo(timezone)
    wall_clock = CronTrigger.from_crontab(cron, timezone=UTC)  # UTC has no gaps or repeats
    wall = _wall_time(after, zone)
    after = after.astimezone(UTC)
    while True:
        next_wall = wall_clock.get_next_fire_time(None, wall + _TICK)
        if next_wall is None:
            return
        wall = next_wall
        # fold=0 is the first of a repeated time; for a time in a gap it is the offset before
        # the jump, which lands just after it (02:30 EST is 03:30 EDT).
        fire = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        # Skip what is not later in fact: the second 01:10 is after the first 01:30 in wall
        # time only, and 02:00 in a gap is the same instant as the 03:00 after it. (Compared
        # in UTC: Python compares two times of one tzinfo by wall clock, ignoring fold.)
        if fire > after:
            yield fire
            after = fire


def _wall_time(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment`'s local wall-clock time in `zone`, labelled UTC so it can be compared and cron
    arithmetic has no gaps."""
    return moment.astimezone(zone).replace(tzinfo=UTC, fold=0)
