"""Housekeeping on a real store (SQLite and PostgreSQL): text retention keeps what dedupe needs,
maintenance runs, and `monitor status` reports the store."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import select

from monitor.demo.server import Route
from monitor.store import upkeep
from monitor.store.schema import articles
from tests.support import Item, feed_spec, rss
from tests.test_pipeline import poll, serve_article, server  # noqa: F401 - the fixture


def test_old_text_is_dropped_and_a_copy_of_it_is_still_recognised(server, store, clock):  # noqa: F811
    a = serve_article(server, "/rferl/1.html", "003", "Blinken Warns Russia")
    server.routes["/rferl.xml"] = Route(body=rss([Item("r1", "Blinken Warns Russia", a)]))
    fresh = serve_article(server, "/rferl/2.html", "001", "A fresh story")
    store.sync_feeds([feed_spec("rferl", server.url("/rferl.xml"))], clock())
    poll(store, clock)
    clock.advance(days=40)
    items = [Item("r1", "Blinken Warns Russia", a), Item("r2", "A fresh story", fresh)]
    server.routes["/rferl.xml"] = Route(body=rss(items))
    poll(store, clock)
    # an article still waiting to be matched keeps its text; matched, it may lose it
    assert upkeep.drop_old_text(store.engine, clock() - timedelta(days=30)) == 0
    store.match_pending(lambda queued: [[] for _ in queued], clock())

    assert upkeep.drop_old_text(store.engine, clock() - timedelta(days=30)) == 1
    with store.engine.connect() as c:
        texts = {r.title: r.text for r in c.execute(select(articles.c.title, articles.c.text))}
        hashes = c.execute(select(articles.c.content_hash)).scalars().all()
    assert texts["Blinken Warns Russia"] == "" and len(texts["A fresh story"]) > 200
    assert all(len(h) == 64 for h in hashes)  # the hash of the text stays for dedupe

    # The same story republished at another address: still recognised as the old article.
    b = serve_article(server, "/mirror/77.html", "003", "Blinken warns Russia (republished)")
    server.routes["/mirror.xml"] = Route(body=rss([Item("m1", "Blinken warns", b)]))
    store.sync_feeds(
        [
            feed_spec("rferl", server.url("/rferl.xml")),
            feed_spec("mirror", server.url("/mirror.xml")),
        ],
        clock(),
    )
    summary = poll(store, clock)
    assert (summary.new, summary.duplicates) == (0, 1)
    assert store.counts()["articles"] == 2
    # a second run finds nothing more to drop
    assert upkeep.drop_old_text(store.engine, clock() - timedelta(days=30)) == 0


def test_maintenance_runs_and_status_counts_what_is_stored(server, store, clock):  # noqa: F811
    a = serve_article(server, "/rferl/1.html", "003", "Blinken Warns Russia")
    server.routes["/rferl.xml"] = Route(body=rss([Item("r1", "Blinken Warns Russia", a)]))
    store.sync_feeds([feed_spec("rferl", server.url("/rferl.xml"))], clock())
    poll(store, clock)
    did = upkeep.maintain(store.engine)
    assert ("ANALYZE" if store.dialect == "postgresql" else "PRAGMA optimize") in did
    s = upkeep.status(store.engine, texts=True)
    assert (s.articles, s.articles_without_text, s.feeds_active, s.feeds_failing) == (1, 0, 1, 0)
    assert s.size_bytes is not None and s.size_bytes > 10_000
    assert s.last_success_at == clock()
    assert s.outbox == {}


def test_monitor_status_prints_the_database_size_and_counts(tmp_path):
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "feeds.yaml").write_text("outlets:\n  a:\n    feeds:\n      - url: http://a.test/\n")
    (config / "monitor.yaml").write_text(
        f"database: sqlite:///{tmp_path}/m.db\nretention:\n  text: 90d\n"
    )
    run = [sys.executable, "-m", "monitor", "-c", str(config), "status"]
    text = subprocess.run(run, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "size:" in text and " KB" in text
    assert "articles:             0 (0 without text)" in text
    assert "text 90d" in text
    as_json = json.loads(
        subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout
    )
    assert as_json["backend"] == "sqlite" and as_json["size_bytes"] > 0
