"""`monitor run`: APScheduler ticks claim due feeds from the store; signals stop or reload."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import OperationalError

from monitor.config import Config, ConfigError, Settings, load_config
from monitor.config.rules import ACTORS_FILE, CHANNELS_FILE, WATCHES_FILE, load_rules
from monitor.deliver import deliver_plan, deliver_send, user_templates
from monitor.dispatch import Planner
from monitor.domain import Clock, utcnow
from monitor.fetch import Fetcher, FetchLimits
from monitor.netguard import parse_networks
from monitor.pipeline import Runtime, default_owner, housekeeping, match_queued, poll_feed
from monitor.rules.active import ActiveRules, definitions
from monitor.rules.compiler import RuleCompileError, compile_rules
from monitor.rules.spec import RuleSet
from monitor.store import FeedState, Store

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 20.0  # seconds in-flight feeds get to finish; below systemd's stop timeout
RULES_CHECK = 2.0  # seconds between looks at the rule files for an edit
DELIVERY_TICK = 2.0  # seconds between looks for messages due (group_wait is counted from here)
RULE_FILES = (ACTORS_FILE, WATCHES_FILE, CHANNELS_FILE)


def fetch_limits(config: Config) -> FetchLimits:
    """The fetch stage's limits from monitor.yaml's polling section."""
    return _limits(config.settings)


def _limits(settings: Settings) -> FetchLimits:
    p = settings.polling
    return FetchLimits(
        connect_timeout=p.connect_timeout.total_seconds(),
        read_timeout=p.read_timeout.total_seconds(),
        total_timeout=p.total_timeout.total_seconds(),
        max_bytes=p.max_bytes,
        max_redirects=p.max_redirects,
        max_connections=p.concurrency,
        max_per_host=p.per_host,
        user_agent=p.user_agent,
        allow_networks=parse_networks(p.allow_networks),
    )


def extractor_pool(config: Config) -> ProcessPoolExecutor | None:
    """Extraction is CPU-bound (lxml); a process pool uses every core the service is given.

    Workers fork on first use, after this process has imported trafilatura, so they share those
    pages with it (forking them at start measured no better: 165 MB PSS either way)."""
    workers = config.settings.extract.workers
    if workers <= 1:
        return None
    # Freeze what is loaded by now (modules, config) out of the collector's reach, here and in
    # each worker: a collection writes to every object it scans, and each page it writes to
    # stops being shared between the daemon and its forked workers.
    gc.freeze()
    return ProcessPoolExecutor(max_workers=workers, initializer=gc.freeze)


class Daemon:
    """Polls continuously: each tick claims as many due feeds as there are free slots."""

    def __init__(self, config: Config, clock: Clock = utcnow, owner: str | None = None) -> None:
        self.config = config
        self.clock = clock
        self.owner = owner or default_owner()
        self.stopping = asyncio.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}  # feed id -> its poll
        self._rt: Runtime | None = None
        self._rules_files: tuple[object, ...] = ()  # what the rule files were when last read
        self._reloading: asyncio.Task[bool] | None = None
        self._planner = Planner()  # the deliver job's: which routes may owe a message
        self._database_problems: dict[str, str] = {}  # job -> what the database refused with

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT; in-flight feeds finish and commit before it returns."""
        settings = self.config.settings
        self._rules_files = self._rule_files_state()
        rules = load_rules(self.config.config_dir, feeds=self.config.feeds)  # bad: refuse to start
        store = Store.open(settings.database_url(self.config.config_dir))
        store.sync_feeds(self.config.feeds, self.clock())
        pool = extractor_pool(self.config)
        scheduler = AsyncIOScheduler(timezone=UTC)
        try:
            async with Fetcher(fetch_limits(self.config), clock=self.clock) as fetcher:
                self._rt = Runtime(store, fetcher, settings, self.clock, pool, self.owner)
                self._rt.templates = user_templates(self.config.config_dir)
                await self._activate(rules)
                self._install_signals()
                tick = settings.polling.tick.total_seconds()
                scheduler.add_job(
                    self._guarded(self.tick),
                    IntervalTrigger(seconds=tick),
                    id="tick",
                    next_run_time=self.clock(),
                    max_instances=1,
                    coalesce=True,
                )
                scheduler.add_job(
                    self._guarded(self._housekeeping),
                    IntervalTrigger(hours=1),
                    id="housekeeping",
                    next_run_time=self.clock(),
                )
                # Articles a crash left queued are matched at start, and any left by a failure
                # later on within the minute.
                scheduler.add_job(
                    self._guarded(self._match_queued),
                    IntervalTrigger(minutes=1),
                    id="match",
                    next_run_time=self.clock(),
                    max_instances=1,
                    coalesce=True,
                )
                # Delivery: plan what is due (grouping, digests) and send the outbox.
                scheduler.add_job(
                    self._guarded(self._deliver),
                    IntervalTrigger(seconds=DELIVERY_TICK),
                    id="deliver",
                    next_run_time=self.clock(),
                    max_instances=1,
                    coalesce=True,
                )
                scheduler.add_job(
                    self._reload_rules_if_edited,
                    IntervalTrigger(seconds=RULES_CHECK),
                    id="rules",
                    max_instances=1,
                    coalesce=True,
                )
                heartbeat = settings.polling.lease.total_seconds() / 3
                scheduler.add_job(
                    self._guarded(self.renew_leases),
                    IntervalTrigger(seconds=heartbeat),
                    id="leases",
                    max_instances=1,
                    coalesce=True,
                )
                scheduler.start()
                log.info(
                    "monitor running as %s: %d feeds, %d watches, database %s",
                    self.owner,
                    len(self.config.feeds),
                    len(rules.watches),
                    store.engine.url.render_as_string(),
                )
                await self.stopping.wait()
                scheduler.shutdown(wait=False)
                await self._drain()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            store.close()
        log.info("monitor stopped")

    def _guarded(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """`job`, with the database refusing writes (disk full, read-only, unreachable) logged
        as one line when it starts and one when it ends, not a traceback every tick: the job
        committed nothing and runs again at its next time."""

        name = job.__name__.strip("_")

        @functools.wraps(job)
        async def run_job() -> None:
            try:
                await job()
            except OperationalError as err:
                problem = _first_line(err)
                if self._database_problems.get(name) != problem:
                    log.error("%s: the database refuses it, will retry: %s", name, problem)
                    self._database_problems[name] = problem
                return
            if problem := self._database_problems.pop(name, ""):
                log.info("%s: the database works again (was: %s)", name, problem)

        return run_job

    async def tick(self) -> None:
        """Claim due feeds up to the free capacity and poll each in its own task."""
        if self.stopping.is_set() or self._rt is None:
            return
        rt = self._rt
        free = rt.settings.polling.batch - len(self._tasks)
        if free <= 0:
            return
        claimed = await rt.on_db(
            functools.partial(rt.store.claim_due_feeds, exclude=list(self._tasks)),
            rt.owner,
            self.clock(),
            rt.settings.polling.lease,
            free,
        )
        for feed in claimed:
            task = asyncio.create_task(self._poll(rt, feed), name=f"poll {feed.name}")
            self._tasks[feed.id] = task
            task.add_done_callback(functools.partial(self._done, feed.id))

    def _done(self, feed_id: int, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(feed_id, None)

    async def renew_leases(self) -> None:
        """Keep the leases of feeds still in flight (a long backlog of slow pages) from expiring,
        so no other worker takes a feed this one is still storing."""
        if self._rt is None or not self._tasks:
            return
        until = self.clock() + self._rt.settings.polling.lease
        await self._rt.on_db(self._rt.store.renew_leases, list(self._tasks), self._rt.owner, until)

    async def _poll(self, rt: Runtime, feed: FeedState) -> None:
        try:
            outcome = await poll_feed(rt, feed)  # records every failure on the feed itself
        except Exception as err:  # even the failure could not be recorded: the database is
            # refusing writes (disk full, read-only, down). Nothing was committed, so nothing is
            # lost: the feed is claimed and polled again once the database takes writes.
            log.error("feed %s: not stored, will retry: %s", feed.name, _first_line(err))
            return
        if outcome.new or outcome.revisions or outcome.error:
            log.info(
                "feed %s: %s new, %s duplicates, %s revisions%s",
                feed.name,
                outcome.new,
                outcome.duplicates,
                outcome.revisions,
                f", error: {outcome.error}" if outcome.error else "",
            )

    async def _drain(self) -> None:
        """Let in-flight feeds commit; past the grace period cancel them (their leases are
        released and their validators were not saved, so nothing is lost)."""
        if not self._tasks:
            return
        log.info("stopping: waiting for %d feeds in flight", len(self._tasks))
        _done, pending = await asyncio.wait(set(self._tasks.values()), timeout=SHUTDOWN_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _housekeeping(self) -> None:
        if self._rt is not None:
            deleted = await self._rt.on_db(housekeeping, self._rt)
            if deleted:
                log.info("retention: deleted %d old articles", deleted)

    async def _match_queued(self) -> None:
        if self._rt is not None:
            done, written = await match_queued(self._rt)
            if done:
                log.info("matched %d queued articles: %d matches", done, written)

    async def _deliver(self) -> None:
        """Queue due messages (on the database thread), then send the outbox (on a thread of
        its own: a slow channel must not hold up the store)."""
        if self._rt is None or self.stopping.is_set():
            return
        rt = self._rt
        queued = await rt.on_db(deliver_plan, rt, self._planner)
        if queued:
            log.info("queued %d messages", len(queued))
        await asyncio.to_thread(deliver_send, rt)

    # -- watch rules ---------------------------------------------------------------------------
    async def _activate(self, rules: RuleSet) -> None:
        """Compile `rules` and swap them in: matching in progress finishes with the old ones."""
        assert self._rt is not None
        rt = self._rt
        compiled = await asyncio.to_thread(compile_rules, rules)  # 10,000 watches take ~1 s
        since = await rt.on_db(rt.store.register_watches, definitions(rules), self.clock())
        rt.rules = ActiveRules(compiled, since, rules)
        log.info(
            "watch rules loaded: %d watches, %d actors, %d terms",
            len(compiled.watches),
            len(rules.actors),
            len(compiled.terms),
        )

    async def reload_rules(self) -> bool:
        """Re-read actors, watches and channels; a bad edit keeps the running rules."""
        self._rules_files = self._rule_files_state()
        try:
            rules = load_rules(self.config.config_dir, feeds=self.config.feeds)
            await self._activate(rules)
        except (ConfigError, RuleCompileError) as err:
            log.error("watch rules not reloaded, the last good rules keep running:\n%s", err)
            return False
        return True

    async def _reload_rules_if_edited(self) -> None:
        if self._rt is not None and self._rule_files_state() != self._rules_files:
            await self.reload_rules()

    def _rule_files_state(self) -> tuple[object, ...]:
        """Each rule file's identity and size and modification time (None when missing):
        an editor that writes a new file and renames it over the old one changes the inode."""
        state: list[object] = []
        for name in RULE_FILES:
            try:
                st = (self.config.config_dir / name).stat()
            except OSError:
                state.append(None)
            else:
                state.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(state)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop_on, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        self.reload()
        self._reloading = asyncio.create_task(self.reload_rules())  # kept: tasks are weak refs

    def _stop_on(self, sig: signal.Signals) -> None:
        log.info("received %s: finishing in-flight work", sig.name)
        self.stopping.set()

    def reload(self) -> None:
        """Re-read the config directory; a bad edit keeps the running config and says why."""
        try:
            config = load_config(self.config.config_dir)
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration:\n%s", err)
            return
        old = self.config.settings
        self.config = config
        if self._rt is not None:
            self._rt.settings = config.settings  # intervals, backoff, extraction, retention
            self._rt.store.sync_feeds(config.feeds, self.clock())
        restart_only = [
            name
            for name, changed in (
                ("database", old.database != config.settings.database),
                ("fetch limits", fetch_limits(self.config) != _limits(old)),
                ("extract.workers", old.extract.workers != config.settings.extract.workers),
                ("polling.tick", old.polling.tick != config.settings.polling.tick),
            )
            if changed
        ]
        if restart_only:
            log.warning(
                "reloaded, but %s take effect only after a restart", ", ".join(restart_only)
            )
        log.info("reloaded: %d feeds", len(config.feeds))


def _first_line(err: BaseException) -> str:
    """The exception's message without SQLAlchemy's statement and background lines."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def run(config: Config, clock: Clock = utcnow) -> None:
    """Blocking entry point for `monitor run`."""
    asyncio.run(Daemon(config, clock).run())
