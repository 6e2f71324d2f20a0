"""Fuzzing the parse stage: whatever bytes a feed URL serves, parse() returns a ParsedFeed
(never raises), and every entry in it is bounded and clean enough to store and show."""

from __future__ import annotations

import re
from html import escape
from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.canonical import MAX_URL_BYTES, canonical_url
from monitor.domain import MAX_AUTHOR, MAX_TITLE, ParsedFeed
from monitor.parse import MAX_ENTRIES, MAX_GUID, parse
from tests.fuzz.strategies import hostile_text
from tests.support import Item, corpus_paragraphs, rss

FEED_URL = "http://127.0.0.1:8000/feeds/world.xml"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
REAL_FEED = rss(
    [
        Item(f"id-{i}", f"Story {i}: Kyiv talks", f"/a/{i}.html", description=text)
        for i, text in enumerate(corpus_paragraphs("000", 0, 3))
    ]
)


def assert_clean(parsed: ParsedFeed) -> None:
    """What the store and the renderers may rely on, whatever the document was."""
    assert len(parsed.entries) <= MAX_ENTRIES
    assert parsed.title is None or (
        len(parsed.title) <= MAX_TITLE and not CONTROL.search(parsed.title)
    )
    assert parsed.is_feed or parsed.problem  # a document that is no feed says why
    guids = [entry.guid for entry in parsed.entries]
    for entry in parsed.entries:
        assert entry.guid and len(entry.guid) <= MAX_GUID + 1 + MAX_URL_BYTES
        assert len(entry.guid) <= MAX_GUID or entry.guid.count(" ") >= 1
        assert len(entry.title) <= MAX_TITLE and not CONTROL.search(entry.title)
        assert entry.title == entry.title.strip()
        assert entry.author is None or (
            len(entry.author) <= MAX_AUTHOR and not CONTROL.search(entry.author)
        )
        if entry.link is not None:
            assert len(entry.link.encode()) <= MAX_URL_BYTES
            assert urlsplit(entry.link).scheme in ("http", "https")
        assert entry.published is None or entry.published.tzinfo is not None
        assert isinstance(entry.content, str)
    assert len(set(guids)) == len(guids) or _repeats_are_same_link(parsed)


def _repeats_are_same_link(parsed: ParsedFeed) -> bool:
    """Entries that share a GUID are one entry listed twice: their links have one canonical
    form (they may differ in a fragment or a tracking parameter)."""
    links: dict[str, set[str | None]] = {}
    for entry in parsed.entries:
        links.setdefault(entry.guid, set()).add(canonical_url(entry.link or ""))
    return all(len(found) == 1 for found in links.values())


@given(st.binary(max_size=3000))
@example(b"")
@example(b"<")
@example(b"<?xml version='1.0' encoding='utf-16'?><rss/>")
@example(
    b"\xef\xbb\xbf<rss version='2.0'><channel><item><title>\xff</title></item></channel></rss>"
)
def test_any_bytes_parse_to_a_clean_result(body: bytes) -> None:
    assert_clean(parse(body, FEED_URL))


def _field(text: str, how: str) -> str:
    if how == "escaped":
        return escape(text)
    if how == "cdata":
        return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    return text  # raw: may break the XML, which the loose parser then recovers from


@st.composite
def hostile_feeds(draw: st.DrawFn) -> bytes:
    """RSS 2.0 or Atom documents whose every field is hostile text, escaped or not."""
    how = st.sampled_from(["escaped", "cdata", "raw"])
    items = []
    for _ in range(draw(st.integers(0, 4))):
        title, text, guid = (draw(hostile_text()) for _ in range(3))
        link = draw(st.one_of(hostile_text(), st.sampled_from(["/a/1.html", "http://x/", ""])))
        items.append(
            (
                _field(title, draw(how)),
                _field(link, draw(how)),
                _field(guid, draw(how)),
                _field(text, draw(how)),
                _field(draw(hostile_text(3)), draw(how)),
            )
        )
    if draw(st.booleans()):
        body = "".join(
            f"<item><title>{t}</title><link>{li}</link><guid>{g}</guid>"
            f"<description>{d}</description><author>{a}</author></item>"
            for t, li, g, d, a in items
        )
        title = _field(draw(hostile_text()), draw(how))
        doc = f'<rss version="2.0"><channel><title>{title}</title>{body}</channel></rss>'
    else:
        body = "".join(
            f'<entry><title type="html">{t}</title><link href="{escape(li)}"/><id>{g}</id>'
            f'<content type="html">{d}</content><author><name>{a}</name></author></entry>'
            for t, li, g, d, a in items
        )
        doc = f'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>{body}</feed>'
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "windows-1252", "iso-8859-5"]))
    prolog = f'<?xml version="1.0" encoding="{encoding}"?>\n'
    codec = draw(st.sampled_from(["utf-8", encoding]))  # sometimes a lying declaration
    return (prolog + doc).encode(codec, errors="replace")


_FRAGMENTS = (
    b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>a</title><link href="/a#x"/></entry>'
    b'<entry><title>b</title><link href="/a#y"/></entry></feed>'
)


@given(hostile_feeds())
@example(_FRAGMENTS)  # found by fuzzing (a property too strict): one page, two fragments
def test_hostile_fields_parse_to_clean_entries(body: bytes) -> None:
    assert_clean(parse(body, FEED_URL, "application/rss+xml"))


@st.composite
def mutated_feeds(draw: st.DrawFn) -> bytes:
    """A real feed document with bytes inserted, deleted or replaced here and there."""
    body = bytearray(REAL_FEED)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(
            st.binary(min_size=1, max_size=8)
            | st.sampled_from(
                [
                    b"<",
                    b">",
                    b"&",
                    b"]]>",
                    b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
                    b"&e;",
                    b"\x00",
                    b"\xff",
                    b"</channel>",
                    b"<item>",
                    b'"',
                ]
            )
        )
        if action == "insert":
            body[at:at] = chunk
        elif action == "delete":
            del body[at : at + len(chunk)]
        else:
            body[at : at + len(chunk)] = chunk
    return bytes(body)


_DECLARED = (
    b'<?xml version="1.0" encoding="%s"?>\n'
    b'<rss version="2.0"><channel><item><title>A</title></item></channel></rss>'
)


@given(mutated_feeds())
@example(_DECLARED % b"\x80utf-8")  # found by fuzzing: feedparser raised UnicodeDecodeError
@example(_DECLARED % b"\x00utf-8")  # found by fuzzing: feedparser raised ValueError
def test_a_damaged_real_feed_parses_to_clean_entries(body: bytes) -> None:
    parsed = parse(body, FEED_URL, "application/rss+xml")
    assert_clean(parsed)
    for entry in parsed.entries:
        assert "root:" not in entry.title + entry.content  # no local file was ever read


def test_a_feed_with_an_unreadable_xml_declaration_keeps_its_entries_and_says_so() -> None:
    parsed = parse(_DECLARED % b"\x00utf-8", FEED_URL)
    assert [entry.title for entry in parsed.entries] == ["A"] and parsed.is_feed
    assert parsed.problem == "unreadable XML declaration (ValueError), read without it"
