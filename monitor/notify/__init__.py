"""Send a rendered message to a channel: through apprise, or to the console for `console://`.

`send` says whether it worked, and when it did not, why and whether a retry can help: a URL
apprise does not understand, or a channel that refuses the credentials or does not exist
(HTTP 400/401/403/404), is permanent; anything else (a connection error, a 5xx, a 429) is retried
with backoff. Messages never contain the channel's URL: it holds tokens."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import apprise

from monitor.rules.spec import ChannelSpec

CONSOLE = "console://"
_STATUS = re.compile(r"error=(\d{3})")
_PERMANENT_STATUS = {400, 401, 403, 404, 410}
_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "email": apprise.NotifyFormat.HTML,
}


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str | None = None  # what went wrong, secrets removed
    permanent: bool = False  # a retry cannot help
    retry_after: float | None = None  # seconds the channel asked us to wait (HTTP 429)
    parts_sent: int | None = None  # of a message in parts (Slack), those delivered: not resent
    # what of the message was delivered or refused for good, kept on the outbox row's content
    # so a retry skips it (email: the recipients that have it, and those refused with a 5xx)
    progress: dict[str, Any] | None = None


def send(
    channel: ChannelSpec, content: dict[str, Any], console: TextIO | None = None
) -> SendResult:
    """Deliver one message; never raises for a channel's failure. Slack and email have senders
    of their own (Block Kit payloads; our own MIME with a stable Message-ID), the rest go
    through apprise."""
    if channel.url == CONSOLE:
        return _to_console(content, console or sys.stdout)
    fmt = content.get("format")
    scheme = channel.url.split("://", 1)[0].lower()
    if fmt == "slack" and content.get("slack"):
        from monitor.notify.slack import send_slack

        return send_slack(channel, content)
    if fmt == "email" and scheme in ("mailto", "mailtos") and content.get("html"):
        from monitor.notify.email import send_email

        return send_email(channel, content)
    notifier = apprise.Apprise()
    if not notifier.add(channel.url):
        return SendResult(False, "apprise does not understand this channel's URL", permanent=True)
    failures: list[str] = []
    title, body, body_format = _message(content)
    sent = notifier.notify(
        body, title=title, body_format=body_format, log_callback=_collect(failures)
    )
    if sent:
        return SendResult(True)
    error = redact("; ".join(dict.fromkeys(failures)) or "the channel refused it", channel.url)
    statuses = {int(code) for code in _STATUS.findall(error)}
    return SendResult(False, error, permanent=bool(statuses) and statuses <= _PERMANENT_STATUS)


def _message(content: dict[str, Any]) -> tuple[str, str, str]:
    """(title, body, apprise body format) of the message to send through apprise (Slack
    payloads and our own email MIME never come here: see `send`)."""
    fmt = content.get("format", "text")
    subject = content.get("subject") or content.get("title") or ""
    if fmt == "email" and content.get("html"):
        return subject, content["html"], _FORMATS["email"]
    if fmt == "markdown" and content.get("markdown"):
        return subject, content["markdown"], _FORMATS["markdown"]
    return subject, content.get("text", ""), _FORMATS["text"]


def _collect(into: list[str]) -> Callable[[Any, Any], None]:
    def keep(entry: Any, _plugin: Any) -> None:
        if (
            entry.level in ("WARNING", "ERROR", "CRITICAL")
            or getattr(entry, "levelno", 0) >= logging.WARNING
        ):
            into.append(str(entry.message))

    return keep


def _to_console(content: dict[str, Any], out: TextIO) -> SendResult:
    subject = content.get("subject") or content.get("title") or ""
    out.write(f"\n=== {subject} ===\n{content.get('text', '')}\n")
    out.flush()
    return SendResult(True)


def redact(text: str, url: str) -> str:
    """`text` without any secret-looking part of `url` (user, password, host path, tokens)."""
    parts = urlsplit(url)
    # the host too: for slack:// and others it is the first token, for mail it says who
    secrets = {url, parts.username or "", parts.password or "", parts.netloc, parts.query}
    secrets |= {parts.hostname or ""}
    secrets |= {p for p in parts.path.split("/") if p}
    secrets |= {v for pair in parts.query.split("&") for v in pair.split("=")[1:]}
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            for form in {secret, unquote(secret)}:
                text = text.replace(form, "***")
    return text
