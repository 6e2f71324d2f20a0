"""Delivering to Slack incoming webhooks: a loopback server stands in for hooks.slack.com (Slack
is unreachable here), so what is checked is what would go over the wire, and how Slack's answers
(ok, rate limits, removed webhooks, outages) become a SendResult."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.notify import SendResult, slack
from monitor.notify.slack import Webhook, send_slack, webhook_for
from monitor.render import Limits, render
from monitor.render.model import Message
from monitor.render.sample import sample_entries, sample_message
from monitor.rules.spec import ChannelSpec

TOKENS = ("T0SECRETAAA", "B0SECRETBBB", "X0SECRETTOKENCCC")
HOOK_PATH = "/services/" + "/".join(TOKENS)
DIRECT_URL = "https://hooks.slack.com" + HOOK_PATH
APPRISE_URL = "slack://" + "/".join(TOKENS)
HOSTILE_TITLE = "<!channel> <@U123> <script>x</script>"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """hooks.slack.com on loopback, answering "ok" to the test webhook unless told otherwise."""
    with LoopbackServer() as server:
        monkeypatch.setattr(slack, "SLACK_WEBHOOK_BASE", server.url("/services/"))
        server.routes[HOOK_PATH] = Route(b"ok", content_type="text/plain")
        yield server


def channel(url: str = DIRECT_URL) -> ChannelSpec:
    return ChannelSpec(name="desk-slack", url=url, format="slack")


def content(payloads: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """An outbox row's content as the sender passes it: JSON round-tripped, with its key."""
    row = {"format": "slack", "subject": "s", "text": "t", "slack": payloads, "key": "outbox-7"}
    return json.loads(json.dumps({**row, **extra}))


def parts(n: int) -> list[dict[str, Any]]:
    return [
        {
            "text": f"part {i}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"part {i}"}}],
        }
        for i in range(1, n + 1)
    ]


def received(server: LoopbackServer) -> list[dict[str, Any]]:
    posts = [h for h in server.hits if h.method == "POST"]
    return [json.loads(h.body) for h in sorted(posts, key=lambda h: h.started)]


def assert_no_tokens(text: str | None) -> None:
    assert text
    for token in TOKENS:
        assert token not in text and token.lower() not in text


def answer(status: int, body: str, headers: dict[str, str] | None = None) -> Route:
    return Route(body.encode(), status, "text/plain", headers=headers or {})


# -- which URLs name which webhook -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (DIRECT_URL, Webhook(slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS))),
        (DIRECT_URL + "/", Webhook(slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS))),
        (APPRISE_URL, Webhook(slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS))),
        (
            APPRISE_URL + "/#desk",
            Webhook(slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS), channel="#desk"),
        ),
        (
            APPRISE_URL + "/desk",
            Webhook(slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS), channel="#desk"),
        ),
        (
            APPRISE_URL + "/@editor",
            Webhook(slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS), channel="@editor"),
        ),
        (
            APPRISE_URL + "?to=%23desk",
            Webhook(slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS), channel="#desk"),
        ),
        (
            "slack://Monitor@" + "/".join(TOKENS) + "/%23desk",
            Webhook(
                slack.SLACK_WEBHOOK_BASE + "/".join(TOKENS), channel="#desk", username="Monitor"
            ),
        ),
    ],
)
def test_direct_and_apprise_urls_name_the_same_incoming_webhook(
    url: str, expected: Webhook
) -> None:
    assert webhook_for(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("slack://xoxb-1234-5678-SECRETBOTTOKEN/#desk", "only incoming webhooks"),
        ("slack://xoxp-1234-5678-SECRETBOTTOKEN", "only incoming webhooks"),
        ("slack://T0SECRETAAA/B0SECRETBBB", "not a Slack incoming-webhook URL"),
        ("slack://T0SECRETAAA/B0SECRETBBB/X0-SECRET!", "not a Slack incoming-webhook URL"),
        ("https://hooks.slack.com/workflows/T0SECRETAAA/F0SECRET/X0SECRET", "not a Slack"),
        ("https://example.com/services/T0SECRETAAA/B0SECRETBBB/X0SECRET", "not a Slack"),
        (APPRISE_URL + "/#desk/#news", "one channel"),
    ],
)
def test_urls_that_name_no_incoming_webhook_fail_for_good_without_quoting_their_tokens(
    hooks: LoopbackServer, url: str, says: str
) -> None:
    result = send_slack(channel(url), content(parts(1)))
    assert not result.ok and result.permanent
    assert result.error and says in result.error
    assert "SECRET" not in result.error
    assert hooks.hits == []


# -- what reaches Slack --------------------------------------------------------------------------


def test_each_payload_is_posted_as_json_in_order_to_the_webhook(hooks: LoopbackServer) -> None:
    payloads = list(render(sample_message(), "slack", limits=Limits(slack_blocks=4)).slack)
    assert len(payloads) >= 3
    result = send_slack(channel(), content(payloads))
    assert result == SendResult(True)
    posts = [h for h in hooks.hits if h.method == "POST"]
    assert {h.path for h in posts} == {HOOK_PATH}
    assert all(h.headers["Content-Type"] == "application/json" for h in posts)
    got = received(hooks)
    assert got == json.loads(json.dumps(payloads))
    assert [p["blocks"][0]["text"]["text"].rsplit(" ", 1)[1] for p in got] == [
        f"({i}/{len(payloads)})" for i in range(1, len(payloads) + 1)
    ]
    assert all(p["text"] and p["blocks"] for p in got)


def test_the_apprise_form_posts_to_the_same_webhook_with_its_channel_and_botname(
    hooks: LoopbackServer,
) -> None:
    url = "slack://Monitor@" + "/".join(TOKENS) + "/#desk"
    assert send_slack(channel(url), content(parts(2))).ok
    got = received(hooks)
    assert [p["text"] for p in got] == ["part 1", "part 2"]
    assert all(p["channel"] == "#desk" and p["username"] == "Monitor" for p in got)


def test_a_hostile_headline_reaches_slack_escaped_so_it_pings_no_one(
    hooks: LoopbackServer,
) -> None:
    story = dataclasses.replace(sample_entries()[0], title=HOSTILE_TITLE)
    message = Message(
        kind="alert",
        route="troop-buildup",
        title=f"troop-buildup: {HOSTILE_TITLE}",
        entries=(story,),
        more=0,
        timezone="UTC",
        created_at=datetime(2022, 1, 20, 8, 0, tzinfo=UTC),
    )
    assert send_slack(channel(), content(list(render(message, "slack").slack))).ok
    (hit,) = [h for h in hooks.hits if h.method == "POST"]
    wire = json.loads(hit.body)
    texts = [wire["text"]] + [b["text"]["text"] for b in wire["blocks"] if b["type"] == "section"]
    assert all("&lt;!channel&gt;" in t and "&lt;@U123&gt;" in t for t in texts)
    assert all("&lt;script&gt;" in t for t in texts)
    for text in texts:
        assert "<!channel>" not in text and "<@U123>" not in text and "<script>" not in text
    # the header block is plain_text, which Slack never parses for mentions
    assert wire["blocks"][0]["text"]["type"] == "plain_text"


def test_a_message_without_slack_payloads_is_sent_as_escaped_text(hooks: LoopbackServer) -> None:
    row = {"format": "slack", "subject": "Feed down", "text": "<!here> feed x & y is down"}
    assert send_slack(channel(), row).ok
    (payload,) = received(hooks)
    assert payload == {"text": "*Feed down*\n\n&lt;!here&gt; feed x &amp; y is down"}


# -- Slack's answers -----------------------------------------------------------------------------


def test_a_rate_limit_is_transient_and_carries_slacks_retry_after(hooks: LoopbackServer) -> None:
    hooks.routes[HOOK_PATH] = answer(429, "rate_limited", {"Retry-After": "30"})
    result = send_slack(channel(), content(parts(1)))
    assert not result.ok and not result.permanent
    assert result.retry_after == 30.0
    assert result.error == "HTTP 429 from Slack: rate_limited (retry after 30 s)"


def test_a_removed_webhook_fails_for_good_with_slacks_error(hooks: LoopbackServer) -> None:
    hooks.routes[HOOK_PATH] = answer(404, "no_service")
    result = send_slack(channel(APPRISE_URL), content(parts(1)))
    assert not result.ok and result.permanent and result.retry_after is None
    assert result.error == "HTTP 404 from Slack: no_service"


@pytest.mark.parametrize(
    ("status", "body", "permanent"),
    [
        (400, "invalid_payload", True),
        (400, "invalid_blocks", True),
        (403, "action_prohibited", True),
        (403, "invalid_token", True),
        (404, "channel_not_found", True),
        (410, "channel_is_archived", True),
        (500, "rollup_error", False),
        (502, "", False),
        (503, "service unavailable", False),
    ],
)
def test_slacks_error_statuses_say_whether_a_retry_can_help(
    hooks: LoopbackServer, status: int, body: str, permanent: bool
) -> None:
    hooks.routes[HOOK_PATH] = answer(status, body)
    result = send_slack(channel(), content(parts(1)))
    assert not result.ok and result.permanent is permanent
    assert result.error and result.error.startswith(f"HTTP {status} from Slack")
    assert body in result.error
    assert_no_tokens(result.error)


def test_a_timeout_is_transient(hooks: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slack, "TIMEOUT", 0.2)
    hooks.routes[HOOK_PATH] = Route(b"ok", delay=1.0)
    result = send_slack(channel(), content(parts(1)))
    assert not result.ok and not result.permanent
    assert result.error == "no answer from Slack within 0.2 s"


def test_a_dropped_connection_is_transient(hooks: LoopbackServer) -> None:
    hooks.routes[HOOK_PATH] = Route(drop_connection=True)
    result = send_slack(channel(), content(parts(1)))
    assert not result.ok and not result.permanent
    assert result.error and result.error.startswith("could not reach Slack")
    assert_no_tokens(result.error)


def test_an_unreachable_slack_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer() as gone:
        base = gone.url("/services/")
    monkeypatch.setattr(slack, "SLACK_WEBHOOK_BASE", base)  # nothing listens there now
    result = send_slack(channel(), content(parts(1)))
    assert not result.ok and not result.permanent
    assert result.error and result.error.startswith("could not reach Slack: ConnectError")
    assert_no_tokens(result.error)


# -- messages split over several posts ---------------------------------------------------------


def flaky(fail_on: int, route: Route) -> Any:
    """A webhook that fails the `fail_on`-th post (1-based) with `route`, and takes the rest."""
    lock = threading.Lock()
    seen = [0]

    def handle(_path: str, _headers: dict[str, str]) -> Route:
        with lock:
            seen[0] += 1
            n = seen[0]
        return route if n == fail_on else Route(b"ok", content_type="text/plain")

    return handle


def test_a_failed_second_part_says_how_many_parts_were_sent(hooks: LoopbackServer) -> None:
    hooks.routes[HOOK_PATH] = flaky(2, answer(500, "rollup_error"))
    result = send_slack(channel(), content(parts(3)))
    assert not result.ok and not result.permanent
    assert result.error == "HTTP 500 from Slack: rollup_error; 1 of 3 parts sent"
    # part 3 is not sent out of order after a gap
    assert [p["text"] for p in received(hooks)] == ["part 1", "part 2"]


def test_a_retry_told_the_parts_already_sent_sends_only_the_rest(hooks: LoopbackServer) -> None:
    result = send_slack(channel(), content(parts(3), parts_sent=1))
    assert result.ok
    assert [p["text"] for p in received(hooks)] == ["part 2", "part 3"]


def test_a_retry_without_parts_sent_resends_the_whole_message(hooks: LoopbackServer) -> None:
    hooks.routes[HOOK_PATH] = flaky(2, answer(503, "", {"Retry-After": "5"}))
    first = send_slack(channel(), content(parts(2)))
    assert first.retry_after == 5.0 and first.error and "1 of 2 parts sent" in first.error
    assert send_slack(channel(), content(parts(2))).ok  # at least once: part 1 twice
    assert [p["text"] for p in received(hooks)] == ["part 1", "part 2", "part 1", "part 2"]


@pytest.mark.parametrize("parts_sent", [-1, "1", True, None, 1.5])
def test_a_parts_sent_that_is_not_a_count_of_parts_skips_nothing(
    hooks: LoopbackServer, parts_sent: Any
) -> None:
    assert send_slack(channel(), content(parts(2), parts_sent=parts_sent)).ok
    assert [p["text"] for p in received(hooks)] == ["part 1", "part 2"]


def test_a_message_whose_parts_were_all_sent_is_done(hooks: LoopbackServer) -> None:
    assert send_slack(channel(), content(parts(2), parts_sent=2)).ok
    assert hooks.hits == []


def test_tokens_never_appear_in_any_error(hooks: LoopbackServer) -> None:
    # Slack does not echo the URL back, but a proxy in between might
    hooks.routes[HOOK_PATH] = answer(400, f"bad request to {DIRECT_URL} {HOOK_PATH}")
    for url in (DIRECT_URL, APPRISE_URL, APPRISE_URL + "/#desk", "slack://Bot@" + APPRISE_URL[8:]):
        result = send_slack(channel(url), content(parts(1)))
        assert not result.ok and result.permanent
        assert_no_tokens(result.error)


def test_the_outbox_sender_sends_slack_channels_as_block_kit(hooks: LoopbackServer) -> None:
    from monitor.notify import send

    assert send(channel(), content(parts(2))).ok
    assert [p["blocks"][0]["text"]["text"] for p in received(hooks)] == ["part 1", "part 2"]
