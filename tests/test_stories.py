"""Story grouping: signatures, the day rule, explanations, and the scores on the labelled set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor import stories
from tests.neardup.cases import by_id, published
from tests.neardup.evaluate import (
    STORY_TARGET_PRECISION,
    actor_spellings,
    evaluate_stories,
)

WED = datetime(2022, 1, 19, 12, 0, tzinfo=UTC)


def sig(tid: str, text: str, when: datetime = WED) -> stories.Signature:
    return stories.signature(tid, text, when, actors=actor_spellings())


def test_dates_are_resolved_against_the_published_day_weekdays_included():
    days = stories.mentioned_days("on Wednesday, then Geneva on Friday; since December 2", WED)
    assert [d.isoformat() for d in days] == ["2022-01-19", "2022-01-21", "2021-12-02"]


def test_actor_spellings_fold_to_one_term():
    a = sig("a", "Blinken met President Volodymyr Zelenskiy in Kyiv.")
    b = sig("b", "Blinken met President Volodymyr Zelenskyy in Kiev.")
    assert "@zelensky" in a.terms and "@zelensky" in b.terms
    assert "@ukraine" in a.terms and "@ukraine" in b.terms


def test_the_lead_day_comes_from_the_first_sentences_only():
    text = "Blinken met Lavrov in Stockholm on December 2.\nThey meet again on January 21."
    assert sig("a", text, datetime(2021, 12, 2, tzinfo=UTC)).lead_day.isoformat() == "2021-12-02"


def test_a_day_conflict_starts_a_new_story_and_says_why():
    kyiv = stories.Story.start("kyiv", sig("k", "Blinken in Kyiv on Wednesday urged unity."))
    geneva = sig(
        "g",
        "Blinken met Lavrov in Geneva on January 21, officials said.",
        WED + timedelta(hours=20),
    )
    bg = stories.Background().add(kyiv.members[0]).add(geneva)
    decision = stories.assign(geneva, [kyiv], bg, threshold=0.0)
    assert decision.story is None
    assert "2022-01-21" in decision.explain() and "kyiv" in decision.explain()


def test_an_explanation_names_the_shared_terms_the_day_and_the_score():
    first = sig("a", "Blinken urged unity in Kyiv on Wednesday against Russian aggression.")
    second = sig(
        "b",
        "In Kyiv on Wednesday, Blinken called for unity against Russian aggression.",
        WED + timedelta(hours=3),
    )
    story = stories.Story.start("s1", first)
    bg = stories.Background().add(first).add(second)
    decision = stories.assign(second, [story], bg)
    assert decision.story is story
    line = decision.explain()
    assert "Blinken" in line and "2022-01-19" in line and "same day" in line
    assert f"similarity {decision.score:.2f}" in line and decision.score >= stories.THRESHOLD


def test_a_story_outside_the_window_is_not_a_candidate():
    first = sig("a", "Blinken urged unity in Kyiv against Russian aggression.")
    later = sig(
        "b", "Blinken urged unity in Kyiv against Russian aggression.", WED + timedelta(days=3)
    )
    story = stories.Story.start("s1", first)
    decision = stories.assign(later, [story], stories.Background().add(first).add(later))
    assert decision.story is None and "window" in decision.reason


def test_001_and_002_are_one_story_and_stockholm_and_geneva_are_two():
    s = evaluate_stories()
    assert s.placed["001/original"] == s.placed["002/as-republished"]
    assert s.placed["stub/stockholm"] != s.placed["stub/geneva"]
    assert s.placed["003/original"] != s.placed["stub/geneva"]
    assert s.placed["001/original"] != s.placed["stub/geneva"]


def test_published_times_put_every_text_on_its_event_s_days():
    when, texts = published(), by_id()
    assert when["stub/geneva"] - when["003/original"] > timedelta(days=40)
    assert all(t in when for t in texts)


def test_the_evaluation_counts_grouping_everything_as_imprecise():
    """The scorer can fail: with threshold 0 and a window of months, stories merge."""
    s = evaluate_stories(threshold=-1.0, window=timedelta(days=90))
    assert s.precision < STORY_TARGET_PRECISION


# The targets (precision >= 0.95, recall >= 0.80) are not met yet (0.876 / 0.862):
# `python -m tests.neardup.evaluate` prints the figures and the wrong pairs, docs/stories.md says
# why. A test asserting them comes with the grouping that meets them (issue 5 stays open).
