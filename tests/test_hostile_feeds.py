"""Hostile feed documents and pages served over loopback to the real pipeline: each one ends in
bounded time with a clean (maybe cut) result or an error on its own feed, and the other feed of
the same cycle carries on (the hostile-input issue, "parser and document attacks")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.domain import MAX_AUTHOR, MAX_TITLE
from monitor.parse import MAX_ENTRIES
from monitor.pipeline import poll_cycle
from monitor.store import FeedHealth, Store
from tests.support import Item, corpus_paragraphs, feed_spec, page, rss, runtime, settings

CFG = settings()  # the default 5 MB body cap: the documents below fit under it
STORY = " ".join(corpus_paragraphs("000", 0, 3))
XML = '<?xml version="1.0" encoding="utf-8"?>\n'


def _rss(items: str, doctype: str = "") -> bytes:
    return (
        f'{XML}{doctype}<rss version="2.0"><channel><title>Hostile</title>{items}</channel></rss>'
    ).encode()


def _item(title: str, guid: str = "h1", link: str = "", text: str = STORY) -> str:
    link_xml = f"<link>{link}</link>" if link else ""
    return (
        f"<item><title>{title}</title>{link_xml}<guid>{guid}</guid>"
        f"<description>{text}</description></item>"
    )


# "Billion laughs": nine levels of ten references each, 10⁹ "lol"s (3 GB) if expanded.
_LAUGHS = (
    '<!DOCTYPE rss [\n<!ENTITY lol0 "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    + "]>\n"
)


@dataclass
class Attack:
    name: str
    body: Callable[[LoopbackServer], bytes]  # the hostile feed document
    check: Callable[[Store, LoopbackServer, FeedHealth], None]  # (store, server, bad feed health)


def _titles(store: Store) -> list[str]:
    return [a.title for a in store.articles(limit=10_000) if not a.title.startswith("good")]


def _check_laughs(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (title,) = _titles(store)
    assert "lollol" not in title  # not expanded: the entry is kept with the reference as text
    assert "undefined entity" in health.last_problem


def _check_no_file(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    for a in store.articles():
        assert "root:" not in a.title and "root:" not in (a.text or "")
    assert _titles(store) == ["Local &xxe;"]


def _check_no_request(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    assert server.count("/secret.dtd") == 0 and server.count("/secret.txt") == 0
    assert _titles(store) == ["Remote"]


def _check_cut_to_first_entries(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    titles = _titles(store)
    assert len(titles) == MAX_ENTRIES and "t0" in titles and f"t{MAX_ENTRIES}" not in titles
    assert f"the feed lists 100000 entries; only the first {MAX_ENTRIES} were read" in (
        health.last_problem
    )


def _check_short_title(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (title,) = _titles(store)
    assert len(title) == MAX_TITLE and title.endswith("…") and title.startswith("T")


def _check_clean_controls(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (title,) = _titles(store)
    assert title == "Kyiv [31m talks resume"  # NUL, ESC, BEL and DEL gone, text kept


def _check_lt_bomb(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (title,) = _titles(store)
    assert title.startswith("<<<") and len(title) == MAX_TITLE


def _check_invalid_utf8(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (title,) = _titles(store)
    assert title.startswith("Kyiv") and "\x00" not in title
    assert "entries kept: 1" in health.last_problem


def _check_deep_page(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (article,) = [a for a in store.articles() if a.title == "Deep"]
    assert article.text_source == "feed" and "Kyiv" in article.text


def _check_long_canonical(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (article,) = [a for a in store.articles() if a.title == "Long canonical"]
    assert article.canonical_url == server.url("/canon.html") and article.text_source == "page"


def _check_huge_page_title(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    (article,) = [a for a in store.articles() if a.title.startswith("P")]
    assert len(article.title) == MAX_TITLE and article.title.endswith("…")
    assert article.author is not None and len(article.author) == MAX_AUTHOR
    assert article.text_source == "page" and "Kyiv" in article.text


def _check_deep_content(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    # lxml stops at libxml2's depth limit (about 255): no text, but the entry is kept
    (article,) = [a for a in store.articles() if a.title == "Deep content"]
    assert article.text == ""


def _check_long_ids(store: Store, server: LoopbackServer, health: FeedHealth) -> None:
    assert sorted(_titles(store)) == ["Long GUID", "Long link"]


ATTACKS = [
    Attack(
        "billion laughs (entity expansion)",
        lambda s: _rss(_item("&lol9;"), _LAUGHS),
        _check_laughs,
    ),
    Attack(
        "an external entity reading a local file",
        lambda s: _rss(
            _item("Local &xxe;"), '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        ),
        _check_no_file,
    ),
    Attack(
        "external entities and a DTD fetched over HTTP",
        lambda s: _rss(
            _item("Remote"),
            f'<!DOCTYPE rss SYSTEM "{s.url("/secret.dtd")}" [<!ENTITY % p SYSTEM '
            f'"{s.url("/secret.dtd")}"> %p; <!ENTITY x SYSTEM "{s.url("/secret.txt")}">]>\n',
        ),
        _check_no_request,
    ),
    Attack(
        "a feed with 100,000 entries",
        lambda s: _rss("".join(f"<item><title>t{i}</title></item>" for i in range(100_000))),
        _check_cut_to_first_entries,
    ),
    Attack(
        "a 4 MB headline",
        lambda s: _rss(_item("T" * 4_000_000)),
        _check_short_title,
    ),
    Attack(
        "a headline of a million '<' (a quadratic regex once)",
        lambda s: _rss(_item("&lt;" * 1_000_000)),
        _check_lt_bomb,
    ),
    Attack(
        "control characters in a headline",
        lambda s: _rss(_item("Kyiv\x1b[31m\x07 talks\x7f\x00 resume")),
        _check_clean_controls,
    ),
    Attack(
        "invalid UTF-8 and a NUL",
        lambda s: _rss(_item("Kyiv @@ talks")).replace(b"@@", b"\xff\xfe\xc3(\xed\xa0\x80"),
        _check_invalid_utf8,
    ),
    Attack(
        "a page of 100,000 nested elements",
        lambda s: _rss(_item("Deep", link=s.url("/deep.html"))),
        _check_deep_page,
    ),
    Attack(
        "a page whose rel=canonical is 100 kB long",
        lambda s: _rss(_item("Long canonical", link=s.url("/canon.html"))),
        _check_long_canonical,
    ),
    Attack(
        "feed content of 100,000 nested elements",
        lambda s: _rss(
            _item("Deep content", text=escape("<div>" * 100_000 + STORY + "</div>" * 100_000))
        ),
        _check_deep_content,
    ),
    Attack(
        "a page with a 1.5 MB <title> and a 500 kB author",
        lambda s: _rss(_item("Huge page title", link=s.url("/huge.html"))),
        _check_huge_page_title,
    ),
    Attack(
        "a 100 kB GUID and a 100 kB link",
        lambda s: _rss(
            _item("Long GUID", guid="g" * 100_000)
            + _item("Long link", guid="l", link=s.url("/" + "a" * 100_000))
        ),
        _check_long_ids,
    ),
]


def _poll(store: Store, clock: object) -> object:
    async def go() -> object:
        async with runtime(store, clock, CFG) as rt:
            return await poll_cycle(rt, ignore_schedule=True)

    return asyncio.run(go())


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_a_hostile_feed_ends_clean_on_its_own_feed_and_the_other_feed_carries_on(
    attack: Attack, store: Store, clock: object
) -> None:
    with LoopbackServer() as server:
        server.routes["/good/1.html"] = Route(body=page("good story", corpus_paragraphs("001", 1)))
        server.routes["/good.xml"] = Route(
            body=rss([Item("good-1", "good story", server.url("/good/1.html"))])
        )
        deep = "<div>" * 100_000 + "<p>Nothing here.</p>" + "</div>" * 100_000
        server.routes["/deep.html"] = Route(body=f"<html><body>{deep}</body></html>".encode())
        long_canonical = server.url("/" + "c" * 100_000)
        server.routes["/canon.html"] = Route(
            body=page("Long canonical", corpus_paragraphs("003"), canonical=long_canonical)
        )
        huge = page("P" * 1_500_000, corpus_paragraphs("000")).replace(
            b"<head>", b'<head><meta name="author" content="' + b"A " * 250_000 + b'">'
        )
        server.routes["/huge.html"] = Route(body=huge)
        server.routes["/bad.xml"] = Route(body=attack.body(server))
        store.sync_feeds(
            [feed_spec("good", server.url("/good.xml")), feed_spec("bad", server.url("/bad.xml"))],
            clock(),
        )
        _poll(store, clock)

    health = {h.name: h for h in store.feed_health()}
    good = health["good"]
    assert good.consecutive_failures == 0 and good.last_success_at == clock()
    assert "good story" in [a.title for a in store.articles(limit=10_000)]
    attack.check(store, server, health["bad"])


def test_a_feed_larger_than_the_body_cap_is_refused_naming_its_url(
    store: Store, clock: object
) -> None:
    with LoopbackServer() as server:
        server.routes["/bad.xml"] = Route(body=_rss(_item("T" * 10_000_000)))  # a 10 MB headline
        store.sync_feeds([feed_spec("bad", server.url("/bad.xml"))], clock())
        _poll(store, clock)
    (health,) = store.feed_health()
    assert health.consecutive_failures == 1
    assert health.last_error.startswith(server.url("/bad.xml"))
    assert "larger than 5242880 bytes" in health.last_error
