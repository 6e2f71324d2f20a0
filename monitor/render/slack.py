"""Slack messages: Block Kit blocks with a mrkdwn `text` fallback, split into as many messages
as Slack's limits need, in order, each story in exactly one of them.

Every mrkdwn text object is sent with `verbatim: true`: Slack then still honours our own
`<url|title>` links and `*bold*` but does not turn plain text into links or mentions
(https://docs.slack.dev/reference/block-kit/composition-objects/text-object)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.render.escape import ELLIPSIS, one_line, slack_escape
from monitor.render.limits import Limits
from monitor.render.view import MessageView

SlackPayload = dict[str, Any]


def slack_len(text: str) -> int:
    """`text`'s length as Slack may count it: UTF-16 code units (an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class _Block:
    block: dict[str, Any]
    text: str  # its mrkdwn, for the fallback text and the size budget


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> _Block:
    return _Block({"type": "section", "text": _mrkdwn(text)}, text)


def _context(text: str) -> _Block:
    return _Block({"type": "context", "elements": [_mrkdwn(text)]}, text)


_OPEN_LINK = re.compile(r"<[^>]*$")
_OPEN_ENTITY = re.compile(r"&[#a-zA-Z0-9]*$")


def _safe_cut(text: str, limit: int) -> int:
    """Where to cut `text` to keep at most `limit` Slack characters: at a line break or a space
    if there is one, never inside a `<…>` link or an `&…;` entity."""
    cut = len(text)
    while slack_len(text[:cut]) > limit:
        cut = limit if cut > limit else cut - 1
    head = text[:cut]
    for pattern in (_OPEN_LINK, _OPEN_ENTITY):
        found = pattern.search(head)
        if found and found.start() > 0:
            head = head[: found.start()]
    for stop in ("\n", " "):
        at = head.rfind(stop)
        if at > len(head) // 2:
            return at
    return len(head) or cut


def split_mrkdwn(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` Slack characters, none lost, links kept whole."""
    pieces: list[str] = []
    rest = text.strip()
    while slack_len(rest) > limit:
        cut = _safe_cut(rest, limit - 1)  # room for the ellipsis that says "continued"
        pieces.append(rest[:cut].rstrip() + ELLIPSIS)
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def _pack(blocks: Sequence[_Block], limits: Limits) -> list[list[_Block]]:
    """The blocks in order, in as few messages as fit beside each message's header."""
    room_blocks = limits.slack_blocks - 1
    room_chars = limits.slack_payload_chars - limits.slack_header_chars
    pages: list[list[_Block]] = [[]]
    used = 0
    for block in blocks:
        cost = slack_len(block.text)
        if pages[-1] and (len(pages[-1]) >= room_blocks or used + cost > room_chars):
            pages.append([])
            used = 0
        pages[-1].append(block)
        used += cost
    return pages


def _header(title: str, page: int, pages: int, limits: Limits) -> str:
    suffix = f" ({page}/{pages})" if pages > 1 else ""
    return one_line(title, limits.slack_header_chars - len(suffix)) + suffix


def _payload(header: str, blocks: Sequence[_Block], limits: Limits) -> SlackPayload:
    fallback = "\n\n".join([f"*{slack_escape(header)}*", *(b.text for b in blocks)])
    if slack_len(fallback) > limits.slack_text_chars:
        fallback = fallback[: _safe_cut(fallback, limits.slack_text_chars - 1)] + ELLIPSIS
    return {
        "text": fallback,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
            *(b.block for b in blocks),
        ],
        # a digest's links would otherwise unfold into previews of the first few articles
        "unfurl_links": False,
        "unfurl_media": False,
    }


def slack_payloads(
    view: MessageView, entry_text: Callable[[Any], str], limits: Limits
) -> tuple[SlackPayload, ...]:
    """The message as Slack payloads; `entry_text` renders one entry view as mrkdwn."""
    blocks: list[_Block] = []
    if view.lines:
        body = "\n".join(slack_escape(line) for line in view.lines)
        blocks += [_section(piece) for piece in split_mrkdwn(body, limits.slack_section_chars)]
    for entry in view.entries:
        pieces = split_mrkdwn(entry_text(entry), limits.slack_section_chars)
        blocks += [_section(piece) for piece in pieces]
    if view.more_text:
        blocks.append(_context(slack_escape(view.more_text)))
    pages = _pack(blocks, limits)
    return tuple(
        _payload(_header(view.title, number, len(pages), limits), page, limits)
        for number, page in enumerate(pages, 1)
    )
