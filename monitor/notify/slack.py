"""Slack incoming webhooks: post a rendered message's Block Kit payloads, in order, to the
channel's webhook, and say whether a failure is worth retrying.

Channel URLs, either form:

    https://hooks.slack.com/services/T…/B…/X…             (as Slack hands it out)
    slack://[botname@]TokenA/TokenB/TokenC[/#channel]      (apprise's form; `?to=#channel` too)

Both post to SLACK_WEBHOOK_BASE + "TokenA/TokenB/TokenC"; a `#channel` (or `@user`, or `+ID`)
goes into each payload's `channel` field and a botname into `username`, as apprise does. Webhooks
created by a Slack app ignore both and post where the app was installed
(https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks); legacy webhooks obey
them. Bot tokens (`slack://xoxb-…`) are refused: only incoming webhooks are supported.

A message split for Slack's limits is several posts. If post k of n fails, posts 1..k-1 were
delivered and a retry of the outbox row would send them again (at-least-once), unless the caller
passes `content["parts_sent"]` = k-1 back in: those first parts are then skipped. Errors never
contain the webhook's tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx

# `notify` by module, not its names: monitor/notify/__init__.py may import this module while
# it is still being initialised itself.
from monitor import notify
from monitor.fetch import is_permanent, parse_retry_after
from monitor.render.escape import slack_escape
from monitor.render.limits import Limits
from monitor.render.slack import split_mrkdwn
from monitor.rules.spec import ChannelSpec

# Module constants so a test can point them at a loopback server (Slack is unreachable there).
SLACK_WEBHOOK_BASE = "https://hooks.slack.com/services/"
TIMEOUT = 10.0  # seconds, for connect, each read and write
USER_AGENT = "monitor/0.1 (news monitor; +https://github.com/monitor-news/monitor)"

_DIRECT = re.compile(
    r"https://hooks\.slack\.com/services/([A-Z0-9]+)/([A-Z0-9]+)/([A-Za-z0-9]+)/?(?:\?.*)?",
    re.IGNORECASE,
)
# apprise's token syntax (apprise/plugins/slack.py, template_tokens token_a/b/c)
_TOKEN_AB = re.compile(r"[A-Z0-9]+", re.IGNORECASE)
_TOKEN_C = re.compile(r"[A-Za-z0-9]+")
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_BODY_CHARS = 200  # of Slack's answer kept in an error: it is a short code such as no_service

USAGE = (
    "not a Slack incoming-webhook URL: use https://hooks.slack.com/services/T…/B…/X… "
    "or slack://TokenA/TokenB/TokenC[/#channel]"
)


@dataclass(frozen=True)
class Webhook:
    """Where to post and what each payload gains (`url` holds the tokens: never log it)."""

    url: str
    channel: str | None = None
    username: str | None = None


def webhook_for(url: str) -> Webhook:
    """The incoming webhook a channel URL names; ValueError (never quoting the URL) if none."""
    direct = _DIRECT.fullmatch(url.strip())
    if direct:
        return Webhook(SLACK_WEBHOOK_BASE + "/".join(direct.groups()))
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() != "slack":
        raise ValueError(USAGE)
    # Not urlsplit: in apprise's form `#channel` is a path segment, not a fragment.
    rest, _, query = rest.partition("?")
    head, _, tail = rest.partition("/")
    username = None
    if "@" in head:
        username, head = (unquote(part) for part in head.rsplit("@", 1))
    segments = [unquote(s) for s in [head, *tail.split("/")] if s]
    if segments and segments[0].lower().startswith("xox"):
        raise ValueError(
            "Slack bot tokens (slack://xox…) are not supported, only incoming webhooks: "
            "use https://hooks.slack.com/services/T…/B…/X… or slack://TokenA/TokenB/TokenC"
        )
    if len(segments) < 3 or not (
        _TOKEN_AB.fullmatch(segments[0])
        and _TOKEN_AB.fullmatch(segments[1])
        and _TOKEN_C.fullmatch(segments[2])
    ):
        raise ValueError(USAGE)
    targets = segments[3:]
    for key, value in parse_qsl(query):
        if key == "to":
            targets += [t for t in re.split(r"[\s,]+", value) if t]
    if len(targets) > 1:
        raise ValueError("a Slack channel entry posts to one channel: give one #channel")
    return Webhook(
        SLACK_WEBHOOK_BASE + "/".join(segments[:3]),
        channel=_target(targets[0]) if targets else None,
        username=username or None,
    )


def _target(target: str) -> str:
    """apprise's reading of a target: +ID as is, @user as is, else a #channel."""
    if target.startswith("+"):
        return target[1:]
    if target.startswith(("@", "#")):
        return target
    return "#" + target


def send_slack(
    channel: ChannelSpec, content: dict[str, Any], *, client: httpx.Client | None = None
) -> notify.SendResult:
    """Post each of `content["slack"]` in order (skipping the first `content["parts_sent"]`);
    never raises for Slack's failure."""
    try:
        hook = webhook_for(channel.url)
    except ValueError as err:  # its messages are fixed texts: they never quote the URL
        return notify.SendResult(False, str(err), permanent=True)
    payloads = [_with_target(p, hook) for p in _payloads(content)]
    total = len(payloads)
    skip = _parts_sent(content, total)
    http = client or httpx.Client(
        timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT}
    )
    try:
        for number in range(skip, total):
            failed = _post(http, hook.url, payloads[number])
            if failed is not None:
                error = failed.error or "Slack refused it"
                if total > 1:
                    error += f"; {number} of {total} parts sent"
                error = notify.redact(notify.redact(error, channel.url), hook.url)
                return notify.SendResult(
                    False, error, failed.permanent, failed.retry_after, parts_sent=number
                )
    finally:
        if client is None:
            http.close()
    return notify.SendResult(True)


def _post(http: httpx.Client, url: str, payload: dict[str, Any]) -> notify.SendResult | None:
    """None if Slack took the payload, else why not."""
    try:
        response = http.post(url, json=payload)
    except httpx.TimeoutException:
        return notify.SendResult(False, f"no answer from Slack within {TIMEOUT:g} s")
    except httpx.HTTPError as err:  # connection refused, reset, TLS, protocol errors
        return notify.SendResult(False, f"could not reach Slack: {type(err).__name__}: {err}")
    status = response.status_code
    if 200 <= status < 300:  # Slack answers 200 "ok"
        return None
    # Slack's incoming webhooks answer with an HTTP status and a short error code as the body.
    # Slack's changelog fixed these (https://api.slack.com/changelog/2016-05-17-changes-to-errors-
    # for-incoming-webhooks): 400 invalid_payload, user_not_found; 403 action_prohibited; 404
    # channel_not_found; 410 channel_is_archived; 500 rollup_error. The current guide
    # (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks, "Handling
    # errors") also names invalid_blocks, no_text, invalid_token, no_service (the webhook was
    # removed or disabled), team_disabled. Only the status decides here, so a new code under a
    # known status needs no change. Over the rate limit (about one message per second) Slack answers
    # 429 with Retry-After in seconds (https://docs.slack.dev/apis/web-api/rate-limits).
    # A retry cannot fix a 4xx other than 408/425/429; a 5xx, or a 3xx (Slack does not redirect
    # webhooks), may pass later.
    code = " ".join(response.text.split())[:_BODY_CHARS] or response.reason_phrase
    error = f"HTTP {status} from Slack: {code}".rstrip(": ")
    retry_after = None
    if status in _RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        if retry_after is not None:
            error += f" (retry after {retry_after:.0f} s)"
    return notify.SendResult(False, error, is_permanent(status), retry_after)


def _payloads(content: dict[str, Any]) -> list[dict[str, Any]]:
    """The rendered payloads, or the plain text escaped for mrkdwn if none were rendered."""
    payloads = [dict(p) for p in content.get("slack") or () if isinstance(p, dict)]
    if payloads:
        return payloads
    subject = slack_escape(str(content.get("subject") or ""))
    text = slack_escape(str(content.get("text") or ""))
    body = "\n\n".join(part for part in (subject and f"*{subject}*", text) if part)
    return [{"text": piece} for piece in split_mrkdwn(body or "(empty)", Limits().slack_text_chars)]


def _with_target(payload: dict[str, Any], hook: Webhook) -> dict[str, Any]:
    if hook.channel:
        payload["channel"] = hook.channel
    if hook.username:
        payload["username"] = hook.username
    return payload


def _parts_sent(content: dict[str, Any], total: int) -> int:
    value = content.get("parts_sent")
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, min(value, total))
