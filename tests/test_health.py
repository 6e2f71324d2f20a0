"""/healthz and the watchdog see a wedged event loop and an unreachable database (in process: a
real loop blocked by real blocking code, a real listener, a real database or none)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest
from sqlalchemy import create_engine

from monitor import metrics
from monitor.daemon import ping
from monitor.service import Heartbeat, Notifier
from monitor.store import Store
from tests.test_service import NotifySocket, get


def test_a_blocked_event_loop_fails_healthz_and_stops_the_watchdog_pings(tmp_path):
    notify = NotifySocket()
    store = Store.open(f"sqlite:///{tmp_path}/m.db")
    notifier = Notifier({"NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "200000"})
    heartbeat = Heartbeat(notifier)
    health = metrics.Health(heartbeat.age, functools.partial(ping, store), stuck_after=0.5)
    listener = metrics.Listener("127.0.0.1", 0, health)
    url = f"http://127.0.0.1:{listener.port}/healthz"
    seen: dict[str, tuple[int, str]] = {}

    async def scenario() -> None:
        beating = asyncio.create_task(heartbeat.run())
        await asyncio.sleep(0.5)
        seen["running"] = await asyncio.to_thread(get, url)
        pings_before = notify.count("WATCHDOG=1")

        def ask_while_blocked() -> None:
            time.sleep(0.8)  # past stuck_after
            seen["blocked"] = get(url)

        asker = threading.Thread(target=ask_while_blocked)
        asker.start()
        time.sleep(1.5)  # blocking code on the loop: no heartbeat, no pings
        seen["pings while blocked"] = (notify.count("WATCHDOG=1") - pings_before, "")
        asker.join()
        await asyncio.sleep(0.3)
        seen["recovered"] = await asyncio.to_thread(get, url)
        beating.cancel()

    try:
        asyncio.run(scenario())
    finally:
        listener.close()
        notifier.close()
        notify.close()
        store.close()
    assert seen["running"][0] == 200 and '"database": "ok"' in seen["running"][1]
    status, body = seen["blocked"]
    assert status == 503 and "stuck: no heartbeat" in body
    assert seen["pings while blocked"][0] <= 1  # one may have been on its way as it blocked
    assert seen["recovered"][0] == 200
    assert notify.count("WATCHDOG=1") >= 5  # every 0.1 s otherwise


def test_an_unreachable_database_fails_healthz_without_showing_its_password():
    unreachable = Store(create_engine("postgresql+psycopg://monitor:Pw0rdXYZ@127.0.0.1:9/x"))
    health = metrics.Health(lambda: 0.0, functools.partial(ping, unreachable), stuck_after=30)
    listener = metrics.Listener("127.0.0.1", 0, health)
    try:
        status, body = get(f"http://127.0.0.1:{listener.port}/healthz")
        metrics_status, text = get(f"http://127.0.0.1:{listener.port}/metrics")
    finally:
        listener.close()
        unreachable.close()
    assert status == 503 and '"database": "unreachable: OperationalError"' in body
    assert "Pw0rdXYZ" not in body
    assert metrics_status == 200 and "monitor_event_loop_heartbeat_age_seconds" in text


def test_the_metrics_listener_must_be_on_loopback(tmp_path):
    from monitor.config import ConfigError, load_config

    (tmp_path / "feeds.yaml").write_text(
        "outlets:\n  a:\n    feeds:\n      - url: http://a.test/\n"
    )
    (tmp_path / "monitor.yaml").write_text("metrics:\n  listen: 0.0.0.0:9108\n")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path)
    assert "monitor.yaml:2:11: metrics.listen: the metrics listener serves loopback only" in str(
        refused.value
    )
    (tmp_path / "monitor.yaml").write_text("metrics:\n  listen: '[::1]:9108'\n")
    assert load_config(tmp_path).settings.metrics.address() == ("::1", 9108)
    listener = metrics.Listener("::1", 0, metrics.Health(lambda: 0.0, lambda: None, 30))
    try:
        assert get(f"http://[::1]:{listener.port}/healthz")[0] == 200
    finally:
        listener.close()
