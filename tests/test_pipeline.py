"""The ingest pipeline end to end against a loopback server and a real database."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.pipeline import poll_cycle
from tests.support import Item, corpus_paragraphs, feed_spec, page, rss, runtime, settings


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def poll(store, clock, cfg=None, **kw):
    async def go():
        async with runtime(store, clock, cfg) as rt:
            return await poll_cycle(rt, ignore_schedule=True, **kw)

    return asyncio.run(go())


def serve_article(server, path, number, title, start=0, canonical=None):
    server.routes[path] = Route(body=page(title, corpus_paragraphs(number, start), canonical))
    return server.url(path)


def test_a_new_feed_stores_old_entries_as_backlog_and_recent_ones_as_news(server, store, clock):
    links = [
        serve_article(server, f"/a/{i}.html", n, f"Story {i}")
        for i, n in enumerate(["000", "001", "003"])
    ]
    items = [
        Item("g0", "Story 0", links[0], clock() - timedelta(days=2)),
        Item("g1", "Story 1", links[1], clock() - timedelta(hours=3)),
        Item("g2", "Story 2", links[2], None),
    ]
    server.routes["/feed"] = Route(body=rss(items), content_type="application/rss+xml")
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())

    first = poll(store, clock)
    assert (first.new, first.backlog) == (3, 2)
    flags = {a.title: a.backlog for a in store.articles()}
    assert flags == {"Story 0": True, "Story 1": False, "Story 2": True}

    later = serve_article(server, "/a/9.html", "002", "Story 9")
    items.append(Item("g9", "Story 9", later, clock() - timedelta(days=5)))
    server.routes["/feed"].body = rss(items)
    clock.advance(minutes=10)
    second = poll(store, clock)
    assert (second.new, second.backlog) == (1, 0)  # after the first poll nothing is backlog


def test_an_unchanged_feed_costs_one_conditional_get_and_no_parse(server, store, clock):
    link = serve_article(server, "/a/1.html", "001", "Blinken in Kyiv")
    server.routes["/feed"] = Route(
        body=rss([Item("g1", "Blinken in Kyiv", link, clock())]),
        content_type="application/rss+xml",
        etag='"v1"',
    )
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    poll(store, clock)
    again = poll(store, clock)
    assert (again.polled, again.not_modified, again.new) == (1, 1, 0)
    # the server records a hit just after answering it: wait for the record, not the reply
    wait_until(lambda: server.count("/feed") == 2)
    assert [h.headers.get("If-None-Match") for h in server.hits if h.path == "/feed"] == [
        None,
        '"v1"',
    ]
    assert server.count("/a/1.html") == 1  # the page was not fetched again


def test_many_304s_at_once_are_each_recorded_with_their_lease_released(server, store, clock):
    """304s are written in group commits; each feed must still get its own bookkeeping."""
    names = [f"o{i}" for i in range(30)]
    for name in names:
        server.routes[f"/{name}"] = Route(body=rss([]), etag=f'"{name}"')
    store.sync_feeds([feed_spec(n, server.url(f"/{n}")) for n in names], clock())
    poll(store, clock)
    clock.advance(minutes=1)
    again = poll(store, clock)
    assert again.not_modified == 30
    health = {h.name: h for h in store.feed_health()}
    assert all(health[n].last_status == 304 for n in names)
    assert all(health[n].last_polled_at == clock() for n in names)
    # released: a normal (scheduled) claim finds none due now, and all are due after 10 min
    assert store.claim_due_feeds("other", clock(), timedelta(minutes=5), 100) == []
    later = clock() + timedelta(minutes=15)
    assert len(store.claim_due_feeds("other", later, timedelta(minutes=5), 100)) == 30


def test_tracking_parameters_do_not_make_a_second_article(server, store, clock):
    link = serve_article(server, "/a/1.html", "001", "Blinken in Kyiv")
    server.routes["/all"] = Route(body=rss([Item("a1", "Blinken", link + "?utm_source=rss#top")]))
    server.routes["/ukraine"] = Route(body=rss([Item("u1", "Blinken", link + "?fbclid=xyz")]))
    store.sync_feeds(
        [
            feed_spec("rferl/all", server.url("/all"), "rferl"),
            feed_spec("rferl/ukraine", server.url("/ukraine"), "rferl"),
        ],
        clock(),
    )
    summary = poll(store, clock)
    assert (summary.new, summary.duplicates) == (1, 1)
    (article,) = store.articles()
    assert article.canonical_url == link
    assert store.counts()["sources"] == 2


def test_the_pages_rel_canonical_is_the_articles_url(server, store, clock):
    canonical = "https://www.rferl.org/a/blinken-kyiv/31661256.html"
    link = serve_article(server, "/amp/1.html", "001", "Blinken in Kyiv", canonical=canonical)
    server.routes["/feed"] = Route(body=rss([Item("g1", "Blinken", link)]))
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    poll(store, clock)
    assert [a.canonical_url for a in store.articles()] == [canonical]


def test_the_same_text_on_two_outlets_is_one_article_with_both(server, store, clock):
    a = serve_article(server, "/rferl/1.html", "003", "Blinken Warns Russia")
    b = serve_article(server, "/mirror/77.html", "003", "Blinken warns Russia (republished)")
    server.routes["/rferl.xml"] = Route(body=rss([Item("r1", "Blinken Warns Russia", a)]))
    server.routes["/mirror.xml"] = Route(body=rss([Item("m1", "Blinken warns", b)]))
    store.sync_feeds(
        [
            feed_spec("rferl", server.url("/rferl.xml")),
            feed_spec("mirror", server.url("/mirror.xml")),
        ],
        clock(),
    )
    summary = poll(store, clock)
    assert (summary.new, summary.duplicates) == (1, 1)
    (article,) = store.articles()
    assert article.outlets == ("mirror", "rferl")


def test_an_edited_article_at_a_known_url_becomes_a_revision(server, store, clock):
    link = serve_article(server, "/a/1.html", "001", "Blinken in Kyiv", start=0)
    server.routes["/feed"] = Route(body=rss([Item("g1", "Blinken in Kyiv", link)]))
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    poll(store, clock)
    serve_article(server, "/a/1.html", "001", "Blinken in Kyiv (updated)", start=2)
    server.routes["/feed"].body = rss([Item("g1", "Blinken in Kyiv (updated)", link)])
    summary = poll(store, clock)
    assert (summary.new, summary.revisions) == (0, 1)
    (article,) = store.articles()
    assert article.revision == 2 and article.title == "Blinken in Kyiv (updated)"
    assert corpus_paragraphs("001", 2, 1)[0][:60] in article.text


def test_entries_without_guid_or_date_and_with_relative_links_are_stored(server, store, clock):
    serve_article(server, "/news/a1.html", "000", "Psaki on Putin")
    server.routes["/news/feed.xml"] = Route(body=rss([Item(None, "Psaki on Putin", "a1.html")]))
    store.sync_feeds([feed_spec("rferl", server.url("/news/feed.xml"))], clock())
    assert poll(store, clock).new == 1
    (article,) = store.articles()
    assert article.canonical_url == server.url("/news/a1.html")
    assert article.published_at is None
    assert poll(store, clock).new == 0  # the link stands in for the missing GUID


def test_the_feed_content_is_the_fallback_when_the_page_fails(server, store, clock):
    text = " ".join(corpus_paragraphs("004", 0, 3))
    server.routes["/a/1.html"] = Route(status=500, body=b"oops")
    server.routes["/feed"] = Route(
        body=rss([Item("g1", "US diplomat", server.url("/a/1.html"), description=text)])
    )
    store.sync_feeds([feed_spec("presstv", server.url("/feed"))], clock())
    summary = poll(store, clock)
    assert summary.new == 1 and summary.errors == 0
    (article,) = store.articles()
    assert article.text_source == "feed" and "united with Ukraine" in article.text
    (health,) = store.feed_health()
    assert "HTTP 500" in health.last_problem and "feed's content" in health.last_problem


def test_one_feed_polls_only_once_when_named(server, store, clock):
    server.routes["/a"] = Route(body=rss([]))
    server.routes["/b"] = Route(body=rss([]))
    store.sync_feeds([feed_spec("a", server.url("/a")), feed_spec("b", server.url("/b"))], clock())
    summary = poll(store, clock, names=["b"])
    assert [o.feed for o in summary.outcomes] == ["b"]
    assert server.count("/a") == 0


def test_a_failing_feed_backs_off_exponentially_and_is_never_dropped(server, store, clock):
    server.routes["/feed"] = Route(status=503, body=b"down")
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    cfg = settings(polling={"backoff_base": "1m", "backoff_max": "10m"})
    delays = []
    for _ in range(6):
        poll(store, clock, cfg)
        (health,) = store.feed_health()
        delays.append(round((health.next_poll_at - clock()).total_seconds() / 60))
    assert delays[:4] == [1, 2, 4, 8] and delays[4:] == [10, 10]
    server.routes["/feed"] = Route(body=rss([]))
    poll(store, clock, cfg)
    (health,) = store.feed_health()
    assert health.consecutive_failures == 0 and health.last_success_at == clock()


def test_entries_sharing_one_guid_with_different_links_are_all_stored(server, store, clock):
    links = [
        serve_article(server, f"/a/{i}.html", n, f"Story {i}")
        for i, n in enumerate(["000", "001", "003"])
    ]
    items = [
        Item("https://example.com/", f"Story {i}", link, clock()) for i, link in enumerate(links)
    ]
    server.routes["/feed"] = Route(body=rss(items))
    store.sync_feeds([feed_spec("cms", server.url("/feed"))], clock())
    assert poll(store, clock).new == 3
    assert poll(store, clock).new == 0  # and they stay known on the next poll
    assert sorted(a.title for a in store.articles()) == ["Story 0", "Story 1", "Story 2"]


def test_a_consent_wall_on_every_page_does_not_merge_different_stories(server, store, clock):
    wall = [
        "Before you continue. We use cookies and data to deliver and maintain our services, "
        "track outages and protect against spam, fraud and abuse, and to measure audience "
        "engagement and site statistics to understand how our services are used."
    ] * 2
    items = []
    for i in range(5):
        server.routes[f"/a/{i}.html"] = Route(body=page("Before you continue", wall))
        items.append(
            Item(
                f"g{i}",
                f"Real headline {i}",
                server.url(f"/a/{i}.html"),
                clock(),
                description=f"Summary of story {i}. " * 3,
            )
        )
    server.routes["/feed"] = Route(body=rss(items))
    store.sync_feeds([feed_spec("walled", server.url("/feed"))], clock())
    summary = poll(store, clock)
    assert (summary.new, summary.duplicates) == (5, 0)


def test_a_page_that_failed_is_fetched_again_on_the_next_poll(server, store, clock):
    server.routes["/a/1.html"] = Route(status=503, body=b"busy")
    server.routes["/feed"] = Route(
        body=rss(
            [
                Item(
                    "g1",
                    "Blinken in Kyiv",
                    server.url("/a/1.html"),
                    clock(),
                    description="Short summary.",
                )
            ]
        )
    )
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    poll(store, clock)
    assert store.articles()[0].text_source == "feed"
    poll(store, clock)  # still failing: same fallback text, nothing new
    assert store.counts()["articles"] == 1 and store.articles()[0].revision == 1
    serve_article(server, "/a/1.html", "001", "Blinken in Kyiv")
    poll(store, clock)
    (article,) = store.articles()
    assert article.text_source == "page" and "Kuleba" in article.text
    assert poll(store, clock).revisions == 0  # the page is not fetched again once it worked
    assert server.count("/a/1.html") == 3


def test_redirected_links_are_stored_at_their_final_address_and_fetched_as_given(
    server, store, clock
):
    serve_article(server, "/a/final.html", "001", "Blinken in Kyiv")
    server.routes["/go;jsessionid=abc?ref=feed&id=7"] = Route(
        status=301, location=server.url("/a/final.html")
    )
    link = server.url("/go;jsessionid=abc?ref=feed&id=7")
    server.routes["/feed"] = Route(body=rss([Item("g1", "Blinken", link, clock())]))
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    poll(store, clock)
    assert server.count("/go;jsessionid=abc?ref=feed&id=7") == 1  # fetched exactly as linked
    assert [a.canonical_url for a in store.articles()] == [server.url("/a/final.html")]


def test_retention_keeps_articles_a_feed_still_lists(server, store, clock):
    from monitor.pipeline import housekeeping

    link = serve_article(server, "/a/1.html", "001", "Undated story")
    server.routes["/feed"] = Route(body=rss([Item("g1", "Undated story", link)]))
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    cfg = settings(retention={"articles": "30d"})
    poll(store, clock, cfg)

    async def purge():
        async with runtime(store, clock, cfg) as rt:
            return housekeeping(rt)

    clock.advance(days=40)
    poll(store, clock, cfg)  # still listed: seen now
    assert asyncio.run(purge()) == 0
    server.routes["/feed"].body = rss([])
    poll(store, clock, cfg)
    clock.advance(days=40)
    assert asyncio.run(purge()) == 1  # gone from the feed and past retention
    poll(store, clock, cfg)
    assert store.counts()["articles"] == 0


def test_a_clean_poll_clears_the_last_problem(server, store, clock):
    server.routes["/feed"] = Route(
        body=b'<rss version="2.0"><channel><item><title>x</title>'
        b"<link>/a</link></item><item><title>y & z</title>"
    )
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    poll(store, clock, settings(extract={"fetch_pages": False}))
    assert "entries kept" in store.feed_health()[0].last_problem
    server.routes["/feed"] = Route(body=rss([]))
    poll(store, clock, settings(extract={"fetch_pages": False}))
    assert store.feed_health()[0].last_problem is None


def test_an_entry_the_store_refuses_costs_only_itself(server, store, clock, monkeypatch):
    """A batch is one transaction; when it fails, its entries are stored one by one."""
    paragraphs = corpus_paragraphs("001")
    items = [
        Item(f"g{i}", f"Story {i}", server.url(f"/a/{i}.html"), clock(), paragraphs[i])
        for i in range(4)
    ]
    server.routes["/feed"] = Route(body=rss(items), etag='"v1"')
    store.sync_feeds([feed_spec("rferl", server.url("/feed"))], clock())
    ingest_many = store.ingest_many

    def refuse_g2(feed, entries, now):
        if any(e.guid == "g2" for e in entries):
            raise RuntimeError("disk full")
        return ingest_many(feed, entries, now)

    monkeypatch.setattr(store, "ingest_many", refuse_g2)
    summary = poll(store, clock, settings(extract={"fetch_pages": False, "min_chars": 20}))
    assert summary.new == 3
    assert sorted(a.title for a in store.articles()) == ["Story 0", "Story 1", "Story 3"]
    (health,) = store.feed_health()
    assert health.last_problem == f"entry {server.url('/a/2.html')}: RuntimeError: disk full"
    (feed,) = store.claim_due_feeds("w", clock(), timedelta(minutes=1), 1, ignore_schedule=True)
    assert feed.etag is None  # not everything was stored: the next poll must not be a 304


def many_feeds(server, clock, feeds: int = 10) -> list:
    """`feeds` feeds on two outlets, each with three stories of its own and one they share."""
    shared = server.url("/a/shared.html")
    story = corpus_paragraphs("001", 0, 1)[0]
    specs = []
    for f in range(feeds):
        items = [
            Item(f"f{f}-{k}", f"Story {f}-{k}", server.url(f"/a/{f}-{k}.html"), clock(), para)
            for k, para in enumerate(f"Dispatch {f}-{k}: {story}" for k in range(3))
        ]
        items.append(Item(f"f{f}-s", "Shared", shared, clock(), story))
        server.routes[f"/feed{f}"] = Route(body=rss(items))
        specs.append(feed_spec(f"o{f % 2}/f{f}", server.url(f"/feed{f}"), f"o{f % 2}"))
    return specs


@pytest.mark.parametrize("workers", [1, 2])
def test_feeds_polled_together_store_what_each_would_alone(server, store, clock, workers):
    """Concurrent feeds share database transactions and (with workers) the extractor pool."""
    store.sync_feeds(many_feeds(server, clock), clock())
    cfg = settings(extract={"fetch_pages": False, "min_chars": 20, "workers": workers})

    async def go():
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            async with runtime(store, clock, cfg, extractor=pool) as rt:
                return await poll_cycle(rt, ignore_schedule=True)
        finally:
            if pool is not None:
                pool.shutdown()

    summary = asyncio.run(go())
    assert (summary.new, summary.duplicates, summary.errors) == (31, 9, 0)
    (shared,) = [a for a in store.articles(limit=100) if a.title == "Shared"]
    assert shared.outlets == ("o0", "o1")


def test_an_entry_the_store_refuses_costs_no_other_feed(server, store, clock, monkeypatch):
    """Feeds stored in one transaction: when it fails, each feed is stored on its own."""
    store.sync_feeds(many_feeds(server, clock), clock())
    ingest_many = store.ingest_many

    def refuse_f3_1(feed, entries, now):
        if any(e.guid == "f3-1" for e in entries):
            raise RuntimeError("disk full")
        return ingest_many(feed, entries, now)

    monkeypatch.setattr(store, "ingest_many", refuse_f3_1)
    summary = poll(store, clock, settings(extract={"fetch_pages": False, "min_chars": 20}))
    assert (summary.new, summary.duplicates) == (30, 9)
    problems = {h.name: h.last_problem for h in store.feed_health()}
    assert problems.pop("o1/f3").endswith("RuntimeError: disk full")
    assert set(problems.values()) == {None}


def test_with_pages_fetched_feeds_are_polled_a_few_at_a_time(server, store, clock, monkeypatch):
    """The gate that keeps parsed entries waiting for page slots bounded: 2 feeds per fetch
    slot in flight, however many feeds the cycle claimed; every feed is still polled."""
    import monitor.pipeline as pipeline

    store.sync_feeds(many_feeds(server, clock, feeds=12), clock())
    for f in range(12):
        for k in range(3):
            serve_article(server, f"/a/{f}-{k}.html", "001", f"Story {f}-{k}", start=k)
    serve_article(server, "/a/shared.html", "002", "Shared")
    in_flight, most = 0, 0
    real = pipeline._poll_feed

    async def counting(rt, feed):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.01)  # let every claimed feed that can start, start
            return await real(rt, feed)
        finally:
            in_flight -= 1

    monkeypatch.setattr(pipeline, "_poll_feed", counting)
    summary = poll(store, clock, settings(polling={"concurrency": 2}))
    assert most == 2 * 2
    assert (summary.polled, summary.errors) == (12, 0)
    assert summary.new + summary.duplicates == 12 * 4


def test_a_feed_that_waited_past_half_its_lease_renews_it_or_skips(server, store, clock):
    """A feed waiting long for a slot renews its lease before polling; one another worker has
    taken over meanwhile is skipped, not polled twice."""
    from monitor.pipeline import _lease_still_ours

    store.sync_feeds(many_feeds(server, clock, feeds=2), clock())
    cfg = settings()
    lease = cfg.polling.lease
    mine, theirs = store.claim_due_feeds("w1", clock(), lease, 10, ignore_schedule=True)
    waited_since = clock()
    clock.advance(seconds=lease.total_seconds() * 0.75)
    store.release(theirs, "w1")
    assert store.claim_due_feeds(
        "w2", clock(), lease, 10, names=[theirs.name], ignore_schedule=True
    )

    async def go():
        async with runtime(store, clock, cfg, owner="w1") as rt:
            return [await _lease_still_ours(rt, f, waited_since) for f in (mine, theirs)]

    assert asyncio.run(go()) == [True, False]
    clock.advance(seconds=lease.total_seconds() * 0.9)  # past the first lease, not the renewed
    assert (
        store.claim_due_feeds("w2", clock(), lease, 10, names=[mine.name], ignore_schedule=True)
        == []
    )
