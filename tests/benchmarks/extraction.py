"""Benchmark 2: extraction throughput on the demo site's article pages.

    .venv/bin/python -m tests.benchmarks.extraction [--quick] [--profile] [--json FILE]

The 13 article pages of the bundled sample outlets (real corpus text with each site's chrome),
repeated to a few hundred articles. In one run: plain `trafilatura.extract` and the project's
extraction in this process (the pipeline's `extract_each`, as the daemon runs it with
extract.workers 1), then the same through a ProcessPoolExecutor of 1 and of 2 workers,
submitted the way the pipeline does it: one call per page through the Runtime's CpuPool, as
many in flight as the daemon's page slots allow. The four variants are timed in interleaved
rounds.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import UTC

import trafilatura

from monitor.config import Settings
from monitor.cpu import CpuPool
from monitor.demo.site import build_routes, demo_pages
from monitor.domain import FeedEntry
from monitor.pipeline import EXTRACT, Prepared, extract_each
from tests.benchmarks.common import Result, cli, finish

BASE = "http://127.0.0.1:8000"
TARGET = 1.7
ROUNDS = 5

Article = tuple[bytes, str, FeedEntry]


def articles(copies: int) -> list[Article]:
    routes = build_routes(BASE)
    one = []
    for page in demo_pages():
        url = page.url(BASE)
        entry = FeedEntry(
            guid=url,
            link=url,
            title=page.title,
            author=page.author,
            published=page.published.astimezone(UTC),
            content=page.summary,
            entry_hash=url,
        )
        one.append((routes[page.path].body, url, entry))
    return one * copies


def _project(a: Article) -> int:
    (ready,) = extract_each([a], frozenset(), 200)
    assert isinstance(ready, Prepared)
    return len(ready.ex.text)


def _plain(a: Article) -> int:
    return len(trafilatura.extract(a[0], url=a[1]) or "")


def _inline(fn: Callable[[Article], int], items: list[Article]) -> float:
    started = time.perf_counter()
    for a in items:
        fn(a)
    return time.perf_counter() - started


def _pooled(pool: Executor, workers: int, items: list[Article]) -> float:
    started = time.perf_counter()
    asyncio.run(_through_cpu_pool(pool, workers, items))
    return time.perf_counter() - started


async def _through_cpu_pool(pool: Executor, workers: int, items: list[Article]) -> list[int]:
    """As the pipeline extracts fetched pages: each page under one of the Runtime's page slots
    (polling.concurrency, default 20), one extract_each call per page through its CpuPool."""
    cpu = CpuPool(pool, workers)
    slots = asyncio.Semaphore(max(Settings().polling.concurrency, 2 * workers))

    async def one(a: Article) -> int:
        async with slots:
            (ready,) = await cpu.run(-EXTRACT, extract_each, [a], frozenset(), 200)
        assert isinstance(ready, Prepared)
        return len(ready.ex.text)

    return await asyncio.gather(*(one(a) for a in items))


def _warm_pool(pool: ProcessPoolExecutor, workers: int, sample: list[Article]) -> None:
    """Start every worker and run a few extractions in each before timing."""
    list(pool.map(time.sleep, [0.3] * workers))
    _pooled(pool, workers, sample * 2)


def main() -> None:
    args = cli("extraction", __doc__ or "")
    started = time.monotonic()
    items = articles(8 if args.quick else 30)
    sizes = sorted(len(a[0]) for a in items[:13])
    n = len(items)
    result = Result(
        "extraction", "Extraction throughput", ".venv/bin/python -m tests.benchmarks.extraction"
    )
    print(
        f"extraction: {n} articles ({n // 13} x the 13 demo pages, {sizes[0] // 1024}-"
        f"{sizes[-1] // 1024} KB of HTML each), {ROUNDS} interleaved rounds",
        flush=True,
    )

    # same output whichever way it runs (and warms up both extractors)
    check = [_project(a) for a in items[:13]]
    for a in items[:13]:
        _plain(a)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        _inline(_project, items)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())

    times: dict[str, list[float]] = {"plain": [], "project": [], "pool1": [], "pool2": []}
    with ProcessPoolExecutor(max_workers=1) as pool1, ProcessPoolExecutor(max_workers=2) as pool2:
        for workers, pool in ((1, pool1), (2, pool2)):
            _warm_pool(pool, workers, items[:13])
            same = asyncio.run(_through_cpu_pool(pool, workers, items[:13]))
            if same != check:
                result.note(f"{workers}-worker pool gave different texts than in-process!")
        runs: dict[str, Callable[[], float]] = {
            "plain": lambda: _inline(_plain, items),
            "project": lambda: _inline(_project, items),
            "pool1": lambda: _pooled(pool1, 1, items),
            "pool2": lambda: _pooled(pool2, 2, items),
        }
        order = list(runs)
        for r in range(ROUNDS):  # interleaved, so that background load hits every variant alike
            for name in order[r % 4 :] + order[: r % 4]:
                times[name].append(runs[name]())

    rate = {k: n / statistics.median(v) for k, v in times.items()}
    ratios = [p / q for p, q in zip(times["project"], times["pool2"], strict=True)]
    speedup = statistics.median(ratios)
    # the other reading: the stage on both cores against plain trafilatura on one
    over_plain = [p / q for p, q in zip(times["plain"], times["pool2"], strict=True)]
    speedup_plain = statistics.median(over_plain)
    result.add("plain trafilatura.extract, 1 process", rate["plain"], "articles/s")
    result.add("project extraction, 1 process (in-process)", rate["project"], "articles/s")
    result.add("project extraction / plain trafilatura", rate["project"] / rate["plain"], "x")
    result.add("project extraction, ProcessPoolExecutor(1)", rate["pool1"], "articles/s")
    result.add("project extraction, ProcessPoolExecutor(2)", rate["pool2"], "articles/s")
    result.add(
        "2-worker pool vs 1 process (in-process)",
        speedup,
        "x",
        target=f">= {TARGET} x",
        met=speedup >= TARGET,
    )
    result.add(
        "  same, lowest / highest of the rounds", f"{min(ratios):.2f} / {max(ratios):.2f}", "x"
    )
    result.add(
        "2-worker pool vs plain trafilatura.extract (1 process)",
        speedup_plain,
        "x",
        target=f">= {TARGET} x",
        met=speedup_plain >= TARGET,
    )
    result.add(
        "  same, lowest / highest of the rounds",
        f"{min(over_plain):.2f} / {max(over_plain):.2f}",
        "x",
    )
    result.add("2-worker pool vs 1-worker pool", rate["pool2"] / rate["pool1"], "x")
    result.note(
        f"{n} articles = the 13 article pages of monitor.demo.site (4 outlets' page templates "
        f"around the corpus stories, {sizes[0] // 1024}-{sizes[-1] // 1024} KB each) x "
        f"{n // 13}; each passed as bytes with its feed entry, learned boilerplate empty, "
        "min_chars 200. Plain trafilatura: trafilatura.extract(html, url=url) with its defaults. "
        "Project extraction: the pipeline's extract_each (extract, the canonical link and the "
        "text hash), in this process as with extract.workers 1. Pools are started and warmed "
        "before timing and are fed as the pipeline feeds them: one call per page through "
        "monitor.cpu.CpuPool (two jobs per worker in the executor, up to four waiting calls per "
        "job), at most the daemon's page slots (20) in flight. "
        f"{ROUNDS} rounds each time all four "
        "variants in turn (rotating the order); rates are medians over rounds, the speed-up is "
        f"the median of the per-round ratios. Machine: {len(os.sched_getaffinity(0))} CPUs; "
        "the submitting process is idle while the pool works (in the daemon it also parses "
        "and stores)."
    )
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
