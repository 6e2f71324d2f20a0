"""Field types for config models: durations, sizes, URLs, names and tags; and `StrictModel`.

`parse_duration` / `duration_text` and `parse_size` / `size_text` are also used outside config (CLI
options, display)."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.functional_validators import AfterValidator, PlainValidator
from pydantic_core import PydanticCustomError

from monitor.config.errors import _describe, _show

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
    "network": "not an IP address or network: {value} (e.g. 127.0.0.0/8, ::1, 10.1.2.3)",
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


def _validate_network(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise _custom("network", value) from None
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
AllowedNetwork = Annotated[str, AfterValidator(_validate_network)]
"""An address or CIDR network the fetcher may reach although it is not public."""


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, no type coercion, frozen.

    An empty section (`polling:` with nothing under it) means "all defaults"."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, data: object) -> object:
        return {} if data is None else data
