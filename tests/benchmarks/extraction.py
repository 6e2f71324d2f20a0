"""Benchmark 2: extraction throughput on the demo site's article pages.

    .venv/bin/python -m tests.benchmarks.extraction [--quick] [--profile] [--json FILE]

The 13 article pages of the bundled sample outlets (real corpus text with each site's chrome),
repeated to a few hundred articles. In one run: plain `trafilatura.extract` and the project's
`monitor.extract.extract` in this process, then the project's extract through a
ProcessPoolExecutor of 1 and of 2 workers, submitted the way the pipeline does it (one task per
article, all in flight at once). The four variants are timed in interleaved rounds.
"""

from __future__ import annotations

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

from monitor.demo.site import build_routes, demo_pages
from monitor.domain import FeedEntry
from monitor.extract import extract
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
    return len(extract(a[0], a[1], a[2], frozenset(), 200).text)


def _plain(a: Article) -> int:
    return len(trafilatura.extract(a[0], url=a[1]) or "")


def _inline(fn: Callable[[Article], int], items: list[Article]) -> float:
    started = time.perf_counter()
    for a in items:
        fn(a)
    return time.perf_counter() - started


def _pooled(pool: Executor, items: list[Article]) -> float:
    started = time.perf_counter()
    futures = [pool.submit(extract, a[0], a[1], a[2], frozenset(), 200) for a in items]
    for f in futures:
        f.result()
    return time.perf_counter() - started


def _warm_pool(pool: ProcessPoolExecutor, workers: int, sample: list[Article]) -> None:
    """Start every worker and run a few extractions in each before timing."""
    list(pool.map(time.sleep, [0.3] * workers))
    for f in [pool.submit(extract, a[0], a[1], a[2], frozenset(), 200) for a in sample * 2]:
        f.result()


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
            same = [
                len(pool.submit(extract, a[0], a[1], a[2], frozenset(), 200).result().text)
                for a in items[:13]
            ]
            if same != check:
                result.note(f"{workers}-worker pool gave different texts than in-process!")
        runs: dict[str, Callable[[], float]] = {
            "plain": lambda: _inline(_plain, items),
            "project": lambda: _inline(_project, items),
            "pool1": lambda: _pooled(pool1, items),
            "pool2": lambda: _pooled(pool2, items),
        }
        order = list(runs)
        for r in range(ROUNDS):  # interleaved, so that background load hits every variant alike
            for name in order[r % 4 :] + order[: r % 4]:
                times[name].append(runs[name]())

    rate = {k: n / statistics.median(v) for k, v in times.items()}
    ratios = [p / q for p, q in zip(times["project"], times["pool2"], strict=True)]
    speedup = statistics.median(ratios)
    result.add("plain trafilatura.extract, 1 process", rate["plain"], "articles/s")
    result.add("project extract, 1 process (in-process)", rate["project"], "articles/s")
    result.add("project extract / plain trafilatura", rate["project"] / rate["plain"], "x")
    result.add("project extract, ProcessPoolExecutor(1)", rate["pool1"], "articles/s")
    result.add("project extract, ProcessPoolExecutor(2)", rate["pool2"], "articles/s")
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
    result.add("2-worker pool vs 1-worker pool", rate["pool2"] / rate["pool1"], "x")
    result.note(
        f"{n} articles = the 13 article pages of monitor.demo.site (4 outlets' page templates "
        f"around the corpus stories, {sizes[0] // 1024}-{sizes[-1] // 1024} KB each) x "
        f"{n // 13}; each passed as bytes with its feed entry, learned boilerplate empty, "
        "min_chars 200. Plain trafilatura: trafilatura.extract(html, url=url) with its defaults. "
        "Pools are started and warmed before timing and receive one task per article, all in "
        f"flight at once, as the pipeline submits them. {ROUNDS} rounds each time all four "
        "variants in turn (rotating the order); rates are medians over rounds, the speed-up is "
        f"the median of the per-round ratios. Machine: {len(os.sched_getaffinity(0))} CPUs; "
        "the submitting process is idle while the pool works (in the daemon it also parses "
        "and stores)."
    )
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
