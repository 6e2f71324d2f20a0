"""Making feed text inert in each output format: one escaper per syntax, a URL check, and the
snippet marker that escapes before it marks.

Everything a feed supplies (headline, snippet, outlet name, URL) is hostile input (the hostile-input
issue): `<!channel>`, `<@U123>`, `<script>`, `[x](javascript:…)`, CR/LF aimed at a mail header.
Each escaper first cleans the text (control characters and line breaks become spaces, so a value
stays on its line and cannot forge a header or a line of the message; explicit bidi embeddings,
overrides and isolates are dropped, so a value cannot reorder the text around it), then escapes
what the syntax treats as markup."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, TypeAlias
from urllib.parse import quote, urlsplit

from markupsafe import Markup
from markupsafe import escape as _html_escape

from monitor.rules.snippet import Snippet

Syntax: TypeAlias = Literal["text", "mrkdwn", "markdown", "html"]
Escaper: TypeAlias = Callable[[str], str]

ELLIPSIS = "…"

# C0 and C1 controls, DEL, and Unicode's line and paragraph separators: all end or bend a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# LRE, RLE, PDF, LRO, RLO and the isolates LRI, RLI, FSI, PDI ("Trojan Source", CVE-2021-42574).
# The plain marks LRM/RLM stay: right-to-left headlines use them legitimately.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")


class Trusted(str):
    """Text already in its target syntax (built by this package from escaped parts).

    Templates cannot build one (the sandbox hides `__class__`), and every str operation on it
    returns a plain str, which is escaped again on output: a template can only make it uglier."""

    __slots__ = ()


def clean(text: str) -> str:
    """`text` on one line: control characters and line breaks as spaces, runs of whitespace as
    one space (ends kept, so pieces can be joined), bidi overrides removed."""
    return _SPACES.sub(" ", _BIDI.sub("", _CONTROL.sub(" ", text)))


def one_line(text: str, limit: int | None = None) -> str:
    """`text` cleaned, its whitespace collapsed, cut to `limit` characters with an ellipsis."""
    line = clean(text).strip()
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 1, 0)].rstrip() + ELLIPSIS
    return line


def text_escape(text: str) -> str:
    """`text` for plain text: cleaned, nothing else (plain text has no markup)."""
    return clean(text)


# Slack defines only &, < and > as control characters of mrkdwn and asks for exactly these three
# to be escaped (https://api.slack.com/reference/surfaces/formatting#escaping). Escaping `<`
# alone makes `<!channel>`, `<@U123>` and `<http://evil|click>` plain text.
_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# Bare "@channel" is parsed as a mention when a sender sets link_names or verbatim=false; a word
# joiner after the @ keeps the word readable and unparsable whatever the delivery code sets.
_SLACK_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)


def slack_escape(text: str) -> str:
    """`text` for Slack mrkdwn: cleaned, `&`, `<`, `>` as entities, broadcasts defused."""
    return _SLACK_BROADCAST.sub("@\u2060", clean(text).translate(_SLACK))


# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that open
# emphasis, code, links, images, autolinks, raw HTML, tables or entities anywhere in a line.
_MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]()<>!|~&#])")
# These only matter at the start of a line (heading, list, quote, setext underline); a value can
# start a line in a user's template.
_MARKDOWN_LEADING = re.compile(r"^(\d+)([.)])|^([+\-=])")


def markdown_escape(text: str) -> str:
    """`text` for Markdown: cleaned, every character that could start markup backslash-escaped."""
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", clean(text))
    return _MARKDOWN_LEADING.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", escaped)


def html_escape(text: str) -> Markup:
    """`text` for HTML: cleaned, `& < > " '` as entities."""
    return _html_escape(clean(text))


ESCAPERS: dict[Syntax, Escaper] = {
    "text": text_escape,
    "mrkdwn": slack_escape,
    "markdown": markdown_escape,
    "html": html_escape,
}

MAX_URL = 2000  # longer is not an article link; it also keeps a link inside one Slack section
# Characters left as they are in a URL: RFC 3986 reserved and unreserved characters and `%`,
# minus the ones some output syntax reads as markup: ( ) end a Markdown link, | and > end a
# Slack link, < " ` \ { } ^ and space are not allowed in a URI at all.
_URL_SAFE = "/?#[]@!$&'*+,;=%:~-._"
# The host as the IDNA codec leaves it (it checks little: "evil|<!channel>" passes), then a port:
# a DNS name or an IPv6 literal, nothing any output syntax could read.
_NETLOC = re.compile(r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def safe_url(url: str) -> str | None:
    """`url` if it is an absolute http(s) URL without credentials, percent-encoded so that no
    output syntax can read it as markup; None for anything else (`javascript:`, `data:`, …)."""
    url = url.strip()
    if not url or len(url) > MAX_URL or _CONTROL.search(url) or _SPACES.search(url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return None
    # userinfo ("https://trusted.example@evil.example/") only serves to disguise the host
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        return None
    try:
        netloc = parts.netloc.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not _NETLOC.fullmatch(netloc):  # found by fuzzing: "http://evil|<!channel>/" passed
        return None
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    return f"{parts.scheme.lower()}://{netloc}{quote(rest, safe=_URL_SAFE)}"


def marked(snippet: Snippet, escape: Escaper, before: str, after: str) -> str:
    """The snippet in one syntax: each piece escaped on its own, then the marks put around the
    matched terms, so a mark can never split an entity and escaping never touches a mark."""
    out: list[str] = []
    at = 0
    for start, end in snippet.marks:
        out += [escape(snippet.text[at:start]), before, escape(snippet.text[start:end]), after]
        at = end
    out.append(escape(snippet.text[at:]))
    return "".join(out).strip()
