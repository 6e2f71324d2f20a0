"""The outbox sender: claim due messages, hold them through quiet hours and rate limits, send,
and record the outcome (sent, retried with capped backoff, or failed for good).

Holding never drops a message: it only moves its next attempt. A channel that takes a message
is back: its other messages waiting out a retry's backoff are due at once (see
monitor.dispatch.plan_route for how the stories matched meanwhile wait in the store and go out
together). The clock, the store and the send function are passed in.

Several senders may share one database (PostgreSQL): a claim leases a batch of messages, and each
message's lease is renewed just before it is sent, so a batch that takes longer to send than the
lease lasts (a slow channel) never has its tail sent by two senders: once a lease has lapsed and
another sender took the message, the renewal fails and this sender skips it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from monitor import metrics
from monitor.config import DeliverySettings
from monitor.rules.spec import ChannelSpec
from monitor.schedule import backoff_delay
from monitor.store import Store, delivery
from monitor.store.delivery import OutboxRow

if TYPE_CHECKING:
    from monitor.notify import SendResult

log = logging.getLogger(__name__)

Send = Callable[[ChannelSpec, dict[str, Any]], "SendResult"]


def quiet_until(channel: ChannelSpec, now: datetime) -> datetime | None:
    """When the channel's quiet hours end, if `now` is inside them (in its timezone)."""
    if channel.quiet_hours is None:
        return None
    start, end = channel.quiet_hours
    local = now.astimezone(ZoneInfo(channel.timezone))
    inside = _inside(local.time(), start, end)
    if not inside:
        return None
    ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(now.tzinfo)


def _inside(t: time, start: time, end: time) -> bool:
    if start < end:
        return start <= t < end
    return t >= start or t < end  # wraps midnight


def send_due(
    store: Store,
    channels: dict[str, ChannelSpec],
    settings: DeliverySettings,
    owner: str,
    now: datetime,
    send: Send,
    limit: int = 20,
    clock: Callable[[], datetime] | None = None,
) -> tuple[int, int]:
    """Send what is due as of `now`; returns (sent, not sent this time). `clock` tells the time
    as each message is sent (its lease renewed, its outcome recorded); by default, `now`."""
    claimed = store.claim_outbox(owner, now, settings.lease, limit)
    sent = 0
    for row in claimed:
        if _send_one(
            store, row, channels.get(row.channel), settings, owner, clock or (lambda: now), send
        ):
            sent += 1
    return sent, len(claimed) - sent


def _send_one(
    store: Store,
    row: OutboxRow,
    channel: ChannelSpec | None,
    settings: DeliverySettings,
    owner: str,
    clock: Callable[[], datetime],
    send: Send,
) -> bool:
    now = clock()
    if channel is None:  # removed from channels.yaml: kept, in case it comes back
        error = f"channel {row.channel!r} is not in channels.yaml; kept for when it is back"
        store.finish_send(row.id, owner, now, error=error, retry_at=now + settings.retry_max)
        return False
    held = quiet_until(channel, now) or _rate_limited_until(store, channel, now)
    if held is not None:
        store.finish_send(row.id, owner, now, error=None, retry_at=held, counts=False)
        return False
    renew = functools.partial(delivery.renew_lease, outbox_id=row.id, owner=owner)
    if not store.plan(lambda c: renew(c, until=now + settings.lease)):
        log.info("message #%d: its lease lapsed and another sender has it now", row.id)
        return False
    # the key names the message the same way on every retry (an email's Message-ID)
    result = send(channel, {**row.content, "key": f"outbox-{row.id}"})
    now = clock()
    if result.ok:
        if not store.plan(
            functools.partial(_sent, outbox_id=row.id, channel=row.channel, owner=owner, now=now)
        ):
            # the send outlasted the lease and another sender took the message over
            log.warning("message #%d was sent after its lease lapsed: it may arrive twice", row.id)
        metrics.delivered(row.channel, "sent")
        log.info("sent %s #%d to %s: %s", row.kind, row.id, row.channel, row.title)
        return True
    # what was delivered (Slack's first parts, email's accepted recipients) is not sent again
    progress = {**({"parts_sent": result.parts_sent} if result.parts_sent else {})}
    progress |= result.progress or {}
    content = {**row.content, **progress} if progress else None
    metrics.delivered(row.channel, "failed" if result.permanent else "retry")
    if result.permanent:
        log.error("channel %s refused message #%d for good: %s", row.channel, row.id, result.error)
        store.finish_send(row.id, owner, now, error=result.error, retry_at=None, content=content)
        return False
    delay = backoff_delay(
        row.attempts + 1, settings.retry_base, settings.retry_max, result.retry_after
    )
    retry = now + delay
    log.warning(
        "channel %s: message #%d not sent (%s); retrying at %s",
        row.channel,
        row.id,
        result.error,
        retry.isoformat(timespec="seconds"),
    )
    store.finish_send(row.id, owner, now, error=result.error, retry_at=retry, content=content)
    return False


def _sent(c: Connection, outbox_id: int, channel: str, owner: str, now: datetime) -> bool:
    """Mark the message sent; the channel took it, so what waits out a retry's backoff for it
    is due now. False when the lease was lost (another sender took the message over)."""
    done = delivery.finish_send(c, outbox_id, owner, now, error=None, retry_at=None)
    delivery.retry_now(c, channel, now)
    return done


def _rate_limited_until(store: Store, channel: ChannelSpec, now: datetime) -> datetime | None:
    if channel.rate_limit is None:
        return None
    count, period = channel.rate_limit
    if store.sent_in(channel.name, now - period) < count:
        return None
    return now + period / count  # a slot frees up at about this rate
