"""The daemon's housekeeping jobs: retention every hour, database maintenance every day, and the
store's gauges (for /metrics and systemd's STATUS=) every few seconds."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor import metrics
from monitor.pipeline import Runtime, housekeeping
from monitor.service import Notifier
from monitor.store import upkeep

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]

RETENTION_EVERY = timedelta(hours=1)
MAINTENANCE_EVERY = timedelta(days=1)
MAINTENANCE_FIRST = timedelta(minutes=10)  # not while a restart's first polls are busy


class Upkeep:
    """Retention, maintenance and gauges for one daemon's runtime."""

    def __init__(self, rt: Runtime, notifier: Notifier) -> None:
        self.rt = rt
        self.notifier = notifier

    def schedule(
        self,
        scheduler: AsyncIOScheduler,
        now: datetime,
        wrap: Callable[[Job], Job] = lambda job: job,
    ) -> None:
        """Add the jobs, each wrapped by `wrap` (the daemon's: a database refusing writes is
        logged once, not as a traceback every run)."""
        jobs = (
            (self.retention, RETENTION_EVERY, now),
            (self.maintenance, MAINTENANCE_EVERY, now + MAINTENANCE_FIRST),
            (self.gauges, timedelta(seconds=metrics.GAUGE_REFRESH), now),
        )
        for job, every, first in jobs:
            scheduler.add_job(
                wrap(job),
                IntervalTrigger(seconds=every.total_seconds()),
                id=job.__name__,
                next_run_time=first,
                max_instances=1,
                coalesce=True,
            )

    async def retention(self) -> None:
        """Delete old articles no feed lists any more; drop old articles' text if asked."""
        with metrics.CYCLE_SECONDS.labels("housekeeping").time():
            deleted = await self.rt.on_db(housekeeping, self.rt)
            if deleted:
                log.info("retention: deleted %d old articles", deleted)
            keep_text = self.rt.settings.retention.text
            if keep_text is not None:
                cutoff = self.rt.clock() - keep_text
                emptied = await self.rt.on_db(upkeep.drop_old_text, self.rt.store.engine, cutoff)
                if emptied:
                    log.info("retention: dropped the text of %d articles", emptied)

    async def maintenance(self) -> None:
        with metrics.CYCLE_SECONDS.labels("maintenance").time():
            did = await self.rt.on_db(upkeep.maintain, self.rt.store.engine)
        log.info("database maintenance: %s", did)

    async def gauges(self) -> None:
        """Read the store's figures for /metrics and `systemctl status`."""
        try:
            s = await self.rt.on_db(upkeep.status, self.rt.store.engine)
        except Exception as err:  # the database is away: /healthz says so; try again later
            log.warning("could not read the store's figures: %s", err)
            return
        metrics.set_store_gauges(
            metrics.StoreGauges(
                feeds_active=s.feeds_active,
                feeds_broken=s.feeds_failing,
                outbox_pending=s.outbox.get("pending", 0),
                outbox_failed=s.outbox.get("failed", 0),
                last_success_at=s.last_success_at.timestamp() if s.last_success_at else None,
            )
        )
        self.notifier.status(
            f"{s.feeds_active} feeds ({s.feeds_failing} failing), {s.articles} articles, "
            f"{s.outbox.get('pending', 0)} messages pending"
        )
