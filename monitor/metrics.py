"""Prometheus metrics and the loopback listener that serves them with /healthz.

The counters live in a registry of their own (not prometheus_client's global one, so a test
process can build several daemons) and are counted from the pipeline's own code paths with one
call each: `feed_polled`, `matched`, `delivered`. Gauges that are facts about the store (broken
feeds, pending deliveries) are read from it by the daemon every `GAUGE_REFRESH` seconds, never in
the listener's thread. The listener is off unless monitor.yaml has `metrics: {listen: ...}`."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

GAUGE_REFRESH = 15.0  # seconds between reads of the store's gauges
DB_CHECK_TIMEOUT = 5.0  # /healthz fails when a database round trip takes longer

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # memory, CPU, open files of the daemon

FEEDS_POLLED = Counter(
    "monitor_feeds_polled",
    "Feed polls, by outcome (ok, not_modified, error, skipped).",
    ["outcome"],
    registry=REGISTRY,
)
FETCH_ERRORS = Counter(
    "monitor_fetch_errors", "Feed polls that failed (fetch, HTTP or parse).", registry=REGISTRY
)
ARTICLES = Counter(
    "monitor_articles_ingested",
    "Articles stored, by kind (new, revision, backlog).",
    ["kind"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "monitor_duplicates", "Entries recognised as an article already stored.", registry=REGISTRY
)
MATCHES = Counter("monitor_matches", "Matches found, per watch.", ["watch"], registry=REGISTRY)
DELIVERIES = Counter(
    "monitor_deliveries",
    "Messages handed to channels, by result (sent, failed: refused for good, retry).",
    ["channel", "result"],
    registry=REGISTRY,
)
POLL_SECONDS = Histogram(
    "monitor_feed_poll_duration_seconds",
    "One feed's poll from fetch to commit (pages fetched and extracted included).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
CYCLE_SECONDS = Histogram(
    "monitor_cycle_duration_seconds",
    "One scheduler job's run, by job (tick: claim due feeds; deliver; match; housekeeping).",
    ["job"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
    registry=REGISTRY,
)
BROKEN_FEEDS = Gauge(
    "monitor_feeds_broken", "Active feeds whose last poll failed.", registry=REGISTRY
)
FEEDS_ACTIVE = Gauge("monitor_feeds_active", "Feeds in feeds.yaml.", registry=REGISTRY)
OUTBOX = Gauge(
    "monitor_deliveries_queued",
    "Messages in the outbox, by status (pending, failed).",
    ["status"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "monitor_last_successful_poll_timestamp_seconds",
    "When any feed was last polled successfully (Unix time).",
    registry=REGISTRY,
)
LAST_SUCCESS_AGE = Gauge(
    "monitor_last_successful_poll_age_seconds",
    "Seconds since any feed was last polled successfully (-1 before the first).",
    registry=REGISTRY,
)
_last_success = {"at": 0.0}  # Unix time of the last successful poll, 0 before the first


def _set_last_success(at: float) -> None:
    if at > _last_success["at"]:
        _last_success["at"] = at
        LAST_SUCCESS.set(at)


LAST_SUCCESS_AGE.set_function(
    lambda: time.time() - _last_success["at"] if _last_success["at"] else -1.0
)
LOOP_AGE = Gauge(
    "monitor_event_loop_heartbeat_age_seconds",
    "Seconds since the daemon's event loop last ran its heartbeat (stuck when large).",
    registry=REGISTRY,
)


# -- one-line calls from the pipeline ------------------------------------------------------------
def feed_polled(
    status: str, new: int, duplicates: int, revisions: int, backlog: int, seconds: float
) -> None:
    """Count one feed's poll (its FeedOutcome's fields)."""
    outcome = status.replace("-", "_")
    FEEDS_POLLED.labels(outcome).inc()
    if outcome == "error":
        FETCH_ERRORS.inc()
    elif outcome in ("ok", "not_modified"):
        _set_last_success(time.time())
    for kind, n in (("new", new - backlog), ("backlog", backlog), ("revision", revisions)):
        if n > 0:
            ARTICLES.labels(kind).inc(n)
    if duplicates:
        DUPLICATES.inc(duplicates)
    if outcome != "skipped":
        POLL_SECONDS.observe(seconds)


def timed(job: str, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """`fn`, a scheduler job, with each run's duration observed as the job's cycle."""

    async def run() -> None:
        with CYCLE_SECONDS.labels(job).time():
            await fn()

    run.__name__ = fn.__name__
    return run


def matched(watches: Iterable[str]) -> None:
    """Count matches found, one watch name per match."""
    for watch in watches:
        MATCHES.labels(watch).inc()


def delivered(channel: str, result: str) -> None:
    """Count one send: result is sent, failed (for good) or retry."""
    DELIVERIES.labels(channel, result).inc()


@dataclass(frozen=True)
class StoreGauges:
    """What the daemon reads from the store for the gauges."""

    feeds_active: int
    feeds_broken: int
    outbox_pending: int
    outbox_failed: int
    last_success_at: float | None  # Unix time


def set_store_gauges(g: StoreGauges) -> None:
    FEEDS_ACTIVE.set(g.feeds_active)
    BROKEN_FEEDS.set(g.feeds_broken)
    OUTBOX.labels("pending").set(g.outbox_pending)
    OUTBOX.labels("failed").set(g.outbox_failed)
    if g.last_success_at is not None:  # a restart (or another worker) knows it from the store
        _set_last_success(g.last_success_at)


# -- the listener --------------------------------------------------------------------------------
@dataclass
class Health:
    """How /healthz decides: the event loop's heartbeat age and a database round trip."""

    loop_age: Callable[[], float]
    ping_database: Callable[[], object]
    stuck_after: float

    def check(self) -> tuple[bool, dict[str, Any]]:
        age = self.loop_age()
        LOOP_AGE.set(age)
        report: dict[str, Any] = {"event_loop_age_seconds": round(age, 3)}
        ok = age <= self.stuck_after
        if not ok:
            report["event_loop"] = f"stuck: no heartbeat for {age:.0f}s"
        report["database"] = self._database()
        ok = ok and report["database"] == "ok"
        report["status"] = "ok" if ok else "failing"
        return ok, report

    def _database(self) -> str:
        # On a thread of its own: a database that hangs must not hang the answer.
        pool = ThreadPoolExecutor(1, "monitor-healthz")
        try:
            pool.submit(self.ping_database).result(timeout=DB_CHECK_TIMEOUT)
        except FutureTimeout:
            return f"unreachable: no answer within {DB_CHECK_TIMEOUT:.0f}s"
        except Exception as err:  # any driver error: say which kind, the log has the rest
            log.warning("healthz: database round trip failed: %s", err)
            return f"unreachable: {type(err).__name__}"
        finally:
            pool.shutdown(wait=False)
        return "ok"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """A scrape every 15 s would fill the journal."""


def app(health: Health) -> Callable[..., Iterable[bytes]]:
    """WSGI app: /metrics (Prometheus text format) and /healthz (200 or 503, JSON)."""
    metrics_app = make_wsgi_app(REGISTRY)

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            LOOP_AGE.set(health.loop_age())
            return metrics_app(environ, start_response)
        if path == "/healthz":
            ok, report = health.check()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(report).encode() + b"\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /healthz\n"]

    return serve


class Listener:
    """The HTTP listener on its own daemon thread; `close()` stops it."""

    def __init__(self, host: str, port: int, health: Health) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("Server", (ThreadingWSGIServer,), {"address_family": family})
        self.server: WSGIServer = make_server(
            host, port, app(health), server_class, handler_class=_QuietHandler
        )
        self.port: int = self.server.server_port
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="monitor-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
