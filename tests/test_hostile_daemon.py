"""`monitor run` as a real process, fed hostile documents beside a good feed: it stays up, each
hostile feed's problem is recorded on it, and a hostile headline reaches the channel inert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.store import Store
from tests.support import Item, page, rss
from tests.test_daemon import STORY, start, stop, wait_for, write_config
from tests.test_hostile_feeds import _LAUGHS, _item, _rss

HOSTILE_TITLE = "Kyiv <!channel> <script>alert(1)</script> [x](javascript:alert(1)) \r\nBcc: x@evil"


def stored_titles(db: Path) -> set[str]:
    store = Store.open(f"sqlite:///{db}")
    try:
        return {a.title for a in store.articles(limit=2000)}
    finally:
        store.close()


@pytest.mark.timeout(600)
def test_the_daemon_survives_hostile_feeds_and_delivers_a_hostile_headline_inert(
    tmp_path: Path,
) -> None:
    db = tmp_path / "m.db"
    with LoopbackServer() as server:
        server.routes["/hook"] = Route(body=b"{}")
        server.routes["/first.html"] = Route(body=page("first", [STORY.format(day="Monday")] * 2))
        first = Item("first", "first", server.url("/first.html"))
        server.routes["/good.xml"] = Route(body=rss([first]))
        server.routes["/laughs.xml"] = Route(body=_rss(_item("&lol9;"), _LAUGHS))
        many = "".join(f"<item><title>t{i}</title></item>" for i in range(100_000))
        server.routes["/many.xml"] = Route(body=_rss(many))
        server.routes["/lt.xml"] = Route(body=_rss(_item("&lt;" * 1_000_000)))
        feeds = {name: server.url(f"/{name}.xml") for name in ("good", "laughs", "many", "lt")}
        config = write_config(tmp_path / "cfg", f"sqlite:///{db}", feeds, interval="3s")
        (config / "channels.yaml").write_text(
            "channels:\n  hook:\n"
            f"    url: json://127.0.0.1:{server.port}/hook\n    format: markdown\n"
        )
        (config / "watches.yaml").write_text(
            "watches:\n  troops:\n    keywords: [troops]\n    notify: [hook]\n    group_wait: 0s\n"
        )
        proc = start(config)
        try:
            # generous waits: the machine running the tests may be busy (100,000 entries
            # take a worker ~15 s to parse at a load of 5)
            wait_for(lambda: all(server.count(f"/{n}.xml") >= 1 for n in feeds), timeout=150)
            wait_for(lambda: "first" in stored_titles(db), timeout=150)
            # the first poll is backlog and never alerts: the hostile story comes after it
            server.routes["/second.html"] = Route(
                body=page(HOSTILE_TITLE, [STORY.format(day="Tuesday")] * 2)
            )
            second = Item("second", HOSTILE_TITLE, server.url("/second.html"))
            server.routes["/good.xml"] = Route(body=rss([second, first]))
            wait_for(lambda: server.count("/hook") >= 1, timeout=150)
            wait_for(lambda: all(server.count(f"/{n}.xml") >= 2 for n in feeds), timeout=150)
            assert proc.poll() is None  # still running after every hostile feed, twice
        except AssertionError as error:
            _, err = stop(proc)
            raise AssertionError(f"{error}; the daemon said:\n{err}") from None
        code, err = stop(proc)
        hook = [h for h in server.hits if h.path == "/hook"]
    assert code == 0, err
    assert len(hook) == 1, [h.body for h in hook]
    (hit,) = hook
    body = json.loads(hit.body)["message"]  # apprise's json:// payload, format: markdown
    assert "\\<\\!channel\\> \\<script\\>alert\\(1\\)\\</script\\>" in body, body
    assert f"Bcc: x@evil]({server.url('/second.html')})" in body  # on the headline's line
    for raw in ("<!channel>", "<script>", "[x](javascript:", "\r", "\nBcc:"):
        assert raw not in body, raw
    store = Store.open(f"sqlite:///{db}")
    try:
        health = {h.name: h for h in store.feed_health()}
    finally:
        store.close()
    assert all(h.consecutive_failures == 0 for h in health.values()), health
    assert "undefined entity" in health["laughs"].last_problem
    assert "only the first 1000 were read" in health["many"].last_problem
