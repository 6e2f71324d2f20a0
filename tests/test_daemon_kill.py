"""`monitor run` killed with SIGKILL again and again while it polls, matches and sends alerts to
a loopback webhook: every alert arrives, and no story reaches the channel in two messages."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter

from monitor.demo.server import LoopbackServer, Route
from tests.chaos import configure
from tests.support import Item, page, rss
from tests.test_daemon import start, stop, wait_for

STORIES = 36
MOMENTS = ("mid-send", "starting", "after a send", "mid-send", "after a send", "starting")
TEXTS = {  # what each story says, in turn, and the watches that match it
    "troops": "Russia has massed troops along the border, officials said of story {n}.",
    "lavrov": "Sergei Lavrov met his counterpart in Geneva to talk about story {n}.",
    "both": "Lavrov said the troops along the border would stay, whatever story {n} says.",
}
WATCHES = {"troops": {"troops", "both"}, "lavrov": {"lavrov", "both"}}
FILLER = (
    "Officials in Kyiv said they expected more of the same in the weeks ahead, and diplomats "
    "in Brussels and Washington said the talks would go on whatever happened on the ground."
)
_STORY = re.compile(r"/story(\d+)\.html")


def publish(server: LoopbackServer, stop_at: threading.Event) -> None:
    """A new story on the feed every 0.4 s, as a busy outlet would."""
    items = []
    kinds = list(TEXTS)
    for n in range(STORIES):
        if stop_at.is_set():
            return
        text = TEXTS[kinds[n % len(kinds)]].format(n=n)
        server.routes[f"/story{n}.html"] = Route(body=page(f"Story {n}", [text, FILLER, FILLER]))
        items.append(Item(f"s{n}", f"Story {n}", server.url(f"/story{n}.html")))
        server.routes["/feed.xml"] = Route(body=rss(items))
        time.sleep(0.4)


def sending(server: LoopbackServer, before: int, timeout: float = 30.0) -> None:
    """Return as soon as the webhook has a request beyond the first `before`."""
    deadline = time.monotonic() + timeout
    while server.count("/hook") <= before:
        assert time.monotonic() < deadline, "the daemon sent nothing"
        time.sleep(0.005)


def received(server: LoopbackServer) -> list[tuple[str, frozenset[int]]]:
    """Each message the webhook got: its watch (from the title) and the stories it tells."""
    found = []
    for hit in [h for h in server.hits if h.path == "/hook"]:
        body = json.loads(hit.body)
        watch = body["title"].split(":")[0]
        found.append((watch, frozenset(int(n) for n in _STORY.findall(body["message"]))))
    return found


def test_sigkill_again_and_again_while_sending_loses_no_alert_and_tells_no_story_twice(tmp_path):
    rng = random.Random(20220120)
    with LoopbackServer() as server:
        server.routes["/feed.xml"] = Route(body=rss([]))
        # a webhook that takes a moment to answer: kills land during sends too
        server.routes["/hook"] = Route(body=b"{}", delay=0.3)
        # Every story here is one template ("... of story {n}"): grouped as one event, all but
        # the first would be told as nothing new. Each is its own story in this test.
        config = configure(tmp_path, server, stories=False)
        proc = start(config)
        wait_for(lambda: server.count("/feed.xml") >= 1)  # the first poll: backlog, no alert
        done = threading.Event()
        publisher = threading.Thread(target=publish, args=(server, done))
        publisher.start()
        kills = []
        try:
            for moment in MOMENTS:
                before = server.count("/hook")
                if moment == "starting":  # migrations, the first poll, matching what is queued
                    time.sleep(rng.uniform(0.2, 1.5))
                elif moment == "mid-send":  # the webhook has the request, not yet answered
                    sending(server, before)
                else:  # sending again, then at some moment after a send
                    sending(server, before)
                    time.sleep(rng.uniform(0.1, 1.5))
                proc.kill()
                proc.communicate(timeout=10)
                kills.append((moment, server.count("/hook")))
                proc = start(config)
            publisher.join()
            want = Counter()
            for n in range(STORIES):
                kind = list(TEXTS)[n % len(TEXTS)]
                want.update((w, n) for w, kinds in WATCHES.items() if kind in kinds)

            def all_told() -> bool:
                return set(want) <= {(w, n) for w, told in received(server) for n in told}

            wait_for(all_told, timeout=40)
            time.sleep(3)  # more ticks and lease expiries: nothing is sent again
        finally:
            done.set()
            publisher.join()
            code, err = stop(proc)
        assert code == 0, err

    messages = received(server)
    assert len(kills) == len(MOMENTS)
    told = Counter((w, n) for w, stories in set(messages) for n in stories)
    assert told == want  # every alert, and no story in two different messages
    # The one thing a kill may do twice: send again the message it was sending when killed (the
    # channel had the request, the kill came before its "sent" was committed): the same message,
    # at most once per kill. Never a story in another message.
    again = sum(n - 1 for n in Counter(messages).values())
    assert again <= len(kills)
    assert len(messages) < sum(want.values())  # grouped, not one message per match
