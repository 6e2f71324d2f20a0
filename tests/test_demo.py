"""The bundled sample outlets through the whole ingest pipeline, as `monitor demo` runs them."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.demo.run import replay_clock, write_demo_config
from monitor.demo.server import LoopbackServer
from monitor.demo.site import BOILERPLATE, STORIES, build_routes
from monitor.extract import normalise_text
from monitor.pipeline import poll_cycle
from tests.support import runtime


@pytest.fixture
def ingested(store, tmp_path):
    """The store after a cold and a warm cycle over the demo outlets (feeds polled together)."""
    clock = replay_clock()
    with LoopbackServer() as server:
        server.routes.update(build_routes(server.base))
        config = load_config(write_demo_config(tmp_path / "cfg", server.base, tmp_path / "x.db"))
        store.sync_feeds(config.feeds, clock())

        async def cycles():
            async with runtime(store, clock, config.settings) as rt:
                return [await poll_cycle(rt, ignore_schedule=True) for _ in range(2)]

        cold, warm = asyncio.run(cycles())
    return store, cold, warm


def test_no_listed_boilerplate_reaches_any_stored_text(ingested):
    store, _, _ = ingested
    stored = store.articles(limit=100)
    assert len(stored) >= 10
    for article in stored:
        text = normalise_text(article.text)
        leaked = [b for b in BOILERPLATE if normalise_text(b) in text]
        assert leaked == [], (article.title, leaked)


def test_every_corpus_story_is_stored_whole(ingested):
    store, _, _ = ingested
    texts = [normalise_text(a.text) for a in store.articles(limit=100)]
    for number, story in STORIES.items():
        paragraphs = [normalise_text(p) for p in story.splitlines() if p.strip()]
        assert any(all(p in t for p in paragraphs) for t in texts), number


def test_shared_articles_are_stored_once_with_every_source(ingested):
    store, cold, _ = ingested
    by_title = {a.title: a for a in store.articles(limit=100)}
    warns = next(a for t, a in by_title.items() if t.startswith("Blinken Warns Russia"))
    assert warns.outlets == ("mirror", "rferl")  # a verbatim republication: one article
    assert cold.duplicates == 3  # 001 and 003 in RFE/RL's second feed, 003 on the mirror
    assert cold.revisions == 0  # concurrent feeds of one outlet do not fake edits
    assert store.counts()["articles"] == cold.new


def test_the_failing_feeds_are_reported_and_the_warm_cycle_is_all_304(ingested):
    store, cold, warm = ingested
    failing = {h.name: h.last_error for h in store.feed_health() if h.consecutive_failures}
    assert set(failing) == {"broken/main", "broken/legacy"}
    assert "HTTP 500" in failing["broken/main"]
    assert "not an RSS/Atom feed" in failing["broken/legacy"]
    assert cold.errors == warm.errors == 2
    assert warm.not_modified == warm.polled - 2 and warm.new == 0


def test_backlog_is_what_the_feeds_held_before_the_first_run_window(ingested):
    store, cold, _ = ingested
    stored = store.articles(limit=100)
    assert 0 < cold.backlog < cold.new
    for article in stored:
        recent = article.published_at is not None and article.published_at.date().isoformat() >= (
            "2022-01-19"
        )
        assert article.backlog is not recent, article.title


def test_the_demo_command_runs_offline_and_prints_what_it_stored(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--db", str(tmp_path / "demo.db")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "160", "PATH": "/usr/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "cold cycle: feeds polled: 7" in result.stdout
    assert "Blinken" in result.stdout and "failing" in result.stdout
    assert (tmp_path / "demo.db").exists()
    # the example watches matched, and the console channel printed alerts and a digest
    assert "24 matches of the example watches" in result.stdout
    # one entry per story: how many stories the troop-buildup alert has depends on grouping
    assert re.search(r"=== troop-buildup: \d+ new (stories|story) ===", result.stdout)
    assert re.search(r"=== sanctions digest: \d+ new (stories|story) ===", result.stdout)
