"""What a message says, before it is rendered for a channel: the plain values the router builds
from stored matches and the renderers turn into Slack, email, text or markdown.

Nothing here is escaped: every renderer escapes for its own format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from monitor.rules.snippet import Snippet

Kind: TypeAlias = Literal["alert", "digest", "update", "health"]
Format: TypeAlias = Literal["slack", "email", "text", "markdown"]


@dataclass(frozen=True)
class Entry:
    """One story: an article with every outlet that carried it."""

    title: str
    url: str
    outlets: tuple[str, ...]  # display names, first the outlet that carried it first
    published: datetime | None  # UTC; rendered in the channel's timezone
    watch: str
    score: float
    terms: tuple[str, ...]  # the rule's spelling of each term that matched: troops, @putin
    snippet: Snippet  # the best sentence or two, the terms marked
    update: str | None = None  # for an update: what changed, e.g. "+1 source: Reuters"


@dataclass(frozen=True)
class Message:
    """One message to one channel: an immediate alert (a group of stories), a digest, an update
    of stories already sent, or a feed-health notice."""

    kind: Kind
    route: str  # the watch (or "feed-health")
    title: str  # what and how many: "troop-buildup: 7 new stories"
    entries: tuple[Entry, ...]  # ordered by score, then time, newest first
    more: int  # stories left out beyond the cap ("and N more")
    timezone: str  # IANA name, for times shown
    created_at: datetime  # UTC
    text: str | None = None  # a free-text body (feed health), shown before the entries
