"""When a feed is polled next: interval with jitter, or capped exponential backoff on failure."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# A server may ask for a long pause with Retry-After, but a typo there (or a hostile server) must
# not park a feed for weeks: honour it up to a day.
MAX_RETRY_AFTER = timedelta(days=1)


def next_poll_after_success(
    now: datetime, interval: timedelta, jitter: float, rng: random.Random
) -> datetime:
    """now + interval, spread by ±jitter so feeds added together do not poll in lockstep."""
    return now + interval * (1 + rng.uniform(-jitter, jitter))


def backoff_delay(
    failures: int,
    base: timedelta,
    cap: timedelta,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """base·2^(failures-1), capped; never less than the server's Retry-After. Never gives up."""
    exponent = min(max(failures - 1, 0), 30)  # 2**30 × any base is far past any cap
    delay = min(base * (2**exponent), cap)
    if rng is not None:
        delay = delay * rng.uniform(0.9, 1.1)  # full synchrony after an outage would stampede hosts
    if retry_after is not None:
        delay = max(delay, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
    return delay
