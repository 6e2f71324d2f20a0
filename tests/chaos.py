"""Chaos: `monitor run` SIGKILLed at random moments while it polls a loopback outlet, matches and
delivers to a webhook and to a real SMTP server, restarted each time (issue 7, item 5).

Then the invariants: every article the outlet served is stored exactly once; every (watch,
story) that should alert reached both channels; no (watch, story, channel) arrived in two
different messages. The one repeat allowed is a message the kill interrupted after the channel
took it and before the daemon recorded that (at-least-once; a webhook has no idempotency key):
the very same message again, at most once per kill.

    .venv/bin/python -m tests.chaos --kills 50     # the full run (about 4 minutes)

tests/test_chaos.py runs a short version in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sqlite3
import string
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from monitor.demo.server import LoopbackServer, Route
from tests.support import Item, page, rss
from tests.test_daemon import start, stop, wait_for, write_config
from tests.test_email import free_port

TRIGGERS = {  # what each story's lead says, in turn, and the watches that match it
    "troops": "Russia has massed troops along the border, officials said.",
    "lavrov": "Sergei Lavrov met his counterpart in Geneva for talks.",
    "both": "Lavrov said the troops along the border would stay.",
}
WATCHES = {"troops": {"troops", "both"}, "lavrov": {"lavrov", "both"}}
_STORY = re.compile(r"/story(\d+)\.html")


class SlowInbox:
    """An SMTP handler keeping each message it accepts, after a pause (kills land mid-DATA)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[bytes] = []
        self.in_data = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_data -= 1
        self.messages.append(envelope.content)
        return "250 OK"


@dataclass
class Report:
    kills: Counter[str] = field(default_factory=Counter)  # what was in flight at each kill
    served: int = 0
    stored: dict[str, int] = field(default_factory=dict)  # story URL -> rows
    want: set[tuple[str, int]] = field(default_factory=set)
    told: dict[str, Counter[tuple[str, int]]] = field(default_factory=dict)  # channel -> counts
    messages: dict[str, int] = field(default_factory=dict)  # channel -> distinct messages
    resent: dict[str, int] = field(default_factory=dict)  # channel -> repeats of one message
    exit_code: int | None = None

    def problems(self) -> list[str]:
        """Every broken invariant, in words; empty when the run was clean."""
        found = []
        wrong = {url: n for url, n in self.stored.items() if n != 1}
        if len(self.stored) != self.served or wrong:
            found.append(f"stored {len(self.stored)} of {self.served} articles; not once: {wrong}")
        for channel, told in self.told.items():
            if missing := self.want - set(told):
                found.append(f"{channel}: {len(missing)} alerts never arrived: {sorted(missing)}")
            if extra := set(told) - self.want:
                found.append(f"{channel}: alerts nobody asked for: {sorted(extra)}")
            if twice := {k: n for k, n in told.items() if n > 1}:
                found.append(f"{channel}: told in two different messages: {twice}")
            if self.resent[channel] > sum(self.kills.values()):
                found.append(f"{channel}: {self.resent[channel]} repeats for {self.kills} kills")
        if self.exit_code != 0:
            found.append(f"the last daemon exited {self.exit_code} on SIGTERM")
        return found

    def lines(self) -> list[str]:
        moments = ", ".join(f"{k} {n}" for k, n in sorted(self.kills.items()))
        out = [
            f"kills: {sum(self.kills.values())} ({moments})",
            f"articles served {self.served}, stored {len(self.stored)}, "
            f"stored more than once {sum(1 for n in self.stored.values() if n > 1)}",
            f"alerts due per channel: {len(self.want)}",
        ]
        for channel, told in self.told.items():
            out.append(
                f"{channel}: alerts arrived {len(set(told) & self.want)}, in "
                f"{self.messages[channel]} messages; a story in two messages "
                f"{sum(1 for n in told.values() if n > 1)}; a message resent after a kill "
                f"{self.resent[channel]}"
            )
        return out


def story_text(n: int, rng: random.Random) -> list[str]:
    """Paragraphs of words no other story shares, the second led by a sentence that triggers
    the watches (so no two stories are near-duplicates or one event: story grouping compares
    leads, and the first paragraph is the lead)."""
    trigger = TRIGGERS[list(TRIGGERS)[n % len(TRIGGERS)]] + f" This is report number {n}."

    def word() -> str:
        return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9)))

    paragraphs = [" ".join(word() for _ in range(45)) + "." for _ in range(3)]
    return [paragraphs[0], f"{trigger} {paragraphs[1]}", paragraphs[2]]


def publish(server: LoopbackServer, stories: int, every: float, done: threading.Event) -> None:
    rng = random.Random(7)
    items = []
    for n in range(stories):
        if done.is_set():
            return
        server.routes[f"/story{n}.html"] = Route(
            body=page(f"Report {n}", story_text(n, rng)), delay=0.15
        )
        items.append(Item(f"s{n}", f"Report {n}", server.url(f"/story{n}.html")))
        server.routes["/feed.xml"] = Route(body=rss(items))
        time.sleep(every)


def in_flight(server: LoopbackServer, inbox: SlowInbox, since_start: float) -> str:
    """What the daemon was doing, as seen from outside, at the moment of a kill."""
    if server.in_flight("/hook") or inbox.in_data:
        return "delivery (a send in flight)"
    if server.in_flight("/story"):
        return "ingest (a page fetch in flight)"
    if server.in_flight("/feed"):
        return "ingest (a feed fetch in flight)"
    if since_start < 1.5:
        return "start-up (schema, match queue, first tick)"
    return "between requests (storing, matching, planning)"


def run(folder: Path, kills: int, seed: int = 20220120) -> Report:
    rng = random.Random(seed)
    stories = max(24, kills)
    inbox = SlowInbox(delay=0.2)
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    report = Report()
    try:
        with LoopbackServer() as server:
            server.routes["/feed.xml"] = Route(body=rss([]))
            server.routes["/hook"] = Route(body=b"{}", delay=0.2)
            config = configure(folder, server, smtp_port)
            proc = start(config)
            wait_for(lambda: server.count("/feed.xml") >= 1)  # the first poll: backlog only
            done = threading.Event()
            every = max(0.2, 1.6 * kills / stories)  # publishing spans the kills
            publisher = threading.Thread(target=publish, args=(server, stories, every, done))
            publisher.start()
            try:
                for _ in range(kills):
                    started = time.monotonic()
                    proc = _kill_at_random(proc, server, inbox, rng, started, report, config)
                publisher.join()
                want = _wanted(stories)
                report.want = want
                wait_for(lambda: _all_told(server, inbox, want), timeout=60)
                time.sleep(3)  # more ticks and lease expiries: nothing more is sent
            finally:
                done.set()
                publisher.join()
                report.exit_code, _ = stop(proc)
            report.served = stories
            report.stored = _stored(folder / "m.db")
            for channel, messages in (("hook", _hook_messages(server)), ("mail", _mail(inbox))):
                distinct = set(messages)
                report.messages[channel] = len(distinct)
                report.resent[channel] = len(messages) - len(distinct)
                report.told[channel] = Counter((w, n) for _key, w, told in distinct for n in told)
    finally:
        smtp.stop()
    return report


def configure(
    folder: Path, server: LoopbackServer, smtp_port: int | None = None, stories: bool = True
) -> Path:
    """A config for killing tests: one fast feed, short leases and retries, the WATCHES as
    immediate alerts to a webhook on `server` (and by email when there is an SMTP port)."""
    config = write_config(
        folder / "cfg",
        f"sqlite:///{folder}/m.db",
        {"outlet": server.url("/feed.xml")},
        interval="1s",
        lease="2s",  # a killed worker's feed is polled again soon
    )
    with (config / "monitor.yaml").open("a") as f:
        f.write("delivery:\n  group_interval: 1s\n  retry_base: 1s\n  retry_max: 2s\n")
        f.write("  lease: 2s\n")
        if not stories:  # texts from one template would rightly be grouped as one event
            f.write("dedupe:\n  stories: false\n")
    channels = [f"  hook:\n    url: json://127.0.0.1:{server.port}/hook\n    max_entries: 1000"]
    if smtp_port is not None:
        channels.append(
            f"  mail:\n    url: mailto://127.0.0.1:{smtp_port}?from=alerts@monitor.example"
            "&to=desk@example.org\n    max_entries: 1000"
        )
    (config / "channels.yaml").write_text("\n".join(["channels:", *channels]) + "\n")
    notify = ", ".join(c.split(":")[0].strip() for c in channels)
    watches = ["watches:"]
    watches += [
        f"  {w}:\n    query: {w}\n    notify: [{notify}]\n    group_wait: 0s" for w in WATCHES
    ]
    (config / "watches.yaml").write_text("\n".join(watches) + "\n")
    return config


def _kill_at_random(
    proc: subprocess.Popen[str],
    server: LoopbackServer,
    inbox: SlowInbox,
    rng: random.Random,
    started: float,
    report: Report,
    config: Path,
) -> subprocess.Popen[str]:
    """Waits a random moment, kills, restarts. A fifth of the kills land while the daemon
    starts, the rest once it polls again, and a third of those wait for a send in flight (the
    at-least-once window)."""
    aim = rng.random()
    if aim < 0.2:
        time.sleep(rng.uniform(0.05, 1.5))
    else:
        polls = server.count("/feed.xml")
        _until(lambda: server.count("/feed.xml") > polls, timeout=10)  # up and polling
        if aim < 0.45:
            _until(lambda: bool(server.in_flight("/hook") or inbox.in_data), timeout=5)
        else:
            time.sleep(rng.uniform(0.0, 1.5))
    report.kills[in_flight(server, inbox, time.monotonic() - started)] += 1
    proc.kill()
    proc.communicate(timeout=10)
    return start(config)


def _until(condition: Any, timeout: float) -> None:
    """Waits for `condition` (a few milliseconds at a time), giving up quietly at `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def _wanted(stories: int) -> set[tuple[str, int]]:
    kinds = list(TRIGGERS)
    return {
        (w, n) for n in range(stories) for w, ks in WATCHES.items() if kinds[n % len(kinds)] in ks
    }


def _hook_messages(server: LoopbackServer) -> list[tuple[bytes, str, frozenset[int]]]:
    found = []
    for hit in [h for h in server.hits if h.path == "/hook"]:
        body = json.loads(hit.body)
        told = frozenset(int(n) for n in _STORY.findall(body["message"]))
        found.append((hit.body, body["title"].split(":")[0], told))
    return found


def _mail(inbox: SlowInbox) -> list[tuple[str, str, frozenset[int]]]:
    found = []
    for raw in list(inbox.messages):
        message = message_from_bytes(raw, policy=policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        told = frozenset(int(n) for n in _STORY.findall(text))
        found.append((str(message["Message-ID"]), str(message["Subject"]).split(":")[0], told))
    return found


def _all_told(server: LoopbackServer, inbox: SlowInbox, want: set[tuple[str, int]]) -> bool:
    for messages in (_hook_messages(server), _mail(inbox)):
        if not want <= {(w, n) for _key, w, told in messages for n in told}:
            return False
    return True


def _stored(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT canonical_url, COUNT(*) FROM articles GROUP BY canonical_url")
        return {url: n for url, n in rows if _STORY.search(url)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20220120)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        began = time.monotonic()
        report = run(Path(tmp), args.kills, args.seed)
        print("\n".join(report.lines()))
        print(f"took {time.monotonic() - began:.0f} s")
        problems = report.problems()
        print("\n".join(["INVARIANTS BROKEN:", *problems]) if problems else "invariants hold")
        raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
