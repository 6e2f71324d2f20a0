"""`monitor run` as systemd runs it: a real NOTIFY_SOCKET (READY, WATCHDOG, RELOADING, STOPPING),
SIGHUP reload, SIGTERM, /metrics and /healthz scraped; and the unit files checked with systemd's
own tools (systemd-analyze verify, and security --offline for the exposure score)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from monitor.demo.server import LoopbackServer, Route
from tests.support import Item, page, rss
from tests.test_daemon import stop, wait_for, write_config

ROOT = Path(__file__).resolve().parent.parent
UNITS = [ROOT / "monitor.service", ROOT / "deploy" / "monitor@.service"]
MAX_EXPOSURE = 2.0
STORY = "Russia has massed troops along the border, officials said on {day}. " * 6


class NotifySocket:
    """What systemd would receive on $NOTIFY_SOCKET: an abstract datagram socket we listen on."""

    def __init__(self) -> None:
        self.name = f"@monitor-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def fields(self) -> list[str]:
        return [line for _, m in list(self.messages) for line in m.split("\n")]

    def count(self, field: str) -> int:
        return self.fields().count(field)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def start_service(config: Path, notify: NotifySocket, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "NOTIFY_SOCKET": notify.name,
        "WATCHDOG_USEC": "1000000",  # WatchdogSec=1s: a ping every 0.5 s
    }
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "-c", str(config), *extra, "run"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_lines(proc: subprocess.Popen[str], into: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        into.append(line)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == (f"{name}{{{want}}}" if want else name):
            return float(value)
    return 0.0


def test_run_under_systemd_notifies_ready_pings_the_watchdog_reloads_and_stops(tmp_path):
    notify = NotifySocket()
    with LoopbackServer() as server:
        server.routes["/hook"] = Route(body=b"{}")
        server.routes["/feed.xml"] = Route(body=rss([]))
        server.routes["/other.xml"] = Route(body=rss([]))
        config = write_config(
            tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"rferl": server.url("/feed.xml")}
        )
        with (config / "monitor.yaml").open("a") as f:
            f.write("metrics:\n  listen: 127.0.0.1:0\n")
        (config / "channels.yaml").write_text(
            f"channels:\n  hook:\n    url: json://127.0.0.1:{server.port}/hook\n"
        )
        (config / "watches.yaml").write_text(
            "watches:\n  troops:\n    keywords: [troops]\n    notify: [hook]\n    group_wait: 0s\n"
        )
        proc = start_service(config, notify)
        lines: list[str] = []
        reader = threading.Thread(target=read_lines, args=(proc, lines), daemon=True)
        reader.start()
        try:
            wait_for(lambda: notify.count("READY=1") == 1)
            wait_for(lambda: notify.count("WATCHDOG=1") >= 3, timeout=10)
            assert any(f.startswith("STATUS=polling 1 feeds") for f in notify.fields())
            assert f"MAINPID={proc.pid}" in notify.fields()

            # a story after the first (backlog) poll: ingested, matched, delivered
            wait_for(lambda: server.count("/feed.xml") >= 1)
            server.routes["/story.html"] = Route(body=page("Story", [STORY.format(day="Monday")]))
            item = Item("s1", "Story", server.url("/story.html"))
            server.routes["/feed.xml"] = Route(body=rss([item]))
            wait_for(lambda: server.count("/hook") >= 1)

            (port,) = {
                int(m) for line in lines for m in re.findall(r"127.0.0.1:(\d+)/metrics", line)
            }
            base = f"http://127.0.0.1:{port}"
            wait_for(
                lambda: (
                    metric(get(f"{base}/metrics")[1], "monitor_deliveries_queued", status="pending")
                    == 0
                ),
                timeout=20,
            )
            status, text = get(f"{base}/metrics")
            assert status == 200
            assert metric(text, "monitor_feeds_polled_total", outcome="ok") >= 2
            assert metric(text, "monitor_articles_ingested_total", kind="new") == 1
            assert metric(text, "monitor_matches_total", watch="troops") == 1
            assert metric(text, "monitor_deliveries_total", channel="hook", result="sent") == 1
            assert metric(text, "monitor_cycle_duration_seconds_count", job="tick") >= 2
            assert metric(text, "monitor_feed_poll_duration_seconds_count") >= 2
            assert 0 <= metric(text, "monitor_last_successful_poll_age_seconds") < 30
            assert metric(text, "monitor_feeds_active") == 1
            assert metric(text, "monitor_feeds_broken") == 0
            status, body = get(f"{base}/healthz")
            assert status == 200 and '"database": "ok"' in body

            # SIGHUP: a second outlet appears in feeds.yaml and is polled; systemd is told
            text = (config / "feeds.yaml").read_text()
            other = f"  other:\n    feeds:\n      - url: {server.url('/other.xml')}\n"
            (config / "feeds.yaml").write_text(text + other)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: server.count("/other.xml") >= 1)
            wait_for(lambda: notify.count("READY=1") == 2)
            fields = notify.fields()
            assert fields.index("RELOADING=1") < len(fields) - fields[::-1].index("READY=1")
            assert any(f.startswith("STATUS=polling 2 feeds") for f in fields)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=40)
            reader.join(timeout=10)
            proc.communicate()  # closes the pipes
            notify.close()
    assert code == 0, "".join(lines)
    assert "STOPPING=1" in notify.fields()
    assert any("reloaded: 2 feeds" in line for line in lines)
    assert any("monitor stopped" in line for line in lines)


def test_a_second_sigterm_exits_at_once(tmp_path):
    with LoopbackServer() as server:
        server.routes["/slow.html"] = Route(
            body=page("Slow", [STORY.format(day="Monday")]), delay=15
        )
        item = Item("s1", "Slow", server.url("/slow.html"))
        server.routes["/feed.xml"] = Route(body=rss([item]))
        config = write_config(
            tmp_path / "cfg",
            f"sqlite:///{tmp_path}/m.db",
            {"rferl": server.url("/feed.xml")},
            read_timeout="30s",
            total_timeout="60s",
        )
        notify = NotifySocket()
        proc = start_service(config, notify)
        try:
            wait_for(lambda: server.count("/slow.html") == 1)  # a page in flight for 15 s
            proc.send_signal(signal.SIGTERM)
            wait_for(lambda: "STOPPING=1" in notify.fields())
            started = time.monotonic()
            code, err = stop(proc)  # the second SIGTERM
            took = time.monotonic() - started
        finally:
            notify.close()
    assert code == 128 + signal.SIGTERM, err
    assert took < 5, err
    assert "received SIGTERM again: exiting at once" in err


def test_an_unreachable_database_at_start_exits_1_with_one_line(tmp_path):
    config = write_config(
        tmp_path / "cfg",
        "postgresql+psycopg://monitor:Sup3rSecretPw@127.0.0.1:9/monitor",  # discard port
        {"rferl": "http://127.0.0.1:9/feed.xml"},
    )
    for command in ("run", "status", "feeds"):
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "-c", str(config), command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(
            "monitor: cannot open the database postgresql+psycopg://monitor:***@"
        )
        assert "Sup3rSecretPw" not in done.stderr + done.stdout


# -- the unit files ----------------------------------------------------------------------------
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: apt-get install systemd (.ci/run does)"
    return found


def runnable_copy(unit: Path, folder: Path) -> Path:
    """The unit with ExecStart's /opt/monitor/.venv rewritten to this test's virtualenv.

    `systemd-analyze verify` checks that every command exists and is executable; the unit names
    where deploy/install.sh puts the daemon, which is not there on a build machine. The rest of
    the file is verified as written (`--root` would also hide systemd's own units from it)."""
    venv_bin = Path(sys.executable).parent
    text = unit.read_text().replace("/opt/monitor/.venv/bin/", f"{venv_bin}/")
    assert (venv_bin / "monitor").exists()
    copy = folder / unit.name
    copy.write_text(text)
    for other in unit.parent.glob("*.target"):  # PartOf= of the template
        shutil.copy(other, folder)
    return copy


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_unit_verifies_clean(unit, tmp_path):
    copy = runnable_copy(unit, tmp_path)
    done = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys too, with a warning: any output at all is a failure
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_units_exposure_is_at_most_2(unit):
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_unit_runs_the_daemon_as_the_issue_asks(unit):
    s = unit_settings(unit)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["ConfigurationDirectory"] == ["monitor"]
    assert s["StateDirectory"][0].startswith("monitor")
    assert s["EnvironmentFile"] == ["-%E/monitor/monitor.env"]
    assert s["KillMode"] == ["mixed"]  # SIGTERM to the daemon, not its extraction workers
    assert s["User"] == ["monitor"]


def test_sigterm_lets_the_delivery_being_sent_finish_and_records_it(tmp_path):
    from monitor.store import Store

    with LoopbackServer() as server:
        server.routes["/hook"] = Route(body=b"{}", delay=3.0)  # a slow channel
        server.routes["/feed.xml"] = Route(body=rss([]))
        db = tmp_path / "m.db"
        config = write_config(
            tmp_path / "cfg", f"sqlite:///{db}", {"rferl": server.url("/feed.xml")}
        )
        (config / "channels.yaml").write_text(
            f"channels:\n  hook:\n    url: json://127.0.0.1:{server.port}/hook\n"
        )
        (config / "watches.yaml").write_text(
            "watches:\n  troops:\n    keywords: [troops]\n    notify: [hook]\n    group_wait: 0s\n"
        )
        notify = NotifySocket()
        proc = start_service(config, notify)
        try:
            wait_for(lambda: server.count("/feed.xml") >= 1)
            server.routes["/story.html"] = Route(body=page("Story", [STORY.format(day="Monday")]))
            item = Item("s1", "Story", server.url("/story.html"))
            server.routes["/feed.xml"] = Route(body=rss([item]))
            wait_for(lambda: server.count("/hook") == 1)  # the channel has it, not yet answered
        finally:
            code, err = stop(proc)
            notify.close()
    assert code == 0, err
    assert "waiting for the deliveries being sent" in err
    store = Store.open(f"sqlite:///{db}")
    try:
        (row,) = store.outbox()
    finally:
        store.close()
    assert (row.status, row.attempts) == ("sent", 1)  # recorded: not sent again at the next start
