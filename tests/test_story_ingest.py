"""Near-duplicates and stories in ingest and delivery (issue 5), on SQLite and PostgreSQL, with
real loopback outlets: a copy under other boilerplate is another source of the article, 001
and 002 (one visit, two outlets, other words) are one story, Stockholm in December and Geneva
in January are two, and a story is one entry that lists every outlet, updated only when the
route asks for updates."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from monitor.config import DeliverySettings
from monitor.demo.server import LoopbackServer, Route
from monitor.demo.site import STORIES
from monitor.dispatch import Planner, plan_all
from monitor.pipeline import activate_rules, poll_cycle
from monitor.rules.active import definitions
from monitor.rules.query import parse_query
from monitor.rules.spec import ActorSpec, Alias, ChannelSpec, Delivery, RuleSet, WatchSpec
from monitor.store.clusters import MAX_CANDIDATES, Frequencies, Stories, _Background
from monitor.store.schema import article_bands, stories
from monitor.stories import Signature
from tests.support import Item, feed_spec, rss, runtime, settings
from tests.test_dispatch import text_render

KYIV_001 = datetime(2022, 1, 19, 11, 45, tzinfo=UTC)  # RFE/RL's story of the Kyiv visit
KYIV_002 = datetime(2022, 1, 19, 15, 20, tzinfo=UTC)  # AP's story of it, in other words
STOCKHOLM_003 = datetime(2021, 12, 2, 16, 31, tzinfo=UTC)
GENEVA_STUB = (
    "U.S. Secretary of State Antony Blinken met Russian Foreign Minister Sergei Lavrov in Geneva "
    "on January 21, officials said. The two spoke for about ninety minutes. This is a developing "
    "story and will be updated."
)
CHANNEL = ChannelSpec("desk", "console://", "text")


def paragraphs(number: str) -> list[str]:
    return [p for p in STORIES[number].splitlines() if p.strip()]


def republished(number: str) -> list[str]:
    """Another outlet's copy: its own notes around the story, the last two paragraphs cut."""
    return [
        "This story was first published by our partner and is republished with permission.",
        *paragraphs(number)[:-2],
        "Sign up for the Borderland Times morning briefing, in your inbox every weekday.",
    ]


class Outlets:
    """Loopback outlets, each one feed of full-content entries (extract.fetch_pages off)."""

    def __init__(self, server: LoopbackServer, store, clock, **dedupe: bool) -> None:
        self.server, self.store, self.clock = server, store, clock
        self.cfg = settings(extract={"fetch_pages": False}, dedupe=dedupe)
        self.rules: RuleSet | None = None
        self.names: list[str] = []

    def publish(self, outlet: str, *entries: tuple[str, str, list[str], datetime]) -> None:
        """The outlet's feed now lists these entries: (slug, title, paragraphs, published)."""
        items = [
            Item(
                guid=f"{outlet}-{slug}",
                title=title,
                link=f"{self.server.base}/{outlet}/{slug}.html",
                published=when,
                description="".join(f"<p>{p}</p>" for p in paras),
            )
            for slug, title, paras, when in entries
        ]
        self.server.routes[f"/{outlet}/feed.xml"] = Route(
            rss(items), content_type="application/rss+xml"
        )
        if outlet not in self.names:
            self.names.append(outlet)
            base = self.server.base
            specs = [feed_spec(n, f"{base}/{n}/feed.xml") for n in self.names]
            self.store.sync_feeds(specs, self.clock())

    def poll(self, outlet: str):
        async def cycle():
            async with runtime(self.store, self.clock, self.cfg) as rt:
                if self.rules is not None:
                    rt.rules = activate_rules(self.store, self.rules, self.clock())
                return await poll_cycle(rt, [outlet], ignore_schedule=True)

        return asyncio.run(cycle())


@pytest.fixture
def outlets(store, clock):
    with LoopbackServer() as server:
        yield Outlets(server, store, clock)


@pytest.fixture(params=[True, False], ids=["near-duplicates on", "near-duplicates off"])
def copies(request, store, clock):
    with LoopbackServer() as server:
        yield Outlets(server, store, clock, near_duplicates=request.param), request.param


def test_a_copy_under_other_boilerplate_is_another_source_of_the_article(copies, store):
    outlets, on = copies
    outlets.publish("rferl", ("kyiv", "Blinken in Kyiv", paragraphs("001"), KYIV_001))
    outlets.publish("paper", ("kyiv-copy", "Blinken urges Putin", republished("001"), KYIV_001))
    first = outlets.poll("rferl")
    copy = outlets.poll("paper")
    assert first.new == 1
    stored = store.articles()
    if not on:  # the setting is what makes the difference
        assert (copy.new, copy.duplicates, len(stored)) == (1, 0, 2)
        return
    assert (copy.new, copy.duplicates) == (0, 1)
    (article,) = stored
    assert article.outlets == ("paper", "rferl")
    assert article.title == "Blinken in Kyiv"  # the earliest copy is canonical
    with store.engine.connect() as c:  # one fingerprint indexed: the copy's is not kept
        indexed = c.execute(select(func.count(func.distinct(article_bands.c.article_id))))
        assert indexed.scalar_one() == 1


def test_the_same_visit_told_by_two_outlets_is_one_story_and_says_why(outlets, store):
    outlets.publish(
        "rferl", ("kyiv", "Blinken urges Putin to choose diplomacy", paragraphs("001"), KYIV_001)
    )
    outlets.publish("ap", ("kyiv", "Blinken in Kyiv urges unity", paragraphs("002"), KYIV_002))
    assert outlets.poll("rferl").new == 1
    assert outlets.poll("ap").new == 1  # other words: a second article, not a copy
    rferl, ap = sorted(store.articles(), key=lambda a: a.id)
    assert rferl.story_id == ap.story_id == rferl.id
    assert rferl.story_reason is not None and rferl.story_reason.startswith("new story")
    assert ap.story_reason is not None and f"joins story {rferl.id}" in ap.story_reason
    assert "Blinken" in ap.story_reason  # what they share, named
    # placed in another transaction: the stored story's leads were read back and compared
    assert "leads share:" in ap.story_reason
    assert [a.id for a in store.articles(story=rferl.id)] == [ap.id, rferl.id]


def test_stockholm_in_december_and_geneva_in_january_stay_apart(outlets, store, clock):
    clock.advance(days=1, hours=5)  # 2022-01-21 13:00
    outlets.publish(
        "rferl",
        ("stockholm", "Blinken meets Lavrov in Stockholm", paragraphs("003"), STOCKHOLM_003),
        (
            "geneva",
            "Blinken meets Lavrov in Geneva",
            [GENEVA_STUB],
            clock() - timedelta(minutes=20),
        ),
    )
    assert outlets.poll("rferl").new == 2
    geneva, stockholm = sorted(store.articles(), key=lambda a: a.title)
    assert geneva.story_id != stockholm.story_id
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(stories)).scalar_one() == 2


def _rules(delivery: Delivery) -> RuleSet:
    blinken = {"blinken": ActorSpec("blinken", (Alias("Blinken"),))}
    watch = WatchSpec("kyiv", parse_query("@blinken"), delivery=delivery)
    return RuleSet(blinken, (watch,), {CHANNEL.name: CHANNEL})


def _plan(store, rules: RuleSet, clock) -> list[int]:
    since = store.register_watches(definitions(rules), clock())
    return plan_all(store, rules, DeliverySettings(), clock(), text_render, since)


def _the_visit(outlets: Outlets) -> None:
    outlets.publish(
        "rferl", ("kyiv", "Blinken urges Putin to choose diplomacy", paragraphs("001"), KYIV_001)
    )
    outlets.publish("ap", ("kyiv", "Blinken in Kyiv urges unity", paragraphs("002"), KYIV_002))
    outlets.poll("rferl")
    outlets.poll("ap")


def test_a_digest_lists_a_story_once_with_every_outlet(outlets, store, clock):
    outlets.rules = _rules(Delivery((CHANNEL.name,), digest="0 9 * * *"))
    _the_visit(outlets)
    assert len(store.matches()) == 2  # the story matched through both its articles
    clock.advance(hours=1, minutes=1)  # past 09:00
    (queued,) = _plan(store, outlets.rules, clock)
    (row,) = store.outbox()
    assert row.id == queued and row.kind == "digest" and len(row.stories) == 1
    lines = row.content["text"].splitlines()
    assert lines[0] == "kyiv digest: 1 new story"
    assert lines[1].startswith("- Blinken urges Putin to choose diplomacy (RFERL, AP)")


@pytest.mark.parametrize("updates", [True, False], ids=["updates", "no updates"])
def test_a_story_that_gains_an_outlet_is_an_update_only_where_the_route_asks(
    outlets, store, clock, updates
):
    outlets.rules = _rules(Delivery((CHANNEL.name,), group_wait=timedelta(0), updates=updates))
    _the_visit(outlets)
    clock.advance(minutes=1)
    assert len(_plan(store, outlets.rules, clock)) == 1  # one alert for the story, not two
    (alert,) = store.outbox()
    assert len(alert.stories) == 1 and "(RFERL, AP)" in alert.content["text"]
    clock.advance(minutes=10)
    outlets.publish("paper", ("kyiv-copy", "Blinken urges Putin", republished("001"), KYIV_001))
    assert outlets.poll("paper").duplicates == 1
    clock.advance(minutes=1)
    queued = _plan(store, outlets.rules, clock)
    if not updates:
        assert queued == []
        return
    (update,) = [r for r in store.outbox() if r.id in queued]
    assert update.kind == "update" and update.stories == alert.stories
    assert "+1 source: PAPER" in update.content["text"]
    clock.advance(minutes=10)
    assert _plan(store, outlets.rules, clock) == []  # told once


def test_the_planner_notices_an_article_in_other_words_joining_an_alerted_story(
    outlets, store, clock
):
    """AP's story does not match the watch itself (no Lukashenka in it), but it joins the story
    that did: the daemon's incremental Planner sees the story gain an outlet and updates it."""
    belarus = WatchSpec(
        "belarus",
        parse_query("Lukashenka"),
        delivery=Delivery((CHANNEL.name,), group_wait=timedelta(0)),
    )
    outlets.rules = RuleSet({}, (belarus,), {CHANNEL.name: CHANNEL})
    since = store.register_watches(definitions(outlets.rules), clock())
    planner, defaults = Planner(sweep_every=timedelta(days=3650)), DeliverySettings()

    def plan() -> list[int]:
        return planner.plan(store, outlets.rules, defaults, clock(), text_render, since)

    assert plan() == []  # the first tick: every route, nothing yet
    outlets.publish("rferl", ("kyiv", "Blinken urges Putin", paragraphs("001"), KYIV_001))
    outlets.poll("rferl")
    clock.advance(minutes=1)
    (alert,) = plan()
    clock.advance(minutes=10)
    outlets.publish("ap", ("kyiv", "Blinken in Kyiv urges unity", paragraphs("002"), KYIV_002))
    assert outlets.poll("ap").new == 1
    assert len(store.matches()) == 1  # AP's article matched nothing
    clock.advance(minutes=1)
    (queued,) = plan()
    (update,) = [r for r in store.outbox() if r.id == queued]
    assert update.kind == "update" and "+1 source: AP" in update.content["text"]


def test_a_story_matched_again_through_another_article_is_not_alerted_twice(outlets, store, clock):
    delivery = Delivery((CHANNEL.name,), group_wait=timedelta(0), updates=False)
    outlets.rules = _rules(delivery)
    outlets.publish("rferl", ("kyiv", "Blinken urges Putin", paragraphs("001"), KYIV_001))
    outlets.poll("rferl")
    clock.advance(minutes=1)
    assert len(_plan(store, outlets.rules, clock)) == 1
    clock.advance(minutes=5)
    outlets.publish("ap", ("kyiv", "Blinken in Kyiv urges unity", paragraphs("002"), KYIV_002))
    outlets.poll("ap")
    assert len(store.matches()) == 2  # AP's article matched too: the same story
    clock.advance(minutes=10)
    assert _plan(store, outlets.rules, clock) == []
    clock.advance(hours=4)  # repeat_interval (4 h) counts per story: now it may go again
    (again,) = _plan(store, outlets.rules, clock)
    (row,) = [r for r in store.outbox() if r.id == again]
    assert row.kind == "alert" and "(RFERL, AP)" in row.content["text"]


def test_a_grown_storys_norm_is_the_norm_of_its_summed_terms():
    """Stories.place carries a story's norm over when an article joins it, adding only the
    article's terms: with the same document frequencies it is the norm summed again."""
    df = {"kyiv": 40, "blinken": 7, "troops": 120, "visit": 15}
    log_df = {t: math.log(n + 0.5) for t, n in df.items()}
    background = _Background(1_000, df, log_df, {})
    story = {"kyiv": 3.0, "blinken": 2.0, "troops": 0.5}
    added = {"blinken": 1.0, "visit": 0.25}
    grown = {t: story.get(t, 0.0) + added.get(t, 0.0) for t in {*story, *added}}
    carried = background.norm_grown(background.norm(story), story, added)
    assert carried == pytest.approx(background.norm(grown), rel=1e-12)
    assert carried != pytest.approx(background.norm(story))  # it did grow


def _story_signature(n: int, when: datetime) -> Signature:
    """A story of its own: one key shared with every other, a lead shared with none."""
    own = {f"own{n}": 5.0}
    return Signature(str(n), when, {"shared": 1.0, **own}, {}, None, None, own)


def test_a_transaction_reads_only_the_stored_stories_an_article_may_join(store, clock):
    """Every stored story sharing a key is counted, but only the MAX_CANDIDATES that rank
    first for some article are read (a large store has thousands sharing a common word)."""
    when = clock()
    with store.engine.begin() as c:
        placing = Stories(lambda: c)
        for n in range(6):
            sig = _story_signature(n, when)
            keys = ("shared", f"own{n}")
            placing.prefetch([(when, keys)])
            placing.place(100 + n, sig, keys)
        placing.flush(when)
        assert len(placing.held) == 6  # six stories: no lead in common
    with store.engine.begin() as c:
        reading = Stories(lambda: c)
        reading.prefetch([(when, ("shared", "own2", "own4"))])
        assert reading.by_key["shared"] == {100, 101, 102, 103, 104, 105}
        assert set(reading.held) == {102, 104}  # two keys each; the others one
        assert MAX_CANDIDATES == 2


def test_document_frequencies_count_pending_terms_and_keep_them_when_written():
    """Frequencies counts an article's terms in a Counter and adds them to the sketch when
    it is written: read before and after, and read back from the bytes, they agree."""
    sketch = Frequencies()
    sketch.add({"kyiv": 2.0, "troops": 0.25})  # a signature's terms: their keys count
    sketch.add(["kyiv"])
    assert (sketch["kyiv"], sketch["troops"], sketch["absent"]) == (2, 1, 0)
    stored = sketch.to_bytes()
    assert (sketch["kyiv"], sketch["troops"]) == (2, 1)  # nothing counted twice
    again = Frequencies(sketch.docs, stored)
    assert (again.docs, again["kyiv"], again["troops"], again["absent"]) == (2, 2, 1, 0)
    again.add(["troops"])
    assert again["troops"] == 2
