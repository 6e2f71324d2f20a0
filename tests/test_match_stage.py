"""The match stage on SQLite and PostgreSQL: the durable queue, matches stored with their terms
and snippet, revisions matched again, and a watch that never fires on older articles."""

from __future__ import annotations

import pytest

from monitor.rules.active import ActiveRules, definitions, match_stored
from monitor.rules.compiler import compile_rules
from monitor.rules.query import parse_query
from monitor.rules.spec import ActorSpec, Alias, RuleSet, WatchSpec
from tests.test_store import article, claim_one, spec

ACTORS = {"russia": ActorSpec("russia", (Alias("Russia"), Alias("Moscow")))}


def ruleset(*watches: tuple[str, str]) -> RuleSet:
    return RuleSet(ACTORS, tuple(WatchSpec(name, parse_query(q)) for name, q in watches))


def activate(store, rules: RuleSet, now) -> ActiveRules:
    since = store.register_watches(definitions(rules), now)
    return ActiveRules(compile_rules(rules), since)


def run_stage(store, active: ActiveRules, now) -> tuple[int, int]:
    return store.match_pending(lambda arts: match_stored(active, arts), now)


@pytest.fixture
def feed(store, clock):
    store.sync_feeds([spec("rferl")], clock())
    return claim_one(store, "rferl", clock)


def test_a_new_article_is_queued_then_matched_with_terms_and_snippet(store, clock, feed):
    active = activate(store, ruleset(("troops", "@russia AND troops")), clock())
    store.ingest(feed, "g1", "h1", "https://x/1", article("https://x/1"), clock.advance(minutes=1))
    assert store.pending_matches() == 1
    assert run_stage(store, active, clock()) == (1, 1)
    assert store.pending_matches() == 0
    (m,) = store.matches()
    assert (m.watch, m.score, m.canonical_url) == ("troops", 2.0, "https://x/1")
    assert {h["term"] for h in m.hits} == {"@russia", "troops"}
    first = m.hits[0]
    assert (first["field"], first["start"], first["end"], first["text"]) == (
        "text",
        0,
        6,
        "Russia",
    )
    start, end = m.marks[0]
    assert m.snippet[start:end] == "Russia"
    assert run_stage(store, active, clock()) == (0, 0)  # nothing left to do


def test_a_failure_while_matching_leaves_the_articles_queued(store, clock, feed):
    active = activate(store, ruleset(("troops", "troops")), clock())
    store.ingest(feed, "g1", "h1", "https://x/1", article("https://x/1"), clock.advance(minutes=1))

    def broken(_articles):
        raise RuntimeError("matcher crashed")

    with pytest.raises(RuntimeError):
        store.match_pending(broken, clock())
    assert store.pending_matches() == 1 and store.matches() == []
    assert run_stage(store, active, clock()) == (1, 1)


def test_a_watch_added_later_does_not_fire_on_an_article_already_stored(store, clock, feed):
    first = activate(store, ruleset(("old", "troops")), clock())
    store.ingest(feed, "g1", "h1", "https://x/1", article("https://x/1"), clock.advance(minutes=1))
    # a new watch arrives (a reload) before the queued article was matched
    later = activate(
        store, ruleset(("old", "troops"), ("new", "@russia")), clock.advance(minutes=1)
    )
    assert later.since["old"] == first.since["old"]  # a known watch keeps its first date
    run_stage(store, later, clock())
    assert [m.watch for m in store.matches()] == ["old"]
    other = article("https://x/2", text="Russia sent troops across the river. " * 5)
    store.ingest(feed, "g2", "h2", "https://x/2", other, clock.advance(minutes=1))
    run_stage(store, later, clock())
    assert sorted(m.watch for m in store.matches()) == ["new", "old", "old"]


def test_a_revision_is_matched_again_and_updates_its_match(store, clock, feed):
    active = activate(
        store, ruleset(("troops", "troops"), ("moscow", "@russia AND talks")), clock()
    )
    store.ingest(feed, "g1", "h1", "https://x/1", article("https://x/1"), clock.advance(minutes=1))
    run_stage(store, active, clock())
    edited = article("https://x/1", text="Moscow agreed to talks; the troops stay. " * 5)
    assert (
        store.ingest(feed, "g1", "h2", "https://x/1", edited, clock.advance(minutes=5)).outcome
        == "revision"
    )
    assert store.pending_matches() == 1
    run_stage(store, active, clock())
    got = {m.watch: m for m in store.matches()}
    assert set(got) == {"troops", "moscow"}
    assert "Moscow agreed" in got["troops"].snippet  # the row now describes revision 2


def test_retention_deletes_an_articles_matches_with_it(store, clock, feed):
    active = activate(store, ruleset(("troops", "troops")), clock())
    store.ingest(feed, "g1", "h1", "https://x/1", article("https://x/1"), clock())
    run_stage(store, active, clock())
    clock.advance(days=400)  # no feed has listed it since
    assert store.purge(clock()) == 1
    assert store.matches() == []


def test_the_watch_filters_see_the_outlets_and_tags_of_the_article(store, clock, feed):
    rules = RuleSet(
        ACTORS,
        (
            WatchSpec("wire", parse_query("troops"), filters=_filters(tags={"wire"})),
            WatchSpec("tass", parse_query("troops"), filters=_filters(outlets={"tass"})),
        ),
    )
    active = activate(store, rules, clock())
    store.ingest(feed, "g1", "h1", "https://x/1", article("https://x/1"), clock.advance(minutes=1))
    run_stage(store, active, clock())
    assert [m.watch for m in store.matches()] == ["wire"]  # spec() tags the feed "wire"


def _filters(**sets):
    from monitor.rules.spec import Filters

    return Filters(**{k: frozenset(v) for k, v in sets.items()})
