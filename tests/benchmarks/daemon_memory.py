"""Benchmark 3: peak memory of a real `monitor run` while it ingests 10,000 articles.

    .venv/bin/python -m tests.benchmarks.daemon_memory [--quick] [--json FILE]

20 loopback hosts, each one outlet with one of the demo site's page templates, serve 5 feeds of
100 entries each (100 feeds, 10,000 entries); every entry links to its own article page (a demo
page template around a text of its own: its own URL, canonical link and title, and paragraphs
of corpus sentences drawn for that page with a reference word in each, so nothing is a
duplicate or a near-duplicate, story grouping places every article, and the boilerplate
learner only learns the chrome). The daemon runs
with the default settings (fetch_pages true, extract.workers 2, concurrency 20, per_host 4,
batch 200) on a fresh SQLite file. Peak RSS is VmHWM from /proc/PID/status, sampled every 0.5 s
for the daemon and for each of its children (the extractor pool) until the store holds 10,000
articles; then SIGTERM, and the daemon must exit 0.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from monitor.demo.server import Route
from monitor.demo.site import (
    HTML_TYPE,
    RSS_TYPE,
    STORIES,
    DemoPage,
    demo_pages,
    render_page,
)
from monitor.rules.text import sentence_spans
from tests.benchmarks.common import (
    Result,
    ServerFarm,
    cli,
    cmdline,
    descendants,
    finish,
    proc_pss,
    proc_status,
)
from tests.support import Item, rss

HOSTS, FEEDS_PER_HOST, ENTRIES = 20, 5, 100
TARGET_MB = 150
TIMEOUT = 280.0  # seconds to reach the article count
TEMPLATES = ("rferl", "wireblog", "presstv", "mirror")


def _code(n: int) -> str:
    """A unique lowercase word for n (line keys fold digits to 0, so the word is letters)."""
    letters = ""
    n += 26**3
    while n:
        n, r = divmod(n, 26)
        letters += chr(97 + r)
    return letters


@cache
def _templates(outlet: str) -> tuple[DemoPage, ...]:
    return tuple(p for p in demo_pages() if p.outlet == outlet)


@cache
def _corpus_sentences() -> tuple[str, ...]:
    """Every sentence of the corpus stories of 40 characters or more."""
    found = []
    for story in STORIES.values():
        for paragraph in story.splitlines():
            found += [paragraph[a:b] for a, b in sentence_spans(paragraph) if b - a >= 40]
    return tuple(dict.fromkeys(found))


def _distinct_paragraphs(n: int, count: int, code: str) -> tuple[str, ...]:
    """`count` paragraphs of two or three corpus sentences drawn for page n: real news
    sentences, in a mix no other page has, so that pages are neither duplicates nor
    near-duplicates of each other (each shares a sentence or two with some others, as news
    does) and story grouping has work to do."""
    rng = random.Random(n)
    pool = _corpus_sentences()
    return tuple(
        " ".join(rng.sample(pool, rng.randint(2, 3))) + f" Ref {code}."
        for _ in range(max(count, 4))
    )


class SiteRoutes(dict):  # type: ignore[type-arg]
    """One outlet's routes, made on demand: feeds at /feeds/<j>.xml, pages at /a/<j>/<k>.html."""

    def __init__(self, host: int, base: str, feeds: int, entries: int, pad_kb: int = 0) -> None:
        super().__init__()
        self.host, self.base, self.feeds, self.entries = host, base, feeds, entries
        self.pad = _padding(pad_kb)
        self.outlet = TEMPLATES[host % len(TEMPLATES)]
        self.now = datetime.now(UTC).replace(microsecond=0)

    def _page(self, j: int, k: int) -> DemoPage:
        n = (self.host * self.feeds + j) * self.entries + k
        template = _templates(self.outlet)[n % len(_templates(self.outlet))]
        code = _code(n)
        return replace(
            template,
            path=f"/a/{j}/{k}.html",
            title=f"{template.title} ({code})",
            paragraphs=_distinct_paragraphs(n, len(template.paragraphs), code),
            published=self.now - timedelta(minutes=k + 1),
        )

    def get(self, path: str, default: object = None) -> object:  # type: ignore[override]
        if path in self:
            return self[path]
        parts = path.split("/")
        try:
            if len(parts) == 3 and parts[1] == "feeds" and parts[2].endswith(".xml"):
                j = int(parts[2].removesuffix(".xml"))
                if j < self.feeds:
                    self[path] = self._feed(j)  # feeds are cached, so they answer 304 later
                    return self[path]
            if len(parts) == 4 and parts[1] == "a" and parts[3].endswith(".html"):
                j, k = int(parts[2]), int(parts[3].removesuffix(".html"))
                if j < self.feeds and k < self.entries:
                    html = render_page(self._page(j, k), self.base)
                    if self.pad:
                        html = html.replace("</body>", self.pad + "</body>")
                    return Route(body=html.encode("utf-8"), content_type=HTML_TYPE)
        except ValueError:
            pass
        return default

    def _feed(self, j: int) -> Route:
        items = []
        for k in range(self.entries):
            page = self._page(j, k)
            url = page.url(self.base)
            items.append(
                Item(
                    guid=url,
                    title=page.title,
                    link=url,
                    published=page.published,
                    description=page.summary,
                )
            )
        body = rss(items, title=f"Outlet {self.host} feed {j}")
        return Route(body=body, content_type=RSS_TYPE, etag=f'"o{self.host}f{j}"')


def _padding(kb: int) -> str:
    """An inline JSON state blob of about `kb` KB, as script-heavy news sites ship one."""
    if not kb:
        return ""
    item = '{"id":%d,"type":"teaser","headline":"Related story number %d","url":"/a/x/%d.html"},'
    blob = "".join(item % (i, i, i) for i in range(kb * 1024 // 80))
    return f'<script type="application/json" id="state">{{"items":[{blob[:-1]}]}}</script>\n'


@dataclass(frozen=True)
class PageSite:
    feeds: int
    entries: int
    pad_kb: int = 0

    def __call__(self, host: int, base: str) -> SiteRoutes:
        return SiteRoutes(host, base, self.feeds, self.entries, self.pad_kb)


DAEMON = [sys.executable, "-m", "monitor"]


def write_config(folder: Path, db: Path, bases: list[str], feeds: int, **polling: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"  {k}: {v}\n" for k, v in polling.items())
    (folder / "monitor.yaml").write_text(
        f'database: "sqlite:///{db}"\n'
        "polling:\n  interval: 1h\n  tick: 1s\n  jitter: 0.0\n"
        "  connect_timeout: 10s\n  read_timeout: 30s\n  total_timeout: 60s\n"
        "  allow_networks: [127.0.0.0/8]\n"  # the server farm listens on loopback addresses
        + extra
        + "extract:\n  fetch_pages: true\n  workers: 2\n"
    )
    lines = ["outlets:"]
    for h, base in enumerate(bases):
        lines += [f"  o{h}:", f"    name: Outlet {h}", "    language: en", "    feeds:"]
        lines += [f"      - url: {base}/feeds/{j}.xml" for j in range(feeds)]
    (folder / "feeds.yaml").write_text("\n".join(lines) + "\n")


@dataclass
class Sampler:
    pid: int
    db: Path
    hwm: dict[int, int] = field(default_factory=dict)  # pid -> VmHWM kB (largest seen)
    names: dict[int, str] = field(default_factory=dict)
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, n, main, kids
    pss_peak: int = 0  # kB: the largest sum of PSS over the daemon and its children

    def count(self, table: str) -> int:
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0

    def sample(self, t: float) -> int:
        """The feed entries stored so far (a source each: a near-duplicate of another page
        is a source of that article), with the processes' memory."""
        n = self.count("article_sources")
        rss_main = rss_kids = pss = 0
        for pid in [self.pid, *descendants(self.pid)]:
            status = proc_status(pid)
            if not status:
                continue
            pss += proc_pss(pid) or 0
            self.hwm[pid] = max(self.hwm.get(pid, 0), status.get("VmHWM", 0))
            self.names.setdefault(pid, cmdline(pid))
            if pid == self.pid:
                rss_main = status.get("VmRSS", 0)
            else:
                rss_kids += status.get("VmRSS", 0)
        self.pss_peak = max(self.pss_peak, pss)
        self.timeline.append((t, n, rss_main, rss_kids))
        return n


@dataclass
class Run:
    goal: int
    sampler: Sampler
    reached: float | None
    code: int
    output: str
    requests: int
    articles: int  # rows in articles at the end (entries less near-duplicates)


def run_daemon(hosts: int, feeds: int, entries: int, pad_kb: int = 0, **polling: str) -> Run:
    """Serve the outlets, run `monitor run` until it stored every article, SIGTERM it."""
    goal = hosts * feeds * entries
    with (
        tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp,
        ServerFarm(hosts, 0.0, PageSite(feeds, entries, pad_kb)) as farm,
    ):
        folder, db = Path(tmp) / "config", Path(tmp) / "monitor.db"
        write_config(folder, db, farm.bases, feeds, **polling)
        log = open(Path(tmp) / "monitor.log", "w+")  # noqa: SIM115 (read back below)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [*DAEMON, "-c", str(folder), "run"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        sampler = Sampler(proc.pid, db)
        t0 = time.monotonic()
        reached = None
        try:
            while proc.poll() is None:
                t = time.monotonic() - t0
                if sampler.sample(t) >= goal:
                    reached = t
                    break
                if t > TIMEOUT:
                    break
                time.sleep(0.5)
            sampler.sample(time.monotonic() - t0)  # the last VmHWM reading of every process
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        log.seek(0)
        output = log.read()
        log.close()
        requests = farm.stats().requests
        articles = sampler.count("articles")
    return Run(goal, sampler, reached, code, output, requests, articles)


def main() -> None:
    args = cli("daemon_memory", __doc__ or "")
    started = time.monotonic()
    hosts = 4 if args.quick else HOSTS
    goal = hosts * FEEDS_PER_HOST * ENTRIES
    result = Result(
        "daemon_memory",
        f"Peak memory of `monitor run` over {goal:,} articles",
        ".venv/bin/python -m tests.benchmarks.daemon_memory",
    )
    print(
        f"daemon memory: {hosts} hosts x {FEEDS_PER_HOST} feeds x {ENTRIES} entries with pages "
        f"= {goal:,} articles",
        flush=True,
    )
    run = run_daemon(hosts, FEEDS_PER_HOST, ENTRIES)
    sampler, pid, mb = run.sampler, run.sampler.pid, 1024
    main_kb = sampler.hwm.get(pid, 0)
    kids = {p: kb for p, kb in sampler.hwm.items() if p != pid}
    total_kb = main_kb + sum(kids.values())
    n_final = sampler.timeline[-1][1] if sampler.timeline else 0
    result.add("entries stored", n_final, "", target=f">= {goal:,}", met=n_final >= goal)
    articles = run.articles
    result.add(
        "  of them distinct articles (the others near-duplicates, another source)", articles, ""
    )
    result.add("time to store them", run.reached if run.reached is not None else float("nan"), "s")
    result.add(
        "peak RSS, daemon process (VmHWM)",
        main_kb / mb,
        "MB",
        target=f"<= {TARGET_MB} MB",
        met=main_kb / mb <= TARGET_MB,
    )
    for i, (_pid, kb) in enumerate(sorted(kids.items())):
        result.add(
            f"peak RSS, child process {i + 1} (VmHWM; {sampler.names.get(_pid, '')[:40]})",
            kb / mb,
            "MB",
        )
    # Not held to the target: the forked workers share most of their pages with the daemon,
    # and a sum of RSS counts each shared page once per process. PSS counts it once in all.
    result.add(
        "peak RSS, daemon + children (sum of VmHWM; shared pages counted in each process)",
        total_kb / mb,
        "MB",
    )
    result.add(
        "peak PSS, daemon + children (shared pages split; sampled)",
        sampler.pss_peak / mb,
        "MB",
        target=f"<= {TARGET_MB} MB",
        met=sampler.pss_peak / mb <= TARGET_MB,
    )
    for frac in (0.25, 0.5, 0.75, 1.0):
        point = next((p for p in sampler.timeline if p[1] >= goal * frac), None)
        if point:
            result.add(
                f"RSS when {int(goal * frac):,} articles were stored, daemon / children",
                f"{point[2] / mb:.0f} / {point[3] / mb:.0f}",
                "MB",
            )
    stopped = run.code == 0 and "monitor stopped" in run.output
    result.add(
        "exit status after SIGTERM", run.code, "", target="0, 'monitor stopped'", met=stopped
    )
    result.add("requests served (feeds + pages)", run.requests)
    if not stopped or n_final < goal:
        tail = "\n".join(run.output.splitlines()[-15:])
        result.note(f"daemon log tail:\n{tail}")
    errors = [ln for ln in run.output.splitlines() if " ERROR " in ln or " WARNING " in ln]
    if errors:
        result.note(f"{len(errors)} warning/error lines in the daemon log, first: {errors[0]}")

    if not args.quick:  # the same 100 feeds in flight, with pages of a realistic size
        entries, pad = 20, 100
        print(
            f"  large pages: {hosts} hosts x {FEEDS_PER_HOST} feeds x {entries} entries, "
            f"pages padded to ~{pad} KB",
            flush=True,
        )
        big = run_daemon(hosts, FEEDS_PER_HOST, entries, pad)
        big_main = big.sampler.hwm.get(big.sampler.pid, 0)
        big_total = sum(big.sampler.hwm.values())
        n_big = big.sampler.timeline[-1][1] if big.sampler.timeline else 0
        label = f"~{pad} KB pages ({n_big:,} of {big.goal:,} articles)"
        result.add(f"{label}: peak RSS, daemon process", big_main / mb, "MB")
        result.add(f"{label}: peak RSS, daemon + children (sum)", big_total / mb, "MB")
        result.add(f"{label}: peak PSS, daemon + children", big.sampler.pss_peak / mb, "MB")
    result.note(
        f"{goal:,} articles = {hosts} loopback hosts x {FEEDS_PER_HOST} feeds x {ENTRIES} "
        "entries; every entry has its own page rendered by monitor.demo.site's templates "
        "(3-15 KB of HTML). Default settings except polling.interval 1h and tick 1s; SQLite. "
        "VmHWM of a forked pool child counts the pages it shares with the daemon, so the sum "
        "over-counts; PSS (from smaps_rollup, sampled with VmRSS every 0.5 s) splits each shared "
        "page between the processes sharing it, so its sum is the memory the service really "
        "holds (a peak between two samples can be missed)."
    )
    if not args.quick:
        result.note(
            "Large pages: the same 100 feeds with 20 entries each, every page carrying an extra "
            "~100 KB inline JSON blob (as script-heavy news sites do); informational, to show "
            "how the in-flight page memory scales with page size."
        )
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
