"""Near-duplicate lookup latency at 10,000, 100,000 and 1,000,000 stored fingerprints, through
the band index and by a linear scan, on SQLite and PostgreSQL.

    .venv/bin/python -m tests.benchmarks.neardup            # 10k, 100k, 1M on both backends
    .venv/bin/python -m tests.benchmarks.neardup --quick    # 10k and 100k only

The stored fingerprints are random sketches (what a sketch of an unrelated text looks like to
the index), each on an article row of the real schema, filled by bulk inserts (COPY on
PostgreSQL, executemany on SQLite) through monitor.store.fingerprints.add_fingerprints. Half of
the queries are copies of a stored text (a sketch of which 40 % of the bins differ, an
estimated Jaccard of about 0.6): the lookup must find that one article. The other half are new
texts: it must find none. The linear scan reads every stored fingerprint and verifies each one
with the same function, in the same run.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from monitor.fingerprint import DEFAULT, Fingerprint
from monitor.store import Store
from monitor.store.fingerprints import (
    add_fingerprints,
    candidates,
    near_duplicates,
    scheme_name,
)
from monitor.store.schema import article_fingerprints, articles
from monitor.store.sql import insert_rows
from tests.benchmarks.common import Result, cli, finish, load_note, pg_database, postgres_available

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
QUERIES = 200  # index lookups per size (half copies, half new texts)
SCAN_QUERIES = {10_000: 20, 100_000: 5, 1_000_000: 3}  # the linear scan, on a sample
BATCH = 20_000
NOW = datetime(2022, 1, 20, 8, 0, tzinfo=UTC)
TARGET_MS = 1.0


def random_fingerprint(rng: random.Random) -> Fingerprint:
    return Fingerprint(tuple(rng.getrandbits(32) for _ in range(DEFAULT.bins)), 500)


def copy_of(fp: Fingerprint, rng: random.Random, changed: float = 0.4) -> Fingerprint:
    """The sketch of a near-duplicate: `changed` of the bins differ."""
    minima = list(fp.minima)
    for b in rng.sample(range(len(minima)), round(len(minima) * changed)):
        minima[b] = rng.getrandbits(32)
    return Fingerprint(tuple(minima), fp.shingles)


def fill(store: Store, start: int, stop: int, rng: random.Random) -> dict[int, Fingerprint]:
    """Articles start..stop-1 (ids start+1..stop) with random fingerprints; returns a sample."""
    sample: dict[int, Fingerprint] = {}
    for lo in range(start, stop, BATCH):
        hi = min(lo + BATCH, stop)
        rows = [
            {
                "id": i + 1,
                "canonical_url": f"http://127.0.0.1/a/{i + 1}",
                "title": "t",
                "first_seen_at": NOW,
                "updated_at": NOW,
                "text": "",
                "text_source": "page",
                "content_hash": "0" * 64,
                "revision": 1,
                "backlog": False,
                "match_pending": False,
            }
            for i in range(lo, hi)
        ]
        fps = [(i + 1, random_fingerprint(rng)) for i in range(lo, hi)]
        with store.engine.begin() as c:
            insert_rows(c, articles, rows)
            add_fingerprints(c, fps, new=True)
        for article_id, fp in fps[:: max(1, (stop - start) // 2_000)]:
            sample[article_id] = fp
    return sample


def linear_scan(c: Connection, fp: Fingerprint) -> list[int]:
    """Every stored fingerprint read and verified: the baseline the index is measured against."""
    f = article_fingerprints.c
    found = []
    rows = c.execute(
        article_fingerprints.select()
        .with_only_columns(f.article_id, f.minima, f.shingles)
        .where(f.scheme == scheme_name())
    )
    for row in rows:
        if DEFAULT.is_near_duplicate(fp, Fingerprint.from_bytes(row.minima, row.shingles)):
            found.append(row.article_id)
    return found


def measure(
    store: Store, size: int, sample: dict[int, Fingerprint], rng: random.Random
) -> dict[str, float]:
    ids = rng.sample(sorted(sample), QUERIES // 2)
    copies = [(i, copy_of(sample[i], rng)) for i in ids]
    fresh = [random_fingerprint(rng) for _ in range(QUERIES // 2)]
    index_copy: list[float] = []
    index_new: list[float] = []
    scans: list[float] = []
    clock = time.perf_counter
    with store.engine.connect() as c:
        for _ in range(20):  # warm the connection, the statement caches and the pages
            near_duplicates(c, fresh[0])
        for (article_id, fp), new in zip(copies, fresh, strict=True):
            began = clock()
            found = near_duplicates(c, fp)
            index_copy.append(clock() - began)
            if [d.article_id for d in found] != [article_id]:
                raise AssertionError(f"lookup of a copy of {article_id} found {found}")
            began = clock()
            found = near_duplicates(c, new)
            index_new.append(clock() - began)
            if found:
                raise AssertionError(f"a new text matched {found}")
        candidates_seen = sum(len(candidates(c, fp)) for _, fp in copies[:20])
        for article_id, fp in copies[: SCAN_QUERIES[size]]:
            began = clock()
            scanned = linear_scan(c, fp)
            scans.append(clock() - began)
            if scanned != [article_id]:
                raise AssertionError(f"scan for a copy of {article_id} found {scanned}")
    return {
        "index_copy": statistics.median(index_copy) * 1000,
        "index_new": statistics.median(index_new) * 1000,
        "index_p90": statistics.quantiles(index_copy + index_new, n=10)[-1] * 1000,
        "scan": statistics.median(scans) * 1000,
        "scans": len(scans),
        "candidates": candidates_seen / 20,
    }


@contextmanager
def backend(name: str) -> Iterator[str]:
    if name == "SQLite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/neardup.db"
    else:
        with pg_database("monitor_bench") as url:
            yield url


def db_bytes(store: Store) -> int:
    with store.engine.connect() as c:
        if store.engine.dialect.name == "postgresql":
            return int(c.execute(text("select pg_database_size(current_database())")).scalar_one())
        pages = c.execute(text("pragma page_count")).scalar_one()
        return int(pages * c.execute(text("pragma page_size")).scalar_one())


def run_backend(name: str, sizes: tuple[int, ...], result: Result) -> None:
    rng = random.Random(f"neardup-{name}")
    with backend(name) as url:
        store = Store.open(url)
        if name == "SQLite":  # room for the band index while it is filled at random
            with store.engine.connect() as c:
                c.exec_driver_sql("pragma cache_size=-200000")
        sample: dict[int, Fingerprint] = {}
        filled, fill_seconds = 0, 0.0
        for size in sizes:
            began = time.perf_counter()
            sample.update(fill(store, filled, size, rng))
            fill_seconds += time.perf_counter() - began
            filled = size
            if store.engine.dialect.name == "postgresql":
                with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.execute(text("analyze article_bands"))
                    c.execute(text("analyze article_fingerprints"))
            m = measure(store, size, sample, rng)
            label = f"{name}, {size:,} fingerprints"
            result.add(
                f"{label}: lookup through the band index, median (copies / new texts)",
                f"{m['index_copy']:.3f} / {m['index_new']:.3f}",
                "ms",
                target=f"< {TARGET_MS:g} ms",
                met=max(m["index_copy"], m["index_new"]) < TARGET_MS,
            )
            result.add(f"  {label}: lookup, 90th percentile", m["index_p90"], "ms")
            result.add(
                f"  {label}: linear scan, median of {m['scans']} (same verification)",
                m["scan"],
                "ms",
            )
            result.add(f"  {label}: scan / index", m["scan"] / max(m["index_copy"], 1e-9), "x")
            result.add(f"  {label}: candidates a copy's lookup verified", m["candidates"])
            result.add(
                f"  {label}: filled in (cumulative; {DEFAULT.bands} band rows a fingerprint)",
                fill_seconds,
                "s",
            )
            result.add(f"  {label}: database size", db_bytes(store) / 1e6, "MB")
        store.close()


def verification_us(rng: random.Random, n: int = 20_000) -> float:
    """Microseconds to verify one candidate: its stored bytes unpacked and compared."""
    a = random_fingerprint(rng)
    stored = [copy_of(a, rng).to_bytes() for _ in range(100)]
    began = time.perf_counter()
    for i in range(n):
        DEFAULT.is_near_duplicate(a, Fingerprint.from_bytes(stored[i % 100], 500))
    return (time.perf_counter() - began) / n * 1e6


def evaluation(result: Result) -> float:
    """The labelled set's figures (python -m tests.neardup.evaluate --compare) as rows."""
    from tests.neardup import evaluate as ev
    from tests.neardup.schemes import OnePermutation

    run = ev.judge(OnePermutation(DEFAULT))
    s = ev.scores(run)
    pos = s.tp + s.fn
    what = f"{len(run.judged):,} labelled pairs of {len(ev.texts())} texts, {pos} near-duplicate"
    result.add(
        f"evaluation set ({what}): near-duplicate precision",
        round(s.precision, 4),
        target=f">= {ev.TARGET_PRECISION}",
        met=s.precision >= ev.TARGET_PRECISION,
    )
    result.add(
        "evaluation set: near-duplicate recall",
        round(s.recall, 4),
        target=f">= {ev.TARGET_RECALL}",
        met=s.recall >= ev.TARGET_RECALL,
    )
    salted = ev.salted()
    result.add(
        "  the same with 8 other shingle hashes: lowest precision / lowest recall",
        f"{min(x.precision for x in salted):.4f} / {min(x.recall for x in salted):.4f}",
    )
    result.add("  fingerprint time, mean over the set's texts", run.ms_per_text, "ms")
    story = ev.evaluate_stories()
    result.add(
        "evaluation set: story pairwise precision",
        story.precision,
        "",
        target=">= 0.95",
        met=story.precision >= 0.95,
    )
    result.add(
        "evaluation set: story pairwise recall",
        story.recall,
        "",
        target=">= 0.80",
        met=story.recall >= 0.80,
    )
    extended = ev.evaluate_stories(extended=True)
    result.add(
        "  with the extra hard cases (tests/neardup/cases.py EXTRAS): precision / recall",
        f"{extended.precision:.4f} / {extended.recall:.4f}",
    )
    us, members, terms = assign_us()
    result.add(
        f"story assignment: one article against 50 open stories ({members} members, "
        f"{terms:,} story terms in all)",
        us,
        "us",
    )
    us, members, terms = assign_us(story_terms=150)
    result.add(f"  the same, each story cut to its 150 heaviest terms ({terms:,} in all)", us, "us")
    for line in ev.report(s, run)[5:]:
        result.note(f"Evaluation: {line.strip()}")
    for row in ev.compare(ev.alternatives()):
        result.add(
            f"  alternative {row['scheme']}: recall at precision >= 0.99 (its best threshold); "
            "true / other pairs sharing a band; ms a text",
            f"{row['best_recall']:.3f} ({row['best_threshold']:.2f}), "
            f"{row['band_recall']:.3f} / {row['band_noise']:.3f}; {row['ms']:.1f}",
        )
    return run.negatives_candidate


def assign_us(
    open_stories: int = 50, rounds: int = 200, story_terms: int | None = None
) -> tuple[float, int, int]:
    """Microseconds for `monitor.stories.assign` to place one article among `open_stories`
    open stories built from the labelled set's texts (1 to 6 members each, all within the
    window), and the stories' members and summed terms. Each round assigns another text; the
    members' fingerprints are random sketches, so each is verified and none ends the search
    early (the worst case: no copy among the open stories). Each article gets a background of
    its own, as in ingest (no idf is known yet). `story_terms`: keep only each story's heaviest
    terms and lead terms, as a store that bounds a story's row would."""
    from datetime import timedelta

    from monitor import stories
    from tests.neardup import evaluate as ev

    signatures = ev.story_signatures(extended=True)
    rng = random.Random("assign")
    now = max(s.published for s in signatures)
    background = stories.Background()
    for s in signatures:
        background = background.add(s)
    built = []
    for n in range(open_stories):
        members = rng.sample(signatures, rng.randint(1, 6))
        when = now - timedelta(hours=rng.uniform(0, 30))
        members = [  # no member is a copy of an article asked about: every story is scored
            replace(m, id=f"{m.id}#{n}", published=when, fingerprint=random_fingerprint(rng))
            for m in members
        ]
        story = stories.Story.start(f"s{n}", members[0])
        for m in members[1:]:
            story = story.add(m)
        if story_terms is not None:
            story = replace(
                story,
                terms=_heaviest(story.terms, story_terms),
                lead_terms=_heaviest(story.lead_terms, story_terms),
            )
        built.append(story)
    articles = [replace(rng.choice(signatures), published=now) for _ in range(rounds)]
    began = time.perf_counter()
    for article in articles:
        stories.assign(article, built, stories.Background(background.docs, background.df))
    us = (time.perf_counter() - began) / rounds * 1e6
    return us, sum(len(s.members) for s in built), sum(len(s.terms) for s in built)


def _heaviest(terms: Mapping[str, float], n: int) -> dict[str, float]:
    return dict(sorted(terms.items(), key=lambda kv: -kv[1])[:n])


def main() -> None:
    args = cli("neardup", __doc__ or "", variants="evaluation,sqlite,postgresql")
    started = time.monotonic()
    sizes = QUICK_SIZES if args.quick else SIZES
    result = Result(
        "neardup",
        "Near-duplicate lookup",
        ".venv/bin/python -m tests.benchmarks.neardup",
    )
    print(f"neardup: lookups among {', '.join(f'{s:,}' for s in sizes)} fingerprints", flush=True)
    variants = set(args.variants.split(","))
    noise = evaluation(result) if "evaluation" in variants else None
    result.add(
        "verification of one candidate (unpack the stored sketch, compare)",
        verification_us(random.Random("verify")),
        "us",
    )
    if "sqlite" in variants:
        run_backend("SQLite", sizes, result)
    if "postgresql" in variants:
        if postgres_available():
            run_backend("PostgreSQL", sizes, result)
        else:
            result.note("PostgreSQL was not reachable: its figures are missing.")
    result.note(
        f"Scheme {scheme_name()}: {DEFAULT.bins} bins of 32 bits a fingerprint "
        f"({4 * DEFAULT.bins} bytes), {DEFAULT.bands} band keys in article_bands. A lookup is "
        "one statement (the band keys as one array or JSON parameter, probing the "
        "(band_key, article_id) primary key) plus the verification of each candidate in Python."
    )
    if noise is not None:
        result.note(
            "Random sketches share no band with each other, so a lookup here verifies only the "
            "copy it looks for. Real texts on one topic do share bands now and then: on the "
            f"evaluation set {noise:.1%} of the pairs that are not copies (mostly texts quoting "
            "each other) share a band; each costs one verification (its time is in the figures)."
        )
    result.note(
        f"Medians of {QUERIES} lookups per size after 20 warm-up lookups, on one connection; "
        "the linear scan reads and verifies every stored sketch, on a sample of the same "
        "queries (the sizes of the sample are in the figures)."
    )
    load_note(result)
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
