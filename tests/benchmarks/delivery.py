"""Delivery: a digest of 1,000 matches rendered for Slack, email, text and Markdown (time, bytes,
Slack messages after splitting), and the outbox sender's throughput to a loopback webhook.

    .venv/bin/python -m tests.benchmarks.delivery [--quick] [--json out.json]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from monitor.config import DeliverySettings
from monitor.demo.server import LoopbackServer, Route
from monitor.notify import SendResult, send
from monitor.render import email_message, render
from monitor.render.core import DEFAULT_LIMITS
from monitor.render.model import Entry, Format, Message
from monitor.render.sample import WATCH, sample_message
from monitor.render.slack import slack_len
from monitor.rules.spec import ChannelSpec
from monitor.sender import send_due
from monitor.store import Store
from monitor.store.delivery import enqueue, route_state
from monitor.store.schema import outbox
from tests.benchmarks.common import Result, cli, finish, load_note, pg_database, postgres_available

FORMATS: tuple[Format, ...] = ("slack", "email", "text", "markdown")
ENTRIES = 1000
CAPPED = 20  # a channel's default max_entries
MESSAGES = 500
BATCH = 50  # send_due's limit per call
NOW = datetime(2022, 1, 20, 8, 0, tzinfo=UTC)


# -- the messages --------------------------------------------------------------------------------


def digest(n: int, shown: int) -> Message:
    """A digest of `n` distinct stories (the sample entries cycled, each title, URL and score
    its own), the first `shown` listed and the rest counted as "and N more"."""
    base = sample_message("digest")
    samples = base.entries
    entries: list[Entry] = []
    for i in range(n):
        e = samples[i % len(samples)]
        entries.append(
            replace(
                e,
                title=f"{e.title} (update {i + 1})",
                url=f"{e.url}?story={i + 1}",
                score=round(e.score - i / 1000, 3),
            )
        )
    entries.sort(key=lambda e: -e.score)
    return replace(
        base,
        title=f"{WATCH} digest: {n:,} new articles",
        entries=tuple(entries[:shown]),
        more=n - shown,
    )


def _sizes(message: Message, fmt: Format) -> dict[str, int]:
    """UTF-8 bytes of what is sent; for Slack also the messages, and the most blocks and block
    text characters in one of them."""
    rendered = render(message, fmt)
    if fmt == "slack":
        # as httpx sends each payload (json=...: compact, not ASCII-escaped)
        size = sum(
            len(json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode())
            for p in rendered.slack
        )
        return {
            "bytes": size,
            "messages": len(rendered.slack),
            "max_blocks": max(len(p["blocks"]) for p in rendered.slack),
            "max_chars": max(_block_chars(p) for p in rendered.slack),
        }
    if fmt == "email":
        return {"bytes": len(_mime(rendered)), "html": len((rendered.html or "").encode())}
    body = rendered.markdown if fmt == "markdown" else rendered.text
    return {"bytes": len((body or "").encode())}


def _block_chars(payload: dict[str, Any]) -> int:
    """The characters of a payload's blocks' texts, as Slack counts them (its undocumented
    msg_blocks_too_long limit)."""
    texts = [b["text"]["text"] for b in payload["blocks"] if "text" in b]
    texts += [e["text"] for b in payload["blocks"] for e in b.get("elements", ())]
    return sum(slack_len(t) for t in texts)


def _mime(rendered: Any) -> bytes:
    mime = email_message(
        rendered,
        sender="monitor@news.example",
        to="desk@news.example",
        message_id_domain="news.example",
        date=NOW,
        key="outbox-1",
    )
    return mime.as_bytes()


def _produce(message: Message, fmt: Format) -> None:
    """What the router does per message: render; for email also the MIME message."""
    rendered = render(message, fmt)
    if fmt == "email":
        _mime(rendered)


def time_renders(messages: dict[str, Message], rounds: int) -> dict[tuple[str, str], float]:
    """Median seconds per (message, format), in interleaved rounds after one warm-up each."""
    times: dict[tuple[str, str], list[float]] = {
        (name, fmt): [] for name in messages for fmt in FORMATS
    }
    for message in messages.values():  # warm-up: templates compiled, caches filled
        for fmt in FORMATS:
            _produce(message, fmt)
    for r in range(rounds):
        order = FORMATS[r % len(FORMATS) :] + FORMATS[: r % len(FORMATS)]
        for name, message in messages.items():
            for fmt in order:
                t0 = time.perf_counter()
                _produce(message, fmt)
                times[(name, fmt)].append(time.perf_counter() - t0)
    return {key: statistics.median(ts) for key, ts in times.items()}


# -- the outbox ----------------------------------------------------------------------------------


def _queue(store: Store, n: int, content: dict[str, Any], now: datetime) -> None:
    def fill(c: Any) -> None:
        state = route_state(c, WATCH, "hook", now)
        for i in range(n):
            enqueue(c, state, "alert", [], f"{WATCH}: message {i + 1}", content, now)

    store.plan(fill)


def _statuses(store: Store) -> dict[str, int]:
    with store.engine.connect() as c:
        query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        return {status: count for status, count in c.execute(query)}


def first_send() -> float:
    """Seconds of the process's first notify.send to a webhook (apprise loads its plugins
    then); done before the timed runs, so both stores are measured warm."""
    with LoopbackServer() as server:
        server.routes["/warm-up"] = Route(body=b"{}", content_type="application/json")
        channel = ChannelSpec("warm-up", f"json://127.0.0.1:{server.port}/warm-up", "text")
        t0 = time.perf_counter()
        ok = send(channel, {"format": "text", "subject": "warm-up", "text": "warm-up"}).ok
        took = time.perf_counter() - t0
    if not ok:
        raise SystemExit("the warm-up send to the loopback webhook failed")
    return took


def outbox_run(url: str, n: int, content: dict[str, Any]) -> dict[str, Any]:
    """Queue `n` messages, then send_due(limit=BATCH) until none is pending, to a loopback
    webhook through the real monitor.notify.send."""
    store = Store.open(url)
    try:
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        _queue(store, n, content, now)
        queue_s = time.perf_counter() - t0
        in_send = 0.0

        def timed_send(channel: ChannelSpec, payload: dict[str, Any]) -> SendResult:
            nonlocal in_send
            s0 = time.perf_counter()
            try:
                return send(channel, payload)
            finally:
                in_send += time.perf_counter() - s0

        settings = DeliverySettings()
        with LoopbackServer() as server:
            server.routes["/hook"] = Route(body=b"{}", content_type="application/json")
            channel = ChannelSpec("hook", f"json://127.0.0.1:{server.port}/hook", "text")
            calls = sent = not_sent = 0
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            while True:
                ok, failed = send_due(
                    store, {"hook": channel}, settings, "bench", now, timed_send, limit=BATCH
                )
                calls += 1
                sent += ok
                not_sent += failed
                if ok + failed == 0:
                    break
            total_s = time.perf_counter() - t0
            posts = sum(1 for h in server.hits if h.method == "POST" and h.path == "/hook")
            connections = server.connections
        return {
            "queue_s": queue_s,
            "total_s": total_s,
            "in_send_s": in_send,
            "sent": sent,
            "not_sent": not_sent,
            "calls": calls,
            "posts": posts,
            "connections": connections,
            "statuses": _statuses(store),
        }
    finally:
        store.close()


def _report_outbox(result: Result, label: str, n: int, runs: list[dict[str, Any]]) -> None:
    for run in runs:  # every run is checked, not only the one reported
        ok = run["posts"] == n and run["statuses"] == {"sent": n} and run["not_sent"] == 0
        if not ok:
            raise SystemExit(f"outbox check failed on {label}: {run}")
    rates = sorted(r["sent"] / r["total_s"] for r in runs)
    run = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]  # the median run
    of = f"median of {len(runs)} runs" if len(runs) > 1 else "1 run"
    result.add(
        f"outbox to a loopback webhook, {label}: throughput ({of})",
        run["sent"] / run["total_s"],
        "messages/s",
    )
    if len(runs) > 1:
        result.add(f"  {label}: slowest / fastest run", f"{rates[0]:.0f} / {rates[-1]:.0f}")
    result.add(f"  {label}: {n} messages sent in (median run)", run["total_s"], "s")
    share = run["in_send_s"] / run["total_s"]
    result.add(
        f"  {label}: of that, in monitor.notify.send (apprise + HTTP)",
        f"{run['in_send_s']:.2f} s ({share:.0%}); per message "
        f"{run['in_send_s'] / run['sent'] * 1000:.1f} ms send, "
        f"{(run['total_s'] - run['in_send_s']) / run['sent'] * 1000:.1f} ms store",
    )
    result.add(
        f"  {label}: POSTs received / rows sent, every run",
        f"{run['posts']:,} / {run['statuses'].get('sent', 0):,}",
    )


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    args = cli("delivery", __doc__ or "")
    started = time.monotonic()
    rounds, n_messages, outbox_rounds = (3, 100, 1) if args.quick else (5, MESSAGES, 3)
    result = Result(
        "delivery",
        "Delivery: rendering and sending",
        ".venv/bin/python -m tests.benchmarks.delivery",
    )
    print(
        f"delivery: digests of {ENTRIES:,} stories ({CAPPED} and all listed), {rounds} renders "
        f"per format; {n_messages} outbox messages to a loopback webhook",
        flush=True,
    )

    messages = {"all": digest(ENTRIES, ENTRIES), "capped": digest(ENTRIES, CAPPED)}
    medians = time_renders(messages, rounds)
    labels = {
        "all": f"digest of {ENTRIES:,} stories, all listed",
        "capped": f"digest of {ENTRIES:,} stories, {CAPPED} listed + 'and {ENTRIES - CAPPED} more'",
    }
    for name, label in labels.items():
        for fmt in FORMATS:
            sizes = _sizes(messages[name], fmt)
            what = "render + MIME" if fmt == "email" else "render"
            result.add(
                f"{label}, {fmt}: {what} time (median of {rounds})",
                medians[(name, fmt)] * 1000,
                "ms",
            )
            result.add(f"  {label}, {fmt}: bytes", sizes["bytes"], "bytes")
            if fmt == "email":
                result.add(f"  {label}, email: of which the HTML part", sizes["html"], "bytes")
            if fmt == "slack":
                result.add(f"  {label}, slack: Slack messages after splitting", sizes["messages"])
                result.add(
                    f"  {label}, slack: most blocks / block text characters in one message",
                    f"{sizes['max_blocks']} / {sizes['max_chars']:,} (limits "
                    f"{DEFAULT_LIMITS.slack_blocks} / {DEFAULT_LIMITS.slack_payload_chars:,})",
                )

    five = replace(messages["all"], title=f"{WATCH}: 5 new articles", kind="alert")
    five = replace(five, entries=five.entries[:5], more=0)
    content = {"format": "text", **asdict(render(five, "text"))}
    content_bytes = len(json.dumps(content).encode())
    warm_up = first_send()
    pg = postgres_available()
    runs: dict[str, list[dict[str, Any]]] = {"SQLite": [], "PostgreSQL": []}
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        for r in range(outbox_rounds):  # alternating, so background load hits both alike
            url = f"sqlite:///{Path(tmp) / f'outbox-{r}.db'}"
            runs["SQLite"].append(outbox_run(url, n_messages, content))
            if pg:
                with pg_database("monitor_bench") as url:
                    runs["PostgreSQL"].append(outbox_run(url, n_messages, content))
    result.add("first notify.send in a process (apprise loads its plugins)", warm_up * 1000, "ms")
    _report_outbox(result, "SQLite", n_messages, runs["SQLite"])
    if pg:
        _report_outbox(result, "PostgreSQL", n_messages, runs["PostgreSQL"])
    else:
        result.note("PostgreSQL was not reachable: the outbox was not measured on it.")
    queue_s = {k: statistics.median(r["queue_s"] for r in v) for k, v in runs.items() if v}
    first = runs["SQLite"][0]

    result.note(
        f"Digests: the {len(sample_message().entries)} sample entries (monitor.render.sample) "
        f"cycled to {ENTRIES:,} stories, each with its own title, URL and score; a Message of "
        "kind digest rendered with the shipped templates and default Limits. 'All listed' is a "
        f"channel with max_entries {ENTRIES:,} (more=0); 'listed {CAPPED}' is what a channel "
        f"with the default max_entries sends (more={ENTRIES - CAPPED}). Each format is produced "
        f"once to warm up, then {rounds} times in interleaved rounds (rotating the format "
        "order); the figure is the median. Email's time includes building the MIME message "
        "(monitor.render.email_message, multipart/alternative) and serialising it."
    )
    result.note(
        "Bytes: Slack, every payload as JSON the way httpx posts it (compact, UTF-8, not "
        "ASCII-escaped), summed over the messages the digest is split into; email, the MIME "
        "message as bytes (text/plain and text/html parts, quoted-printable or base64 as the "
        "email package chooses); text and Markdown, the body in UTF-8."
    )
    result.note(
        f"Outbox: a fresh store; {n_messages} messages queued in one transaction with "
        "monitor.store.delivery.enqueue (no stories, so no notification_log rows), each the "
        f"same 5-story alert rendered as text ({content_bytes:,} bytes of JSON content); queuing "
        "took "
        + " and ".join(f"{v:.2f} s on {k}" for k, v in queue_s.items())
        + f" (median). Then send_due(limit={BATCH}) is called until it claims nothing "
        f"({first['calls']} calls), with the real monitor.notify.send (warmed up by one send "
        "beforehand, whose time is the 'first notify.send' row): apprise's json:// plugin "
        "POSTs each message to a LoopbackServer route /hook answering 200. The server runs in "
        "threads of the same process, so it shares the interpreter lock with the sender. "
        "Throughput is messages sent / wall time of the send loop; the time in notify.send is "
        "measured by wrapping it, the rest is claim_outbox and finish_send (one transaction per "
        "message). The check: the server saw exactly one POST per message and every outbox row "
        f"ends 'sent' ({first['connections']:,} TCP connections accepted in a run: apprise "
        f"opens one per message). {outbox_rounds} run(s) per store, alternating SQLite and "
        "PostgreSQL, each on a fresh store; the figures are those of the median run."
    )
    load_note(result)
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
