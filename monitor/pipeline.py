"""The orchestrator: one poll cycle, read top to bottom like the pipeline diagram.

scheduler tick -> due feeds (claimed from the store) -> fetch -> parse -> new entries only
  -> fetch page -> extract -> dedupe + store (new article, another source, or a revision)
  -> match (the queued new and revised articles against the watches; matches stored)
Delivery, which reads the stored matches, is monitor.deliver.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError

from monitor import boilerplate
from monitor.canonical import canonical_url
from monitor.clustering import Features, Options, actor_spellings, features
from monitor.config import Settings
from monitor.cpu import CpuPool
from monitor.domain import Clock, Conditional, Extracted, FeedEntry, ParsedFeed, utcnow
from monitor.extract import content_hash, extract
from monitor.fetch import PAGE_ACCEPT, Fetcher, FetchError
from monitor.grouping import Grouped
from monitor.parse import parse
from monitor.rules.active import ActiveRules, definitions, match_stored
from monitor.rules.compiler import compile_rules
from monitor.rules.spec import RuleSet
from monitor.schedule import backoff_delay, next_poll_after_success
from monitor.store import EntryToStore, FeedState, Ingested, NewArticle, PolledOk, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

MATCH_BATCH = 200  # queued articles matched in one transaction
PAGE_BATCH = 16  # pages of one feed fetched at once; bounds memory on a feed with a huge backlog
# With pages fetched, feeds polled at once per fetch slot (polling.concurrency): enough to keep
# every page slot busy, few enough that the parsed entries waiting for a page stay bounded.
FEEDS_PER_FETCH_SLOT = 2
# Pipeline stages that run in the extractor pool, in pipeline order (see Runtime.on_cpu).
PARSE, EXTRACT = 1, 2
STORE_GROUP = 50  # feeds' batches stored in one transaction at most: bounds its length


def default_owner() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"


@dataclass
class Runtime:
    """Everything the pipeline touches, passed in so a test can build it from real parts."""

    store: Store
    fetcher: Fetcher
    settings: Settings
    clock: Clock = utcnow
    extractor: Executor | None = None  # a process pool; None extracts inline
    owner: str = field(default_factory=default_owner)
    rng: random.Random = field(default_factory=random.Random)
    # Database work runs on its own thread: a PostgreSQL round trip or a SQLite lock wait on
    # the event loop would stall every fetch in flight until its timeout fired.
    db: Executor = field(default_factory=lambda: ThreadPoolExecutor(1, "monitor-db"))
    # The watches matched against new articles; a reload swaps in new ones with one assignment.
    # None leaves new articles queued for a process that has the rules (the daemon).
    rules: ActiveRules | None = None
    # A user's templates (config/templates/), each overriding the shipped one of its name.
    templates: Path | None = None
    # Each outlet's learned boilerplate lines as last read or learned (by outlet id and
    # boilerplate_min_pages), so extraction starts from them without a query per feed; the
    # store is asked again inside each batch's transaction, which is what counts.
    boilerplate: dict[tuple[int, int], frozenset[str]] = field(default_factory=dict, repr=False)
    cpu: CpuPool | None = field(init=False, repr=False)  # feeds the extractor
    # Pages fetched and not yet extracted, over all feeds: bounds the HTML held in memory.
    page_slots: asyncio.Semaphore = field(init=False, repr=False)
    # Feeds being polled at once when pages are fetched (see poll_feed).
    feed_slots: asyncio.Semaphore = field(init=False, repr=False)
    # Database calls that concurrent feeds make together (see monitor.grouping).
    read_learned: Grouped[int, frozenset[str]] = field(init=False)
    known_entries: Grouped[tuple[FeedState, list[str]], dict[str, str]] = field(init=False)
    store_batch: Grouped[_Batch, tuple[list[str], frozenset[str]]] = field(init=False)
    record_not_modified: Grouped[tuple[FeedState, datetime], None] = field(init=False)
    record_success: Grouped[PolledOk, None] = field(init=False)
    _options: tuple[object, Options] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        workers = self.settings.extract.workers
        self.page_slots = asyncio.Semaphore(max(self.settings.polling.concurrency, 2 * workers))
        self.feed_slots = asyncio.Semaphore(
            FEEDS_PER_FETCH_SLOT * self.settings.polling.concurrency
        )
        self.cpu = CpuPool(self.extractor, workers) if self.extractor is not None else None
        self.read_learned = Grouped(lambda outlet_ids: _read_learned(self, outlet_ids))
        self.known_entries = Grouped(lambda asks: self.on_db(_known_entries, self, asks))
        self.store_batch = Grouped(
            lambda batches: self.on_db(_store_batches, self, batches), most=STORE_GROUP
        )
        self.record_not_modified = Grouped(
            lambda polls: self.on_db(
                self.store.record_not_modified_many, polls, self.owner, self.clock()
            )
        )
        self.record_success = Grouped(
            lambda polls: self.on_db(
                self.store.record_success_many, polls, self.owner, self.clock()
            )
        )

    async def on_db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call (or a function made of store calls) on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    async def on_cpu(self, fn: Callable[..., T], *args: Any, stage: int) -> T:
        """Run a CPU-bound pure stage in the extractor pool, or inline without one. A call of
        a later stage (a higher number) goes first (see monitor.cpu)."""
        if self.cpu is None:
            return fn(*args)
        return await self.cpu.run(-stage, fn, *args)

    def clustering(self) -> Options | None:
        """What the extractor pool works out for near-duplicates and stories (monitor.yaml
        `dedupe`), with the actor spellings of the active rules; None: neither is done."""
        dedupe = self.settings.dedupe
        if not (dedupe.near_duplicates or dedupe.stories):
            return None
        actors = self.rules.rules.actors if self.rules is not None else {}
        if self._options is None or self._options[0] is not actors:
            spellings = actor_spellings(
                {k: [(a.text, a.case_sensitive) for a in s.aliases] for k, s in actors.items()}
            )
            options = Options(dedupe.near_duplicates, dedupe.stories, spellings)
            self._options = (actors, options)
        return self._options[1]

    def learned(self, outlet_id: int) -> frozenset[str] | None:
        """The outlet's learned boilerplate as this process last saw it; None if never."""
        return self.boilerplate.get((outlet_id, self.settings.extract.boilerplate_min_pages))

    def saw_learned(self, outlet_id: int, lines: frozenset[str]) -> None:
        # Lines only ever become boilerplate (their page counts only grow), so the union of
        # what concurrent feeds saw is never wrong.
        key = (outlet_id, self.settings.extract.boilerplate_min_pages)
        self.boilerplate[key] = self.boilerplate.get(key, frozenset()) | lines


@dataclass(frozen=True)
class FeedOutcome:
    """What polling one feed did."""

    feed: str
    status: str  # "ok", "not-modified", "error" or "skipped" (another worker took it over)
    new: int = 0
    duplicates: int = 0
    revisions: int = 0
    backlog: int = 0
    error: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class CycleSummary:
    """The result of one poll cycle, as `monitor poll --once` prints it."""

    outcomes: tuple[FeedOutcome, ...]

    def _sum(self, attr: str) -> int:
        return sum(getattr(o, attr) for o in self.outcomes)

    @property
    def polled(self) -> int:
        return len(self.outcomes)

    @property
    def not_modified(self) -> int:
        return sum(o.status == "not-modified" for o in self.outcomes)

    @property
    def errors(self) -> int:
        return sum(o.status == "error" for o in self.outcomes)

    @property
    def new(self) -> int:
        return self._sum("new")

    @property
    def duplicates(self) -> int:
        return self._sum("duplicates")

    @property
    def revisions(self) -> int:
        return self._sum("revisions")

    @property
    def backlog(self) -> int:
        return self._sum("backlog")

    def line(self) -> str:
        return (
            f"feeds polled: {self.polled}, not modified: {self.not_modified}, "
            f"new articles: {self.new} (backlog {self.backlog}), duplicates: {self.duplicates}, "
            f"revisions: {self.revisions}, errors: {self.errors}"
        )


async def poll_cycle(
    rt: Runtime,
    names: Sequence[str] | None = None,
    ignore_schedule: bool = False,
    limit: int | None = None,
) -> CycleSummary:
    """Claim the due feeds (or the named ones), poll them concurrently, and summarise.

    At most `limit` feeds (default polling.batch); a feed leased by another worker is skipped."""
    polling = rt.settings.polling
    feeds = await rt.on_db(
        rt.store.claim_due_feeds,
        rt.owner,
        rt.clock(),
        polling.lease,
        limit or polling.batch,
        names,
        ignore_schedule,
    )
    outcomes = await asyncio.gather(*(poll_feed(rt, feed) for feed in feeds))
    return CycleSummary(tuple(outcomes))


async def poll_feed(rt: Runtime, feed: FeedState) -> FeedOutcome:
    """Fetch, parse and store one claimed feed; any failure is recorded on the feed, not raised,
    except the database's own refusal (OperationalError), which cannot be recorded.

    When pages are fetched, a feed waits for one of rt.feed_slots first. A cycle claims up to
    polling.batch feeds; their feed documents come in fast and each new entry then waits for a
    page slot, so without the gate every claimed feed's parsed entries sat in memory at once (a
    third of the daemon's memory with 200 feeds of 100 new entries)."""
    try:
        if not rt.settings.extract.fetch_pages:
            return await _poll_feed(rt, feed)
        waited_since = rt.clock()
        async with rt.feed_slots:
            if not await _lease_still_ours(rt, feed, waited_since):
                return FeedOutcome(feed.name, "skipped")
            return await _poll_feed(rt, feed)
    except asyncio.CancelledError:
        rt.store.release(feed, rt.owner)  # hand it to the next worker at once
        raise
    except OperationalError:  # the database refuses (disk full, read-only, gone): recording
        raise  # the failure would fail too; the caller says so in one line and polls again
    except Exception as err:  # a bug or a database hiccup: back off like any failure, visibly
        log.exception("feed %s: unexpected error", feed.name)
        error = f"{feed.url}: internal error: {type(err).__name__}: {err}"
        return await rt.on_db(_failed, rt, feed, error, None, None)


async def _lease_still_ours(rt: Runtime, feed: FeedState, waited_since: datetime) -> bool:
    """After a long wait for a feed slot (half the lease or more), the lease is renewed; False
    when another worker has taken the feed over meanwhile."""
    lease = rt.settings.polling.lease
    if rt.clock() - waited_since < lease / 2:
        return True
    return await rt.on_db(rt.store.renew_lease, feed, rt.owner, rt.clock() + lease)


async def _poll_feed(rt: Runtime, feed: FeedState) -> FeedOutcome:
    try:
        fetched = await rt.fetcher.fetch(feed.url, Conditional(feed.etag, feed.last_modified))
    except FetchError as err:
        return await rt.on_db(_failed, rt, feed, str(err), err.status, err.retry_after)
    if fetched.not_modified:  # 304: nothing to parse (the point of a conditional GET)
        await rt.record_not_modified((feed, _next_poll(rt, feed)))
        return FeedOutcome(feed.name, "not-modified")
    parsed = await rt.on_cpu(
        parse, fetched.body, fetched.final_url, fetched.content_type, stage=PARSE
    )
    if not parsed.is_feed:
        error = f"{feed.url}: {parsed.problem}"
        return await rt.on_db(_failed, rt, feed, error, fetched.status, None)
    counts, problems, complete = await _store_entries(rt, feed, parsed)
    if counts["new"] or counts["revisions"]:
        await match_queued(rt)
    if parsed.problem:
        problems.insert(0, f"{feed.url}: {parsed.problem}")
    # An entry that could not be stored must be seen again: drop the validators so the next
    # poll cannot be a 304 that hides it.
    etag, last_modified = (fetched.etag, fetched.last_modified) if complete else (None, None)
    problem = "; ".join(problems) or None
    await rt.record_success(
        PolledOk(feed, _next_poll(rt, feed), fetched.status, etag, last_modified, problem)
    )
    return FeedOutcome(
        feed.name,
        "ok",
        new=counts["new"],
        duplicates=counts["duplicates"],
        revisions=counts["revisions"],
        backlog=counts["backlog"],
        problems=tuple(problems),
    )


def _failed(
    rt: Runtime, feed: FeedState, error: str, status: int | None, retry_after: float | None
) -> FeedOutcome:
    polling = rt.settings.polling
    delay = backoff_delay(
        feed.consecutive_failures + 1,
        polling.backoff_base,
        polling.backoff_max,
        retry_after,
        rt.rng if polling.jitter else None,  # jitter: 0 makes the schedule exact (tests)
    )
    now = rt.clock()
    rt.store.record_failure(feed, rt.owner, now, now + delay, error, status)
    log.warning("feed %s failed (retry in %s): %s", feed.name, delay, error)
    return FeedOutcome(feed.name, "error", error=error)


def _next_poll(rt: Runtime, feed: FeedState) -> datetime:
    return next_poll_after_success(rt.clock(), feed.interval, rt.settings.polling.jitter, rt.rng)


async def _store_entries(
    rt: Runtime, feed: FeedState, parsed: ParsedFeed
) -> tuple[dict[str, int], list[str], bool]:
    """Store the feed's new or edited entries; returns counts, problems, and whether all stored."""
    counts = {"new": 0, "duplicates": 0, "revisions": 0, "backlog": 0, "unchanged": 0}
    problems: list[str] = []
    todo = await _new_or_edited(rt, feed, parsed.entries)
    learned = await _learned(rt, feed)
    complete = True
    for start in range(0, len(todo), PAGE_BATCH):
        batch = todo[start : start + PAGE_BATCH]
        until = rt.clock() + rt.settings.polling.lease
        if start and not await rt.on_db(rt.store.renew_lease, feed, rt.owner, until):
            # Another worker holds the feed now: it will store the rest; stop before doubling up.
            problems.append(f"lease lost after {start} entries; the rest is left to its holder")
            return counts, problems, False
        pages, extracted = await _fetch_and_extract(rt, batch, learned)
        problems.extend(page.problem for page in pages if page.problem)
        ready = []
        for entry, page, ex in zip(batch, pages, extracted, strict=True):
            if isinstance(ex, str):
                log.warning(
                    "feed %s: entry %s could not be extracted: %s", feed.name, entry.guid, ex
                )
                problems.append(f"entry {entry.link or entry.guid}: {ex}")
                complete = False
            else:
                ready.append((entry, page, ex))
        outcomes, learned = await rt.store_batch(_Batch(feed, ready, learned))
        rt.saw_learned(feed.outlet_id, learned)
        for (entry, _, _), outcome in zip(ready, outcomes, strict=True):
            if outcome.startswith("error: "):  # one bad entry must not cost the feed the others
                problems.append(f"entry {entry.link or entry.guid}: {outcome[7:]}")
                complete = False
                continue
            counts[outcome] += 1
            if outcome == "backlog":  # backlog articles are new articles that will not alert
                counts["new"] += 1
    return counts, problems, complete


async def _learned(rt: Runtime, feed: FeedState) -> frozenset[str]:
    """The outlet's learned boilerplate, read from the store by its first feeds in this process."""
    learned = rt.learned(feed.outlet_id)
    if learned is None:
        learned = await rt.read_learned(feed.outlet_id)
    return learned


async def _read_learned(rt: Runtime, outlet_ids: Sequence[int]) -> list[frozenset[str]]:
    # An outlet's feeds start together: each outlet is read once, by the first group.
    missing = [o for o in dict.fromkeys(outlet_ids) if rt.learned(o) is None]
    if missing:
        min_pages = rt.settings.extract.boilerplate_min_pages
        found = await rt.on_db(rt.store.learned_boilerplate_many, missing, min_pages)
        for outlet_id, lines in zip(missing, found, strict=True):
            rt.saw_learned(outlet_id, lines)
    return [rt.learned(o) or frozenset() for o in outlet_ids]


async def _new_or_edited(
    rt: Runtime, feed: FeedState, entries: Sequence[FeedEntry]
) -> list[FeedEntry]:
    """Entries this feed has not delivered before, or has edited since, within retention."""
    known = await rt.known_entries((feed, [e.guid for e in entries])) if entries else {}
    oldest = rt.clock() - rt.settings.retention.articles
    todo: dict[str, FeedEntry] = {}
    for entry in entries:
        if entry.published is not None and entry.published < oldest:
            continue  # older than retention: it would be purged again at once
        if known.get(entry.guid) != entry.entry_hash:
            todo.setdefault(entry.guid, entry)  # a feed listing one GUID twice yields it once
    return list(todo.values())


def _known_entries(
    rt: Runtime, asks: Sequence[tuple[FeedState, list[str]]]
) -> list[dict[str, str]]:
    """For each (feed, GUIDs): guid -> entry hash of the entries the feed delivered before.

    Entries still listed are marked as seen now, so retention never purges an article that a
    feed still carries (it would come back as news on the next poll)."""
    known = rt.store.entry_hashes_many([(feed.id, guids) for feed, guids in asks])
    still_listed = [
        (feed.id, list(hashes)) for (feed, _), hashes in zip(asks, known, strict=True) if hashes
    ]
    rt.store.touch_sources_many(still_listed, rt.clock())
    return known


@dataclass(frozen=True)
class Page:
    """An entry's fetched page: its HTML and final address, or why there is none."""

    html: bytes | None = None
    url: str | None = None  # after redirects
    problem: str | None = None


async def _fetch_page(rt: Runtime, entry: FeedEntry) -> Page:
    """The entry's page; on failure a problem line (the feed's own content is the fallback)."""
    if not (rt.settings.extract.fetch_pages and entry.link):
        return Page()
    try:
        fetched = await rt.fetcher.fetch(entry.link, accept=PAGE_ACCEPT)
    except FetchError as err:
        return Page(problem=f"page {err}; used the feed's content, will retry the page")
    return Page(fetched.body, fetched.final_url)


async def _fetch_and_extract(
    rt: Runtime, entries: Sequence[FeedEntry], learned: frozenset[str]
) -> tuple[list[Page], list[Prepared | str]]:
    """Each entry's page (its HTML already dropped) and extracted article; a str says why an
    entry could not be extracted. Runs in the extractor pool.

    A page is fetched and extracted under one of the runtime's page slots, and its HTML let go
    as soon as it is extracted: the pages the process holds at once are bounded by the slots,
    however many feeds and batches are in flight. Entries with no page (feed content only)
    are cheap and go to the pool as one job, saving a round trip per entry."""
    min_chars, options, now = rt.settings.extract.min_chars, rt.clustering(), rt.clock()

    async def one(entry: FeedEntry) -> tuple[Page, Prepared | str | None]:
        if not (rt.settings.extract.fetch_pages and entry.link):
            return Page(), None
        async with rt.page_slots:
            page = await _fetch_page(rt, entry)
            if page.html is None:
                return page, None
            job = (page.html, page.url or entry.link or "", entry)
            (ex,) = await rt.on_cpu(
                extract_each, [job], learned, min_chars, options, now, stage=EXTRACT
            )
            return replace(page, html=None), ex

    done = await asyncio.gather(*(one(entry) for entry in entries))
    pages = [page for page, _ in done]
    extracted = [ex for _, ex in done]
    feed_only = [i for i, ex in enumerate(extracted) if ex is None]
    if feed_only:
        jobs = [(None, entries[i].link or "", entries[i]) for i in feed_only]
        results = await rt.on_cpu(
            extract_each, jobs, learned, min_chars, options, now, stage=EXTRACT
        )
        for i, ex in zip(feed_only, results, strict=True):
            extracted[i] = ex
    return pages, [ex if ex is not None else "not extracted" for ex in extracted]


@dataclass(frozen=True)
class Prepared:
    """An extracted entry with what storing it needs that costs CPU, worked out in the pool."""

    ex: Extracted
    link: str | None  # the entry's page: where its link led, else the link; canonical form
    text_hash: str  # content_hash(ex.text), "" for no text
    features: Features | None = None  # for near-duplicates and stories, if they are on
    published: datetime | None = None  # what the features took as its published time

    def recleaned(self, learned: frozenset[str], options: Options | None) -> Prepared:
        """The text without lines learned as boilerplate since it was extracted."""
        text = "\n".join(boilerplate.drop_learned(self.ex.lines, learned))
        found = None
        if options is not None and self.published is not None:
            found = features(text, self.published, options)
        ex = replace(self.ex, text=text)
        return replace(self, ex=ex, text_hash=_hash(text), features=found)


def extract_each(
    jobs: Sequence[tuple[bytes | None, str, FeedEntry]],
    learned: frozenset[str],
    min_chars: int,
    options: Options | None = None,
    now: datetime | None = None,
) -> list[Prepared | str]:
    """extract() over several entries (a pool job), given each entry's HTML and the address it
    came from (its link when there is no page); a failure is returned as its message. With
    `options`, also each text's near-duplicate and story features (monitor.clustering), an
    undated entry taken as published `now`."""
    out: list[Prepared | str] = []
    for html, url, entry in jobs:
        try:
            ex = extract(html, url, entry, learned, min_chars)
        except Exception as err:  # a page that breaks the extractor must not cost the others
            out.append(f"{type(err).__name__}: {err}")
            continue
        link = canonical_url(url) or canonical_url(entry.link or "")
        if options is None:
            out.append(Prepared(ex, link, _hash(ex.text)))
            continue
        published = ex.published or entry.published or now or datetime.now(UTC)
        found = features(ex.text, published, options)
        out.append(Prepared(ex, link, _hash(ex.text), found, published))
    return out


def _hash(text: str) -> str:
    return content_hash(text) if text else ""


@dataclass(frozen=True)
class _Batch:
    """Extracted entries of one feed, ready to store, and the boilerplate they were cleaned of."""

    feed: FeedState
    items: Sequence[tuple[FeedEntry, Page, Prepared]]
    learned: frozenset[str]


def _store_batches(
    rt: Runtime, batches: Sequence[_Batch]
) -> list[tuple[list[str], frozenset[str]]]:
    """Several feeds' batches (see _store_batch) in one transaction; if that fails, each feed's
    batch in a transaction of its own, so that one feed's bad entry costs no other feed."""
    now = rt.clock()
    if sum(1 for b in batches if b.items) > 1:
        try:
            return rt.store.atomic(_store_together, rt, batches, now)
        except OperationalError:  # the database refuses writes: no entry is at fault
            raise
        except Exception:
            log.warning("a group of %d feeds failed to store; storing feed by feed", len(batches))
    return [_store_batch(rt, b, now) for b in batches]


def _store_together(
    rt: Runtime, batches: Sequence[_Batch], now: datetime
) -> list[tuple[list[str], frozenset[str]]]:
    # Every batch's rows as extracted, so that one query looks up what the whole group will ask
    # (a batch that learning re-cleans below builds its rows again, and asks for what differs).
    rows = [_rows(rt, b.feed, b.items, now) for b in batches]
    rt.store.expect_ingest([(b.feed, r) for b, r in zip(batches, rows, strict=True)])
    # Each batch reads its outlet's learned lines again in this transaction: one query for all.
    outlets = [b.feed.outlet_id for b in batches if b.items]
    rt.store.learned_boilerplate_many(outlets, rt.settings.extract.boilerplate_min_pages)
    return [
        _learn_and_store(rt, b.feed, b.items, b.learned, now, rows=r)
        for b, r in zip(batches, rows, strict=True)
    ]


def _store_batch(rt: Runtime, batch: _Batch, now: datetime) -> tuple[list[str], frozenset[str]]:
    """Dedupe and store one feed's extracted entries in one transaction, after their pages taught
    the outlet's boilerplate. Returns each entry's outcome ("error: ..." when it failed) and the
    outlet's learned lines."""
    feed, items, learned = batch.feed, batch.items, batch.learned
    if not items:
        return [], learned
    try:
        return rt.store.atomic(_learn_and_store, rt, feed, items, learned, now)
    except OperationalError:  # the database refuses writes: no entry is at fault
        raise
    except Exception:  # store them one by one, so only the entry at fault is lost
        log.warning("feed %s: a batch failed; storing its entries one by one", feed.name)
        return _learn_and_store(rt, feed, items, learned, now, one_by_one=True)


def _learn_and_store(
    rt: Runtime,
    feed: FeedState,
    items: Sequence[tuple[FeedEntry, Page, Prepared]],
    learned: frozenset[str],
    now: datetime,
    one_by_one: bool = False,
    rows: list[EntryToStore] | None = None,  # the items' rows, if built already
) -> tuple[list[str], frozenset[str]]:
    if not items:
        return [], learned
    # The pages this outlet had not carried teach the learner first, so that this batch is
    # already cleaned of the lines they reveal (two copies of one story differing only in
    # boilerplate must hash alike). Another feed of the same outlet, polled concurrently (here
    # or by another worker), may have learned lines since these entries were extracted: the
    # newest set is used as well.
    min_pages = rt.settings.extract.boilerplate_min_pages
    current = learned | rt.store.learned_boilerplate(feed.outlet_id, min_pages)
    pages = {
        ready.link: ready.ex for (_, _, ready) in items if ready.ex.source == "page" and ready.link
    }
    new = rt.store.pages_new_to_outlet(feed.outlet_id, list(pages)) if pages else set()
    if new:
        current = _learn(rt, feed, [pages[link] for link in pages if link in new], current)
    if current != learned:
        learned = current
        options = rt.clustering()
        items = [(entry, page, ready.recleaned(learned, options)) for entry, page, ready in items]
        rows = None
    if rows is None:
        rows = _rows(rt, feed, items, now)
    stored: list[Ingested | str]
    if one_by_one:
        stored = [_ingest_alone(rt, feed, row, now) for row in rows]
    else:
        stored = list(rt.store.ingest_many(feed, rows, now))
    outcomes = []
    for row, result in zip(rows, stored, strict=True):
        if isinstance(result, str):
            outcomes.append(f"error: {result}")
            continue
        outcome = {
            "duplicate": "duplicates",
            "near-duplicate": "duplicates",
            "revision": "revisions",
        }.get(result.outcome, result.outcome)
        outcomes.append("backlog" if outcome == "new" and row.article.backlog else outcome)
    return outcomes, learned


def _rows(
    rt: Runtime,
    feed: FeedState,
    items: Sequence[tuple[FeedEntry, Page, Prepared]],
    now: datetime,
) -> list[EntryToStore]:
    return [_entry_to_store(rt, feed, entry, page, ready, now) for entry, page, ready in items]


def _entry_to_store(
    rt: Runtime, feed: FeedState, entry: FeedEntry, page: Page, ready: Prepared, now: datetime
) -> EntryToStore:
    ex, link = ready.ex, ready.link
    window = rt.settings.polling.first_run_window
    published = ex.published or entry.published
    backlog = feed.first_poll and (published is None or published < now - window)
    # The address the entry is known by: the page's own rel=canonical, else its page's.
    url = ex.canonical_url or link or f"urn:monitor:{feed.name}:{entry.guid}"
    article = NewArticle(
        canonical_url=url,
        title=ex.title or entry.title or url,
        author=ex.author,
        published_at=published,
        language=ex.language or feed.language,
        text=ex.text,
        text_source=ex.source,
        content_hash=ready.text_hash,
        backlog=backlog,
        entry_title=entry.title,
        features=ready.features,
    )
    # A page that failed is retried on the next poll: the entry is not recorded as fully seen.
    entry_hash = entry.entry_hash + ("~page-failed" if page.problem else "")
    return EntryToStore(entry.guid, entry_hash, link, article)


def _ingest_alone(rt: Runtime, feed: FeedState, row: EntryToStore, now: datetime) -> Ingested | str:
    try:
        return rt.store.ingest_many(feed, [row], now)[0]
    except OperationalError:
        raise
    except Exception as err:
        log.exception("feed %s: entry %s could not be stored", feed.name, row.guid)
        return f"{type(err).__name__}: {err}"


def _learn(
    rt: Runtime, feed: FeedState, pages: Sequence[Extracted], learned: frozenset[str]
) -> frozenset[str]:
    """Count these pages' lines for the outlet; lines that just became boilerplate are also
    removed from the outlet's texts stored before the learner knew them."""
    samples: dict[str, str] = {}
    per_page = []
    for ex in pages:
        samples.update({boilerplate.line_key(line): line for line in ex.lines})
        per_page.append(boilerplate.page_keys(ex.lines))
    min_pages = rt.settings.extract.boilerplate_min_pages
    fresh = rt.store.learn_boilerplate(
        feed.outlet_id,
        [{k: samples.get(k, "") for k in keys} for keys in per_page],
        min_pages,
    )
    if not fresh:
        return learned
    learned = learned | fresh

    def reclean(text: str) -> str:
        return "\n".join(boilerplate.clean(boilerplate.paragraphs(text), learned))

    changed = rt.store.rewrite_outlet_texts(feed.outlet_id, reclean, content_hash)
    log.info(
        "outlet %s: %d new boilerplate lines, %d stored texts re-cleaned",
        feed.outlet,
        len(fresh),
        changed,
    )
    return learned


def activate_rules(store: Store, rules: RuleSet, now: datetime) -> ActiveRules:
    """Compile `rules` and record their watches in the store (a watch's first sighting is the
    oldest article it may match); assign the result to `Runtime.rules`."""
    compiled = compile_rules(rules)
    return ActiveRules(compiled, store.register_watches(definitions(rules), now), rules)


async def match_queued(rt: Runtime) -> tuple[int, int]:
    """Match the articles waiting in the store's queue (new and revised ones) against the
    active watches and store the matches; returns (articles matched, matches stored).

    The queue is durable: what a crash or a failure here leaves behind is matched next time."""
    total = written = 0
    while rt.rules is not None:
        match_fn = functools.partial(match_stored, rt.rules)
        try:
            done, found = await rt.on_db(rt.store.match_pending, match_fn, rt.clock(), MATCH_BATCH)
        except Exception:  # the database: the articles stay queued for the next call
            log.exception("matching failed; the articles stay queued")
            return total, written
        total, written = total + done, written + found
        if done < MATCH_BATCH:
            break
    return total, written


def housekeeping(rt: Runtime) -> int:
    """Apply retention; returns the number of articles deleted."""
    return rt.store.purge(rt.clock() - rt.settings.retention.articles)
