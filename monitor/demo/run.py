"""`monitor demo`: the whole ingest pipeline, offline, against the bundled sample outlets.

The sample articles are from December 2021 - January 2022, so the demo runs on a clock set to
the morning of 2022-01-20 (the day after the Secretary of State's visit to Kyiv): first-run backlog
and retention then behave as they would have on that day.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from monitor.config import load_config
from monitor.config.rules import ACTORS_FILE, CHANNELS_FILE, WATCHES_FILE, load_rules
from monitor.daemon import fetch_limits
from monitor.deliver import deliver_plan, deliver_send
from monitor.demo.server import LoopbackServer
from monitor.demo.site import build_routes, feeds_yaml
from monitor.domain import Clock
from monitor.fetch import Fetcher
from monitor.pipeline import CycleSummary, Runtime, activate_rules, poll_cycle
from monitor.store import Store, StoredMatch

# The example actors and watches shipped in the repository's config/ (a source checkout, as the
# README installs it); an installed wheel has none, and the demo then matches nothing.
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config"
RULE_FILES = (ACTORS_FILE, WATCHES_FILE, CHANNELS_FILE)

DEMO_START = datetime(2022, 1, 20, 8, 0, tzinfo=UTC)
# Delivery is shown as of the next morning: past every group_wait, and past the example
# "sanctions" watch's 07:00 digest.
DELIVERY_LATER = timedelta(hours=23, minutes=5)

MONITOR_YAML = """\
# Written by `monitor demo`: an SQLite file beside this config, short timeouts for loopback.
database: "sqlite:///{db}"
polling:
  connect_timeout: 2s
  read_timeout: 3s
  total_timeout: 10s
  # The sample outlets are served on 127.0.0.1, which the fetcher refuses unless allowed.
  allow_networks: [127.0.0.0/8]
extract:
  workers: 1
"""


def replay_clock(start: datetime = DEMO_START) -> Clock:
    """A clock that starts at `start` and then runs at real speed."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def write_demo_config(folder: Path, base_url: str, db: Path) -> Path:
    """A config directory for the demo outlets served at base_url."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "monitor.yaml").write_text(MONITOR_YAML.format(db=db.resolve()))
    (folder / "feeds.yaml").write_text(feeds_yaml(base_url))
    for name in RULE_FILES:
        if (EXAMPLE_CONFIG / name).exists():
            shutil.copy(EXAMPLE_CONFIG / name, folder / name)
    return folder


async def _cycles(store: Store, config_dir: Path, clock: Clock) -> list[CycleSummary]:
    config = load_config(config_dir)
    store.sync_feeds(config.feeds, clock())
    summaries = []
    rules = load_rules(config_dir, feeds=config.feeds)
    async with Fetcher(fetch_limits(config), clock=clock) as fetcher:
        rt = Runtime(store, fetcher, config.settings, clock)
        rt.rules = activate_rules(store, rules, clock())
        for _ in range(2):  # cold, then warm: the second cycle is all conditional GETs
            summaries.append(await poll_cycle(rt, ignore_schedule=True))
        # Deliver as the daemon would have by the next morning: the console channel prints the
        # alerts and the morning digest (the first poll's backlog is stored but never alerts).
        later = Runtime(store, fetcher, config.settings, lambda: clock() + DELIVERY_LATER)
        later.rules = rt.rules
        deliver_plan(later)
        deliver_send(later)
    return summaries


def run_demo(db: Path | None, console: Console) -> int:
    """Serve the sample outlets, poll them twice into SQLite, print what was stored."""
    from monitor.cli import articles_table, feeds_table

    # The broken outlet fails on purpose; the feed table below shows it, so no log warnings.
    logging.getLogger("monitor.pipeline").setLevel(logging.ERROR)
    folder = db.parent if db else Path(tempfile.mkdtemp(prefix="monitor-demo-"))
    db = db or folder / "monitor.db"
    clock = replay_clock()
    with LoopbackServer() as server:
        server.routes.update(build_routes(server.base))
        config_dir = write_demo_config(folder / "config", server.base, db)
        console.print(
            f"[bold]Sample outlets[/] served at {server.base}; "
            f"replaying {DEMO_START:%Y-%m-%d %H:%M} UTC; database {db}"
        )
        store = Store.open(f"sqlite:///{db.resolve()}")
        try:
            cold, warm = asyncio.run(_cycles(store, config_dir, clock))
            console.print(f"[bold]cold cycle:[/] {cold.line()}")
            console.print(f"[bold]warm cycle:[/] {warm.line()}")
            console.print(feeds_table(store.feed_health(), clock()))
            stored = store.articles(limit=50)
            console.print(articles_table(stored))
            print_matches(console, store.matches(limit=50))
        finally:
            store.close()
    if stored:
        first = stored[-1]
        console.print(f"[bold]{first.title}[/] ({', '.join(first.outlets)})")
        console.print(first.text[:600] + ("…" if len(first.text) > 600 else ""))
    console.print(f"\nExplore the store: monitor --config {config_dir} articles --search Lavrov")
    return 0 if stored else 1


def print_matches(console: Console, found: list[StoredMatch]) -> None:
    """What the example watches caught: each match with its terms and highlighted snippet."""
    from monitor.replay import highlighted
    from monitor.rules.snippet import Snippet

    console.print(f"[bold]{len(found)} matches[/] of the example watches (config/watches.yaml)")
    for m in sorted(found, key=lambda m: (m.watch, m.article_id)):
        terms = ", ".join(dict.fromkeys(h["term"] for h in m.hits))
        console.print(f"[green]{escape(m.watch)}[/] · {escape(m.title)} · score {m.score:g}")
        console.print(f"  terms: {escape(terms)}")
        marks = tuple((start, end) for start, end in m.marks)
        console.print("  " + highlighted(Snippet(m.snippet, marks)))
