"""Resolved watch rules: what the config layer hands to the matcher compiler.

The config models (monitor/config/rules.py) describe what the user wrote in actors.yaml and
watches.yaml; these frozen dataclasses are the resolved form, with the structured watch keys
(actors, keywords, groups, exclude, near) and the query string turned into one query AST, so both
forms compile to the same thing. Nothing here does I/O or knows about YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Literal, TypeAlias

from monitor.rules.query import Node

Field: TypeAlias = Literal["title", "text"]
ChannelFormat: TypeAlias = Literal["slack", "email", "text", "markdown"]
FIELDS: tuple[Field, ...] = ("title", "text")
DEFAULT_WEIGHTS: dict[str, float] = {"title": 3.0, "text": 1.0}


@dataclass(frozen=True, slots=True)
class Alias:
    """One spelling of an actor. Matched as whole words, never inflected.

    `case_sensitive` aliases ("US", "EU") must appear with exactly this capitalisation (diacritics,
    apostrophes and hyphens are still normalised). A trailing `*` makes the alias a prefix
    ("Путин*" also catches the declined forms Путина, Путину)."""

    text: str
    case_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class ActorSpec:
    name: str  # the key in actors.yaml, referenced as `@name` in queries and `actors:` lists
    aliases: tuple[Alias, ...]
    display: str | None = None  # the actor's display name, if given


@dataclass(frozen=True, slots=True)
class Filters:
    """Which articles a watch looks at; an empty set means any."""

    outlets: frozenset[str] = frozenset()  # outlet slugs
    tags: frozenset[str] = frozenset()  # any of these outlet/feed tags
    languages: frozenset[str] = frozenset()  # language tags, compared case-insensitively

    def __bool__(self) -> bool:
        """Whether any filter is set (most watches have none)."""
        return bool(self.outlets or self.tags or self.languages)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a watch's matches go, and when (Alertmanager's timing for immediate alerts)."""

    channels: tuple[str, ...] = ()  # channel names from channels.yaml
    digest: str | None = None  # a cron expression; None means immediate alerts
    # None: the defaults of monitor.yaml's `delivery` section
    group_wait: timedelta | None = None  # how long the first match of a burst waits for more
    group_interval: timedelta | None = None  # how long later matches wait after a message
    repeat_interval: timedelta | None = None  # a story is not sent again within this, unchanged
    updates: bool = True  # a story sent before that gains outlets is sent again as an update


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A delivery channel from channels.yaml, resolved (the URL may hold secrets: never log it)."""

    name: str
    url: str = field(repr=False)
    format: ChannelFormat = "text"
    timezone: str = "UTC"
    quiet_hours: tuple[time, time] | None = None  # local start and end; may wrap midnight
    rate_limit: tuple[int, timedelta] | None = None  # at most this many messages per period
    max_entries: int = 20  # stories in one message; the rest are "and N more"


@dataclass(frozen=True, slots=True)
class WatchSpec:
    name: str
    expr: Node  # the whole rule as one query AST; actors appear as ActorRef
    fields: tuple[Field, ...] = FIELDS  # which fields are searched
    filters: Filters = Filters()
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    threshold: float = 0.0  # the score (sum of weighted hits) must reach this to match
    inflect: bool = True  # plain keywords also match their inflected forms
    delivery: Delivery = Delivery()


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every actor and watch, resolved and cross-checked."""

    actors: dict[str, ActorSpec]
    watches: tuple[WatchSpec, ...]
    channels: dict[str, ChannelSpec] = field(default_factory=dict)
