"""Rendering messages for Slack, email, Markdown and plain text: what the reader sees, hostile
headlines and snippets made inert in every format and every template, Slack's limits kept,
email that parses back, user templates that override and stay safe."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from monitor.render import (
    Limits,
    Rendered,
    RenderError,
    TemplatePathError,
    email_message,
    render,
)
from monitor.render.escape import markdown_escape, marked, one_line, safe_url, slack_escape
from monitor.render.model import Entry, Message
from monitor.render.sample import sample_entries, sample_message
from monitor.render.slack import slack_len
from monitor.rules.snippet import Snippet

# -- fixtures: real corpus stories, and the same stories carrying hostile text -----------------

HOSTILE_TITLE = (
    "Blinken Warns Russia <!channel> <@U123> <script>alert(1)</script> "
    "[click](javascript:alert(1)) Subject\r\nBcc: x@evil"
)
HOSTILE_TEXT = (
    "Putin claimed <!here> that concern <http://evil.example|click here> over its troop buildup "
    "<img src=x onerror=alert(1)> and a possible invasion [x](http://evil) could be a prelude."
)
CREATED = datetime(2022, 1, 20, 8, 0, tzinfo=UTC)


def hostile_snippet() -> Snippet:
    """The hostile text with the terms marked, as the matcher would mark them."""
    marks = tuple(
        (HOSTILE_TEXT.index(term), HOSTILE_TEXT.index(term) + len(term))
        for term in ("Putin", "troop buildup", "invasion")
    )
    return Snippet(HOSTILE_TEXT, marks)


def hostile_entry(url: str = "javascript:alert(1)") -> Entry:
    (story, *_) = sample_entries()
    return dataclasses.replace(
        story,
        title=HOSTILE_TITLE,
        url=url,
        outlets=("RFE/RL @everyone", "AP <!everyone>"),
        snippet=hostile_snippet(),
        update="+1 source: <@U999> Reuters",
    )


def message(
    *entries: Entry,
    more: int = 0,
    title: str = "troop-buildup: 2 new stories",
    text: str | None = None,
) -> Message:
    return Message(
        kind="digest",
        route="troop-buildup",
        title=title,
        entries=entries,
        more=more,
        timezone="Europe/Kyiv",
        created_at=CREATED,
        text=text,
    )


def hostile_message() -> Message:
    return message(
        hostile_entry(),
        hostile_entry("https://www.rferl.org/a/story(1)|x>y.html?a=1&b=2"),
        more=3,
        title=HOSTILE_TITLE,
        text="Feed <!channel> answers 500 <script>alert(1)</script>\nRetrying in 5 minutes",
    )


# -- helpers that read the output as its consumer would ---------------------------------------


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.data: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    @property
    def text(self) -> str:
        return "".join(self.data)


SHIPPED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "body",
    "table",
    "tr",
    "td",
    "div",
    "h1",
    "p",
    "span",
    "a",
    "mark",
}
SHIPPED_ATTRIBUTES = {
    "lang",
    "charset",
    "name",
    "content",
    "role",
    "width",
    "cellpadding",
    "cellspacing",
    "border",
    "align",
    "style",
    "href",
}


def assert_html_inert(html: str) -> None:
    """No element or attribute a feed could have added, and every link an http(s) link."""
    parsed = Tags(html)
    assert {tag for tag, _ in parsed.tags} <= SHIPPED_TAGS
    for tag, attrs in parsed.tags:
        assert {name for name, _ in attrs} <= SHIPPED_ATTRIBUTES, tag
        for name, value in attrs:
            if name == "href":
                assert value is not None and value.startswith("https://"), value
    # the hostile text is there, as text
    assert "<script>alert(1)</script>" in parsed.text
    assert "<!channel>" in parsed.text


def mrkdwn_texts(payloads: tuple[dict, ...]) -> Iterator[str]:
    """Every mrkdwn string of the payloads: the fallback text and each text object."""
    for payload in payloads:
        yield payload["text"]
        for block in payload["blocks"]:
            if block["type"] == "section":
                yield block["text"]["text"]
            elif block["type"] == "context":
                yield from (element["text"] for element in block["elements"])


def assert_mrkdwn_inert(text: str) -> None:
    """Every Slack control sequence `<…>` in `text` is one of our http(s) links."""
    for control in re.findall(r"<[^>]*>?", text):
        assert re.fullmatch(r"<https://[^\s<>|]+\|[^<>]*>", control), control


def markdown_links(markdown: str) -> list[str]:
    """The href of every link a CommonMark renderer makes of `markdown`."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [
        str(child.attrs["href"])
        for token in tokens
        for child in token.children or []
        if child.type == "link_open"
    ]


def section_texts(payload: dict) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]


# -- what the reader sees ---------------------------------------------------------------------


def test_an_entry_shows_title_outlets_local_time_watch_terms_snippet_and_link() -> None:
    entry = Entry(
        title="Blinken: Diplomacy Continues In Bid To Deter Russian Aggression Against Ukraine",
        url="https://www.rferl.org/a/blinken-kyiv-diplomacy-russia-ukraine/31661054.html",
        outlets=("RFE/RL", "AP"),
        published=datetime(2022, 1, 19, 12, 5, tzinfo=UTC),
        watch="troop-buildup",
        score=4.2,
        terms=("troops", "@putin"),
        snippet=Snippet("Putin has massed troops near the border.", ((0, 5), (17, 23))),
    )
    text = render(message(entry, more=3), "text").text
    assert "RFE/RL, AP · 2022-01-19 14:05 EET" in text
    assert "troop-buildup: troops, @putin" in text
    assert "*Putin* has massed *troops* near the border." in text
    assert "https://www.rferl.org/a/blinken-kyiv-diplomacy-russia-ukraine/31661054.html" in text
    assert text.rstrip().endswith("and 3 more")


def test_matched_terms_are_marked_in_each_syntax_after_escaping() -> None:
    snippet = Snippet("Russia & <NATO> troops", ((0, 6), (16, 22)))
    assert marked(snippet, slack_escape, "*", "*") == "*Russia* &amp; &lt;NATO&gt; *troops*"
    assert marked(snippet, markdown_escape, "**", "**") == r"**Russia** \& \<NATO\> **troops**"


def test_an_update_shows_what_changed() -> None:
    (story, *_) = sample_entries()
    update = dataclasses.replace(story, update="+1 source: Reuters")
    rendered = render(dataclasses.replace(message(update), kind="update"), "slack")
    assert "Update: +1 source: Reuters" in rendered.slack[0]["blocks"][1]["text"]["text"]
    assert "Update: +1 source: Reuters" in render(message(update), "text").text


@pytest.mark.parametrize("fmt", ["slack", "email", "text", "markdown"])
def test_the_sample_digest_renders_in_every_format(fmt: str) -> None:
    rendered = render(sample_message(shown=5), fmt)  # type: ignore[arg-type]
    assert rendered.subject == "troop-buildup: 12 new stories"
    assert "and 7 more" in rendered.text
    body = {
        "slack": json.dumps(rendered.slack),
        "email": rendered.html,
        "markdown": rendered.markdown,
        "text": rendered.text,
    }[fmt]
    assert body and "Blinken" in body


def test_an_unknown_timezone_falls_back_to_labelled_utc() -> None:
    (story, *_) = sample_entries()
    bad = dataclasses.replace(message(story), timezone="Mars/Olympus")
    assert "UTC" in render(bad, "text").text


# -- hostile input is inert in every format ---------------------------------------------------


def test_slack_payloads_escape_mentions_links_and_markup() -> None:
    payloads = render(hostile_message(), "slack").slack
    texts = list(mrkdwn_texts(payloads))
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;" in joined and "&lt;@U123&gt;" in joined
    assert "&lt;!here&gt;" in joined and "&lt;@U999&gt;" in joined
    assert "&lt;http://evil.example|click here&gt;" in joined
    assert "&lt;script&gt;" in joined
    for text in texts:
        assert_mrkdwn_inert(text)
        assert "\r" not in text
    assert "@\u2060everyone" in joined  # a bare broadcast word cannot be parsed either
    header = payloads[0]["blocks"][0]["text"]["text"]
    assert "\n" not in header and "\r" not in header


def test_every_slack_text_object_is_verbatim() -> None:
    payloads = render(hostile_message(), "slack").slack
    objects = [b["text"] for p in payloads for b in p["blocks"] if b["type"] == "section"]
    assert objects and all(o["type"] == "mrkdwn" and o["verbatim"] is True for o in objects)


def test_email_html_has_no_element_or_attribute_from_the_feed() -> None:
    rendered = render(hostile_message(), "email")
    assert rendered.html is not None
    assert_html_inert(rendered.html)
    assert "<img" not in rendered.html


def mail_headers(rendered: Rendered) -> EmailMessage:
    """The email as a reader parses it back from the bytes sent."""
    mime = email_message(
        rendered,
        sender="monitor@example.org",
        to="desk@example.org",
        message_id_domain="example.org",
        date=CREATED,
    )
    return BytesParser(policy=policy.default).parsebytes(mime.as_bytes())  # type: ignore[return-value]


def test_the_email_subject_is_one_line_so_no_header_can_be_injected() -> None:
    rendered = render(hostile_message(), "email")
    assert "\r" not in rendered.subject and "\n" not in rendered.subject
    parsed = mail_headers(rendered)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == rendered.subject
    assert "Subject Bcc: x@evil" in rendered.subject


def test_markdown_escapes_link_forgery_and_raw_html() -> None:
    markdown = render(hostile_message(), "markdown").markdown
    assert markdown is not None
    assert "[click](javascript:alert(1))" not in markdown
    assert r"\[click\]\(javascript:alert\(1\)\)" in markdown
    hrefs = markdown_links(markdown)
    assert hrefs and all(href.startswith("https://www.rferl.org/") for href in hrefs)
    html = MarkdownIt("commonmark").render(markdown)
    assert "<script" not in html and "<img" not in html


def test_plain_text_keeps_every_value_on_its_own_line() -> None:
    text = render(hostile_message(), "text").text
    assert "\r" not in text
    assert not any(line.startswith("Bcc:") for line in text.splitlines())
    assert "Subject Bcc: x@evil" in text


@pytest.mark.parametrize("fmt", ["slack", "email", "text", "markdown"])
def test_a_javascript_url_never_becomes_a_link(fmt: str) -> None:
    rendered = render(message(hostile_entry("javascript:alert(1)")), fmt)  # type: ignore[arg-type]
    everything = json.dumps(dataclasses.asdict(rendered))
    assert "javascript:alert(1)" not in everything.replace("(javascript:alert(1))", "")
    assert "href" not in (rendered.html or "")
    assert not markdown_links(rendered.markdown or "")
    for text in mrkdwn_texts(rendered.slack):
        assert_mrkdwn_inert(text)


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://www.rferl.org/a/31661054.html", "https://www.rferl.org/a/31661054.html"),
        ("HTTP://Example.org/a?b=1&c=2#x", "http://Example.org/a?b=1&c=2#x"),
        ("https://example.org/a(b)|c>d<e f", None),  # whitespace inside: not a link
        ("https://example.org/a(b)|c>d<e", "https://example.org/a%28b%29%7Cc%3Ed%3Ce"),
        (
            "https://пример.рф/статья",
            "https://xn--e1afmkfd.xn--p1ai/%D1%81%D1%82%D0%B0%D1%82%D1%8C%D1%8F",
        ),
        ("javascript:alert(1)", None),
        (" JavaScript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("https://trusted.example@evil.example/", None),
        ("https://example.org/\r\nBcc: x", None),
        ("//example.org/a", None),
        ("ftp://example.org/a", None),
        ("https://", None),
        ("https://example.org:99999999/", None),
    ],
)
def test_only_http_urls_become_links_and_are_encoded_for_every_syntax(
    url: str, safe: str | None
) -> None:
    assert safe_url(url) == safe


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("[x](http://evil)", r"\[x\]\(http://evil\)"),
        ("<script>", r"\<script\>"),
        ("AT&T *bold* _it_ `code`", r"AT\&T \*bold\* \_it\_ \`code\`"),
        ("# not a heading", r"\# not a heading"),
        ("1. not a list", r"1\. not a list"),
        ("- not a bullet", r"\- not a bullet"),
        ("line\r\nbreak", "line break"),
    ],
)
def test_markdown_escaping_leaves_nothing_to_parse(raw: str, escaped: str) -> None:
    assert markdown_escape(raw) == escaped


def test_one_line_removes_controls_and_bidi_overrides_and_caps_length() -> None:
    assert one_line(" a\r\nb\tc\x00d\u202ee\u2028f ") == "a b c de f"
    assert one_line("x" * 200, 10) == "x" * 9 + "…"


# -- Slack's limits -----------------------------------------------------------------------------


def numbered_entries(count: int) -> tuple[Entry, ...]:
    stories = sample_entries()
    return tuple(
        dataclasses.replace(
            stories[i % len(stories)], title=f"Story {i:04d}: {stories[i % len(stories)].title}"
        )
        for i in range(count)
    )


def assert_within_limits(payload: dict, limits: Limits) -> None:
    blocks = payload["blocks"]
    assert len(blocks) <= limits.slack_blocks
    assert blocks[0]["type"] == "header"
    assert slack_len(blocks[0]["text"]["text"]) <= limits.slack_header_chars
    for text in section_texts(payload):
        assert 0 < slack_len(text) <= limits.slack_section_chars
    total = sum(slack_len(t) for t in list(mrkdwn_texts((payload,)))[1:])
    assert total + limits.slack_header_chars <= limits.slack_payload_chars
    assert slack_len(payload["text"]) <= limits.slack_text_chars


def test_a_thousand_story_digest_splits_into_slack_messages_within_limits_losing_none() -> None:
    limits = Limits()
    entries = numbered_entries(1000)
    payloads = render(
        message(*entries, more=25, title="troop-buildup: 1025 new articles"), "slack", limits=limits
    ).slack
    assert len(payloads) > 1
    for payload in payloads:
        assert_within_limits(payload, limits)
    shown = [
        int(m[1])
        for p in payloads
        for t in section_texts(p)
        for m in re.finditer(r"Story (\d{4}):", t)
    ]
    assert shown == list(range(1000))  # each story once, in order
    headers = [p["blocks"][0]["text"]["text"] for p in payloads]
    assert headers[0] == f"troop-buildup: 1025 new articles (1/{len(payloads)})"
    more = [b for p in payloads for b in p["blocks"] if b["type"] == "context"]
    assert [b["elements"][0]["text"] for b in more] == ["and 25 more"]
    assert payloads[-1]["blocks"][-1] == more[0]


def test_limits_that_could_never_fit_a_section_are_refused() -> None:
    with pytest.raises(ValueError, match="full section"):
        Limits(slack_payload_chars=3000)
    with pytest.raises(ValueError, match="header and one section"):
        Limits(slack_blocks=1)


def test_a_block_count_limit_splits_too() -> None:
    limits = Limits(slack_blocks=5)
    payloads = render(message(*numbered_entries(10)), "slack", limits=limits).slack
    assert [len(p["blocks"]) for p in payloads] == [5, 5, 3]


def test_an_entry_longer_than_a_section_is_split_not_cut() -> None:
    (story, *_) = sample_entries()
    words = " ".join(f"w{i}" for i in range(1500))  # about 9,000 characters
    long = dataclasses.replace(story, snippet=Snippet(words, ()), title="Long & <long>")
    payloads = render(message(long), "slack").slack
    texts = [t for p in payloads for t in section_texts(p)]
    assert len(texts) >= 3
    assert all(slack_len(t) <= 3000 for t in texts)
    found = re.findall(r"w(\d+)", " ".join(texts))
    assert [int(n) for n in found] == list(range(1500))


# -- email --------------------------------------------------------------------------------------


def test_email_is_multipart_alternative_with_message_id_and_date() -> None:
    rendered = render(sample_message(shown=3), "email")
    mime = email_message(
        rendered,
        sender="Monitor <monitor@example.org>",
        to=["desk@example.org", "ops@example.org"],
        message_id_domain="monitor.example.org",
        date=CREATED,
    )
    parsed = BytesParser(policy=policy.default).parsebytes(mime.as_bytes())
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content() == rendered.text
    assert parts[1].get_content() == rendered.html
    assert re.fullmatch(r"<[^@<>]+@monitor\.example\.org>", parsed["Message-ID"])
    assert parsed["Date"].datetime == CREATED
    assert parsed["Subject"] == "troop-buildup: 12 new stories"
    assert parsed["To"] == "desk@example.org, ops@example.org"
    assert parsed["Auto-Submitted"] == "auto-generated"


def test_a_message_id_key_makes_retries_carry_the_same_message_id() -> None:
    rendered = render(sample_message(shown=1), "email")
    ids = {
        email_message(
            rendered,
            sender="m@example.org",
            to="d@example.org",
            message_id_domain="example.org",
            date=CREATED,
            key="outbox-42",
        )["Message-ID"]
        for _ in range(2)
    }
    assert ids == {"<outbox-42@example.org>"}
    with pytest.raises(ValueError, match="message id key"):
        email_message(
            rendered,
            sender="m@example.org",
            to="d@example.org",
            message_id_domain="example.org",
            date=CREATED,
            key="a>b\r\nBcc: x",
        )


def test_a_sender_with_a_line_break_is_refused() -> None:
    rendered = render(sample_message(shown=1), "email")
    with pytest.raises(ValueError):
        email_message(
            rendered,
            sender="m@example.org\r\nBcc: x@evil",
            to="d@example.org",
            message_id_domain="example.org",
            date=CREATED,
        )


def test_email_message_needs_an_email_rendering() -> None:
    with pytest.raises(ValueError, match="rendered for 'email'"):
        email_message(
            render(sample_message(), "text"),
            sender="m@example.org",
            to="d@example.org",
            message_id_domain="example.org",
            date=CREATED,
        )


# -- user templates ---------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_user_template_overrides_the_shipped_one_by_file_name(tmp_path: Path) -> None:
    write(tmp_path, "subject.txt", "[desk] {{ message.title }} ({{ message.count }} shown)")
    rendered = render(sample_message(shown=2), "email", templates=tmp_path)
    assert rendered.subject == "[desk] troop-buildup: 12 new stories (2 shown)"
    assert rendered.html is not None and "<mark" in rendered.html  # the shipped email.html


# Templates written as a careless or clever author might: raw values, |safe, filters, string
# methods, autoescape switched off. Whatever they print of the feed stays inert.
CARELESS = {
    "slack_entry.mrkdwn": (
        "{{ entry.title }} | {{ entry.title|safe }} | {{ entry.title|upper }} | "
        "{{ entry.title.replace('&lt;', '<') }} | {% filter lower %}{{ entry.snippet }}"
        "{% endfilter %} | {{ entry.outlets|join(', ') }} | {{ entry.link }} | "
        "{{ entry.snippet_marked }} | {{ entry.url }}\n"
    ),
    "email.html": (
        "<html><body>{% for entry in message.entries %}<p>{{ entry.title|safe }}"
        "{{ entry.title|striptags }}{{ entry.snippet_marked }}{{ entry.link }}"
        "{% autoescape false %}{{ entry.title }}{{ entry.snippet|replace('x', 'y') }}"
        "{% endautoescape %}</p>{% endfor %}<p>{{ message.title|safe }}</p></body></html>"
    ),
    "markdown.md": (
        "{% for entry in message.entries %}{{ entry.title }} {{ entry.title|safe }} "
        "{{ entry.snippet|lower }} {{ entry.link }}\n\n{% endfor %}"
    ),
    "text.txt": "{{ message.title|safe }}\n{% for e in message.entries %}{{ e.title|upper }}\n"
    "{% endfor %}",
}


def test_a_careless_user_template_for_slack_is_still_inert(tmp_path: Path) -> None:
    write(tmp_path, "slack_entry.mrkdwn", CARELESS["slack_entry.mrkdwn"])
    payloads = render(hostile_message(), "slack", templates=tmp_path).slack
    sections = [t for p in payloads for t in section_texts(p)]
    assert sections[1].count("&lt;!channel&gt;") >= 2  # the override was used
    for text in mrkdwn_texts(payloads):
        assert_mrkdwn_inert(text)


def test_a_careless_user_template_for_email_is_still_inert(tmp_path: Path) -> None:
    write(tmp_path, "email.html", CARELESS["email.html"])
    html = render(hostile_message(), "email", templates=tmp_path).html
    assert html is not None and html.startswith("<html><body><p>")
    parsed = Tags(html)
    assert {tag for tag, _ in parsed.tags} <= {"html", "body", "p", "a", "mark"}
    assert all(name in ("href", "style") for _, attrs in parsed.tags for name, _ in attrs)
    assert "<script>alert(1)</script>" in parsed.text


def test_a_careless_user_template_for_markdown_and_text_is_still_inert(tmp_path: Path) -> None:
    write(tmp_path, "markdown.md", CARELESS["markdown.md"])
    write(tmp_path, "text.txt", CARELESS["text.txt"])
    rendered = render(hostile_message(), "markdown", templates=tmp_path)
    assert rendered.markdown is not None
    assert all(h.startswith("https://www.rferl.org/") for h in markdown_links(rendered.markdown))
    assert "<script" not in MarkdownIt("commonmark").render(rendered.markdown)
    assert "BCC: X@EVIL" in rendered.text
    assert not any(line.startswith(("Bcc", "BCC")) for line in rendered.text.splitlines())


@pytest.mark.parametrize(
    "include",
    ["../../etc/passwd", "/etc/passwd", "sub/../../outside.txt", "..\\..\\etc\\passwd"],
)
def test_a_template_cannot_include_a_file_outside_the_template_folder(
    tmp_path: Path, include: str
) -> None:
    folder = tmp_path / "templates"
    quoted = include.replace("\\", "\\\\")  # a Jinja string literal escapes backslashes
    write(folder, "text.txt", f'{{% include "{quoted}" %}}')
    write(tmp_path, "outside.txt", "secret")
    with pytest.raises(TemplatePathError, match="refused"):
        render(sample_message(), "text", templates=folder)


def test_a_symlink_out_of_the_template_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    secret = write(tmp_path, "secret.txt", "secret")
    folder.mkdir()
    os.symlink(secret, folder / "text.txt")
    with pytest.raises(TemplatePathError, match="resolves outside"):
        render(sample_message(), "text", templates=folder)


def test_a_template_cannot_reach_python_internals(tmp_path: Path) -> None:
    write(tmp_path, "text.txt", "{{ message.__class__.__mro__ }}")
    with pytest.raises(RenderError):
        render(sample_message(), "text", templates=tmp_path)
    write(tmp_path, "text.txt", "{{ message.entries.__class__ }}{{ ''.__class__ }}")
    with pytest.raises(RenderError):
        render(sample_message(), "text", templates=tmp_path)


def test_a_broken_template_names_its_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "text.txt", "fine\n{% for x in %}\n")
    with pytest.raises(RenderError, match=r"text\.txt:2"):
        render(sample_message(), "text", templates=tmp_path)


def test_a_misspelt_value_fails_loudly(tmp_path: Path) -> None:
    write(tmp_path, "text.txt", "{{ message.titel }}")
    with pytest.raises(RenderError, match="titel"):
        render(sample_message(), "text", templates=tmp_path)


def test_a_missing_template_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="does not exist"):
        render(sample_message(), "text", templates=tmp_path / "nope")


def test_rendered_is_a_plain_frozen_value() -> None:
    rendered = render(sample_message(shown=1), "text")
    assert isinstance(rendered, Rendered)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rendered.subject = "x"  # type: ignore[misc]
