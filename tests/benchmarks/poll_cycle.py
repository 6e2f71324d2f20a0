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
import os
import pstats
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from monitor.config import FeedSpec, Settings
from monitor.daemon import fetch_limits
from monitor.demo.server import Route
from monitor.demo.site import STORIES
from monitor.domain import Conditional, FetchResult, utcnow
from monitor.fetch import FEED_ACCEPT, Fetcher
from monitor.pipeline import CycleSummary, Runtime, poll_cycle
from monitor.store import Store
from tests.benchmarks.common import (
    Result,
    ServerFarm,
    cli,
    finish,
    pg_database,
    postgres_available,
    postgres_cpu_seconds,
    process_cpu_seconds,
)
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
                items.append(
                    Item(
                        guid=link,
                        title=f"Dispatch {_code(n)}: {para[:60]}",
                        link=link,
                        published=published - timedelta(minutes=k),
                        description=f"<p>Dispatch {_code(n)}.</p><p>{para}</p>",
                    )
                )
            body = rss(items, title=f"Outlet {host} feed {j}")
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            routes[f"/feeds/{j}.xml"] = Route(
                body=body,
                content_type="application/rss+xml; charset=utf-8",
                etag=etag,
                last_modified="Mon, 17 Jan 2022 08:00:00 GMT",
                gzip=self.gzip,
            )
        return routes


class CountingFetcher(Fetcher):
    """The real Fetcher, also summing FetchResult.bytes_received (decoded-body wire bytes)."""

    bytes_received = 0
    fetches = 0

    async def fetch(
        self, url: str, conditional: Conditional | None = None, accept: str = FEED_ACCEPT
    ) -> FetchResult:
        result = await super().fetch(url, conditional, accept)
        self.bytes_received += result.bytes_received
        self.fetches += 1
        return result


def bench_settings(
    database: str, workers: int, batch: int, concurrency: int, clustering: bool = True
) -> Settings:
    return Settings.model_validate(
        {
            "database": database,
            "polling": {
                "concurrency": concurrency,
                "per_host": PER_HOST,
                "batch": batch,
                "allow_networks": ("127.0.0.0/8",),  # the server farm listens on loopback
            },
            "extract": {"fetch_pages": False, "workers": workers},
            "dedupe": {"near_duplicates": clustering, "stories": clustering},
        }
    )


@dataclass
class CycleFigures:
    seconds: float
    cpu: float  # CPU seconds of this (the pipeline's) process during the cycle
    summary: CycleSummary
    wire_bytes: int
    body_bytes: int
    client_bytes: int
    requests: int
    statuses: dict[int, int]
    max_in_flight: int
    errors: dict[str, int]  # failure reason (URL stripped) -> feeds
    retried: int = 0  # feeds that failed and were polled again before the next timed cycle
    farm_cpu: float = 0.0  # CPU seconds of the loopback server farm's process
    workers_cpu: float = 0.0  # CPU seconds of the extract pool's worker processes
    postgres_cpu: float = 0.0  # CPU seconds of the PostgreSQL server (PostgreSQL runs only)


async def _cycles(
    farm: ServerFarm,
    url: str,
    workers: int,
    feeds: int,
    profile: bool,
    concurrency: int = CONCURRENCY,
    clustering: bool = True,
) -> tuple[CycleFigures, CycleFigures, CycleFigures]:
    settings = bench_settings(url, workers, feeds, concurrency, clustering)
    store = Store.open(url)
    specs = [
        FeedSpec(
            name=f"o{h}/f{j}",
            outlet=f"o{h}",
            outlet_name=f"Outlet {h}",
            url=f"{base}/feeds/{j}.xml",
            interval=timedelta(minutes=15),
            language="en",
            tags=(),
        )
        for h, base in enumerate(farm.bases)
        for j in range(feeds // len(farm.bases))
    ]
    store.sync_feeds(specs, utcnow())
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    if pool is not None:  # start the workers (and import trafilatura there) before timing
        list(pool.map(time.sleep, [0.2] * workers))
    figures = []
    try:
        async with CountingFetcher(fetch_limits(SimpleNamespace(settings=settings))) as fetcher:
            rt = Runtime(store, fetcher, settings, utcnow, pool)
            for cycle in ("cold", "warm", "refetch"):
                if figures and figures[-1].summary.errors:
                    # The loopback servers never fail: a failed feed is a spurious timeout or
                    # pool error of the client. Poll those again (untimed) so the next cycle
                    # measures what it is meant to (every feed a 304, or every feed known).
                    for _ in range(3):
                        failed = [o.feed for o in figures[-1].summary.outcomes if o.error]
                        again = await poll_cycle(rt, failed, ignore_schedule=True)
                        figures[-1].retried += len(failed)
                        if not again.errors:
                            break
                if cycle == "refetch":
                    farm.strip_validators()
                farm.reset()
                fetcher.bytes_received = 0
                prof = cProfile.Profile() if profile else None
                started, cpu = time.perf_counter(), time.process_time()
                farm_cpu, workers_cpu = farm.cpu_seconds(), _workers_cpu(pool)
                pg_cpu = postgres_cpu_seconds() if store.dialect == "postgresql" else 0.0
                if prof:
                    prof.enable()
                summary = await poll_cycle(rt, ignore_schedule=True)
                if prof:
                    prof.disable()
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu
                farm_cpu = farm.cpu_seconds() - farm_cpu
                workers_cpu = _workers_cpu(pool) - workers_cpu
                if store.dialect == "postgresql":
                    pg_cpu = postgres_cpu_seconds() - pg_cpu
                s = farm.stats()
                errors = Counter(
                    (o.error or "").split(": ", 1)[-1] for o in summary.outcomes if o.error
                )
                figures.append(
                    CycleFigures(
                        seconds,
                        cpu,
                        summary,
                        s.wire_bytes,
                        s.body_bytes,
                        fetcher.bytes_received,
                        s.requests,
                        s.statuses,
                        s.max_in_flight_per_host,
                        dict(errors),
                        farm_cpu=farm_cpu,
                        workers_cpu=workers_cpu,
                        postgres_cpu=pg_cpu,
                    )
                )
                print(
                    f"    {cycle}: {seconds:.2f} s (CPU {cpu:.2f} s), {summary.line()}; "
                    f"server: {s.requests} requests {s.statuses}, {s.wire_bytes:,} bytes",
                    flush=True,
                )
                if prof:
                    out = io.StringIO()
                    order = os.environ.get("SORT", "cumulative")
                    pstats.Stats(prof, stream=out).sort_stats(order).print_stats(45)
                    print(out.getvalue())
    finally:
        if pool is not None:
            pool.shutdown()
        store.close()
    return figures[0], figures[1], figures[2]


def _workers_cpu(pool: ProcessPoolExecutor | None) -> float:
    if pool is None:
        return 0.0
    return sum(process_cpu_seconds(pid) for pid in pool._processes or {})


def _report(
    result: Result, label: str, figures: tuple[CycleFigures, ...], feeds: int, targets: bool
) -> None:
    cold, warm, refetch = figures
    ok_cold = cold.summary.polled == feeds and not cold.summary.errors
    ok_warm = warm.summary.not_modified == feeds
    ok_refetch = refetch.summary.polled == feeds and not refetch.summary.new
    if not (ok_warm and ok_refetch):
        result.note(
            f"{label}: UNEXPECTED OUTCOMES cold: {cold.summary.line()}; "
            f"warm: {warm.summary.line()}; refetch: {refetch.summary.line()}"
        )
    ratio = warm.wire_bytes / cold.wire_bytes if cold.wire_bytes else 0.0

    def target(text: str, met: bool) -> dict[str, Any]:
        return {"target": text, "met": met} if targets else {}

    result.add(
        f"{label}: cold cycle (first poll, {cold.summary.new:,} new articles)",
        cold.seconds,
        "s",
        **target(f"<= {COLD_TARGET:.0f} s", cold.seconds <= COLD_TARGET and ok_cold),
    )
    result.add(
        f"{label}: warm cycle (all 304)",
        warm.seconds,
        "s",
        **target(f"<= {WARM_TARGET:.0f} s", warm.seconds <= WARM_TARGET and ok_warm),
    )
    result.add(
        f"{label}: cold re-fetch (all 200, every entry already stored)", refetch.seconds, "s"
    )
    result.add(
        f"{label}: bytes received, cold / warm (wire, headers included)",
        f"{cold.wire_bytes:,} / {warm.wire_bytes:,}",
        "B",
    )
    result.add(
        f"{label}: warm / cold bytes",
        100 * ratio,
        "%",
        **target(f"<= {100 * BYTES_TARGET:.0f} %", ratio <= BYTES_TARGET),
    )
    result.add(
        f"{label}: FetchResult.bytes_received sum, cold / warm",
        f"{cold.client_bytes:,} / {warm.client_bytes:,}",
        "B",
    )
    result.add(f"{label}: most requests in flight to one host", cold.max_in_flight)
    result.add(
        f"{label}: CPU of the pipeline process, cold / warm / re-fetch",
        f"{cold.cpu:.1f} / {warm.cpu:.1f} / {refetch.cpu:.1f}",
        "s",
    )
    server = f" / {cold.postgres_cpu:.1f}" if cold.postgres_cpu else ""
    result.add(
        f"{label}: CPU of the extract workers / the server farm"
        + (" / PostgreSQL" if server else "")
        + ", cold",
        f"{cold.workers_cpu:.1f} / {cold.farm_cpu:.1f}{server}",
        "s",
    )
    for name, fig in (("cold", cold), ("warm", warm), ("re-fetch", refetch)):
        if fig.errors:
            reasons = "; ".join(
                f"{n} x {why}" for why, n in sorted(fig.errors.items(), key=lambda kv: -kv[1])
            )
            result.add(
                f"{label}: feeds failed in the {name} cycle (servers never fail)",
                sum(fig.errors.values()),
                "",
                target="0",
                met=False,
            )
            result.note(
                f"{label}, {name} cycle: {reasons} (polled again, untimed, before the "
                "next timed cycle)"
            )


VARIANTS = {
    # name: (label, database, extract.workers, gzip, full scale, near-duplicates and stories)
    "sqlite": ("SQLite", "sqlite", 2, False, True, True),
    "pg": ("PostgreSQL", "pg", 2, False, True, True),
    "sqlite-flat": ("SQLite, near-duplicates and stories off", "sqlite", 2, False, True, False),
    "pg-flat": ("PostgreSQL, near-duplicates and stories off", "pg", 2, False, True, False),
    "inline": ("SQLite, inline extraction (workers=1)", "sqlite", 1, False, True, True),
    "gzip": ("SQLite, gzip-encoded feeds (bytes only; 10 hosts)", "sqlite", 2, True, False, True),
}


def main() -> None:
    args = cli("poll_cycle", __doc__ or "", variants="sqlite,sqlite-flat,pg,pg-flat,gzip")
    started = time.monotonic()
    full_hosts = 10 if args.quick else HOSTS
    feeds = full_hosts * FEEDS_PER_HOST
    result = Result(
        "poll_cycle",
        f"Poll cycle of {feeds:,} feeds",
        ".venv/bin/python -m tests.benchmarks.poll_cycle",
    )
    floor = -(-FEEDS_PER_HOST // PER_HOST) * LATENCY
    print(
        f"poll cycle: {feeds} feeds on {full_hosts} hosts x {FEEDS_PER_HOST}, "
        f"{LATENCY * 1000:.0f} ms latency, polling.concurrency={CONCURRENCY}, "
        f"per_host={PER_HOST}, batch={feeds}; latency floor per cycle {floor:.1f} s",
        flush=True,
    )
    pg = postgres_available()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        for n, name in enumerate(args.variants.split(",")):
            label, db, workers, gzip, full, clustering = VARIANTS[name]
            if db == "pg" and not pg:
                result.note("PostgreSQL was not reachable: it was not measured.")
                continue
            hosts = full_hosts if full else min(full_hosts, 10)
            flags = {"clustering": clustering}
            print(f"  {label}: extract.workers={workers}, {hosts} hosts", flush=True)
            with ServerFarm(hosts, LATENCY, FeedSite(FEEDS_PER_HOST, ENTRIES, gzip)) as farm:
                n_feeds = hosts * FEEDS_PER_HOST
                if db == "pg":
                    with pg_database() as url:
                        figures = asyncio.run(
                            _cycles(farm, url, workers, n_feeds, args.profile, **flags)
                        )
                else:
                    url = f"sqlite:///{Path(tmp) / f'{n}.db'}"
                    figures = asyncio.run(
                        _cycles(farm, url, workers, n_feeds, args.profile, **flags)
                    )
            _report(result, label, figures, n_feeds, targets=name in ("sqlite", "pg"))
    result.note(
        f"{feeds:,} feeds = {full_hosts} loopback hosts (127.0.0.1-{full_hosts}) x "
        f"{FEEDS_PER_HOST} feeds, each a {ENTRIES}-entry RSS 2.0 document with full content "
        f"(~6 KB); {LATENCY * 1000:.0f} ms added before every response; the server farm runs in "
        f"its own process. polling.concurrency={CONCURRENCY} (= hosts x per_host {PER_HOST}), "
        f"polling.batch={feeds}, extract.fetch_pages=false, extract.workers=2 (the daemon's "
        f"process pool) unless noted; the floor set by latency and per_host alone is "
        f"{floor:.1f} s per cycle."
    )
    result.note(
        "Cold: the first poll of a fresh store, so every entry is parsed, extracted (from the "
        f"feed's content) and stored: {feeds * ENTRIES:,} new articles. Warm: the same feeds "
        "again, every one a 304 to If-None-Match. Cold re-fetch: the servers then stop sending "
        "validators, so every feed is a 200 again but every entry is known (fetch + parse + "
        "bookkeeping only). Bytes are what the servers wrote (status line, headers and body); "
        "FetchResult.bytes_received counts body bytes only, so it is 0 for a 304."
    )
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
