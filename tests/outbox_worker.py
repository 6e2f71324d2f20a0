"""One outbox sender as its own OS process, for tests that race several against one database.

    python -m tests.outbox_worker DATABASE_URL OWNER WEBHOOK_URL LEASE_SECONDS LIMIT GO_FILE

It waits until GO_FILE exists (so every worker starts together), then runs the project's sender
(monitor.sender.send_due with the real monitor.notify.send, on the wall clock) until no message
is pending, and prints {"owner": ..., "sent": n, "calls": n} as one JSON line."""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from monitor.config import DeliverySettings
from monitor.domain import utcnow
from monitor.notify import send
from monitor.rules.spec import ChannelSpec
from monitor.sender import send_due
from monitor.store import Store
from monitor.store.schema import outbox


def pending(store: Store) -> int:
    with store.engine.connect() as c:
        query = select(func.count()).where(outbox.c.status == "pending")
        return int(c.execute(query).scalar_one())


def main(argv: list[str]) -> None:
    url, owner, hook, lease_s, limit, go = argv
    store = Store.open(url, migrate=False)
    channels = {"hook": ChannelSpec("hook", hook, "text")}
    # model_copy: the config accepts whole seconds only, a test wants less
    settings = DeliverySettings().model_copy(update={"lease": timedelta(seconds=float(lease_s))})
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to start")
        time.sleep(0.01)
    sent = calls = 0
    while time.monotonic() < deadline:
        ok, not_sent = send_due(
            store, channels, settings, owner, utcnow(), send, limit=int(limit), clock=utcnow
        )
        calls += 1
        sent += ok
        if ok + not_sent == 0:
            if not pending(store):
                break
            time.sleep(0.02)  # what is left is leased by the other worker
    store.close()
    print(json.dumps({"owner": owner, "sent": sent, "calls": calls}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
