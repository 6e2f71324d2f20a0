"""`monitor run` as real processes: leases across two workers, clean stop, reload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.store import Store
from tests.support import Item, corpus_paragraphs, page, rss


def write_config(folder: Path, database: str, feeds: dict[str, str], **polling: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'database: "{database}"', "polling:"]
    lines += [
        f"  {k}: {v}"
        for k, v in {
            "tick": "1s",
            "interval": "2s",
            "jitter": 0.0,
            "connect_timeout": "2s",
            "read_timeout": "5s",
            "total_timeout": "10s",
            "allow_networks": "['127.0.0.0/8']",  # the loopback test servers
            **polling,
        }.items()
    ]
    lines += ["extract:", "  workers: 1"]
    (folder / "monitor.yaml").write_text("\n".join(lines) + "\n")
    outlets = ["outlets:"]
    for name, url in feeds.items():
        outlets += [f"  {name}:", "    feeds:", f"      - url: {url}"]
    (folder / "feeds.yaml").write_text("\n".join(outlets) + "\n")
    return folder


def start(config_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "-c", str(config_dir), "run"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"did not stop in time:\n{err}") from None
    return proc.returncode, err


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


def test_two_workers_sharing_postgres_never_poll_one_feed_at_once(server, pg_url, tmp_path):
    feeds = {}
    for i in range(12):
        # slow answers widen the window in which a broken lease would show as overlap
        server.routes[f"/f{i}.xml"] = Route(body=rss([]), delay=0.3)
        feeds[f"outlet{i}"] = server.url(f"/f{i}.xml")
    config = write_config(tmp_path / "cfg", pg_url, feeds)
    workers = [start(config), start(config)]
    try:
        wait_for(lambda: all(server.count(f"/f{i}.xml") >= 3 for i in range(12)), timeout=60)
    finally:
        results = [stop(w) for w in workers]
    for code, err in results:
        assert code == 0, err
        assert "monitor stopped" in err
    overlaps = {path: n for path, n in server.max_in_flight.items() if n > 1}
    assert overlaps == {}
    assert all(server.count(f"/f{i}.xml") >= 3 for i in range(12))


def test_sigterm_lets_in_flight_pages_commit_before_exiting(server, tmp_path):
    db = tmp_path / "monitor.db"
    link = server.url("/slow.html")
    server.routes["/slow.html"] = Route(
        body=page("Slow story", corpus_paragraphs("001")), delay=2.0
    )
    server.routes["/feed.xml"] = Route(body=rss([Item("s1", "Slow story", link)]))
    config = write_config(tmp_path / "cfg", f"sqlite:///{db}", {"rferl": server.url("/feed.xml")})
    proc = start(config)
    wait_for(lambda: any(h.path == "/feed.xml" for h in server.hits))
    time.sleep(0.5)  # the page request is now in flight
    code, err = stop(proc)
    assert code == 0, err
    assert "finishing in-flight work" in err and "monitor stopped" in err
    store = Store.open(f"sqlite:///{db}")
    assert [a.title for a in store.articles()] == ["Slow story"]
    (health,) = store.feed_health()
    assert health.last_success_at is not None
    store.close()


def test_sighup_with_a_broken_edit_keeps_running_and_names_the_line(server, tmp_path):
    server.routes["/feed.xml"] = Route(body=rss([]))
    config = write_config(
        tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"rferl": server.url("/feed.xml")}
    )
    proc = start(config)
    wait_for(lambda: server.count("/feed.xml") >= 1)
    (config / "feeds.yaml").write_text("outlets:\n  rferl:\n    feeds:\n      - url: nope\n")
    proc.send_signal(signal.SIGHUP)
    before = server.count("/feed.xml")
    wait_for(lambda: server.count("/feed.xml") >= before + 2)  # still polling the old config
    code, err = stop(proc)
    assert code == 0
    assert "reload refused" in err and "feeds.yaml:4:" in err


def test_run_refuses_to_start_on_a_bad_config_with_the_check_message(tmp_path):
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "feeds.yaml").write_text("outlets:\n  rferl:\n    feeds:\n      - url: htp://x\n")
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "-c", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    check = subprocess.run(
        [sys.executable, "-m", "monitor", "-c", str(config), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == check.returncode == 1
    assert "feeds.yaml:4:" in run.stderr and "outlets.rferl.feeds[0].url" in run.stderr
    first_line = check.stderr.splitlines()[0]
    assert first_line in run.stderr


def test_a_feed_outliving_its_lease_is_not_polled_twice(server, tmp_path):
    items = []
    for i in range(8):  # 8 slow pages, fetched one at a time: ~8 s, well past the 3 s lease
        server.routes[f"/p{i}.html"] = Route(
            body=page(f"Story {i}", corpus_paragraphs("001", i)), delay=1.0
        )
        items.append(Item(f"s{i}", f"Story {i}", server.url(f"/p{i}.html")))
    server.routes["/feed.xml"] = Route(body=rss(items))
    config = write_config(
        tmp_path / "cfg",
        f"sqlite:///{tmp_path}/m.db",
        {"rferl": server.url("/feed.xml")},
        lease="3s",
        per_host=1,
        interval="1h",
    )
    proc = start(config)
    try:
        wait_for(lambda: server.count("/p7.html") == 1, timeout=40)
        time.sleep(2)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert server.count("/feed.xml") == 1
    assert server.max_in_flight["/feed.xml"] == 1


def test_sighup_applies_a_changed_monitor_yaml(server, tmp_path):
    server.routes["/a.html"] = Route(body=page("First", corpus_paragraphs("001")))
    server.routes["/b.html"] = Route(body=page("Second", corpus_paragraphs("003")))
    items = [Item("a", "First", server.url("/a.html"))]
    server.routes["/feed.xml"] = Route(body=rss(items))
    config = write_config(
        tmp_path / "cfg", f"sqlite:///{tmp_path}/m.db", {"rferl": server.url("/feed.xml")}
    )
    proc = start(config)
    try:
        wait_for(lambda: server.count("/a.html") == 1)
        text = (config / "monitor.yaml").read_text()
        text = text.replace("extract:", "extract:\n  fetch_pages: false")
        (config / "monitor.yaml").write_text(text)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        items.append(Item("b", "Second", server.url("/b.html"), description="From the feed."))
        server.routes["/feed.xml"] = Route(body=rss(items))
        store = Store.open(f"sqlite:///{tmp_path}/m.db")
        wait_for(lambda: len(store.articles()) == 2)
        store.close()
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert server.count("/b.html") == 0  # pages are no longer fetched after the reload


STORY = (
    "Russia has massed troops along the border, Sergei Lavrov said on {day}, and the talks in "
    "Geneva will go on. Officials in Kyiv said they expected more of the same in the weeks ahead."
)


def story_page(server, name: str, day: str) -> Item:
    server.routes[f"/{name}.html"] = Route(body=page(name, [STORY.format(day=day)] * 2))
    return Item(name, name, server.url(f"/{name}.html"))


def matched(db: Path) -> set[tuple[str, str]]:
    store = Store.open(f"sqlite:///{db}")
    try:
        return {(m.title, m.watch) for m in store.matches(limit=100)}
    finally:
        store.close()


def test_watch_rules_reload_when_edited_and_a_bad_edit_keeps_the_last_good_ones(server, tmp_path):
    db = tmp_path / "m.db"
    items = [story_page(server, "first", "Monday")]
    server.routes["/feed.xml"] = Route(body=rss(items))
    config = write_config(tmp_path / "cfg", f"sqlite:///{db}", {"rferl": server.url("/feed.xml")})
    (config / "watches.yaml").write_text("watches:\n  troops:\n    keywords: [troops]\n")
    proc = start(config)
    try:
        wait_for(lambda: matched(db) == {("first", "troops")})
        # a new watch, added by editing the file (no signal): it must not fire on "first"
        (config / "watches.yaml").write_text(
            "watches:\n  troops:\n    keywords: [troops]\n  lavrov:\n    query: Lavrov\n"
        )
        time.sleep(3)  # the daemon looks at the files every 2 s
        items.append(story_page(server, "second", "Tuesday"))
        server.routes["/feed.xml"] = Route(body=rss(items))
        wait_for(lambda: ("second", "lavrov") in matched(db))
        assert matched(db) == {("first", "troops"), ("second", "troops"), ("second", "lavrov")}
        # a bad edit, then SIGHUP as well: both refused, the last good rules keep matching
        (config / "watches.yaml").write_text("watches:\n  troops:\n    actors: [nobody]\n")
        time.sleep(3)
        proc.send_signal(signal.SIGHUP)
        items.append(story_page(server, "third", "Wednesday"))
        server.routes["/feed.xml"] = Route(body=rss(items))
        wait_for(lambda: ("third", "lavrov") in matched(db))
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "watch rules not reloaded, the last good rules keep running" in err
    assert "watches.yaml:3:" in err and "nobody" in err
    assert ("third", "troops") in matched(db)


def test_the_daemon_delivers_a_match_to_a_webhook_once(server, tmp_path):
    db = tmp_path / "m.db"
    server.routes["/hook"] = Route(body=b"{}")
    server.routes["/feed.xml"] = Route(body=rss([story_page(server, "first", "Monday")]))
    config = write_config(tmp_path / "cfg", f"sqlite:///{db}", {"rferl": server.url("/feed.xml")})
    (config / "channels.yaml").write_text(
        f"channels:\n  hook:\n    url: json://127.0.0.1:{server.port}/hook\n"
    )
    (config / "watches.yaml").write_text(
        "watches:\n  troops:\n    keywords: [troops]\n    notify: [hook]\n    group_wait: 0s\n"
    )
    (config / "templates").mkdir()  # the user's own text template replaces the shipped one
    (config / "templates" / "text.txt").write_text("From our desk: {{ message.title }}\n")
    # the feed's first poll is backlog and never alerts: publish the story after it
    proc = start(config)
    try:
        wait_for(lambda: server.count("/feed.xml") >= 1)
        items = [story_page(server, "first", "Monday"), story_page(server, "second", "Tuesday")]
        server.routes["/feed.xml"] = Route(body=rss(items))
        wait_for(lambda: server.count("/hook") >= 1)
        time.sleep(3)  # another delivery tick: nothing more is sent
    finally:
        code, err = stop(proc)
    assert code == 0, err
    (hit,) = [h for h in server.hits if h.path == "/hook"]
    assert hit.method == "POST" and b"troops: 1 new story" in hit.body
    assert b"From our desk: troops: 1 new story" in hit.body


def test_sigkill_while_a_channel_is_down_loses_no_alert_and_sends_it_once(server, tmp_path):
    db = tmp_path / "m.db"
    server.routes["/hook"] = Route(status=503, body=b"down")
    server.routes["/feed.xml"] = Route(body=rss([story_page(server, "first", "Monday")]))
    config = write_config(tmp_path / "cfg", f"sqlite:///{db}", {"rferl": server.url("/feed.xml")})
    with (config / "monitor.yaml").open("a") as f:
        f.write("delivery:\n  retry_base: 1s\n  retry_max: 2s\n  lease: 3s\n")
    (config / "channels.yaml").write_text(
        f"channels:\n  hook:\n    url: json://127.0.0.1:{server.port}/hook\n"
    )
    (config / "watches.yaml").write_text(
        "watches:\n  troops:\n    keywords: [troops]\n    notify: [hook]\n    group_wait: 0s\n"
    )
    proc = start(config)
    wait_for(lambda: server.count("/feed.xml") >= 1)
    items = [story_page(server, "first", "Monday"), story_page(server, "second", "Tuesday")]
    server.routes["/feed.xml"] = Route(body=rss(items))
    wait_for(lambda: server.count("/hook") >= 2)  # queued, and failing against a channel down
    proc.kill()  # SIGKILL: no chance to finish anything
    proc.communicate(timeout=10)  # reaps it and closes its pipes
    server.routes["/hook"] = Route(body=b"{}")
    failed = server.count("/hook")
    proc = start(config)
    try:
        wait_for(lambda: server.count("/hook") > failed)
        time.sleep(4)  # more ticks and lease expiries: nothing is sent again
    finally:
        code, err = stop(proc)
    assert code == 0, err
    delivered = [h for h in server.hits if h.path == "/hook"][failed:]
    assert len(delivered) == 1 and b"second" in delivered[0].body
