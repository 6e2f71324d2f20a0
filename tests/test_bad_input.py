"""Hostile and broken feeds: each failure is clear in feed health, loses nothing stored, and
leaves the other feeds alone."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.pipeline import poll_cycle
from tests.support import Item, corpus_paragraphs, feed_spec, page, rss, runtime, settings

CFG = settings(
    polling={"read_timeout": "1s", "total_timeout": "2s", "max_bytes": "200KB", "max_redirects": 3}
)


@dataclass
class Case:
    name: str
    route: Route | None  # what the bad feed's URL serves on the second poll
    error: str | None  # expected in feed health's last_error (None: not a failure)
    problem: str | None = None  # expected in last_problem instead
    kept_entries: int = 0  # entries recovered from the damaged document
    extra_routes: dict[str, Route] = field(default_factory=dict)


def _item_xml(i: int) -> str:
    return (
        f"<item><title>Recovered {i}</title><link>/bad/r{i}.html</link>"
        f"<guid>r{i}</guid><description>{'Recovered entry text. ' * 3}</description></item>"
    )


MALFORMED = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Bad</title>'
    + _item_xml(1)
    + _item_xml(2)
    + "<item><title>Broken & unescaped <b>tag</title></channel>"
).encode()
WRONG_ENCODING = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
    "<title>Bad</title><item><title>Zelenskiy’s Kyiv — naïve café</title>"
    "<link>/bad/enc.html</link><guid>enc</guid></item></channel></rss>"
).encode("cp1252")
BOMB = gzip.compress(b"\0" * 50_000_000)

CASES = [
    Case("404", Route(status=404, body=b"gone"), "HTTP 404"),
    Case("410", Route(status=410, body=b"gone"), "HTTP 410"),
    Case("500", Route(status=500, body=b"boom"), "HTTP 500"),
    Case("429 with Retry-After", Route(status=429, headers={"Retry-After": "7200"}), "HTTP 429"),
    Case("a read that stalls", Route(body=b"<rss/>", stall_after_headers=3.0), "timed out"),
    Case("malformed XML", Route(body=MALFORMED), None, "entries kept: 3", kept_entries=3),
    Case(
        "a wrong encoding declaration",
        Route(body=WRONG_ENCODING),
        None,
        "CharacterEncodingOverride",
        kept_entries=1,
    ),
    Case("an oversized body", Route(body=b"<rss>" + b"x" * 400_000 + b"</rss>"), "larger than"),
    Case(
        "a gzip bomb", Route(raw_gzip_body=BOMB, content_type="application/rss+xml"), "larger than"
    ),
    Case(
        "a redirect loop",
        Route(status=302, location="/bad-2.xml"),
        "redirects",
        extra_routes={"/bad-2.xml": Route(status=302, location="/bad.xml")},
    ),
    Case(
        "an HTML page at the feed URL",
        Route(body=b"<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>"),
        "not an RSS/Atom feed: an HTML page",
    ),
]


def poll(store, clock):
    async def go():
        async with runtime(store, clock, CFG) as rt:
            return await poll_cycle(rt, ignore_schedule=True)

    return asyncio.run(go())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_feed_is_reported_and_loses_nothing(case: Case, store, clock):
    with LoopbackServer() as server:
        good_items = []

        def serve(feed: str, i: int, number: str) -> str:
            path = f"/{feed}/{i}.html"
            server.routes[path] = Route(
                body=page(f"{feed} story {i}", corpus_paragraphs(number, i))
            )
            return server.url(path)

        good_items.append(Item("good-1", "good story 1", serve("good", 1, "001")))
        server.routes["/good.xml"] = Route(body=rss(good_items))
        server.routes["/bad.xml"] = Route(
            body=rss([Item("bad-1", "bad story 1", serve("bad", 1, "003"))])
        )
        store.sync_feeds(
            [feed_spec("good", server.url("/good.xml")), feed_spec("bad", server.url("/bad.xml"))],
            clock(),
        )
        assert poll(store, clock).new == 2

        server.routes.update(case.extra_routes)
        server.routes["/bad.xml"] = case.route
        good_items.append(Item("good-2", "good story 2", serve("good", 2, "000")))
        server.routes["/good.xml"] = Route(body=rss(good_items))
        clock.advance(minutes=15)
        summary = poll(store, clock)

    health = {h.name: h for h in store.feed_health()}
    bad, good = health["bad"], health["good"]
    if case.error:
        assert bad.consecutive_failures == 1, bad
        assert case.error in bad.last_error
        assert server.url("/bad.xml") in bad.last_error  # the message says which feed
        assert summary.errors == 1
    else:
        assert bad.consecutive_failures == 0 and case.problem in (bad.last_problem or "")
    titles = {a.title for a in store.articles()}
    assert {"bad story 1", "good story 1", "good story 2"} <= titles  # nothing lost
    assert len(titles) == 3 + case.kept_entries
    assert good.consecutive_failures == 0 and good.last_success_at == clock()


def test_retry_after_pushes_the_next_poll_at_least_that_far(store, clock):
    with LoopbackServer() as server:
        server.routes["/bad.xml"] = Route(status=429, headers={"Retry-After": "7200"})
        store.sync_feeds([feed_spec("bad", server.url("/bad.xml"))], clock())
        poll(store, clock)
    (health,) = store.feed_health()
    assert health.next_poll_at - clock() >= timedelta(seconds=7200)
    assert "retry after 7200 s" in health.last_error


def test_an_entry_link_that_times_out_falls_back_to_the_feed_text(store, clock):
    text = " ".join(corpus_paragraphs("000", 0, 3))
    with LoopbackServer() as server:
        server.routes["/slow.html"] = Route(body=b"<html></html>", delay=3.0)
        server.routes["/feed.xml"] = Route(
            body=rss([Item("s1", "Psaki", server.url("/slow.html"), description=text)])
        )
        store.sync_feeds([feed_spec("rferl", server.url("/feed.xml"))], clock())
        summary = poll(store, clock)
    assert summary.new == 1 and summary.errors == 0
    (article,) = store.articles()
    assert article.text_source == "feed" and "Kyiv" in article.text
    (health,) = store.feed_health()
    assert "/slow.html" in health.last_problem and "timed out" in health.last_problem


def test_a_wrong_encoding_declaration_still_yields_the_right_characters(store, clock):
    with LoopbackServer() as server:
        server.routes["/feed.xml"] = Route(body=WRONG_ENCODING)
        store.sync_feeds([feed_spec("bad", server.url("/feed.xml"))], clock())
        poll(store, clock)
    assert [a.title for a in store.articles()] == ["Zelenskiy’s Kyiv — naïve café"]
