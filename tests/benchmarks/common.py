"""Shared parts of the benchmarks: a multi-host loopback server farm, results, machine facts.

The farm runs in its own process so that serving 1,000 feeds never competes with the code under
test for the same interpreter lock (it still competes for the machine's cores; see the notes in
docs/benchmarks.md). Each host is a `LoopbackServer` bound to its own loopback address
(127.0.0.1, 127.0.0.2, ... 127.0.0.50), so per-host concurrency limits apply as they would to
real outlets.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.demo.server import Hit, LoopbackServer, Route, _make_handler, _Server
from tests.support import PG_ADMIN_URL, pg_database  # noqa: F401 (poll_cycle imports it here)

Site = Callable[[int, str], dict[str, Route]]
"""Builds one host's routes from (host index, base URL); must be picklable (a module-level
class instance), since it is sent to the farm process."""

# -- the server farm ---------------------------------------------------------------------------


class _CountingWriter:
    """Wraps a handler's wfile and counts every byte written (status line, headers, body)."""

    def __init__(self, inner: Any, server: HostServer) -> None:
        self._inner = inner
        self._server = server

    def write(self, data: bytes) -> int:
        n = self._inner.write(data)
        self._server._count_wire(len(data))
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class HostServer(LoopbackServer):
    """A LoopbackServer on another loopback address that also counts wire bytes, statuses and
    the requests in flight to the whole host."""

    def __init__(self, host: str, latency: float = 0.0) -> None:
        super().__init__(latency)
        self._httpd.server_close()  # the parent bound 127.0.0.1; rebind on our own address
        self.host = host
        self.wire_bytes = 0
        self.statuses: Counter[int] = Counter()
        self.host_in_flight = 0
        self.host_max_in_flight = 0
        base = _make_handler(self)
        farm = self

        class Handler(base):  # type: ignore[valid-type, misc]
            def setup(self) -> None:
                super().setup()
                self.wfile = _CountingWriter(self.wfile, farm)

            def send_response(self, code: int, message: str | None = None) -> None:
                with farm._lock:
                    farm.statuses[code] += 1
                super().send_response(code, message)

        self._httpd = _Server((host, 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _count_wire(self, n: int) -> None:
        with self._lock:
            self.wire_bytes += n

    def _enter(self, path: str) -> None:
        super()._enter(path)
        with self._lock:
            self.host_in_flight += 1
            self.host_max_in_flight = max(self.host_max_in_flight, self.host_in_flight)

    def _leave(self, hit: Hit, sent: int) -> None:
        super()._leave(hit, sent)
        with self._lock:
            self.host_in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": len(self.hits),
                "wire_bytes": self.wire_bytes,
                "body_bytes": self.bytes_sent,
                "statuses": dict(self.statuses),
                "max_in_flight": self.host_max_in_flight,
            }

    def reset(self) -> None:
        with self._lock:
            self.hits.clear()
            self.wire_bytes = 0
            self.bytes_sent = 0
            self.statuses.clear()
            self.host_max_in_flight = 0
            self.max_in_flight.clear()


def _farm_main(conn: Any, hosts: list[str], latency: float, site: Site) -> None:
    servers = []
    for i, host in enumerate(hosts):
        server = HostServer(host, latency)
        server.routes = site(i, server.base)  # type: ignore[assignment]
        servers.append(server.start())
    conn.send([s.base for s in servers])
    while True:
        command = conn.recv()
        if command == "stats":
            conn.send([s.stats() for s in servers])
        elif command == "strip-validators":  # the server stops honouring conditional GETs
            for s in servers:
                for route in s.routes.values():
                    if isinstance(route, Route):
                        route.etag = route.last_modified = None
            conn.send(True)
        elif command == "reset":
            for s in servers:
                s.reset()
            conn.send(True)
        elif command == "stop":
            for s in servers:
                s.stop()
            conn.send(True)
            return


@dataclass
class FarmStats:
    requests: int
    wire_bytes: int
    body_bytes: int
    statuses: dict[int, int]
    max_in_flight_per_host: int


class ServerFarm:
    """`with ServerFarm(50, latency=0.1, site=...) as farm: farm.bases` (one URL per host)."""

    def __init__(self, hosts: int, latency: float, site: Site) -> None:
        if not 1 <= hosts <= 50:
            raise ValueError("use 1..50 hosts (127.0.0.1 .. 127.0.0.50)")
        self.hosts = [f"127.0.0.{i + 1}" for i in range(hosts)]
        self.latency = latency
        self.site = site
        self.bases: list[str] = []
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_farm_main, args=(child, self.hosts, latency, site), daemon=True
        )

    def __enter__(self) -> ServerFarm:
        self._proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("server farm did not start")
        self.bases = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send("stop")
            self._conn.poll(10)
        finally:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()

    @property
    def pid(self) -> int:
        return self._proc.pid or 0

    def cpu_seconds(self) -> float:
        """CPU time the farm's process has used so far (user + system)."""
        return process_cpu_seconds(self.pid)

    def stats(self) -> FarmStats:
        self._conn.send("stats")
        per_host = self._conn.recv()
        statuses: Counter[int] = Counter()
        for h in per_host:
            statuses.update(h["statuses"])
        return FarmStats(
            requests=sum(h["requests"] for h in per_host),
            wire_bytes=sum(h["wire_bytes"] for h in per_host),
            body_bytes=sum(h["body_bytes"] for h in per_host),
            statuses=dict(sorted(statuses.items())),
            max_in_flight_per_host=max(h["max_in_flight"] for h in per_host),
        )

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def strip_validators(self) -> None:
        """Every route stops sending ETag/Last-Modified, so conditional GETs get a 200."""
        self._conn.send("strip-validators")
        self._conn.recv()


# -- PostgreSQL scratch databases ------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (0.0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by this machine's PostgreSQL server processes (0.0 if none)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    total += process_cpu_seconds(int(proc.name))
            except OSError:
                continue
    return total


def postgres_available() -> bool:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


# -- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure of a benchmark, with its target when it has one."""

    figure: str
    value: float | int | str
    unit: str = ""
    target: str | None = None  # e.g. "<= 5 s"
    met: bool | None = None  # None: informational


@dataclass
class Result:
    name: str
    title: str
    command: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        figure: str,
        value: float | int | str,
        unit: str = "",
        target: str | None = None,
        met: bool | None = None,
    ) -> None:
        self.rows.append(Row(figure, value, unit, target, met))
        print(
            f"  {figure}: {fmt(value)} {unit}".rstrip()
            + (f"   target {target}: {'MET' if met else 'MISSED'}" if target else ""),
            flush=True,
        )

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)


def fmt(value: float | int | str) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def cli(name: str, description: str, variants: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m tests.benchmarks.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if variants is not None:
        parser.add_argument(
            "--variants", default=variants, help=f"comma-separated variants (default: {variants})"
        )
    parser.add_argument("--json", type=Path, help="also write the result to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a smaller run, for trying it out")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the hot part")
    return parser.parse_args()


def load_note(result: Result) -> None:
    """Note the machine's load: figures from a busy machine are slower, not wrong."""
    loads = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result.note(f"Load average at the end: {loads} on {len(os.sched_getaffinity(0))} CPUs.")


def finish(result: Result, path: Path | None, started: float) -> None:
    result.seconds = time.monotonic() - started
    print(f"  ({result.name} took {result.seconds:.0f} s)", flush=True)
    if path is not None:
        path.write_text(json.dumps(asdict(result), indent=2))


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024:,} MB RAM"
    except OSError:
        pass
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "memory": mem,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- /proc helpers -----------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in kB; {} if it is gone."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return out


def proc_pss(pid: int) -> int | None:
    """Proportional set size in kB (shared pages split between the processes sharing them)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(t) for t in text]
    except OSError:
        pass
    return sorted(set(found))


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of a process (a forkserver's workers are grandchildren)."""
    found, todo = [], children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children(p)
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
