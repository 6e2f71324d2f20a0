"""The monitor's own config files: `monitor.yaml` (`Settings`) and `feeds.yaml` (`FeedsFile`),
resolved together by `load_config` into one `Config`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field
from pydantic.functional_validators import AfterValidator

from monitor.config.errors import FILE_PATH, ConfigError, ConfigIssue, Loc, Problem
from monitor.config.fields import (
    AllowedNetwork,
    DisplayName,
    Duration,
    FeedName,
    HttpUrl,
    Language,
    PositiveDuration,
    Size,
    Slug,
    StrictModel,
    Tag,
    _validate_database,
    duration_text,
)
from monitor.config.loader import load_yaml_model
from monitor.logs import register_database_url

MONITOR_FILE = "monitor.yaml"
FEEDS_FILE = "feeds.yaml"


# --------------------------------------------------------------------------------------------------
# monitor.yaml


class PollingSettings(StrictModel):
    interval: PositiveDuration = timedelta(minutes=15)
    jitter: float = Field(0.1, ge=0, le=0.5)
    tick: PositiveDuration = timedelta(seconds=5)
    batch: int = Field(200, ge=1)
    lease: PositiveDuration = timedelta(minutes=5)
    concurrency: int = Field(20, ge=1)
    per_host: int = Field(4, ge=1)
    connect_timeout: PositiveDuration = timedelta(seconds=10)
    read_timeout: PositiveDuration = timedelta(seconds=20)
    total_timeout: PositiveDuration = timedelta(seconds=60)
    max_bytes: Size = 5 * 1024**2
    max_redirects: int = Field(5, ge=0)
    backoff_base: PositiveDuration = timedelta(minutes=1)
    backoff_max: PositiveDuration = timedelta(hours=6)
    first_run_window: Duration = timedelta(hours=24)
    user_agent: DisplayName = "monitor/0.1 (news monitor; +https://github.com/monitor-news/monitor)"
    # Loopback, private and link-local addresses are refused (SSRF); these networks are not.
    allow_networks: tuple[AllowedNetwork, ...] = ()


class ExtractSettings(StrictModel):
    fetch_pages: bool = True
    min_chars: int = Field(200, ge=0)
    boilerplate_min_pages: int = Field(3, ge=2)
    workers: int = Field(2, ge=1)


class DeliverySettings(StrictModel):
    """When messages go out (a watch may override the first three) and how failures retry."""

    group_wait: Duration = timedelta(seconds=30)  # the first match of a burst waits for more
    group_interval: PositiveDuration = timedelta(minutes=5)  # later matches, after a message
    repeat_interval: PositiveDuration = timedelta(hours=4)  # an unchanged story, not again
    retry_base: PositiveDuration = timedelta(seconds=30)  # a failed send, then doubling
    retry_max: PositiveDuration = timedelta(minutes=30)
    lease: PositiveDuration = timedelta(minutes=2)  # a sender's claim on a message
    # Feed health: a feed failing this long alerts these channels once, and once when it recovers.
    feed_health: tuple[Slug, ...] = ()
    feed_failing_after: PositiveDuration = timedelta(hours=1)


class DedupeSettings(StrictModel):
    """Issue 5: a near-duplicate copy is another source of the stored article (near_duplicates),
    and articles about one event from several outlets are grouped into one story (stories)."""

    near_duplicates: bool = True
    stories: bool = True


class RetentionSettings(StrictModel):
    articles: PositiveDuration = timedelta(days=365)
    # Article text older than this is dropped (URL, hashes and fingerprints stay for dedupe).
    text: PositiveDuration | None = None


def _validate_listen(value: str | None) -> str | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise ValueError(f"expected host:port, e.g. 127.0.0.1:9108, got {value!r}")
    if host not in ("localhost", "::1") and not host.startswith("127."):
        raise ValueError(
            f"the metrics listener serves loopback only (127.0.0.1, ::1), got {host!r}; "
            "put a proxy in front of it to scrape from elsewhere"
        )
    return value


class MetricsSettings(StrictModel):
    """The optional Prometheus /metrics and /healthz listener (off unless `listen` is set)."""

    listen: Annotated[str | None, AfterValidator(_validate_listen)] = None
    # /healthz fails when the event loop has not run its heartbeat for this long
    stuck_after: PositiveDuration = timedelta(seconds=30)

    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class LoggingSettings(StrictModel):
    format: Literal["text", "json"] = "text"  # one line per event either way


class Settings(StrictModel):
    """monitor.yaml. Every key is optional; an empty or missing file gives the defaults."""

    database: Annotated[str | None, AfterValidator(_validate_database)] = None
    polling: PollingSettings = PollingSettings()
    extract: ExtractSettings = ExtractSettings()
    delivery: DeliverySettings = DeliverySettings()
    dedupe: DedupeSettings = DedupeSettings()
    retention: RetentionSettings = RetentionSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()

    def database_url(self, config_dir: Path) -> str:
        """The SQLAlchemy URL to use.

        The configured one (a relative SQLite path is taken relative to `config_dir`), else
        `sqlite:///$MONITOR_DATA_DIR/monitor.db` if that variable is set, else
        `sqlite:///$XDG_STATE_HOME/monitor/monitor.db` (default `~/.local/state/monitor/...`)."""
        if self.database:
            return _anchor_sqlite(self.database, config_dir)
        if data_dir := os.environ.get("MONITOR_DATA_DIR"):
            base = Path(data_dir).expanduser().absolute()
        elif (state := os.environ.get("XDG_STATE_HOME")) and Path(state).is_absolute():
            base = Path(state) / "monitor"
        else:
            base = Path.home() / ".local" / "state" / "monitor"
        return f"sqlite:///{base / 'monitor.db'}"

    def config_problems(self) -> Iterable[Problem]:
        polling = self.polling
        if polling.backoff_max < polling.backoff_base:
            if "backoff_max" in polling.model_fields_set:
                loc, other = "backoff_max", f"backoff_base ({duration_text(polling.backoff_base)})"
                yield Problem(("polling", loc), f"must be at least polling.{other}")
            else:
                other = f"backoff_max ({duration_text(polling.backoff_max)})"
                yield Problem(("polling", "backoff_base"), f"must not exceed polling.{other}")


def _anchor_sqlite(url: str, config_dir: Path) -> str:
    match = re.fullmatch(r"(sqlite(?:\+\w+)?):///(.*)", url, re.DOTALL)
    if match is None:
        return url
    path, sep, query = match.group(2).partition("?")
    if not path or path.startswith("/") or path == ":memory:" or path.startswith("file:"):
        return url
    return f"{match.group(1)}:///{(config_dir / path).absolute()}{sep}{query}"


# --------------------------------------------------------------------------------------------------
# feeds.yaml


class FeedConfig(StrictModel):
    url: HttpUrl
    name: FeedName | None = None
    interval: PositiveDuration | None = None
    language: Language | None = None
    tags: tuple[Tag, ...] = ()


class OutletConfig(StrictModel):
    name: DisplayName | None = None
    language: Language | None = None
    tags: tuple[Tag, ...] = ()
    interval: PositiveDuration | None = None
    feeds: tuple[FeedConfig, ...] = Field(min_length=1)

    def feed_names(self, slug: str) -> list[str]:
        """Each feed's full name: 'slug/name', else 'slug' for a lone feed, else 'slug/<n>'."""
        lone = len(self.feeds) == 1
        return [
            f"{slug}/{feed.name}" if feed.name else slug if lone else f"{slug}/{i}"
            for i, feed in enumerate(self.feeds, 1)
        ]


class FeedsFile(StrictModel):
    """feeds.yaml: outlets by slug."""

    outlets: dict[Slug, OutletConfig]

    def config_problems(self) -> Iterable[Problem]:
        names: dict[str, Loc] = {}
        urls: dict[tuple[str, ...], Loc] = {}
        for slug, outlet in self.outlets.items():
            for i, (feed, name) in enumerate(
                zip(outlet.feeds, outlet.feed_names(slug), strict=True)
            ):
                loc: Loc = ("outlets", slug, "feeds", i)
                url_key = _url_identity(feed.url)
                if url_key in urls:
                    yield Problem((*loc, "url"), "duplicate feed URL", urls[url_key])
                else:
                    urls[url_key] = (*loc, "url")
                name_loc = (*loc, "name") if feed.name else loc
                if name in names:
                    yield Problem(name_loc, f"duplicate feed name {name!r}", names[name])
                else:
                    names[name] = name_loc

    def resolve(self, settings: Settings) -> tuple[FeedSpec, ...]:
        """Every feed with its outlet's interval, language and tags inherited."""
        specs = []
        for slug, outlet in self.outlets.items():
            for feed, name in zip(outlet.feeds, outlet.feed_names(slug), strict=True):
                specs.append(
                    FeedSpec(
                        name=name,
                        outlet=slug,
                        outlet_name=outlet.name or slug,
                        url=feed.url,
                        interval=feed.interval or outlet.interval or settings.polling.interval,
                        language=feed.language or outlet.language,
                        tags=tuple(dict.fromkeys(outlet.tags + feed.tags)),
                    )
                )
        return tuple(specs)


def _url_identity(url: str) -> tuple[str, ...]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query)


# --------------------------------------------------------------------------------------------------
# The whole configuration


@dataclass(frozen=True)
class FeedSpec:
    """One feed to poll, with everything inherited from its outlet and the polling defaults."""

    name: str  # "rferl/ukraine", or "rferl" for an outlet's only, unnamed feed
    outlet: str  # outlet slug
    outlet_name: str  # display name
    url: str
    interval: timedelta
    language: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    config_dir: Path
    settings: Settings
    outlets: FeedsFile
    feeds: tuple[FeedSpec, ...]


def load_config(config_dir: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read `monitor.yaml` (optional) and `feeds.yaml` (required) from `config_dir`.

    Raises ConfigError with the issues of both files."""
    issues: list[ConfigIssue] = []
    settings = Settings()
    monitor_path = config_dir / MONITOR_FILE
    if monitor_path.exists():
        try:
            settings = load_yaml_model(monitor_path, Settings, env=env)
        except ConfigError as error:
            issues += error.issues
    feeds_path = config_dir / FEEDS_FILE
    outlets = None
    if not feeds_path.exists():
        message = "file not found (feeds.yaml lists the outlets to poll and is required)"
        issues.append(ConfigIssue(str(feeds_path), 1, 1, FILE_PATH, message))
    else:
        try:
            outlets = load_yaml_model(feeds_path, FeedsFile, env=env)
        except ConfigError as error:
            issues += error.issues
    if issues or outlets is None:
        raise ConfigError(issues)
    if settings.database:
        register_database_url(settings.database)  # its password never reaches a log line
    return Config(config_dir, settings, outlets, outlets.resolve(settings))
