"""Pure stages: parse, canonical URLs and the schedule, table-driven."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.canonical import canonical_url
from monitor.parse import parse
from monitor.schedule import MAX_RETRY_AFTER, backoff_delay, next_poll_after_success

BASE = "http://127.0.0.1:8000/news/feed.xml"

RSS091 = b"""<?xml version="1.0"?><rss version="0.91"><channel><title>Old</title>
<item><title>Lavrov in Geneva</title><link>http://x.org/a/1</link>
<description>Talks.</description></item></channel></rss>"""

RSS2 = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>New</title>
<item><title>Kuleba meets Blinken</title><link>/a/2?utm_source=rss</link><guid>id-2</guid>
<pubDate>Wed, 19 Jan 2022 12:30:00 +0200</pubDate><author>desk@x.org (Desk)</author>
<description>Short.</description></item></channel></rss>"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel rdf:about="http://x.org/"><title>Blog</title><link>http://x.org/</link>
<description>d</description></channel>
<item rdf:about="http://x.org/a/3"><title>Zelenskyy thanks US</title><link>http://x.org/a/3</link>
<dc:date>2022-01-19T15:20:00Z</dc:date>
<content:encoded><![CDATA[<p>Full <b>text</b> here.</p>]]></content:encoded></item>
</rdf:RDF>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://x.org/ukraine/"><title>Atom</title>
<id>urn:x</id><updated>2022-01-19T00:00:00Z</updated>
<entry><title>Putin and Biden</title><id>urn:x:4</id><link rel="alternate" href="a/4.html"/>
<published>2022-01-18T09:00:00Z</published><updated>2022-01-19T10:00:00Z</updated>
<content type="html">&lt;p&gt;Atom content.&lt;/p&gt;</content></entry></feed>"""


@pytest.mark.parametrize(
    ("body", "title", "guid", "link", "published", "content"),
    [
        (RSS091, "Lavrov in Geneva", "http://x.org/a/1", "http://x.org/a/1", None, "Talks."),
        (
            RSS2,
            "Kuleba meets Blinken",
            "id-2",
            "http://127.0.0.1:8000/a/2?utm_source=rss",
            datetime(2022, 1, 19, 10, 30, tzinfo=UTC),
            "Short.",
        ),
        (
            RDF,
            "Zelenskyy thanks US",
            "http://x.org/a/3",
            "http://x.org/a/3",
            datetime(2022, 1, 19, 15, 20, tzinfo=UTC),
            "<p>Full <b>text</b> here.</p>",
        ),
        (
            ATOM,
            "Putin and Biden",
            "urn:x:4",
            "http://x.org/ukraine/a/4.html",
            datetime(2022, 1, 18, 9, 0, tzinfo=UTC),
            "<p>Atom content.</p>",
        ),
    ],
    ids=["rss-0.91", "rss-2.0", "rss-1.0-rdf", "atom"],
)
def test_every_feed_format_yields_its_entry(body, title, guid, link, published, content):
    parsed = parse(body, BASE)
    assert parsed.is_feed and parsed.problem is None
    (entry,) = parsed.entries
    assert (entry.title, entry.link, entry.published, entry.content) == (
        title,
        link,
        published,
        content,
    )
    assert guid in entry.guid


def test_an_edited_entry_changes_its_entry_hash():
    before = parse(RSS2, BASE).entries[0].entry_hash
    after = parse(RSS2.replace(b"Short.", b"Longer now."), BASE).entries[0].entry_hash
    assert before != after


def test_an_entry_with_neither_guid_nor_link_gets_a_stable_content_guid():
    body = b'<rss version="2.0"><channel><item><title>Only a title</title></item></channel></rss>'
    first, second = parse(body, BASE).entries[0], parse(body, BASE).entries[0]
    assert first.link is None and first.guid == second.guid and len(first.guid) == 32


def test_an_empty_body_is_not_a_feed():
    parsed = parse(b"", BASE)
    assert not parsed.is_feed
    assert parsed.problem == "not an RSS/Atom feed: no RSS/Atom elements found"


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("HTTP://Www.RFERL.org:80/a/1.html#comments", None, "http://www.rferl.org/a/1.html"),
        ("https://x.org/a?utm_source=rss&utm_medium=feed&id=7", None, "https://x.org/a?id=7"),
        ("https://x.org/a?fbclid=abc&gclid=def", None, "https://x.org/a"),
        ("https://x.org/a?b=2&a=1", None, "https://x.org/a?a=1&b=2"),
        ("../a/2.html", "https://x.org/news/feed/", "https://x.org/news/a/2.html"),
        ("https://x.org", None, "https://x.org/"),
        ("mailto:desk@x.org", None, None),
        ("http://[broken-ipv6/a", None, None),
        ("", None, None),
    ],
)
def test_canonical_urls(url, base, expected):
    assert canonical_url(url, base) == expected


def test_the_next_poll_spreads_within_the_jitter():
    now = datetime(2022, 1, 20, tzinfo=UTC)
    rng = random.Random(1)
    offsets = [
        (next_poll_after_success(now, timedelta(minutes=10), 0.1, rng) - now) for _ in range(200)
    ]
    assert min(offsets) >= timedelta(minutes=9) and max(offsets) <= timedelta(minutes=11)
    assert max(offsets) - min(offsets) > timedelta(minutes=1)  # actually spread


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        (1, None, 60),
        (2, None, 120),
        (5, None, 960),
        (9, None, 3600),
        (400, None, 3600),
        (1, 300.0, 300),
        (9, 7200.0, 7200),
        (1, 10 * 86400.0, MAX_RETRY_AFTER.total_seconds()),
    ],
)
def test_backoff_doubles_to_its_cap_and_honours_retry_after(failures, retry_after, expected):
    delay = backoff_delay(failures, timedelta(minutes=1), timedelta(hours=1), retry_after)
    assert delay.total_seconds() == expected


def test_entries_sharing_a_guid_but_not_a_link_get_distinct_guids():
    body = (
        b'<rss version="2.0"><channel>'
        b"<item><title>A</title><link>http://x.org/a</link><guid>http://x.org/</guid></item>"
        b"<item><title>B</title><link>http://x.org/b</link><guid>http://x.org/</guid></item>"
        b"<item><title>A</title><link>http://x.org/a</link><guid>g2</guid></item>"
        b"</channel></rss>"
    )
    guids = [e.guid for e in parse(body, BASE).entries]
    assert len(set(guids[:2])) == 2 and guids[2].endswith("g2")


def test_markup_and_references_in_titles_become_plain_text():
    body = (
        b'<rss version="2.0"><channel><item><title><![CDATA[<b>Kyiv</b> &#171;talks&#187;]]>'
        b"</title><link>http://x.org/a</link></item></channel></rss>"
    )
    assert parse(body, BASE).entries[0].title == "Kyiv \u00abtalks\u00bb"
