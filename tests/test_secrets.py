"""No secret reaches a log line or a command's output: a channel URL holding a password and a
token is driven through every error path (a channel down, one refusing for good, a URL apprise
does not know, send-test, outbox, check, a crash's traceback), with text and JSON logs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys

import pytest

from monitor import logs
from monitor.demo.server import LoopbackServer, Route
from tests.support import Item, page, rss
from tests.test_daemon import start, stop, wait_for, write_config

PASSWORD = "Hunter2Secret"  # from the environment, as a user would keep it
TOKEN = "xoxbT0kenInThePath42"  # part of the URL itself
UNKNOWN = "nosuch://ApiKey9876Secret/channel"  # a scheme apprise does not know
SECRETS = (PASSWORD, TOKEN, "ApiKey9876Secret")
STORY = "Russia has massed troops along the border, officials said on Monday. " * 6


def monitor(config, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_secret_bearing_channel_url_never_reaches_any_output(tmp_path, log_format):
    env = {**os.environ, "HOOK_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    with LoopbackServer() as server:
        server.routes["/down/" + TOKEN] = Route(status=503, body=b"down for maintenance")
        server.routes["/refuses/" + TOKEN] = Route(status=401, body=b"bad credentials")
        server.routes["/feed.xml"] = Route(body=rss([]))
        config = write_config(
            tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"rferl": server.url("/feed.xml")}
        )
        with (config / "monitor.yaml").open("a") as f:
            f.write(f"logging:\n  format: {log_format}\n")
            f.write("delivery:\n  retry_base: 1s\n  retry_max: 1s\n")
        hook = f"json://alice:${{HOOK_PASSWORD}}@127.0.0.1:{server.port}"
        (config / "channels.yaml").write_text(
            "channels:\n"
            f"  down:\n    url: {hook}/down/{TOKEN}\n"
            f"  refuses:\n    url: {hook}/refuses/{TOKEN}\n"
            f"  unknown:\n    url: {UNKNOWN}\n"
        )
        (config / "watches.yaml").write_text(
            "watches:\n  troops:\n    keywords: [troops]\n"
            "    notify: [down, refuses, unknown]\n    group_wait: 0s\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "-c", str(config), "-vv", "run"],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            wait_for(lambda: server.count("/feed.xml") >= 1)
            server.routes["/story.html"] = Route(body=page("Story", [STORY]))
            server.routes["/feed.xml"] = Route(
                body=rss([Item("s1", "Story", server.url("/story.html"))])
            )
            wait_for(lambda: server.count(f"/down/{TOKEN}") >= 2)  # retried: logged twice
            wait_for(lambda: server.count(f"/refuses/{TOKEN}") >= 1)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=40)
        assert proc.returncode == 0, err
        # the paths were taken and logged, with the channel named instead of its URL
        assert "channel down: message #" in err and "not sent" in err
        assert "channel refuses refused message #" in err
        assert "channel unknown refused message #" in err
        if log_format == "json":
            for line in err.splitlines():
                json.loads(line)  # one JSON object per line, every line
        assert_no_secret(err + out)

        # The commands that show channel errors
        outbox = monitor(config, "outbox", env={**env, "COLUMNS": "400"})
        assert "401" in outbox.stdout or "bad credentials" in outbox.stdout, outbox.stdout
        assert_no_secret(outbox.stdout + outbox.stderr)
        for channel in ("down", "refuses", "unknown"):
            sent = monitor(config, "send-test", channel, env=env)
            assert sent.returncode == 1 and f"{channel}: not sent" in sent.stderr
            assert_no_secret(sent.stdout + sent.stderr)


def test_check_never_shows_a_secret_that_makes_a_config_invalid(tmp_path):
    config = write_config(tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"a": "http://a.test/"})
    (config / "channels.yaml").write_text("channels:\n  desk:\n    url: ${DESK_WEBHOOK}\n")
    env = {**os.environ, "DESK_WEBHOOK": TOKEN}  # a bare token, not a URL: invalid
    checked = monitor(config, "check", env=env)
    assert checked.returncode == 1 and "channels.yaml:3:" in checked.stderr
    assert_no_secret(checked.stdout + checked.stderr)
    ran = monitor(config, "run", env=env)
    assert ran.returncode == 1
    assert_no_secret(ran.stdout + ran.stderr)


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_traceback_carrying_a_secret_is_masked_on_one_line(json_lines):
    logs.register_url(f"slack://{TOKEN}/B0123ABCD/ZZZ987secret")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.RedactingFormatter(json_lines=json_lines))
    log = logging.getLogger("test.secrets")
    log.addHandler(handler)
    try:
        try:
            raise ConnectionError(f"cannot reach slack://{TOKEN}/B0123ABCD/ZZZ987secret")
        except ConnectionError:
            log.exception("sending to %s failed", f"slack://{TOKEN}/B0123ABCD/ZZZ987secret")
        log.error("db at postgresql://monitor:NeverRegistered1@db.example/monitor is down")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    lines = output.splitlines()
    assert len(lines) == 2  # the traceback is part of its event's one line
    assert "ConnectionError" in lines[0] and "***" in lines[0]
    assert_no_secret(output)
    assert "ZZZ987secret" not in output and "NeverRegistered1" not in output
    assert "postgresql://monitor:***@db.example/monitor" in output  # the safety net
    if json_lines:
        assert "ConnectionError" in json.loads(lines[0])["exception"]


def test_the_daemons_own_stop_message_survives_redaction(tmp_path):
    """Masking is by value: ordinary words stay readable (a regression guard for the filter)."""
    with LoopbackServer() as server:
        server.routes["/feed.xml"] = Route(body=rss([]))
        config = write_config(
            tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"rferl": server.url("/feed.xml")}
        )
        proc = start(config)
        wait_for(lambda: server.count("/feed.xml") >= 1)
        code, err = stop(proc, signal.SIGTERM)
    assert code == 0
    assert "monitor running as" in err and f"database sqlite:///{tmp_path}/m.db" in err


def test_under_journald_each_line_carries_its_priority(tmp_path):
    config = write_config(
        tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"gone": "http://127.0.0.1:9/feed.xml"}
    )
    read_end, write_end = os.pipe()
    st = os.fstat(write_end)  # what systemd would put in JOURNAL_STREAM for our stderr
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "-c", str(config), "run"],
        stderr=write_end,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    os.close(write_end)
    with os.fdopen(read_end) as err:
        lines = []
        for line in err:
            lines.append(line)
            if "feed gone failed" in line:
                proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert any(line.startswith("<6>") and "monitor running as" in line for line in lines)
    assert any(line.startswith("<4>") and "feed gone failed" in line for line in lines)
    assert all(re.match(r"<[2-7]>", line) for line in lines), lines


def test_log_format_json_on_the_command_line_makes_every_log_line_json(tmp_path):
    config = write_config(
        tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"gone": "http://127.0.0.1:9/feed.xml"}
    )
    polled = monitor(config, "--log-format", "json", "poll", "--once", env=dict(os.environ))
    logged = [json.loads(line) for line in polled.stderr.splitlines() if line.startswith("{")]
    assert [e["level"] for e in logged if "feed gone failed" in e["message"]] == ["WARNING"]
    # the rest of stderr is the command's own report, not log lines
    assert all(not line.startswith("20") for line in polled.stderr.splitlines())
