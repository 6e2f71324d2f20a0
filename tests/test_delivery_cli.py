"""`monitor send-test` and `monitor outbox`: what a user runs to check a channel and the queue."""

from __future__ import annotations

import json
from datetime import timedelta

from monitor.demo.server import LoopbackServer, Route
from monitor.domain import utcnow
from monitor.store import Store
from monitor.store.delivery import enqueue, route_state
from tests import test_cli
from tests.test_cli import invoke

site = test_cli.site  # the command tests' loopback site and config directory
config_dir = test_cli.config_dir


def channels(config_dir, text: str) -> None:
    (config_dir / "channels.yaml").write_text(text)


def test_send_test_delivers_a_sample_message_to_the_channel(config_dir):
    with LoopbackServer() as hook:
        hook.routes["/hook"] = Route(body=b"{}")
        channels(config_dir, f"channels:\n  hook:\n    url: json://127.0.0.1:{hook.port}/hook\n")
        result = invoke(config_dir, "send-test", "hook")
        (hit,) = [h for h in hook.hits if h.path == "/hook"]
    assert result.exit_code == 0, result.output
    assert "hook: sent a sample text message" in result.output
    body = json.loads(hit.body)
    assert "new stories" in body["title"] and "Blinken" in body["message"]


def test_send_test_reports_the_error_without_the_secret(config_dir):
    with LoopbackServer() as hook:
        hook.routes["/hook/TOKEN-SECRET-42"] = Route(status=401, body=b"bad token")
        url = f"json://127.0.0.1:{hook.port}/hook/TOKEN-SECRET-42"
        channels(config_dir, f"channels:\n  hook:\n    url: {url}\n")
        result = invoke(config_dir, "send-test", "hook")
    assert result.exit_code == 1
    assert "hook: not sent (permanent: fix the channel)" in result.output
    assert "401" in result.output and "TOKEN-SECRET-42" not in result.output


def test_send_test_names_the_channels_there_are(config_dir):
    channels(config_dir, "channels:\n  desk:\n    url: console://\n")
    result = invoke(config_dir, "send-test", "dsk")
    assert result.exit_code == 2 and "no channel 'dsk' (channels: desk)" in result.output


def test_outbox_lists_retries_and_discards_messages(config_dir, tmp_path):
    store = Store.open(f"sqlite:///{tmp_path}/monitor.db")
    now = utcnow()
    with store.engine.begin() as c:
        state = route_state(c, "troops", "desk", now)
        first = enqueue(c, state, "alert", [], "troops: 2 new articles", {"text": "x"}, now)
        second = enqueue(c, state, "alert", [], "troops: 1 new article", {"text": "y"}, now)
    (row,) = store.claim_outbox("w", now, timedelta(minutes=1), 1)
    store.finish_send(row.id, "w", now, error="HTTP 404 (error=404)", retry_at=None)
    store.close()
    listing = invoke(config_dir, "outbox")
    assert listing.exit_code == 0, listing.output
    assert "2 messages" in listing.output and "failed" in listing.output and "404" in listing.output
    assert invoke(config_dir, "outbox", "--retry", str(first)).output.strip() == (
        f"message #{first} queued again"
    )
    assert "discarded" in invoke(config_dir, "outbox", "--discard", str(second)).output
    pending = invoke(config_dir, "outbox", "--status", "pending").output
    assert "1 messages" in pending and "troops: 2 new articles" in pending
    assert invoke(config_dir, "outbox", "--retry", "999").exit_code == 2


def test_check_renders_the_users_templates_and_refuses_one_reaching_outside(config_dir):
    folder = config_dir / "templates"
    folder.mkdir()
    (folder / "text.txt").write_text("{{ message.title }}\n{% include '../../etc/passwd' %}\n")
    result = invoke(config_dir, "check")
    assert result.exit_code == 1
    assert f"{folder}:" in result.output and "passwd" in result.output
    (folder / "text.txt").write_text("Alert: {{ message.title }}\n")
    assert invoke(config_dir, "check").exit_code == 0


def test_check_refuses_a_feed_health_channel_that_channels_yaml_lacks(config_dir):
    channels(config_dir, "channels:\n  desk:\n    url: console://\n")
    with (config_dir / "monitor.yaml").open("a") as f:
        f.write("delivery:\n  feed_health: [desk, ops]\n")
    result = invoke(config_dir, "check")
    assert result.exit_code == 1
    line = len((config_dir / "monitor.yaml").read_text().splitlines())
    expected = (
        f"{config_dir}/monitor.yaml:{line}:23: delivery.feed_health: "
        "unknown channel 'ops' (channels: desk)"
    )
    assert expected in result.output
    assert invoke(config_dir, "run").exit_code == 1  # the daemon refuses to start on it too
