"""A loopback HTTP server for the demo, the tests and the benchmarks.

It serves a mutable table of routes, honours conditional GETs, and can misbehave on purpose
(latency, stalled bodies, gzip bombs, redirect loops) so the fetch stage is tested against real
sockets rather than mocks. Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """How one path answers. Mutable so a test can change a feed between polls."""

    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0  # seconds before the response starts
    stall_after_headers: float = 0.0  # seconds to hang after sending headers (read timeout)
    gzip: bool = False  # send the body gzip-encoded
    raw_gzip_body: bytes | None = None  # send these bytes as a gzip body (a bomb)
    location: str | None = None  # for 3xx
    drop_connection: bool = False  # close the socket without answering (a protocol error)


Handler = Callable[[str, dict[str, str]], Route]


@dataclass(frozen=True)
class Hit:
    """A request, recorded as soon as it has been read, before it is answered: a client that
    has its answer always finds its request in `hits`."""

    path: str
    headers: dict[str, str]
    started: float
    method: str = "GET"
    body: bytes = b""  # a POST's body (webhooks in the delivery tests)


class LoopbackServer:
    """`with LoopbackServer() as s: s.routes['/feed'] = Route(...); s.url('/feed')`."""

    def __init__(self, latency: float = 0.0) -> None:
        self.routes: dict[str, Route | Handler] = {}
        self.latency = latency  # added to every response
        self.hits: list[Hit] = []
        self.bytes_sent = 0
        self.connections = 0  # TCP connections accepted (keep-alive reuse shows here)
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()  # per path: overlapping requests seen
        self._httpd = _Server(("127.0.0.1", 0), _make_handler(self))
        # A short poll interval so stop() (and so every test's teardown) returns promptly.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for h in self.hits if h.path == path)

    def in_flight(self, prefix: str = "/") -> int:
        """Requests read and not yet answered, on paths starting with `prefix`."""
        with self._lock:
            return sum(n for path, n in self._in_flight.items() if path.startswith(prefix))

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- called from handler threads --------------------------------------------------------
    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _enter(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)
            self._in_flight[hit.path] += 1
            self.max_in_flight[hit.path] = max(
                self.max_in_flight[hit.path], self._in_flight[hit.path]
            )

    def _leave(self, path: str, sent: int) -> None:
        with self._lock:
            self._in_flight[path] -= 1
            self.bytes_sent += sent


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048  # the 1,000-feed benchmark opens many connections at once
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-exchange (timeouts, aborted bodies) are expected, not news.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def setup(self) -> None:  # once per connection
            super().setup()
            server._connected()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve("GET", b"")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self._serve("POST", self.rfile.read(length) if length else b"")

        def _serve(self, method: str, body: bytes) -> None:
            path = self.path
            server._enter(Hit(path, dict(self.headers), time.monotonic(), method, body))
            sent = 0
            try:
                sent = self._answer(path)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                server._leave(path, sent)

        def _answer(self, path: str) -> int:
            entry = server.routes.get(path)
            route = entry(path, dict(self.headers)) if callable(entry) else entry
            if route is None:
                route = Route(body=b"not found", status=404, content_type="text/plain")
            if server.latency or route.delay:
                time.sleep(server.latency + route.delay)
            if route.drop_connection:
                self.close_connection = True
                return 0
            if route.status == 200 and _not_modified(route, self.headers):
                self.send_response(304)
                self._validators(route)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return 0
            body = route.body
            encoded = route.raw_gzip_body
            if encoded is None and route.gzip:
                encoded = gzip.compress(body)
            payload = encoded if encoded is not None else body
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            if encoded is not None:
                self.send_header("Content-Encoding", "gzip")
            if route.location:
                self.send_header("Location", route.location)
            for name, value in route.headers.items():
                self.send_header(name, value)
            self._validators(route)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if route.stall_after_headers:
                self.wfile.flush()
                time.sleep(route.stall_after_headers)
            self.wfile.write(payload)
            return len(payload)

        def _validators(self, route: Route) -> None:
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.last_modified:
                self.send_header("Last-Modified", route.last_modified)

    return _Handler


def _not_modified(route: Route, headers: object) -> bool:
    inm = headers.get("If-None-Match")  # type: ignore[attr-defined]
    ims = headers.get("If-Modified-Since")  # type: ignore[attr-defined]
    if route.etag and inm:
        return inm == route.etag
    return bool(route.last_modified and ims and ims == route.last_modified)
