"""Fuzzing the renderers: a message whose headlines, snippets, outlet names, updates and URLs
are any hostile text renders in every format without an exception, and the result is inert:
one-line subjects, no Slack control sequence but our links, no element or attribute from the
feed in the email's HTML, no Markdown link or raw HTML from the feed, no forged text line."""

from __future__ import annotations

import dataclasses
import re
import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from monitor.render import render
from monitor.render.escape import safe_url
from monitor.render.model import Entry, Message
from monitor.render.sample import sample_entries
from monitor.rules.snippet import Snippet
from tests.fuzz.strategies import hostile_text
from tests.test_render import (
    SHIPPED_ATTRIBUTES,
    SHIPPED_TAGS,
    Tags,
    mail_headers,
    message,
    mrkdwn_texts,
)

STORY = sample_entries()[0]
URLS = st.one_of(
    st.sampled_from(
        [
            "https://www.rferl.org/a/story.html",
            "http://evil|<!channel>/",
            "javascript:alert(1)",
            "https://example.com/a(1)|b>c.html?x=<y>",
            "",
        ]
    ),
    hostile_text(3),
)


@st.composite
def snippets(draw: st.DrawFn) -> Snippet:
    text = draw(hostile_text(10))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=6))))
    marks = tuple((a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if a < b)
    return Snippet(text, marks)


@st.composite
def hostile_entries(draw: st.DrawFn) -> Entry:
    return dataclasses.replace(
        STORY,
        title=draw(hostile_text()),
        url=draw(URLS),
        outlets=tuple(draw(st.lists(hostile_text(3), min_size=1, max_size=3))),
        snippet=draw(snippets()),
        update=draw(st.one_of(st.none(), hostile_text(3))),
        terms=tuple(draw(st.lists(hostile_text(2), max_size=3))),
    )


@st.composite
def hostile_messages(draw: st.DrawFn) -> Message:
    entries = draw(st.lists(hostile_entries(), min_size=1, max_size=3))
    return message(
        *entries,
        more=draw(st.integers(0, 3)),
        title=draw(hostile_text()),
        text=draw(st.one_of(st.none(), hostile_text())),
    )


def our_links(msg: Message) -> set[str]:
    return {url for url in (safe_url(e.url) for e in msg.entries) if url}


def neutral(msg: Message) -> Message:
    """The same message with every value from a feed replaced by one plain word (an empty
    value stays empty: the templates leave its line out)."""

    def word(value: str) -> str:
        return "word" if value else ""

    entries = tuple(
        dataclasses.replace(
            e,
            title=word(e.title),
            outlets=tuple(word(o) for o in e.outlets),
            snippet=Snippet(word(e.snippet.text), ()),
            update=None if e.update is None else word(e.update),
            terms=tuple(word(t) for t in e.terms),
        )
        for e in msg.entries
    )
    # the free-text body (a feed-health notice) is shown line by line, each line on its own
    text = None if msg.text is None else "\n".join("word" for _ in msg.text.splitlines())
    return dataclasses.replace(msg, title=word(msg.title), entries=entries, text=text)


def controls(text: str) -> list[str]:
    """Characters that end or bend a line, or are not text."""
    return [c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs")]


HOSTILE = message(
    dataclasses.replace(
        STORY, title="a\r\nBcc: x@evil\u2028<!channel>", url="http://evil|<!channel>/"
    )
)


@given(hostile_messages())
@example(HOSTILE)  # found by fuzzing: a host holding "<!channel>" became a Slack link
def test_slack_payloads_hold_no_control_sequence_but_our_links(msg: Message) -> None:
    links = our_links(msg)
    for text in mrkdwn_texts(render(msg, "slack").slack):
        assert "\r" not in text
        for control in re.findall(r"<[^>]*>?", text):
            found = re.fullmatch(r"<(https?://[^\s<>|]+)\|[^<>]*>", control)
            assert found and found[1] in links, control


@given(hostile_messages())
@example(HOSTILE)
def test_email_html_has_only_our_elements_attributes_and_links(msg: Message) -> None:
    rendered = render(msg, "email")
    assert rendered.html is not None
    parsed = Tags(rendered.html)
    assert {tag for tag, _ in parsed.tags} <= SHIPPED_TAGS
    for tag, attrs in parsed.tags:
        assert {name for name, _ in attrs} <= SHIPPED_ATTRIBUTES, tag
        hrefs = [value for name, value in attrs if name == "href"]
        assert all(href in our_links(msg) for href in hrefs), hrefs


@given(hostile_messages())
@example(HOSTILE)
@example(message(STORY, title="İ§\U000717b1ð\x94&\U000a0b39¯00000000¡¡𐀀𐀀𐀀 ¡ ¡"))
def test_the_email_subject_is_one_line_and_no_header_is_added(msg: Message) -> None:
    rendered = render(msg, "email")
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    assert not controls(rendered.subject) and len(rendered.subject) <= 150
    parsed = mail_headers(rendered)
    # Found by the long profile: Python's email package folds a long non-ASCII subject into
    # RFC 2047 encoded-words, and a space between two of them is lost on the way (RFC 2047
    # ignores whitespace between encoded-words). The words and their order survive.
    assert "".join(parsed["Subject"].split()) == "".join(rendered.subject.split())
    assert list(parsed.keys()) == list(mail_headers(render(neutral(msg), "email")).keys())


@given(hostile_messages())
@example(HOSTILE)
def test_markdown_makes_only_our_links_and_no_raw_html(msg: Message) -> None:
    markdown = render(msg, "markdown").markdown
    assert markdown is not None
    tokens = MarkdownIt("commonmark").parse(markdown)
    children = [child for token in tokens for child in token.children or []]
    hrefs = {str(c.attrs["href"]) for c in children if c.type == "link_open"}
    assert hrefs <= our_links(msg)
    assert not [t for t in tokens if t.type == "html_block"]
    assert not [c for c in children if c.type in ("html_inline", "image")]


@given(hostile_messages())
@example(HOSTILE)
def test_plain_text_has_the_lines_of_the_same_message_with_plain_words(msg: Message) -> None:
    text = render(msg, "text").text
    assert "\r" not in text
    assert len(text.splitlines()) == len(render(neutral(msg), "text").text.splitlines())
