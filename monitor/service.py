"""systemd's service protocol: readiness, status, reload and watchdog notifications.

sd_notify(3) is one datagram of `KEY=value` lines to the socket named by $NOTIFY_SOCKET (a name
starting with '@' is in the abstract namespace). Without that variable (not run by systemd with
Type=notify) every call is a no-op. The protocol is a dozen lines, so it is spoken here rather
than through libsystemd bindings, which would need a C toolchain or a distribution package.

The watchdog is pinged from a task on the daemon's event loop: code that blocks the loop stops
the pings, and systemd restarts the service once WatchdogSec passes without one."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to systemd; does nothing when not run under Type=notify."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        self._sock: socket.socket | None = None
        if address.startswith("@"):
            self._address = "\0" + address[1:]  # abstract namespace
        elif address.startswith("/"):
            self._address = address
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> None:
        """Send fields such as "READY=1" or "STATUS=polling 12 feeds" in one datagram."""
        if self._sock is None or self._address is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as err:  # systemd gone (shutdown) or the socket full: never fatal
            log.debug("sd_notify failed: %s", err)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1 (Type=notify-reload); older
        # versions ignore the extra field.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: finishing in-flight work")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between pings (half of WatchdogSec, as sd_watchdog_enabled(3) advises), or None
    when systemd does not watch this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):  # meant for another process (we were forked/exec'd)
        return None
    return int(usec) / 2_000_000


class Heartbeat:
    """The event loop's sign of life: a task on the loop notes the time and pings the watchdog.

    /healthz (served from another thread) reads `age()`; a loop blocked by synchronous code
    stops beating, so both the watchdog and /healthz see it."""

    def __init__(self, notifier: Notifier, period: float = 1.0) -> None:
        self.notifier = notifier
        interval = notifier.watchdog_interval
        self.period = min(period, interval) if interval else period
        self._last = time.monotonic()

    def age(self) -> float:
        """Seconds since the event loop last ran the heartbeat."""
        return time.monotonic() - self._last

    async def run(self) -> None:
        """Beat until cancelled."""
        while True:
            self._last = time.monotonic()
            if self.notifier.watchdog_interval is not None:
                self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(self.period)
