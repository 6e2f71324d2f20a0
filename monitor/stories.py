"""Story grouping: which stored articles report the same event (pure functions, no I/O).

Issue 5, second half. An article's *signature* (`monitor.story_signature`, re-exported here) is
what it is about: names, dates, content words, and its lead's terms and day apart. A *story* is
the sum of its members' signatures. Articles arrive one at a time, oldest first; `assign`
compares a new article with the open stories (a member within `window` of it) and joins the
best one at or above `threshold`, or starts a new story. Nothing is ever re-clustered: a story
only grows.

A story is a candidate only when its leads do not contradict the article's day
(`day_conflict`): the same actors meeting in Stockholm in December and in Geneva in January
are two stories, and so are "Blinken spoke with Lavrov on January 18" and the next morning's
"Blinken has called on Putin ..." from Kyiv. A near-duplicate of a member that keeps the
member's lead joins at once. Otherwise the score is the mean of two TF-IDF cosines, with
document frequencies from a `Background` the caller keeps (the articles seen so far):

- the *body*: the article's terms against the story's summed terms (what it talks about);
- the *lead*: the article's lead against the story's leads (what it reports: who, where, what).
  Below `LEAD_MIN` the story is no candidate at all: a brief that quotes three paragraphs of the
  Kyiv story under a lead about the Russian deputy foreign minister reports his statement.

Averaging the two lets a one-sentence bulletin, whose body cosine against a long story is small,
join on its lead. Parameters were chosen on the labelled set in tests/neardup (docs/stories.md,
``python -m tests.neardup.evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from monitor.fingerprint import is_near_duplicate
from monitor.story_signature import (
    STOPWORDS,
    Signature,
    lead,
    lead_day,
    mentioned_days,
    signature,
    spellings,
)

__all__ = [
    "STOPWORDS",
    "Background",
    "Decision",
    "Signature",
    "Story",
    "assign",
    "day_conflict",
    "group",
    "lead",
    "lead_day",
    "lead_similarity",
    "mentioned_days",
    "signature",
    "similarity",
    "spellings",
]

WINDOW = timedelta(hours=36)
"""An article joins only a story with a member published at most this long before or after it:
news of one event comes out within a day and a half; later pieces are follow-ups."""

THRESHOLD = 0.10
"""The score (the mean of the body and the lead cosines) at or above which an article joins a
story: the middle of the labelled set's gap (docs/stories.md)."""

UNDATED_GRACE = timedelta(hours=6)
"""How long after a day ends an article whose lead names no day may still report that day's
event: the evening's news in the Americas is the morning's in UTC (see `day_conflict`)."""

BODY_ONLY_THRESHOLD = 0.20
"""Without lead terms on either side (a story kept without them, a lead of stopwords) the body
cosine alone decides, at the threshold it had before leads were compared (docs/stories.md).
The score is scaled so that `threshold` still applies."""

BODY_SHARE = 0.5  # the score's share of the body cosine; the rest is the lead cosine
LEAD_MIN = 0.045
"""A story's leads must share at least this much with the article's lead (cosine): an article
that quotes the story's text under a lead about someone else reports another event. The middle
of the labelled set's gap (docs/stories.md)."""


@dataclass(frozen=True)
class Background:
    """Document frequencies of terms among the articles seen so far: what makes a term rare."""

    docs: int = 0
    df: Mapping[str, int] = field(default_factory=dict)
    # idf by term, filled as asked: one assign asks for the same terms of many stories
    _idf: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def add(self, signature: Signature) -> Background:
        """The background with one more article counted."""
        df = dict(self.df)
        for term in signature.terms:
            df[term] = df.get(term, 0) + 1
        return Background(self.docs + 1, df)

    def idf(self, term: str) -> float:
        known = self._idf.get(term)
        if known is None:
            known = self._idf[term] = math.log((self.docs + 1) / (self.df.get(term, 0) + 0.5))
        return known

    def norm(self, terms: Mapping[str, float]) -> float:
        """The length of the TF-IDF vector of `terms` (a subclass may compute it faster: every
        candidate story's is asked for each article)."""
        idf = self.idf
        return math.sqrt(sum((w * idf(t)) ** 2 for t, w in terms.items()))

    def idfs(self, terms: Iterable[str]) -> dict[str, float]:
        """The idf of each term (a subclass may compute them faster)."""
        idf = self.idf
        return {t: idf(t) for t in terms}


@dataclass(frozen=True)
class Story:
    """Articles grouped as one event: their summed terms, their lead days, their time span."""

    id: str
    members: tuple[Signature, ...]
    terms: Mapping[str, float]
    labels: Mapping[str, str]
    days: frozenset[date]
    first: datetime
    last: datetime
    lead_terms: Mapping[str, float] = field(default_factory=dict)  # its members' leads, summed

    @classmethod
    def start(cls, story_id: str, article: Signature, *, keep_member: bool = True) -> Story:
        """A new story of one article (kept as its member unless `keep_member` is False: the
        store keeps none, their signatures would be held for nothing)."""
        days = frozenset({article.lead_day}) if article.lead_day else frozenset()
        return cls(
            story_id,
            (article,) if keep_member else (),
            dict(article.terms),
            dict(article.labels),
            days,
            article.published,
            article.published,
            dict(article.lead_terms),
        )

    def add(self, article: Signature) -> Story:
        """The story with one more member."""
        terms = dict(self.terms)
        get = terms.get
        for term, w in article.terms.items():
            terms[term] = get(term, 0.0) + w
        days = self.days | {article.lead_day} if article.lead_day else self.days
        lead_terms = dict(self.lead_terms)
        get = lead_terms.get
        for term, w in article.lead_terms.items():
            lead_terms[term] = get(term, 0.0) + w
        return Story(
            self.id,
            (*self.members, article),
            terms,
            {**article.labels, **self.labels},
            days,
            min(self.first, article.published),
            max(self.last, article.published),
            lead_terms,
        )

    def open_at(self, when: datetime, window: timedelta = WINDOW) -> bool:
        """Whether an article published at `when` may still join (a member within `window`)."""
        return self.first - window <= when <= self.last + window


@dataclass(frozen=True)
class Decision:
    """Where `assign` put an article, and why."""

    story: Story | None  # None: start a new story
    score: float
    shared: tuple[str, ...]  # labels of the terms that weigh most in the similarity
    reason: str  # "near-duplicate", "similar", "new story: ..."
    lead_shared: tuple[str, ...] = ()  # labels of the terms its lead shares with the story's

    def explain(self) -> str:
        """One line a person can check: "joins story s6: same day (2022-01-19), 3 h from its
        latest article; leads share: Blinken, Wednesday; shares: Blinken, Kyiv, ...;
        similarity 0.41"."""
        leads = f"leads share: {', '.join(self.lead_shared)}; " if self.lead_shared else ""
        shares = f"shares: {', '.join(self.shared)}; " if self.shared else ""
        return f"{self.reason}; {leads}{shares}similarity {self.score:.2f}"


# -- similarity and assignment -----------------------------------------------------------------


def similarity(
    article: Signature, story: Story, background: Background
) -> tuple[float, tuple[str, ...]]:
    """Cosine of the article's and the story's TF-IDF vectors, and the labels of the shared
    terms that weigh most in it (at most six)."""
    score, parts = _cosine(_Vector.of(article.terms, background), story.terms, background)
    return score, _top_labels(parts, story, 6)


def lead_similarity(
    article: Signature, story: Story, background: Background
) -> tuple[float, tuple[str, ...]]:
    """Cosine of the article's lead and the story's leads (TF-IDF, the lead terms alone), and
    the labels of the shared terms that weigh most in it (at most four): whether the article
    reports what the story's articles report, not only quotes the same background."""
    article_lead = _Vector.of(article.lead_terms, background)
    score, parts = _cosine(article_lead, story.lead_terms, background)
    return score, _top_labels(parts, story, 4)


@dataclass(frozen=True)
class _Vector:
    """An article's TF-IDF weights and their norm, computed once for all candidate stories;
    and each weight times its idf again, what a story's term weight is multiplied by in the
    dot product (a story's vector is its summed weights times the same idfs)."""

    weights: dict[str, float]
    norm: float
    by_story_weight: dict[str, float]

    @classmethod
    def of(cls, terms: Mapping[str, float], background: Background) -> _Vector:
        idf = background.idfs(terms)
        weights = {t: w * idf[t] for t, w in terms.items()}
        norm = math.sqrt(sum(v * v for v in weights.values()))
        return cls(weights, norm, {t: w * idf[t] for t, w in weights.items()})


_NOTHING_SHARED: dict[str, float] = {}


def _cosine(
    a: _Vector, s_terms: Mapping[str, float], background: Background
) -> tuple[float, dict[str, float]]:
    """The cosine, and each shared term's part of the dot product (for `_top_labels`)."""
    if not a.norm or not s_terms:
        return 0.0, _NOTHING_SHARED
    ns = background.norm(s_terms)
    if not ns:
        return 0.0, _NOTHING_SHARED
    factor = a.by_story_weight
    parts = {t: factor[t] * s_terms[t] for t in factor.keys() & s_terms.keys()}
    return sum(parts.values()) / (a.norm * ns), parts


def _top_labels(parts: Mapping[str, float], story: Story, n: int) -> tuple[str, ...]:
    """The labels of the `n` shared terms that weigh most (worked out only for the decision
    an explanation shows, not for every candidate)."""
    top = sorted(parts, key=lambda t: (-parts[t], t))[:n]
    return tuple(story.labels.get(t, t) for t in top)


def day_conflict(article: Signature, story: Story) -> bool:
    """The article's lead dates the event to a day none of the story's leads names; or it
    dates nothing, so it reports the news of the hours before it came out, and every day the
    story's leads name ended more than `UNDATED_GRACE` before that ("Blinken has called on
    Putin..." the morning after a story of "Blinken spoke with Lavrov on January 18")."""
    if not story.days:
        return False
    if article.lead_day is None:
        latest = datetime.combine(max(story.days) + timedelta(days=1), time(), UTC)
        return article.published > latest + UNDATED_GRACE
    return article.lead_day not in story.days


def assign(
    article: Signature,
    stories: Iterable[Story],
    background: Background,
    *,
    window: timedelta = WINDOW,
    threshold: float = THRESHOLD,
    lead_min: float = LEAD_MIN,
) -> Decision:
    """The story `article` belongs to among `stories` (the candidates the caller holds), or
    None to start a new one, with the reason. `background` should already count `article`.

    A near-duplicate of a member of an open story (`window`) that keeps the member's lead joins
    it at once. Else a story is a candidate when its leads do not contradict the article's day
    (`day_conflict`), and the article joins the candidate with the highest score, the mean of
    the body and the lead similarities, at or above `threshold`, provided the leads share at
    least `lead_min`. Without lead terms on either side the body cosine alone decides, at
    `BODY_ONLY_THRESHOLD`."""
    best: _Scored | None = None
    conflicts: list[str] = []
    off_lead: list[tuple[str, float]] = []
    closest: _Scored | None = None  # the highest score, excluded or not, for the explanation
    body_vector = _Vector.of(article.terms, background)
    lead_vector = _Vector.of(article.lead_terms, background)
    for story in stories:
        if not story.open_at(article.published, window):
            continue
        if _copies_a_member(article, story):
            return Decision(story, 1.0, (), f"near-duplicate of an article of story {story.id}")
        body, body_parts = _cosine(body_vector, story.terms, background)
        lead_parts = _NOTHING_SHARED
        if not lead_vector.norm or not story.lead_terms:  # no lead known: the body decides
            lead_score = 1.0
            score = body * THRESHOLD / BODY_ONLY_THRESHOLD
        else:
            lead_score, lead_parts = _cosine(lead_vector, story.lead_terms, background)
            score = BODY_SHARE * body + (1.0 - BODY_SHARE) * lead_score
        scored = _Scored(story, score, body_parts, lead_parts)
        if closest is None or score > closest.score:
            closest = scored
        if day_conflict(article, story):
            if score >= threshold:
                conflicts.append(story.id)
            continue
        if lead_score < lead_min:
            if score >= threshold:
                off_lead.append((story.id, lead_score))
            continue
        if best is None or score > best.score:
            best = scored
    if best is not None and best.score >= threshold:
        gap = abs(article.published - best.story.last)
        when = _same_day(article, best.story, gap)
        return best.decision(best.story, f"joins story {best.story.id}: {when}")
    if conflicts:
        others = ", ".join(conflicts)
        dated = f"the lead dates it {article.lead_day}" if article.lead_day else "an undated lead"
        reason = f"new story: {dated}, not the day of {others}"
    elif off_lead:
        others = ", ".join(f"{sid} ({lead:.3f})" for sid, lead in off_lead)
        reason = (
            f"new story: its lead reports something else than the leads of {others},"
            f" below {lead_min:g}"
        )
    elif closest is not None:
        reason = f"new story: closest open story {closest.story.id} below {threshold:.2f}"
    else:
        reason = "new story: no open story within the window"
    if closest is None:
        return Decision(None, 0.0, (), reason)
    return closest.decision(None, reason)


@dataclass(frozen=True, slots=True)
class _Scored:
    """A candidate story's score, and the shared terms' parts for its explanation."""

    story: Story
    score: float
    body_parts: Mapping[str, float]
    lead_parts: Mapping[str, float]

    def decision(self, story: Story | None, reason: str) -> Decision:
        return Decision(
            story,
            self.score,
            _top_labels(self.body_parts, self.story, 6),
            reason,
            _top_labels(self.lead_parts, self.story, 4),
        )


def _copies_a_member(article: Signature, story: Story) -> bool:
    """A near-duplicate of a member that keeps the member's lead. A copy, cut or rewritten,
    keeps most of its original's lead; an excerpt of a few paragraphs under a lead of its own
    (a quarter of a long story is near the fingerprint's threshold) is another article."""
    fp = article.fingerprint
    return fp is not None and any(
        m.fingerprint is not None
        and is_near_duplicate(fp, m.fingerprint)
        and _keeps_lead(article, m)
        for m in story.members
    )


def _keeps_lead(article: Signature, original: Signature) -> bool:
    """At least half of the original's lead terms are in the article."""
    lead_terms = original.lead_terms
    return sum(1 for t in lead_terms if t in article.terms) * 2 >= len(lead_terms)


def _same_day(article: Signature, story: Story, gap: timedelta) -> str:
    if article.lead_day is not None and article.lead_day in story.days:
        day = f"same day ({article.lead_day})"
    elif article.lead_day is None:
        day = "no day stated in its lead"
    else:
        day = f"its lead dates it {article.lead_day}, the story's leads state no day"
    hours = gap.total_seconds() / 3600
    return f"{day}, {hours:.0f} h from its latest article"


def group(
    articles: Iterable[Signature],
    *,
    window: timedelta = WINDOW,
    threshold: float = THRESHOLD,
    lead_min: float = LEAD_MIN,
) -> tuple[dict[str, str], dict[str, str]]:
    """Incremental grouping of articles in published order, as ingest would do it one by one:
    article id -> story id, and article id -> the explanation of its placement."""
    stories: dict[str, Story] = {}
    background = Background()
    placed: dict[str, str] = {}
    why: dict[str, str] = {}
    for article in sorted(articles, key=lambda a: (a.published, a.id)):
        background = background.add(article)
        open_ = [s for s in stories.values() if s.open_at(article.published, window)]
        decision = assign(
            article, open_, background, window=window, threshold=threshold, lead_min=lead_min
        )
        if decision.story is None:
            story = Story.start(f"s{len(stories) + 1}", article)
        else:
            story = decision.story.add(article)
        stories[story.id] = story
        placed[article.id] = story.id
        why[article.id] = decision.explain()
    return placed, why
