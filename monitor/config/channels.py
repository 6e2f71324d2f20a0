"""channels.yaml: where messages go (apprise URLs), in which format, timezone, quiet hours and
rate. The URL holds tokens and passwords: no message here ever shows it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator
from pydantic.functional_validators import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from monitor.config.errors import ConfigIssue, Problem
from monitor.config.fields import StrictModel, parse_duration
from monitor.rules.spec import ChannelFormat, ChannelSpec

FORMATS = ("slack", "email", "text", "markdown")
_URL_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_QUIET_RE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_RATE_RE = re.compile(r"(\d+)\s*/\s*(\S+)")


def _check_channel_url(text: str) -> str:
    if not _URL_SCHEME_RE.fullmatch(text):
        # Never shows the value: a channel URL holds tokens and passwords.
        raise PydanticCustomError(
            "channel_url", "not an apprise URL (use e.g. slack://..., mailtos://..., console://)"
        )
    return text


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = "use an IANA name, e.g. Europe/Kyiv"
        raise ValueError(f"unknown timezone {name!r} ({hint})") from None
    return name


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """'22:00-07:00' -> (22:00, 07:00); the span may wrap midnight."""
    m = _QUIET_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected HH:MM-HH:MM, e.g. '22:00-07:00', got {text!r}")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"not a time of day in {text!r}")
    if (h1, m1) == (h2, m2):
        raise ValueError("quiet hours that start when they end would hold every message forever")
    return time(h1, m1), time(h2, m2)


def parse_rate(text: str) -> tuple[int, timedelta]:
    """'20/1h' -> at most 20 messages per hour."""
    m = _RATE_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected messages/period, e.g. '20/1h' or '1/10s', got {text!r}")
    count, period = int(m.group(1)), parse_duration(m.group(2))
    if count < 1 or period <= timedelta(0):
        raise ValueError(f"a rate needs at least 1 message per positive period, got {text!r}")
    return count, period


def _quiet(value: object) -> object:
    return parse_quiet_hours(value) if isinstance(value, str) else value


def _rate(value: object) -> object:
    return parse_rate(value) if isinstance(value, str) else value


ChannelUrl = Annotated[str, AfterValidator(_check_channel_url)]
TimeZone = Annotated[str, AfterValidator(_check_timezone)]
QuietHours = Annotated[tuple[time, time], BeforeValidator(_quiet)]
RateLimit = Annotated[tuple[int, timedelta], BeforeValidator(_rate)]


class ChannelConfig(StrictModel):
    url: ChannelUrl | None = None  # an apprise URL; secrets from the environment (${SLACK_TOKEN})
    # or a file that holds it (a systemd credential, a secret mount), relative to the config
    url_file: Annotated[str, Field(min_length=1)] | None = None
    format: Literal["slack", "email", "text", "markdown"] | None = None  # default: from the URL
    timezone: TimeZone = "UTC"
    quiet_hours: QuietHours | None = None  # held, then sent when they end
    rate_limit: RateLimit | None = None  # more waits for the next period; nothing is dropped
    max_entries: int = Field(20, ge=1, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _url_or_file(cls, data: object) -> object:
        # before the fields: reported even when another key of the channel is wrong
        if not isinstance(data, dict) or "url" in data or "url_file" in data:
            return data
        if set(data) <= set(cls.model_fields):  # else "unknown key (did you mean 'url'?)" says it
            raise PydanticCustomError("url_missing", "give url (or url_file: a file holding it)")
        return data

    def problems(self, loc: tuple[str | int, ...]) -> Iterable[Problem]:
        if self.url is not None and self.url_file is not None:
            yield Problem((*loc, "url_file"), "give url or url_file, not both")

    def spec(self, name: str, config_dir: Path) -> ChannelSpec:
        """The resolved channel; reads url_file (raises OSError or ValueError when unreadable)."""
        url = self.url or _read_url(config_dir / (self.url_file or ""))
        return ChannelSpec(
            name=name,
            url=url,
            format=self.format or format_for(url),
            timezone=self.timezone,
            quiet_hours=self.quiet_hours,
            rate_limit=self.rate_limit,
            max_entries=self.max_entries,
        )


def _read_url(path: Path) -> str:
    text = path.read_text(encoding="utf-8").strip()
    _check_channel_url(text)
    return text


def format_for(url: str) -> ChannelFormat:
    """The format a channel's URL implies: Slack for Slack, email for mail, else plain text."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "slack" or url.lower().startswith("https://hooks.slack.com/"):
        return "slack"
    if scheme in ("mailto", "mailtos"):
        return "email"
    return "text"


def feed_health_issues(
    monitor_yaml: Path, names: Iterable[str], channels: Iterable[str]
) -> list[ConfigIssue]:
    """monitor.yaml's delivery.feed_health names channels of channels.yaml: one issue per name
    that is not there, at the line that names it (found in the file's text)."""
    known = sorted(channels)
    missing = [name for name in names if name not in known]
    if not missing:
        return []
    try:
        lines = monitor_yaml.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    issues = []
    for name in missing:
        line, column = _where(lines, name)
        hint = f"channels: {', '.join(known)}" if known else "there is no channel in channels.yaml"
        message = f"unknown channel {name!r} ({hint})"
        issues.append(ConfigIssue(str(monitor_yaml), line, column, "delivery.feed_health", message))
    return issues


def _where(lines: list[str], name: str) -> tuple[int, int]:
    """The first line after `feed_health:` that holds `name` (1-based line and column)."""
    seen = False
    for number, text in enumerate(lines, 1):
        seen = seen or "feed_health" in text
        key = text.find("feed_health")
        column = text.find(name, key + len("feed_health") if key >= 0 else 0)
        if seen and column >= 0:
            return number, column + 1
    return 1, 1
