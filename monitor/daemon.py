"""`monitor run`: APScheduler ticks claim due feeds from the store; signals stop or reload."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import OperationalError

from monitor import logs, metrics
from monitor.config import Config, ConfigError, Settings, load_config
from monitor.config.rules import ACTORS_FILE, CHANNELS_FILE, WATCHES_FILE, load_rules
from monitor.deliver import deliver_plan, deliver_send, user_templates
from monitor.dispatch import Planner
from monitor.domain import Clock, utcnow
from monitor.fetch import Fetcher, FetchLimits
from monitor.netguard import parse_networks
from monitor.pipeline import Runtime, default_owner, match_queued, poll_feed
from monitor.rules.active import ActiveRules, definitions
from monitor.rules.compiler import RuleCompileError, compile_rules
from monitor.rules.spec import RuleSet
from monitor.service import Heartbeat, Notifier
from monitor.store import FeedState, Store, upkeep
from monitor.upkeep import Upkeep

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 20.0  # seconds in-flight feeds get to finish; below systemd's stop timeout
DELIVERY_GRACE = 20.0  # then the delivery batch being sent; together below TimeoutStopSec=60
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
    return ProcessPoolExecutor(max_workers=workers, initializer=_worker_started)


def _worker_started() -> None:
    """In each extractor worker, once: freeze what it inherited (see extractor_pool); leave
    SIGINT to the daemon (a Ctrl-C reaches the whole process group, and the daemon stops its
    pool itself) and take SIGTERM's default (it inherited the daemon's handler); and die with
    the daemon. A worker blocks reading the pool's queue, whose write end its siblings hold
    too, so a daemon killed with SIGKILL (or by the OOM killer) would leave its workers
    waiting for ever outside systemd: the kernel's parent-death signal ends them instead."""
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the daemon died before the signal was asked for
        os._exit(1)


def _die_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) on Linux; elsewhere nothing (systemd's cgroup, or
    the user, cleans up)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class StartupError(Exception):
    """The daemon cannot start (the database is unreachable): one line for systemd's status."""


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
        self._reloading: asyncio.Task[None] | None = None
        self._planner = Planner()  # the deliver job's: which routes may owe a message
        self.notifier = Notifier()
        self.heartbeat = Heartbeat(self.notifier)
        self._delivering: asyncio.Future[tuple[int, int]] | None = None  # the batch being sent
        self._scheduler: AsyncIOScheduler | None = None
        self._upkeep: Upkeep | None = None
        self._health: metrics.Health | None = None
        self._database_problems: dict[str, str] = {}  # job -> what the database refused with

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT; in-flight feeds and deliveries finish and commit before it
        returns. Tells systemd READY=1 once the config, rules and database are ready."""
        settings = self.config.settings
        self._rules_files = self._rule_files_state()
        rules = load_rules(self.config.config_dir, feeds=self.config.feeds)  # bad: refuse to start
        store = open_store(self.config, self.clock())
        heartbeat = asyncio.create_task(self.heartbeat.run(), name="heartbeat")
        pool = extractor_pool(self.config)
        scheduler = self._scheduler = AsyncIOScheduler(timezone=UTC)
        listener = None
        try:
            async with Fetcher(fetch_limits(self.config), clock=self.clock) as fetcher:
                self._rt = Runtime(store, fetcher, settings, self.clock, pool, self.owner)
                self._rt.templates = user_templates(self.config.config_dir)
                await self._activate(rules)
                self._install_signals()
                self._upkeep = Upkeep(self._rt, self.notifier)
                listener = self._listen(store)
                tick = settings.polling.tick.total_seconds()
                scheduler.add_job(
                    self._guarded(metrics.timed("tick", self.tick)),
                    IntervalTrigger(seconds=tick),
                    id="tick",
                    next_run_time=self.clock(),
                    max_instances=1,
                    coalesce=True,
                )
                self._upkeep.schedule(scheduler, self.clock(), wrap=self._guarded)
                # Articles a crash left queued are matched at start, and any left by a failure
                # later on within the minute.
                scheduler.add_job(
                    self._guarded(metrics.timed("match", self._match_queued)),
                    IntervalTrigger(minutes=1),
                    id="match",
                    next_run_time=self.clock(),
                    max_instances=1,
                    coalesce=True,
                )
                # Delivery: plan what is due (grouping, digests) and send the outbox.
                scheduler.add_job(
                    self._guarded(metrics.timed("deliver", self._deliver)),
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
                renew_every = settings.polling.lease.total_seconds() / 3
                scheduler.add_job(
                    self._guarded(self.renew_leases),
                    IntervalTrigger(seconds=renew_every),
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
                    store.engine.url.render_as_string(),  # password masked by SQLAlchemy
                )
                self.notifier.ready(self._status_line())
                await self.stopping.wait()
                self.notifier.stopping()
                scheduler.shutdown(wait=False)
                await self._drain()
        finally:
            heartbeat.cancel()
            if listener is not None:
                listener.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            store.close()
            self.notifier.close()
        log.info("monitor stopped")

    def _listen(self, store: Store) -> metrics.Listener | None:
        """The /metrics and /healthz listener, when monitor.yaml asks for one."""
        address = self.config.settings.metrics.address()
        if address is None:
            return None
        health = metrics.Health(
            loop_age=self.heartbeat.age,
            ping_database=functools.partial(ping, store),
            stuck_after=self.config.settings.metrics.stuck_after.total_seconds(),
        )
        self._health = health
        try:
            listener = metrics.Listener(*address, health)
        except OSError as err:
            raise StartupError(f"metrics listener on {address[0]}:{address[1]}: {err}") from err
        log.info("metrics: http://%s:%d/metrics and /healthz", address[0], listener.port)
        return listener

    def _status_line(self) -> str:
        rules = self._rt.rules if self._rt is not None else None
        watches = len(rules.compiled.watches) if rules is not None else 0
        return f"polling {len(self.config.feeds)} feeds, {watches} watches"

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
        started = time.monotonic()
        try:
            outcome = await poll_feed(rt, feed)  # records every failure on the feed itself
        except Exception as err:  # even the failure could not be recorded: the database is
            # refusing writes (disk full, read-only, down). Nothing was committed, so nothing is
            # lost: the feed is claimed and polled again once the database takes writes.
            log.error("feed %s: not stored, will retry: %s", feed.name, _first_line(err))
            return
        o = outcome
        metrics.feed_polled(
            o.status, o.new, o.duplicates, o.revisions, o.backlog, time.monotonic() - started
        )
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
        released and their validators were not saved, so nothing is lost). Then let the
        delivery batch being sent finish, so each message's outcome is recorded."""
        if self._tasks:
            log.info("stopping: waiting for %d feeds in flight", len(self._tasks))
            _done, pending = await asyncio.wait(set(self._tasks.values()), timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._delivering is not None and not self._delivering.done():
            log.info("stopping: waiting for the deliveries being sent")
            # A thread cannot be cancelled: past the grace, its messages' leases lapse and
            # another run sends them (at least once, as after a crash).
            await asyncio.wait([self._delivering], timeout=DELIVERY_GRACE)

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
        if self.stopping.is_set():
            return
        sending = self._delivering = asyncio.ensure_future(asyncio.to_thread(deliver_send, rt))
        await asyncio.shield(sending)  # a stop waits for it in _drain

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
        if self._reloading is not None and not self._reloading.done():
            log.info("SIGHUP: a reload is already running")
            return
        self._reloading = asyncio.create_task(self.reload_all())  # kept: tasks are weak refs

    async def reload_all(self) -> None:
        """SIGHUP (systemctl reload): every config file again, with systemd told
        RELOADING=1 ... READY=1 around it. A bad edit keeps what runs and logs why."""
        self.notifier.reloading()
        try:
            if await self.reload():
                await self.reload_rules()
                if self._rt is not None:
                    self._rt.templates = user_templates(self.config.config_dir)
        finally:
            self.notifier.ready(self._status_line())

    def _stop_on(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():
            # The second signal: the user (or systemd's final SIGTERM) wants out now. What is
            # committed stays; open transactions roll back; leases lapse for the next start.
            log.warning("received %s again: exiting at once", sig.name)
            logging.shutdown()
            os._exit(128 + sig.value)
        log.info("received %s: finishing in-flight work (again to exit at once)", sig.name)
        self.stopping.set()

    async def reload(self) -> bool:
        """Re-read monitor.yaml and feeds.yaml; a bad edit keeps the running config and says
        why. What changes live: feeds, intervals, backoff, extraction, delivery timing,
        retention, the tick and lease periods, the log format and /healthz's stuck_after.
        What needs a restart is named in a warning."""
        try:
            config = await asyncio.to_thread(load_config, self.config.config_dir)
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration:\n%s", err)
            return False
        old = self.config.settings
        self.config = config
        new = config.settings
        logs.set_format(new.logging.format)
        if self._rt is not None:
            self._rt.settings = new  # intervals, backoff, extraction, retention, delivery
            await self._rt.on_db(self._rt.store.sync_feeds, config.feeds, self.clock())
        self._reschedule(old, new)
        if self._health is not None:
            self._health.stuck_after = new.metrics.stuck_after.total_seconds()
        restart_only = [
            name
            for name, changed in (
                ("database", old.database != new.database),
                ("fetch limits", fetch_limits(self.config) != _limits(old)),
                ("extract.workers", old.extract.workers != new.extract.workers),
                ("metrics.listen", old.metrics.listen != new.metrics.listen),
            )
            if changed
        ]
        if restart_only:
            log.warning(
                "reloaded, but %s take effect only after a restart", ", ".join(restart_only)
            )
        log.info("reloaded: %d feeds", len(config.feeds))
        return True

    def _reschedule(self, old: Settings, new: Settings) -> None:
        """The tick and lease-renewal jobs run at the new periods."""
        if self._scheduler is None:
            return
        if old.polling.tick != new.polling.tick:
            seconds = new.polling.tick.total_seconds()
            self._scheduler.reschedule_job("tick", trigger=IntervalTrigger(seconds=seconds))
        if old.polling.lease != new.polling.lease:
            seconds = new.polling.lease.total_seconds() / 3
            self._scheduler.reschedule_job("leases", trigger=IntervalTrigger(seconds=seconds))


def open_store(config: Config, now: datetime) -> Store:
    """The store, migrated and with the feeds of feeds.yaml; StartupError when the database
    cannot be reached, saying which (password masked) and why in one line."""
    from sqlalchemy.exc import SQLAlchemyError

    url = config.settings.database_url(config.config_dir)
    try:
        store = Store.open(url)
        store.sync_feeds(config.feeds, now)
    except (SQLAlchemyError, OSError) as err:
        raise StartupError(upkeep.cannot_open(url, err)) from None
    return store


def ping(store: Store) -> None:
    """One round trip to the database (/healthz)."""
    from sqlalchemy import text

    with store.engine.connect() as c:
        c.execute(text("SELECT 1"))


def _first_line(err: BaseException) -> str:
    """The exception's message without SQLAlchemy's statement and background lines."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def run(config: Config, clock: Clock = utcnow) -> None:
    """Blocking entry point for `monitor run`."""
    asyncio.run(Daemon(config, clock).run())
