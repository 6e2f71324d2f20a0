"""Configuration: strict YAML files in, frozen validated models out.

Every config file is read with ruamel.yaml, which keeps the line and column of each key and value,
and validated by a strict pydantic model (unknown keys are errors, no silent type coercion). Every
problem in a file is reported at once as a `ConfigIssue` ("file:line:column: key.path: message");
`ConfigError` carries them all. `load_yaml_model` is the generic entry point that later config files
(actors, watches, channels) reuse; `load_config` reads `monitor.yaml` and `feeds.yaml`.

String values may use `${NAME}` or `${NAME:-default}` (write `$${` for a literal `${`). The value of
an environment variable never appears in an error message: where a value came from the
environment, messages quote what the file says (`'${DB_PASSWORD}'`) instead.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.functional_validators import AfterValidator, PlainValidator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = [
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Duration",
    "ExtractSettings",
    "FeedConfig",
    "FeedSpec",
    "FeedsFile",
    "HttpUrl",
    "Loc",
    "OutletConfig",
    "PollingSettings",
    "PositiveDuration",
    "Problem",
    "RetentionSettings",
    "Settings",
    "Size",
    "StrictModel",
    "duration_text",
    "load_config",
    "load_yaml_model",
    "parse_duration",
    "parse_size",
    "size_text",
]

MONITOR_FILE = "monitor.yaml"
FEEDS_FILE = "feeds.yaml"

Loc = tuple[str | int, ...]
"""A path into a YAML document: mapping keys and sequence indexes, e.g. ('outlets', 'rferl',
'feeds', 0, 'url')."""

M = TypeVar("M", bound=BaseModel)

# Key paths for issues that are not about one key.
ROOT_PATH = "(root)"  # the document as a whole (e.g. it is a list, not a mapping)
YAML_PATH = "(yaml)"  # the file is not valid YAML
FILE_PATH = "(file)"  # the file is missing or unreadable


# --------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file. `line` and `column` are 1-based."""

    file: str
    line: int
    column: int
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.key_path}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one or more config files; `str()` gives one issue per line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.issues,))


class Problem(NamedTuple):
    """A problem a model finds in itself after validation (see `load_yaml_model`).

    `loc` is where it is; `first`, if given, is an earlier place it conflicts with (its key path
    and line are added to the message)."""

    loc: Loc
    message: str
    first: Loc | None = None


# --------------------------------------------------------------------------------------------------
# Durations and sizes

_DURATION_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_HINT = "use e.g. 30s, 15m, 6h, 7d"

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024**2, "mib": 1024**2}
_SIZE_UNITS |= {"gb": 1024**3, "gib": 1024**3}
_SIZE_RE = re.compile(r"(\d+) ?([a-z]*)", re.IGNORECASE)
_SIZE_HINT = "use e.g. 512KB, 5MB or a number of bytes"


def _duration_or_none(value: object) -> timedelta | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return timedelta(seconds=value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _DURATION_RE.fullmatch(value)
    if not value or match is None:
        return None
    seconds = sum(
        int(n) * size for n, (_, size) in zip(match.groups(), _DURATION_UNITS, strict=True) if n
    )
    return timedelta(seconds=seconds)


def parse_duration(value: str | int) -> timedelta:
    """'30s', '15m', '6h', '7d', compounds in that order ('1h30m'), or int seconds -> timedelta.

    Raises ValueError with a message meant for the user."""
    result = _duration_or_none(value)
    if result is None:
        raise ValueError(f"not a duration: {_show(value)} ({_DURATION_HINT})")
    return result


def duration_text(td: timedelta) -> str:
    """The inverse of `parse_duration`, for display: 90 minutes -> '1h30m', 0 -> '0s'.

    A sub-second remainder is shown as a decimal ('1.5s'), which the parser does not accept."""
    micros = td // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    parts = []
    for unit, size in _DURATION_UNITS[:-1]:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if fraction:
        parts.append(f"{seconds}.{fraction:06d}".rstrip("0") + "s")
    elif seconds or not parts:
        parts.append(f"{seconds}s")
    return sign + "".join(parts)


def _size_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _SIZE_RE.fullmatch(value)
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        return None
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def parse_size(value: str | int) -> int:
    """'512KB', '5MB', '1GB' (binary units: 1KB = 1024 bytes; 'KiB' etc. also accepted) or int
    bytes -> int. Raises ValueError with a message meant for the user."""
    result = _size_or_none(value)
    if result is None:
        raise ValueError(f"not a size: {_show(value)} ({_SIZE_HINT})")
    return result


def size_text(size: int) -> str:
    """The inverse of `parse_size`, for display: 5242880 -> '5MB', 1500 -> '1500B'."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


# --------------------------------------------------------------------------------------------------
# Field types. Custom errors are PydanticCustomError whose type names a template in _TEMPLATES, so
# that a message can be re-rendered without the value when the value came from the environment.

_NAME_HINT = "use lowercase letters, digits, '-' and '_', starting with a letter or digit"
_TEMPLATES = {
    "duration": f"not a duration: {{value}} ({_DURATION_HINT})",
    "duration_type": f"expected a duration ({_DURATION_HINT}), got {{value}}",
    "size": f"not a size: {{value}} ({_SIZE_HINT})",
    "size_type": f"expected a size ({_SIZE_HINT}), got {{value}}",
    "not_positive": "must be greater than 0, got {value}",
    "http_url": "not a valid http(s) URL: {value}",
    "slug": f"not a valid outlet slug: {{value}} ({_NAME_HINT})",
    "feed_name": f"not a valid feed name: {{value}} ({_NAME_HINT})",
    "tag": f"not a valid tag: {{value}} ({_NAME_HINT})",
    "language": "not a valid language tag: {value} (use e.g. en, uk, pt-BR)",
    # Never shows the value: a database URL may hold a password.
    "database_url": (
        "not a database URL (use e.g. sqlite:////var/lib/monitor/monitor.db or "
        "postgresql+psycopg://monitor@127.0.0.1:5432/monitor)"
    ),
}


def _custom(kind: str, value: object) -> PydanticCustomError:
    return PydanticCustomError(kind, _TEMPLATES[kind], {"value": _show(value)})


def _duration_validator(*, positive: bool) -> PlainValidator:
    def validate(value: object) -> timedelta:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise PydanticCustomError(
                "duration_type", _TEMPLATES["duration_type"], {"value": _describe(value)}
            )
        result = _duration_or_none(value)
        if result is None:
            raise _custom("duration", value)
        if positive and not result:
            raise _custom("not_positive", value)
        return result

    return PlainValidator(validate, json_schema_input_type=str | int)


def _validate_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PydanticCustomError("size_type", _TEMPLATES["size_type"], {"value": _describe(value)})
    result = _size_or_none(value)
    if result is None:
        raise _custom("size", value)
    if not result:
        raise _custom("not_positive", value)
    return result


def _pattern_validator(kind: str, pattern: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def validate(value: str) -> str:
        if not compiled.fullmatch(value):
            raise _custom(kind, value)
        return value

    return AfterValidator(validate)


def _validate_http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _custom("http_url", value) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in value)
    ):
        raise _custom("http_url", value)
    return value


_DATABASE_URL_RE = re.compile(r"[a-z][a-z0-9_]*(\+[a-z0-9_]+)?://\S*", re.IGNORECASE)


def _validate_database(value: str | None) -> str | None:
    if value is None or value == "":
        return None  # "database: ${MONITOR_DATABASE_URL:-}" means: the default
    if not _DATABASE_URL_RE.fullmatch(value):
        raise PydanticCustomError("database_url", _TEMPLATES["database_url"])
    return value


Duration = Annotated[timedelta, _duration_validator(positive=False)]
"""'30s', '15m', '6h', '7d', '1h30m' or int seconds; zero allowed."""
PositiveDuration = Annotated[timedelta, _duration_validator(positive=True)]
Size = Annotated[int, PlainValidator(_validate_size, json_schema_input_type=str | int)]
"""'512KB', '5MB' or int bytes; positive."""
HttpUrl = Annotated[str, AfterValidator(_validate_http_url)]
Slug = Annotated[str, _pattern_validator("slug", r"[a-z0-9][a-z0-9_-]*")]
FeedName = Annotated[str, _pattern_validator("feed_name", r"[a-z0-9][a-z0-9_-]*")]
Tag = Annotated[str, _pattern_validator("tag", r"[a-z0-9][a-z0-9_-]*")]
Language = Annotated[str, _pattern_validator("language", r"[a-z]{2,3}(-[A-Za-z0-9]+)*")]
DisplayName = Annotated[str, Field(min_length=1)]


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, no type coercion, frozen.

    An empty section (`polling:` with nothing under it) means "all defaults"."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, data: object) -> object:
        return {} if data is None else data


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


class ExtractSettings(StrictModel):
    fetch_pages: bool = True
    min_chars: int = Field(200, ge=0)
    boilerplate_min_pages: int = Field(3, ge=2)
    workers: int = Field(2, ge=1)


class RetentionSettings(StrictModel):
    articles: PositiveDuration = timedelta(days=365)


class Settings(StrictModel):
    """monitor.yaml. Every key is optional; an empty or missing file gives the defaults."""

    database: Annotated[str | None, AfterValidator(_validate_database)] = None
    polling: PollingSettings = PollingSettings()
    extract: ExtractSettings = ExtractSettings()
    retention: RetentionSettings = RetentionSettings()

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
    return Config(config_dir, settings, outlets, outlets.resolve(settings))


# --------------------------------------------------------------------------------------------------
# Loading a YAML file into a model, with positions


def load_yaml_model(path: Path, model: type[M], *, env: Mapping[str, str] | None = None) -> M:
    """Read one YAML file and validate it with `model` (a StrictModel, ideally).

    `${NAME}` / `${NAME:-default}` in string values are substituted from `env` (default
    `os.environ`). An empty file is an empty mapping. After validation, if the model has a
    `config_problems()` method yielding `Problem`s, those are reported too. Raises ConfigError with
    every issue found, positioned at the offending key or value."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(file, 1, 1, FILE_PATH, "file not found")]) from None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        message = "not valid UTF-8 text"
        raise ConfigError([ConfigIssue(file, line, 1, FILE_PATH, message)]) from None
    except OSError as error:
        message = f"cannot read: {error.strerror or error}"
        raise ConfigError([ConfigIssue(file, 1, 1, FILE_PATH, message)]) from None

    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        raise ConfigError([_yaml_issue(file, error)]) from None
    except (YAMLError, ValueError, TypeError) as error:
        raise ConfigError(
            [ConfigIssue(file, 1, 1, YAML_PATH, f"not valid YAML: {error}")]
        ) from None

    doc = _Document(file, os.environ if env is None else env)
    data = doc.convert(root)
    result, errors = None, []
    try:
        result = model.model_validate(data)
    except ValidationError as error:
        errors = error.errors(include_url=False)
    # Outside the except block: a ValidationError quotes input values (maybe secrets), so it must
    # not even be the __context__ of the ConfigError.
    for err in errors:
        doc.add_validation_error(model, err)
    problems = getattr(result, "config_problems", None)
    if callable(problems):
        for problem in problems():
            doc.add_problem(problem)
    if doc.issues or result is None:
        raise ConfigError(sorted(doc.issues, key=lambda issue: (issue.line, issue.column)))
    return result


def _yaml_issue(file: str, error: MarkedYAMLError) -> ConfigIssue:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = error.problem or str(error)
    duplicate = re.match(r'found duplicate key "(.*?)"', problem)
    if duplicate:  # ruamel's message would also quote both values
        return ConfigIssue(file, line, column, YAML_PATH, f"duplicate key {duplicate.group(1)!r}")
    if problem.startswith("found character '\\t'"):
        return ConfigIssue(file, line, column, YAML_PATH, "found a tab; indent YAML with spaces")
    message = problem
    context, context_mark = error.context, error.context_mark
    if context and context_mark and mark and context_mark.line != mark.line:
        message += f" ({context} started at line {context_mark.line + 1})"
    elif context:
        message += f" ({context})"
    return ConfigIssue(file, line, column, YAML_PATH, message)


_ENV_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_REF_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(:-(.*))?", re.DOTALL)
_ENV_HINT = "use ${NAME} or ${NAME:-default}"

Position = tuple[int, int]  # 0-based line, column as ruamel reports them


@dataclass
class _Document:
    """A YAML document converted to plain data, with where each key and value is."""

    file: str
    env: Mapping[str, str]
    keys: dict[Loc, Position] = field(default_factory=dict)
    values: dict[Loc, Position] = field(default_factory=dict)
    raw: dict[Loc, str] = field(default_factory=dict)  # text as written, where env was used
    secrets: set[str] = field(default_factory=set)  # env values substituted anywhere
    issues: list[ConfigIssue] = field(default_factory=list)
    reported: set[Loc] = field(default_factory=set)  # locs the loader already reported

    # ----- conversion

    def convert(self, root: object) -> object:
        position = (
            (root.lc.line, root.lc.col) if isinstance(root, CommentedMap | CommentedSeq) else (0, 0)
        )
        self.values[()] = position
        return self._convert(root, ())

    def _convert(self, node: object, loc: Loc) -> object:
        tag = getattr(getattr(node, "tag", None), "value", None)
        if isinstance(node, TaggedScalar):
            if tag == "tag:yaml.org,2002:str":
                return self._string(str(node.value), loc)
            self._loader_issue(loc, f"unsupported YAML tag {tag!r}")
            return None
        if tag and isinstance(node, CommentedMap | CommentedSeq):
            self._loader_issue(loc, f"unsupported YAML tag {tag!r}")
            return None
        if isinstance(node, dict):
            return self._mapping(node, loc)
        if isinstance(node, list):
            items = []
            for i, item in enumerate(node):
                self.values[(*loc, i)] = _lc(node, "item", i) or self.values[loc]
                items.append(self._convert(item, (*loc, i)))
            return tuple(items)
        if isinstance(node, str):
            return self._string(str(node), loc)
        if isinstance(node, bool) or node is None or isinstance(node, date):
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node

    def _mapping(self, node: dict, loc: Loc) -> dict:
        result = {}
        for key, value in node.items():
            key_position = _lc(node, "key", key) or self.values[loc]
            value_position = _lc(node, "value", key) or key_position
            if value is None and value_position[0] != key_position[0]:
                value_position = key_position  # "key:" with nothing after it
            if not isinstance(key, str):
                child: Loc = (*loc, _show(key))
                self.keys[child] = key_position
                message = f"keys must be strings, got {_describe(key)} (quote it: '{_show(key)}')"
                self._loader_issue(child, message)
                continue
            child = (*loc, str(key))
            self.keys[child] = key_position
            self.values[child] = value_position
            result[str(key)] = self._convert(value, child)
        return result

    def _string(self, text: str, loc: Loc) -> str:
        if "$" not in text:
            return text
        parts: list[str] = []
        substituted = False
        last = 0
        for match in _ENV_RE.finditer(text):
            parts.append(text[last : match.start()])
            last = match.end()
            whole, inner = match.group(0), match.group(1)
            if whole == "$${":
                parts.append("${")
                continue
            substituted = True
            if inner is None:
                self._loader_issue(loc, f"unterminated '${{' ({_ENV_HINT}; write $${{ for '${{')")
                continue
            ref = _ENV_REF_RE.fullmatch(inner)
            if ref is None or "${" in (ref.group(3) or ""):
                self._loader_issue(loc, f"invalid environment reference {whole!r} ({_ENV_HINT})")
                continue
            name, has_default, default = ref.group(1), ref.group(2), ref.group(3)
            value = self.env.get(name)
            if has_default and not value:
                parts.append(default)
            elif value is None:
                self._loader_issue(loc, f"environment variable {name} is not set")
            else:
                parts.append(value)
                self.secrets.add(value)
        parts.append(text[last:])
        if substituted:
            self.raw[loc] = text
        return "".join(parts)

    def _loader_issue(self, loc: Loc, message: str) -> None:
        self.reported.add(loc)
        line, column = self.keys.get(loc) if loc not in self.values else self.values[loc]
        self.issues.append(ConfigIssue(self.file, line + 1, column + 1, _key_path(loc), message))

    # ----- mapping validation errors back to positions

    def _known_prefix(self, loc: Loc) -> Loc:
        """The longest prefix of `loc` that is in the document (pydantic may add union tags)."""
        path: Loc = ()
        for part in loc:
            if (*path, part) not in self.values and (*path, part) not in self.keys:
                break
            path = (*path, part)
        return path

    def add_validation_error(self, model: type[BaseModel], err: Mapping[str, Any]) -> None:
        loc: Loc = tuple(err["loc"])
        kind = err["type"]
        on_key = bool(loc) and loc[-1] == "[key]"
        if on_key:
            loc = loc[:-1]
        path = self._known_prefix(loc)
        if any(path[: len(bad)] == bad for bad in self.reported):
            return  # the loader already reported a problem here
        if kind == "too_short" and len(err["input"]) >= err["ctx"]["min_length"]:
            return  # not too short as written: some items failed and are reported themselves
        if kind == "missing" and len(path) == len(loc) - 1:
            parent = self.values.get(path, (0, 0))  # the mapping the key is missing from
            self._add(loc, parent, "required key is missing")
            return
        if kind == "extra_forbidden" or on_key:
            position = self.keys.get(path, self.values.get(path, (0, 0)))
        else:
            position = self.values.get(path, self.keys.get(path, (0, 0)))
        self._add(path, position, self._message(model, path, err))

    def add_problem(self, problem: Problem) -> None:
        path = self._known_prefix(problem.loc)
        position = self.values.get(path, self.keys.get(path, (0, 0)))
        message = problem.message
        if problem.first is not None:
            first = self._known_prefix(problem.first)
            line = self.values.get(first, self.keys.get(first, (0, 0)))[0] + 1
            message += f" (first at {_key_path(first)}, line {line})"
        self._add(path, position, message)

    def _add(self, loc: Loc, position: Position, message: str) -> None:
        # Messages quote `raw` instead of a value from the environment; this is the safety net for
        # validators of other models that put their input into a message.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 3:
                message = message.replace(secret, "***")
        path = _key_path(loc)
        self.issues.append(ConfigIssue(self.file, position[0] + 1, position[1] + 1, path, message))

    def _message(self, model: type[BaseModel], path: Loc, err: Mapping[str, Any]) -> str:
        kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
        raw = self.raw.get(path)

        def described() -> str:  # "string 'x'", "a list", ...
            if raw is not None:
                return f"{raw!r} (after environment substitution)"
            return _describe(value)

        def shown() -> str:  # 'x', 5, true, ...
            return repr(raw) if raw is not None else _show(value)

        if kind in _TEMPLATES:
            text = described() if kind.endswith("_type") else shown()
            return _TEMPLATES[kind].replace("{value}", text)
        if kind == "extra_forbidden":
            return _unknown_key_message(model, path)
        expected = _EXPECTED.get(kind)
        if expected:
            return f"expected {expected}, got {described()}"
        if kind == "too_short":
            return "must not be empty" if ctx.get("min_length") == 1 else str(err["msg"])
        if kind == "string_too_short":
            return "must not be empty"
        if kind in ("value_error", "assertion_error") and "error" in ctx:
            return str(ctx["error"])  # a plain ValueError raised by a model's own validator
        bounds = {
            "greater_than_equal": ("at least", "ge"),
            "less_than_equal": ("at most", "le"),
            "greater_than": ("greater than", "gt"),
            "less_than": ("less than", "lt"),
        }
        if kind in bounds:
            words, key = bounds[kind]
            return f"must be {words} {_number(ctx.get(key))}, got {shown()}"
        message = str(err["msg"])
        return message[:1].lower() + message[1:]


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _lc(node: object, kind: str, key: object) -> Position | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        line, column = getattr(lc, kind)(key)
    except (KeyError, IndexError, TypeError):
        return None  # e.g. a key merged in with "<<:"
    return (line, column)


def _key_path(loc: Loc) -> str:
    if not loc:
        return ROOT_PATH
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _show(value: object) -> str:
    """A value as it would be written in YAML, strings quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _show(value)


def _describe(value: object) -> str:
    """What a wrong value is, for 'expected X, got Y'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _show(value)
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, date):
        return f"date {value.isoformat()}"
    return type(value).__name__


def _unknown_key_message(model: type[BaseModel], path: Loc) -> str:
    parent = _model_at(model, path[:-1])
    if parent is None:
        return "unknown key"
    allowed = list(parent.model_fields)
    close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(allowed)})"


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`, if there is one."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return None
            current = info.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation
