"""Benchmark 1: one poll cycle of 1,000 feeds on 50 loopback hosts with 100 ms latency.

    .venv/bin/python -m tests.benchmarks.poll_cycle [--quick] [--profile] [--json FILE]

Cold cycle: every feed answers 200 with a small RSS document (10 entries, ~6 KB, with full
content so that extract.fetch_pages can stay false: the target is about feed polling, not page
fetching). Warm cycle: the same feeds polled again; each answers 304 to the conditional GET.
The real `poll_cycle` runs against a real SQLite file (and PostgreSQL when it is reachable), with
the daemon's extractor pool (2 processes) and the daemon's `fetch_limits`.
"""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import io
import pstats
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from monitor.config import Settings
from monitor.daemon import fetch_limits
from monitor.demo.server import Route
from monitor.demo.site import STORIES
from monitor.domain import Conditional, FetchResult, utcnow
from monitor.fetch import FEED_ACCEPT, Fetcher
from monitor.pipeline import CycleSummary, Runtime, poll_cycle
from monitor.store import Store
from monitor.store.store import FeedSpecLike
from tests.benchmarks.common import Result, ServerFarm, cli, finish, pg_database, postgres_available
from tests.support import Item, rss

HOSTS = 50
FEEDS_PER_HOST = 20
ENTRIES = 10
LATENCY = 0.1
PER_HOST = 4
CONCURRENCY = HOSTS * PER_HOST  # every host can be busy at once: 200 requests in flight
COLD_TARGET, WARM_TARGET, BYTES_TARGET = 5.0, 2.0, 0.05

_PARAGRAPHS = [p for story in STORIES.values() for p in story.splitlines() if len(p) > 150]


def _code(n: int) -> str:
    """A unique lowercase word for n (the boilerplate learner folds digits, not letters)."""
    letters = ""
    n += 26 * 26
    while n:
        n, r = divmod(n, 26)
        letters += chr(97 + r)
    return letters


@dataclass(frozen=True)
class FeedSite:
    """Each host serves `feeds` RSS documents of `entries` entries at /feeds/<j>.xml."""

    feeds: int
    entries: int
    gzip: bool = False

    def __call__(self, host: int, base: str) -> dict[str, Route]:
        published = datetime.now(UTC) - timedelta(hours=1)
        routes = {}
        for j in range(self.feeds):
            items = []
            for k in range(self.entries):
                n = (host * self.feeds + j) * self.entries + k
                para = _PARAGRAPHS[n % len(_PARAGRAPHS)]
                link = f"{base}/news/{j}/{k}.html"
                items.append(Item(
                    guid=link, title=f"Dispatch {_code(n)}: {para[:60]}", link=link,
                    published=published - timedelta(minutes=k),
                    description=f"<p>Dispatch {_code(n)}.</p><p>{para}</p>",
                ))
            body = rss(items, title=f"Outlet {host} feed {j}")
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            routes[f"/feeds/{j}.xml"] = Route(
                body=body, content_type="application/rss+xml; charset=utf-8", etag=etag,
                last_modified="Mon, 17 Jan 2022 08:00:00 GMT", gzip=self.gzip,
            )
        return routes


class CountingFetcher(Fetcher):
    """The real Fetcher, also summing FetchResult.bytes_received (decoded-body wire bytes)."""

    bytes_received = 0
    fetches = 0

    async def fetch(self, url: str, conditional: Conditional | None = None,
                    accept: str = FEED_ACCEPT) -> FetchResult:
        result = await super().fetch(url, conditional, accept)
        self.bytes_received += result.bytes_received
        self.fetches += 1
        return result


def bench_settings(database: str, workers: int, batch: int) -> Settings:
    return Settings.model_validate({
        "database": database,
        "polling": {"concurrency": CONCURRENCY, "per_host": PER_HOST, "batch": batch},
        "extract": {"fetch_pages": False, "workers": workers},
    })


@dataclass
class CycleFigures:
    seconds: float
    summary: CycleSummary
    wire_bytes: int
    body_bytes: int
    client_bytes: int
    requests: int
    statuses: dict[int, int]
    max_in_flight: int


async def _cycles(farm: ServerFarm, url: str, workers: int, feeds: int,
                  profile: bool) -> tuple[CycleFigures, CycleFigures]:
    settings = bench_settings(url, workers, batch=feeds)
    store = Store.open(url)
    specs = [
        FeedSpecLike(name=f"o{h}/f{j}", outlet=f"o{h}", outlet_name=f"Outlet {h}",
                     url=f"{base}/feeds/{j}.xml", interval=timedelta(minutes=15),
                     language="en", tags=())
        for h, base in enumerate(farm.bases) for j in range(feeds // len(farm.bases))
    ]
    store.sync_feeds(specs, utcnow())
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    if pool is not None:  # start the workers (and import trafilatura there) before timing
        list(pool.map(time.sleep, [0.2] * workers))
    figures = []
    try:
        async with CountingFetcher(fetch_limits(SimpleNamespace(settings=settings))) as fetcher:
            rt = Runtime(store, fetcher, settings, utcnow, pool)
            for cycle in ("cold", "warm"):
                farm.reset()
                fetcher.bytes_received = 0
                prof = cProfile.Profile() if profile else None
                started = time.perf_counter()
                if prof:
                    prof.enable()
                summary = await poll_cycle(rt, ignore_schedule=True)
                if prof:
                    prof.disable()
                seconds = time.perf_counter() - started
                s = farm.stats()
                figures.append(CycleFigures(seconds, summary, s.wire_bytes, s.body_bytes,
                                            fetcher.bytes_received, s.requests, s.statuses,
                                            s.max_in_flight_per_host))
                print(f"    {cycle}: {seconds:.2f} s, {summary.line()}; server: {s.requests} "
                      f"requests {s.statuses}, {s.wire_bytes:,} bytes", flush=True)
                if prof:
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(35)
                    print(out.getvalue())
    finally:
        if pool is not None:
            pool.shutdown()
        store.close()
    return figures[0], figures[1]


def _report(result: Result, label: str, cold: CycleFigures, warm: CycleFigures, feeds: int,
            targets: bool) -> None:
    ok_cold = cold.summary.polled == feeds and not cold.summary.errors
    ok_warm = warm.summary.not_modified == feeds
    if not (ok_cold and ok_warm):
        result.note(f"{label}: UNEXPECTED OUTCOMES cold: {cold.summary.line()}; "
                    f"warm: {warm.summary.line()}")
    ratio = warm.wire_bytes / cold.wire_bytes if cold.wire_bytes else 0.0

    def target(text: str, met: bool) -> dict[str, Any]:
        return {"target": text, "met": met} if targets else {}

    result.add(f"{label}: cold cycle wall time", cold.seconds, "s",
               **target(f"<= {COLD_TARGET:.0f} s", cold.seconds <= COLD_TARGET and ok_cold))
    result.add(f"{label}: warm cycle wall time", warm.seconds, "s",
               **target(f"<= {WARM_TARGET:.0f} s", warm.seconds <= WARM_TARGET and ok_warm))
    result.add(f"{label}: cold bytes received (wire, headers included)", cold.wire_bytes, "B")
    result.add(f"{label}: warm bytes received (wire, headers included)", warm.wire_bytes, "B")
    result.add(f"{label}: warm / cold bytes", 100 * ratio, "%",
               **target(f"<= {100 * BYTES_TARGET:.0f} %", ratio <= BYTES_TARGET))
    result.add(f"{label}: FetchResult.bytes_received sum, cold / warm",
               f"{cold.client_bytes:,} / {warm.client_bytes:,}", "B")
    result.add(f"{label}: new articles stored (cold)", cold.summary.new)
    result.add(f"{label}: max requests in flight to one host", cold.max_in_flight)


def main() -> None:
    args = cli("poll_cycle", __doc__ or "")
    started = time.monotonic()
    hosts = 10 if args.quick else HOSTS
    feeds = hosts * FEEDS_PER_HOST
    result = Result("poll_cycle", f"Poll cycle of {feeds:,} feeds",
                    ".venv/bin/python -m tests.benchmarks.poll_cycle")
    floor = -(-FEEDS_PER_HOST // PER_HOST) * LATENCY
    print(f"poll cycle: {feeds} feeds on {hosts} hosts x {FEEDS_PER_HOST}, {LATENCY * 1000:.0f} ms "
          f"latency, polling.concurrency={CONCURRENCY}, per_host={PER_HOST}, batch={feeds}; "
          f"latency floor per cycle {floor:.1f} s", flush=True)
    variants: list[tuple[str, str, int, bool]] = []  # (label, database, workers, gzip)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        variants.append(("SQLite", f"sqlite:///{Path(tmp) / 'a.db'}", 2, False))
        variants.append(("SQLite, inline extraction", f"sqlite:///{Path(tmp) / 'b.db'}", 1,
                         False))
        variants.append(("SQLite, gzip feeds", f"sqlite:///{Path(tmp) / 'c.db'}", 2, True))
        pg = postgres_available()
        if pg:
            variants.append(("PostgreSQL", "pg", 2, False))
        for label, db, workers, gzip in variants:
            print(f"  {label} (extract.workers={workers}, gzip={gzip}):", flush=True)
            with ServerFarm(hosts, LATENCY, FeedSite(FEEDS_PER_HOST, ENTRIES, gzip)) as farm:
                if db == "pg":
                    with pg_database() as url:
                        cold, warm = asyncio.run(_cycles(farm, url, workers, feeds, args.profile))
                else:
                    cold, warm = asyncio.run(_cycles(farm, db, workers, feeds, args.profile))
            _report(result, label, cold, warm, feeds, targets=(label in ("SQLite", "PostgreSQL")))
    result.note(
        f"{feeds:,} feeds = {hosts} loopback hosts (127.0.0.2-{hosts + 1}) x {FEEDS_PER_HOST} "
        f"feeds, each a {ENTRIES}-entry RSS document with full content (~6 KB); "
        f"{LATENCY * 1000:.0f} ms added before every response; the server farm runs in its own "
        f"process. polling.concurrency={CONCURRENCY} (= hosts x per_host {PER_HOST}), "
        f"polling.batch={feeds}, extract.fetch_pages=false; the floor set by latency and "
        f"per_host alone is {floor:.1f} s per cycle.")
    result.note(
        "Cold: first poll of a fresh store, so every entry is parsed, extracted (feed content, "
        "in the 2-process extractor pool unless 'inline') and stored: "
        f"{feeds * ENTRIES:,} new articles. Warm: the same feeds again, every one a 304 to "
        "If-None-Match. Bytes are what the servers wrote (status line + headers + body); "
        "FetchResult.bytes_received counts only body bytes, so it is 0 for a 304.")
    if not pg:
        result.note("PostgreSQL was not reachable: only SQLite was measured.")
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
