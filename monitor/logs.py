"""Logging for journald: one line per event on stderr, as text or JSON, with secrets removed.

Every record is formatted first (message, arguments and traceback together) and the whole line
is then redacted, so a secret inside an exception's message or a traceback's source line is
caught too. What counts as a secret:

- every value substituted from the environment into a config file (`${DB_PASSWORD}`), and every
  part of a channel's apprise URL that may hold a token (registered as the config is loaded);
- as a safety net for values never registered, the password of any `scheme://user:pass@host`
  URL and the token path of Slack, Discord and Telegram webhooks.

A traceback's lines are joined with " | " so one event stays one journal entry."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import unquote, urlsplit

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

_SAFETY_NETS = (
    # user:password@ in any URL (apprise mailto://, postgresql://, https://)
    re.compile(r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)"),
    # webhooks whose path is the token
    re.compile(r"(?P<keep>hooks\.slack\.com/services/)\S+"),
    re.compile(r"(?P<keep>discord(?:app)?\.com/api/webhooks/)\S+"),
    re.compile(r"(?P<keep>api\.telegram\.org/bot)[^\s/]+"),
    # apprise's token-in-the-path schemes: everything after the scheme is credentials
    re.compile(r"(?P<keep>\b(?:slack|discord|tgram|msteams|pover|pbul|gotify)://)\S+"),
)


def register_secret(value: str | None) -> None:
    """Never log `value` (or its URL-decoded form) from now on."""
    global _pattern
    if not value or len(value) < MIN_SECRET:
        return
    with _lock:
        new = {value, unquote(value)} - _secrets
        if new:
            _secrets.update(s for s in new if len(s) >= MIN_SECRET)
            ordered = sorted(_secrets, key=len, reverse=True)  # longest first: no partial masks
            _pattern = re.compile("|".join(map(re.escape, ordered)))


def register_url(url: str) -> None:
    """Never log a channel's URL nor any part of it that may be a credential: user, password,
    a host that is a token (slack://TOKEN/..., tgram://BOTTOKEN/...: no dot in it), path
    segments that look like tokens, and query values."""
    register_secret(url)
    try:
        parts = urlsplit(url)
        password, host = parts.password, parts.hostname
    except ValueError:
        return
    register_secret(parts.username)
    register_secret(password)
    if host and "." not in host and host != "localhost" and ":" not in host:
        register_secret(host)
    for segment in parts.path.split("/"):
        if len(segment) >= 8 or any(ch.isdigit() for ch in segment):
            register_secret(segment)
    for pair in parts.query.split("&"):
        _, _, value = pair.partition("=")
        register_secret(value)


def register_database_url(url: str) -> None:
    """Never log the database's password (the rest of its URL is worth seeing)."""
    try:
        register_secret(urlsplit(url).password)
    except ValueError:
        return


def redact(text: str) -> str:
    """`text` with every registered secret and secret-looking URL part masked."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for regex in _SAFETY_NETS:
        text = regex.sub(_keep_and_mask, text)
    return text


def _keep_and_mask(match: re.Match[str]) -> str:
    return match.group("keep") + MASK


class RedactingFormatter(logging.Formatter):
    """One line per record, secrets masked; JSON objects when `json_lines`. With `journal`,
    each line starts with its syslog priority (`<4>` for a warning), which journald takes off
    and keeps as the entry's priority (SyslogLevelPrefix=), so `journalctl -p warning` works."""

    def __init__(self, json_lines: bool = False, journal: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.json_lines = json_lines
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = self._json(record) if self.json_lines else _one_line(redact(super().format(record)))
        if self.journal:
            return f"<{_priority(record.levelno)}>{line}"
        return line

    def _json(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def _priority(level: int) -> int:
    """syslog priority of a logging level: 2 critical, 3 error, 4 warning, 6 info, 7 debug."""
    for at_least, priority in ((50, 2), (40, 3), (30, 4), (20, 6)):
        if level >= at_least:
            return priority
    return 7


def to_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal: systemd sets $JOURNAL_STREAM to its device:inode."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{st.st_dev}:{st.st_ino}"


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", " | ")


def setup(level: int, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Log to stderr (journald takes it from there) through the redacting formatter. Handlers
    someone else installed (a test runner's) are left alone; one from an earlier call is
    replaced."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt == "json", to_journal(handler.stream)))
    root.addHandler(handler)
    root.setLevel(level)


def set_format(fmt: str) -> None:
    """Switch the handler `setup` installed to text or JSON (monitor.yaml's logging.format)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            handler.setFormatter(RedactingFormatter(fmt == "json", to_journal(handler.stream)))


class _Handler(logging.StreamHandler[TextIO]):
    """The handler `setup` installs (told apart from others by its class)."""
