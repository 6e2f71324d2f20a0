"""What a template sees: the message's values, raw, plus the few pieces this package builds in
the template's syntax (the link, the marked snippet) as trusted text.

Raw values are escaped when a template prints them (see templates.py), so a template may still
transform them (`|truncate`, `|upper`) before they are escaped."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup

from monitor.render.escape import ESCAPERS, Syntax, Trusted, marked, safe_url
from monitor.render.model import Entry, Kind, Message

TIME_FORMAT = "%Y-%m-%d %H:%M %Z"  # 2022-01-19 14:05 EET


@dataclass(frozen=True)
class EntryView:
    """One story as templates see it."""

    number: int  # 1-based position in the message
    title: str
    url: str | None  # None when the entry's URL is not a safe http(s) URL
    link: str  # trusted: the title linked to the URL in this syntax (just the title if no URL)
    outlets: tuple[str, ...]
    outlets_text: str  # "RFE/RL, AP"
    time: str | None  # "2022-01-19 14:05 EET" in the message's timezone
    watch: str
    terms: tuple[str, ...]
    terms_text: str  # "troops, @putin"
    meta: str  # "RFE/RL, AP · 2022-01-19 14:05 EET"
    matched: str  # "troop-buildup: troops, @putin"
    snippet: str
    snippet_marked: str  # trusted: the snippet with the matched terms marked in this syntax
    update: str | None
    score: float


@dataclass(frozen=True)
class MessageView:
    """One message as templates see it."""

    kind: Kind
    route: str
    title: str
    lines: tuple[str, ...]  # the free-text body, one line each (feed-health notices)
    entries: tuple[EntryView, ...]
    count: int  # stories shown
    more: int  # stories left out
    more_text: str | None  # "and 3 more"
    timezone: str
    created: str  # when the message was made, in its timezone


@dataclass(frozen=True)
class _Style:
    trusted: Callable[[str], str]  # wraps text already in this syntax
    bold: tuple[str, str]  # how a matched term is marked
    link: Callable[[str, str], str]  # (escaped title, safe URL) -> link


def _markdown_link(title: str, url: str) -> str:
    return f"[{title}]({url})"


def _slack_link(title: str, url: str) -> str:
    # the URL may hold & (escaped like any mrkdwn text); | and > were percent-encoded
    return f"<{url.replace('&', '&amp;')}|{title}>"


def _html_link(title: str, url: str) -> str:
    return Markup('<a href="{}" style="color:#1d4ed8;text-decoration:none">{}</a>').format(
        url, Markup(title)
    )


# Plain text marks terms *like this*: the usual plain-text emphasis, which several mail clients
# show in bold; [brackets] would clash with quotations' editorial insertions ("[in Donbas]").
STYLES: dict[Syntax, _Style] = {
    "text": _Style(Trusted, ("*", "*"), lambda title, url: title),
    "mrkdwn": _Style(Trusted, ("*", "*"), _slack_link),
    "markdown": _Style(Trusted, ("**", "**"), _markdown_link),
    "html": _Style(
        Markup, ('<mark style="background:#fff3b0;padding:0 1px">', "</mark>"), _html_link
    ),
}


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # config validates timezones; a message must still go out, in UTC, visibly labelled
        return ZoneInfo("UTC")


def local_time(when: datetime, timezone: str) -> str:
    """`when` (UTC, or naive meaning UTC) in `timezone`, as "2022-01-19 14:05 EET"."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(_zone(timezone)).strftime(TIME_FORMAT)


def more_text(more: int) -> str | None:
    """ "and 3 more" for stories left out, None when none were."""
    return f"and {more} more" if more > 0 else None


def entry_view(entry: Entry, number: int, timezone: str, syntax: Syntax) -> EntryView:
    """`entry` for a template of `syntax`."""
    style, escape = STYLES[syntax], ESCAPERS[syntax]
    url = safe_url(entry.url)
    title = escape(entry.title)
    outlets = ", ".join(entry.outlets)
    time = local_time(entry.published, timezone) if entry.published else None
    terms = ", ".join(entry.terms)
    return EntryView(
        number=number,
        title=entry.title,
        url=url,
        link=style.trusted(style.link(title, url) if url else title),
        outlets=entry.outlets,
        outlets_text=outlets,
        time=time,
        watch=entry.watch,
        terms=entry.terms,
        terms_text=terms,
        meta=" · ".join(part for part in (outlets, time) if part),
        matched=f"{entry.watch}: {terms}" if terms else entry.watch,
        snippet=entry.snippet.text,
        snippet_marked=style.trusted(marked(entry.snippet, escape, *style.bold)),
        update=entry.update,
        score=entry.score,
    )


def message_view(message: Message, syntax: Syntax) -> MessageView:
    """`message` for a template of `syntax`."""
    entries = tuple(
        entry_view(entry, number, message.timezone, syntax)
        for number, entry in enumerate(message.entries, 1)
    )
    lines = tuple(message.text.splitlines()) if message.text else ()
    return MessageView(
        kind=message.kind,
        route=message.route,
        title=message.title,
        lines=lines,
        entries=entries,
        count=len(entries),
        more=message.more,
        more_text=more_text(message.more),
        timezone=message.timezone,
        created=local_time(message.created_at, message.timezone),
    )
