"""Delivery: a digest of 1,000 matches rendered for Slack, email, text and Markdown (time, bytes,
Slack messages after splitting), the outbox sender's throughput to a loopback webhook, and the
cost of a delivery tick's planning with 2,000 routes (every route against the daemon's Planner).

    .venv/bin/python -m tests.benchmarks.delivery [--quick] [--json out.json]
        [--variants render,outbox,planning]
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

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


# -- planning -------------------------------------------------------------------------------------

ROUTES = 2000  # watches, each sent to one channel
HISTORY = 300  # articles matched (and sent) before the ticks are measured
FRESH = 5  # routes that get a new match in a "something new" tick
TICK = timedelta(seconds=2)  # the daemon's delivery tick


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _Statements:
    def __init__(self, store: Store) -> None:
        self.n = 0
        event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.n += 1

    def take(self) -> int:
        n, self.n = self.n, 0
        return n


def _text_render(message: Message, fmt: str) -> Any:
    return render(message, "text")


def _word(i: int) -> str:
    """A made-up word per watch ("qzab", "qzac", ...): no English inflection reaches another."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "qz" + letters[i // 676 % 26] + letters[i // 26 % 26] + letters[i % 26]


def planning_run(url: str, quiet_ticks: int, rounds: int) -> dict[str, Any]:
    """A store with ROUTES routes and some history; then the time (and statements) of delivery
    ticks: plan_all against the daemon's Planner, quiet and with FRESH routes newly matched."""
    from monitor.dispatch import Planner, plan_all
    from monitor.rules.active import ActiveRules, definitions, match_stored
    from monitor.rules.compiler import compile_rules
    from monitor.rules.query import parse_query
    from monitor.rules.spec import Delivery, RuleSet, WatchSpec
    from tests.test_store import article, claim_one, spec

    clock = _Clock(NOW)
    channel = ChannelSpec("desk", "console://", "text")
    watches = tuple(
        WatchSpec(f"w{i:04d}", parse_query(_word(i)), delivery=Delivery(("desk",)))
        for i in range(ROUTES)
    )
    rules = RuleSet({}, watches, {"desk": channel})
    store = Store.open(url)
    try:
        store.sync_feeds([spec("wire")], clock())
        feed = claim_one(store, "wire", clock)
        active = ActiveRules(compile_rules(rules), store.register_watches(definitions(rules), NOW))
        settings = DeliverySettings()
        rng = random.Random(7)
        n = 0

        def stories(words: list[list[str]]) -> None:
            nonlocal n
            for ws in words:
                n += 1
                text = f"Officials said {' and '.join(ws)} were discussed. Story {n}. " * 5
                u = f"https://wire.example/{n}"
                store.ingest(feed, f"g{n}", f"h{n}", u, article(u, text=text), clock())
            while store.match_pending(lambda arts: match_stored(active, arts), clock())[0]:
                pass

        stories([[_word(rng.randrange(ROUTES)) for _ in range(3)] for _ in range(HISTORY)])
        clock.now += timedelta(minutes=1)
        history = plan_all(store, rules, settings, clock(), _text_render, active.since)
        clock.now += timedelta(minutes=10)
        statements = _Statements(store)

        def tick(plan: Any) -> tuple[float, int, int]:
            clock.now += TICK
            statements.take()
            t0 = time.perf_counter()
            queued = plan(store, rules, settings, clock(), _text_render, active.since)
            return time.perf_counter() - t0, statements.take(), len(queued)

        every = [tick(plan_all) for _ in range(3)]
        # no sweep but the first, timed on its own: the ticks below are the ones in between
        planner = Planner(sweep_every=timedelta(days=365))
        sweep = tick(planner.plan)
        quiet = [tick(planner.plan) for _ in range(quiet_ticks)]
        noticed, due = [], []
        for _ in range(rounds):
            fresh = rng.sample(range(ROUTES), FRESH)
            stories([[_word(i)] for i in fresh])
            noticed.append(tick(planner.plan))  # seen; group_wait (30 s) not over yet
            while clock.now < NOW + timedelta(days=1):
                done = tick(planner.plan)
                if done[2]:
                    due.append(done)
                    break
                quiet.append(done)
            clock.now += settings.group_interval  # the next round's group is a new burst
        fresh = rng.sample(range(ROUTES), FRESH)
        stories([[_word(i)] for i in fresh])
        clock.now += settings.group_wait
        every_fresh = tick(plan_all)
        return {
            "history": len(history),
            "matches": len(store.matches(limit=100_000)),
            "every": every,
            "every_fresh": every_fresh,
            "sweep": sweep,
            "quiet": quiet,
            "noticed": noticed,
            "due": due,
        }
    finally:
        store.close()


def _report_planning(result: Result, label: str, run: dict[str, Any]) -> None:
    def check(ticks: list[tuple[float, int, int]], queued: int, what: str) -> None:
        wrong = [t for t in ticks if t[2] != queued]
        if wrong:
            raise SystemExit(f"planning check failed on {label}, {what}: {wrong}")

    check(run["every"], 0, "plan_all, quiet")
    check([run["every_fresh"]], FRESH, "plan_all, new matches")
    check([run["sweep"]], 0, "Planner, first tick")
    check(run["quiet"], 0, "Planner, quiet")
    check(run["noticed"], 0, "Planner, new matches seen")
    check(run["due"], FRESH, "Planner, their group due")

    def ms(ticks: list[tuple[float, int, int]]) -> str:
        median = statistics.median(t[0] for t in ticks) * 1000
        statements = statistics.median(t[1] for t in ticks)
        return f"{median:,.1f} ms, {statements:,.0f} statements"

    of = f"{ROUTES:,} routes"
    result.add(
        f"planning tick, {label}, {of}, nothing new: every route (plan_all, median of "
        f"{len(run['every'])})",
        ms(run["every"]),
    )
    result.add(
        f"  {label}: nothing new, the daemon's Planner (median of {len(run['quiet'])} ticks)",
        ms(run["quiet"]),
    )
    result.add(
        f"  {label}: new matches on {FRESH} routes, the tick that sees them (Planner, median "
        f"of {len(run['noticed'])})",
        ms(run["noticed"]),
    )
    result.add(
        f"  {label}: the tick that queues their {FRESH} alerts (Planner, median of "
        f"{len(run['due'])})",
        ms(run["due"]),
    )
    result.add(
        f"  {label}: the same {FRESH} alerts queued by plan_all (1 tick)", ms([run["every_fresh"]])
    )
    result.add(
        f"  {label}: the Planner's sweep of every route (at start, then every 5 min)",
        ms([run["sweep"]]),
    )


def planning(result: Result, quick: bool) -> None:
    quiet_ticks, rounds = (10, 2) if quick else (30, 5)
    print(f"delivery: planning ticks with {ROUTES:,} routes", flush=True)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        runs["SQLite"] = planning_run(f"sqlite:///{tmp}/planning.db", quiet_ticks, rounds)
    if postgres_available():
        with pg_database("monitor_bench") as url:
            runs["PostgreSQL"] = planning_run(url, quiet_ticks, rounds)
    else:
        result.note("PostgreSQL was not reachable: planning was not measured on it.")
    for label, run in runs.items():
        _report_planning(result, label, run)
    first = next(iter(runs.values()))
    result.note(
        f"Planning: a fresh store with {ROUTES:,} watches, each a made-up word sent to one "
        f"console channel as alerts (default timing: group_wait 30 s, group_interval 5 min), "
        f"and a history of {HISTORY} articles naming 3 watches' words each ({first['matches']:,} "
        f"matches, queued as {first['history']:,} alerts by one plan_all). Then delivery ticks "
        f"{TICK.seconds} s apart on a moved clock, each timed around plan_all or "
        "monitor.dispatch.Planner.plan (as the daemon's deliver job calls it) with a stand-in "
        "text renderer, and the SQL statements it sent counted (a SQLAlchemy "
        "before_cursor_execute listener; SQLite's BEGIN counts). 'Nothing new': no match since "
        f"the last tick. 'New matches': {FRESH} articles each naming one other watch's word, "
        "ingested and matched before the tick; the Planner plans those routes when it sees "
        "them and again when their group_wait is over, when it queues the alerts (checked: "
        f"exactly {FRESH} per round, none on a quiet tick). The Planner's quiet figure is the "
        "median over every tick without a new match or a due group, across the rounds. The "
        "Planner also plans every route at start and every 5 minutes (its safety net), timed "
        "once here as its first tick; spread over the 150 ticks of 5 minutes that is its sweep "
        "time / 150 per tick."
    )


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    args = cli("delivery", __doc__ or "", variants="render,outbox,planning")
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

    variants = set(args.variants.split(","))
    if "render" in variants:
        messages = {"all": digest(ENTRIES, ENTRIES), "capped": digest(ENTRIES, CAPPED)}
        medians = time_renders(messages, rounds)
        labels = {
            "all": f"digest of {ENTRIES:,} stories, all listed",
            "capped": (
                f"digest of {ENTRIES:,} stories, {CAPPED} listed + 'and {ENTRIES - CAPPED} more'"
            ),
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
                    result.add(
                        f"  {label}, slack: Slack messages after splitting", sizes["messages"]
                    )
                    result.add(
                        f"  {label}, slack: most blocks / block text characters in one message",
                        f"{sizes['max_blocks']} / {sizes['max_chars']:,} (limits "
                        f"{DEFAULT_LIMITS.slack_blocks} / {DEFAULT_LIMITS.slack_payload_chars:,})",
                    )

        result.note(
            f"Digests: the {len(sample_message().entries)} sample entries (monitor.render.sample) "
            f"cycled to {ENTRIES:,} stories, each with its own title, URL and score; a Message of "
            "kind digest rendered with the shipped templates and default Limits. 'All listed' is a "
            f"channel with max_entries {ENTRIES:,} (more=0); 'listed {CAPPED}' is what a channel "
            f"with the default max_entries sends (more={ENTRIES - CAPPED}). Each format is "
            f"produced once to warm up, then {rounds} times in interleaved rounds (rotating the "
            "format order); the figure is the median. Email's time includes building the MIME "
            "message (monitor.render.email_message, multipart/alternative) and serialising it."
        )
        result.note(
            "Bytes: Slack, every payload as JSON the way httpx posts it (compact, UTF-8, not "
            "ASCII-escaped), summed over the messages the digest is split into; email, the MIME "
            "message as bytes (text/plain and text/html parts, quoted-printable or base64 as the "
            "email package chooses); text and Markdown, the body in UTF-8."
        )
    if "outbox" in variants:
        messages = {"all": digest(ENTRIES, ENTRIES)}
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
        result.add(
            "first notify.send in a process (apprise loads its plugins)", warm_up * 1000, "ms"
        )
        _report_outbox(result, "SQLite", n_messages, runs["SQLite"])
        if pg:
            _report_outbox(result, "PostgreSQL", n_messages, runs["PostgreSQL"])
        else:
            result.note("PostgreSQL was not reachable: the outbox was not measured on it.")
        queue_s = {k: statistics.median(r["queue_s"] for r in v) for k, v in runs.items() if v}
        first = runs["SQLite"][0]

        result.note(
            f"Outbox: a fresh store; {n_messages} messages queued in one transaction with "
            "monitor.store.delivery.enqueue (no stories, so no notification_log rows), each the "
            f"same 5-story alert rendered as text ({content_bytes:,} bytes of JSON content); "
            "queuing took "
            + " and ".join(f"{v:.2f} s on {k}" for k, v in queue_s.items())
            + f" (median). Then send_due(limit={BATCH}) is called until it claims nothing "
            f"({first['calls']} calls), with the real monitor.notify.send (warmed up by one send "
            "beforehand, whose time is the 'first notify.send' row): apprise's json:// plugin "
            "POSTs each message to a LoopbackServer route /hook answering 200. The server runs in "
            "threads of the same process, so it shares the interpreter lock with the sender. "
            "Throughput is messages sent / wall time of the send loop; the time in notify.send is "
            "measured by wrapping it, the rest is claim_outbox and finish_send (one transaction "
            "per message). The check: the server saw exactly one POST per message and every "
            f"outbox row ends 'sent' ({first['connections']:,} TCP connections accepted in a run: "
            f"apprise opens one per message). {outbox_rounds} run(s) per store, alternating SQLite "
            "and PostgreSQL, each on a fresh store; the figures are those of the median run."
        )
    if "planning" in variants:
        planning(result, quick=args.quick)
    load_note(result)
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
