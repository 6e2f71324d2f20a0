"""Two senders, as two OS processes, draining one outbox on PostgreSQL: every message reaches the
webhook exactly once, and both processes share the work (tests/outbox_worker.py is the worker)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.store import Store
from monitor.store.delivery import enqueue, route_state
from monitor.store.schema import outbox

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.postgres


class Webhook:
    """A loopback webhook that records each POST's title before it answers, so nothing the
    senders were told was accepted can be missing from `titles`."""

    def __init__(self, delay: float) -> None:
        self.titles: list[str] = []
        self.delay = delay
        lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    hook.titles.append(json.loads(body)["title"])
                time.sleep(hook.delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hooks: list[Webhook] = []

    def start(delay: float) -> Webhook:
        hook = Webhook(delay)
        hook.thread.start()
        hooks.append(hook)
        return hook

    yield start  # type: ignore[misc]
    for hook in hooks:
        hook.server.shutdown()
        hook.server.server_close()


def queue(url: str, n: int) -> list[str]:
    store = Store.open(url)
    now = datetime.now(UTC)
    titles = [f"message {i}" for i in range(n)]
    with store.engine.begin() as c:
        state = route_state(c, "troops", "hook", now)
        for title in titles:
            content = {"format": "text", "subject": title, "text": f"body of {title}"}
            enqueue(c, state, "alert", [], title, content, now)
    store.close()
    return titles


def race(url: str, hook: Webhook, lease: float, limit: int, go: Path) -> list[dict[str, object]]:
    """Start two workers, let them go together, and return what each reports."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.outbox_worker", url, owner, hook.url]
            + [str(lease), str(limit), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for owner in ("worker-a", "worker-b")
    ]
    try:
        time.sleep(0.5)  # both import the project and connect; then both start at once
        go.touch()
        outputs = [worker.communicate(timeout=90) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    reports = []
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def statuses(url: str) -> dict[str, int]:
    store = Store.open(url, migrate=False)
    with store.engine.connect() as c:
        rows = c.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
        found = {status: count for status, count in rows}
    store.close()
    return found


@pytest.mark.parametrize(
    ("messages", "delay", "lease", "limit"),
    [
        pytest.param(200, 0.005, 120.0, 20, id="200 messages, a fast webhook"),
        # a claimed batch takes longer to send than the lease lasts (a slow channel): the rest
        # of the batch must not be sent by both processes once the lease lapses
        pytest.param(40, 0.08, 1.0, 20, id="a batch outlasting its lease"),
    ],
)
def test_two_sender_processes_deliver_every_message_exactly_once(
    pg_url: str,
    webhook: object,
    tmp_path: Path,
    messages: int,
    delay: float,
    lease: float,
    limit: int,
) -> None:
    titles = queue(pg_url, messages)
    hook = webhook(delay)  # type: ignore[operator]

    reports = race(pg_url, hook, lease, limit, tmp_path / "go")

    received = Counter(hook.titles)
    assert [t for t, n in received.items() if n > 1] == []  # nothing twice
    assert sorted(received) == sorted(titles)  # nothing missing
    assert statuses(pg_url) == {"sent": messages}
    assert all(r["sent"] > 0 for r in reports), reports  # both processes did some of the work
    assert sum(r["sent"] for r in reports) == messages  # type: ignore[misc]
