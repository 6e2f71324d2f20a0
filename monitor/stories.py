"""Story grouping: which stored articles report the same event (pure functions, no I/O).

Issue 5, second half. An article's *signature* is what it is about: the names it mentions
(capitalised words, actor spellings folded to the actor's key through actors.yaml), the dates
it mentions (resolved against its published time, weekdays included), and its content words.
A *story* is the sum of its members' signatures. Articles arrive one at a time, oldest first;
`assign` compares a new article with the open stories (those with a member within `window` of
it) and joins the most similar one at or above `threshold`, or starts a new story. Nothing is
ever re-clustered: a story only grows.

Similarity is the cosine of TF-IDF vectors, the article against the story's summed terms, with
document frequencies from a `Background` the caller keeps (the articles seen so far). Two rules
come before it:

- a near-duplicate (`monitor.fingerprint.is_near_duplicate`) of a member is in the story;
- a *day conflict* keeps an article out: when its lead paragraph dates the event ("on December
  2", "on Wednesday") to a day that none of the story's members' leads names. The same actors
  meeting in Stockholm in December and in Geneva in January are two stories, and so are the
  stubs "Blinken met Lavrov in Geneva on January 21" and a story of January 19 that looks ahead
  to that meeting in the same words.

Parameters were chosen on the labelled set in tests/neardup (docs/stories.md,
``python -m tests.neardup.evaluate``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from monitor.fingerprint import Fingerprint, is_near_duplicate
from monitor.rules.text import keys, sentence_spans, shapes

WINDOW = timedelta(hours=36)
"""An article joins only a story with a member published at most this long before or after it:
news of one event comes out within a day and a half; later pieces are follow-ups."""

THRESHOLD = 0.20
"""The cosine at or above which an article joins a story (see docs/stories.md)."""

NAME_WEIGHT = 2.0  # a name or a date says more about the event than a content word
DATE_WEIGHT = 2.0
LEAD_WEIGHT = 3.0  # the lead says what the event is; the body adds background and side news
LEAD_SENTENCES = 2
WORD_WEIGHT = 0.25

_MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_MONTHS |= {m[:3]: i for m, i in list(_MONTHS.items())} | {"sept": 9}
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS = {d: i for i, d in enumerate(_WEEKDAY_NAMES)}
_MON = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DATE = re.compile(
    rf"\b(?:(?P<month>{_MON})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{{4}}))?"
    rf"|(?P<day2>\d{{1,2}})\s+(?P<month2>{_MON})(?:\s+(?P<year2>\d{{4}}))?"
    rf"|(?:on|since|last|this|next|until|by)\s+(?P<weekday>{_WEEKDAY}))\b"
)

# Words that say nothing about which event: function words, reporting verbs, news filler.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can cannot could did do does doing down during each even ever
    few for from further had has have having he her here hers herself him himself his how however
    i if in into is it its itself just last least less like made make many may me might more most
    much must my near never new no nor not now of off on once one only or other our ours ourselves
    out over own per same she should since so some still such than that the their theirs them
    themselves then there these they this those though through thus to too under until up upon
    us very via was we were what when where whether which while who whom whose why will with
    within without would yet you your yours yourself said says say saying told tell according
    added adding asked called noted stated statement spokesman spokeswoman spokesperson reported
    reporting report reports news story developing updated update week weeks month months year
    years day days today yesterday tomorrow time times mr mrs ms dr first second two three four
    five six seven eight nine ten percent million billion including include includes well way
    going get got""".split()  # noqa: SIM905 (a word list reads better as text)
    + list(_MONTH_NAMES)
    + list(_WEEKDAY_NAMES)
)


@dataclass(frozen=True)
class Background:
    """Document frequencies of terms among the articles seen so far: what makes a term rare."""

    docs: int = 0
    df: Mapping[str, int] = field(default_factory=dict)

    def add(self, signature: Signature) -> Background:
        """The background with one more article counted."""
        df = dict(self.df)
        for term in signature.terms:
            df[term] = df.get(term, 0) + 1
        return Background(self.docs + 1, df)

    def idf(self, term: str) -> float:
        return math.log((self.docs + 1) / (self.df.get(term, 0) + 0.5))


@dataclass(frozen=True)
class Signature:
    """What an article is about, as story grouping compares it."""

    id: str
    published: datetime
    terms: Mapping[str, float]  # term -> weighted term frequency
    labels: Mapping[str, str]  # term -> how an explanation shows it ("Blinken", "2022-01-19")
    lead_day: date | None  # the day the lead paragraph dates the event to, if it does
    fingerprint: Fingerprint | None = None


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

    @classmethod
    def start(cls, story_id: str, article: Signature) -> Story:
        """A new story of one article."""
        days = frozenset({article.lead_day}) if article.lead_day else frozenset()
        return cls(
            story_id,
            (article,),
            dict(article.terms),
            dict(article.labels),
            days,
            article.published,
            article.published,
        )

    def add(self, article: Signature) -> Story:
        """The story with one more member."""
        terms = dict(self.terms)
        for term, w in article.terms.items():
            terms[term] = terms.get(term, 0.0) + w
        days = self.days | ({article.lead_day} if article.lead_day else set())
        return replace(
            self,
            members=(*self.members, article),
            terms=terms,
            labels={**article.labels, **self.labels},
            days=frozenset(days),
            first=min(self.first, article.published),
            last=max(self.last, article.published),
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

    def explain(self) -> str:
        """One line a person can check: "shares: Blinken, Kyiv, ...; same day; similarity 0.41"."""
        shares = f"shares: {', '.join(self.shared)}; " if self.shared else ""
        return f"{self.reason}; {shares}similarity {self.score:.2f}"


# -- signatures ---------------------------------------------------------------------------------


def spellings(aliases: Mapping[str, Iterable[tuple[str, bool]]]) -> dict[tuple[str, ...], str]:
    """Actor key by the folded words of each alias, from actor key -> (alias text, case
    sensitive). Wildcard aliases (Путин*) are left out: a story term is a whole word.
    A case-sensitive alias keeps its shape ("US", so "us" the pronoun is not the actor)."""
    out: dict[tuple[str, ...], str] = {}
    for key, texts in aliases.items():
        for text, case_sensitive in texts:
            if text.endswith("*"):
                continue
            words = tuple(shapes(text) if case_sensitive else keys(text))
            if words:
                out[(("=",) if case_sensitive else ()) + words] = key
    return out


def signature(
    article_id: str,
    text: str,
    published: datetime,
    *,
    actors: Mapping[tuple[str, ...], str] | None = None,
    fingerprint: Fingerprint | None = None,
) -> Signature:
    """The signature of an article's stored text (one paragraph a line), published at
    `published` (timezone-aware), with actor spellings folded by `actors` (from `spellings`)."""
    if published.tzinfo is None:
        raise ValueError("published must be timezone-aware")
    actors = actors or {}
    longest = max((len(k) for k in actors), default=0)
    counts: dict[str, float] = {}
    labels: dict[str, str] = {}
    lead_text = lead(text)
    for n, paragraph in enumerate([lead_text, *text.splitlines()]):
        ks, ss = keys(paragraph), shapes(paragraph)
        scale = LEAD_WEIGHT - 1.0 if n == 0 else 1.0  # the lead again, on top of its paragraph
        i = 0
        while i < len(ks):
            hit = _actor_at(ks, ss, i, actors, longest)
            if hit is not None:
                key, n = hit
                term = f"@{key}"
                counts[term] = counts.get(term, 0.0) + NAME_WEIGHT * scale
                labels.setdefault(term, " ".join(ss[i : i + n]))
                i += n
                continue
            k, s = ks[i], ss[i]
            i += 1
            if len(k) < 3 or k.isdigit() or k in STOPWORDS:
                continue
            if s[0].isupper():
                term = f"@{k}"
                counts[term] = counts.get(term, 0.0) + NAME_WEIGHT * scale
                labels.setdefault(term, s)
            else:
                term = _stem(k)
                counts[term] = counts.get(term, 0.0) + WORD_WEIGHT * scale
                labels.setdefault(term, f"'{k}'")
    days = mentioned_days(text, published)
    for d in days:
        term = f"#{d.isoformat()}"
        counts[term] = counts.get(term, 0.0) + DATE_WEIGHT
        labels[term] = d.isoformat()
    lead_days = mentioned_days(lead_text, published)
    terms = {t: (1.0 + math.log(c)) if c >= 1 else c for t, c in counts.items()}
    return Signature(
        article_id, published, terms, labels, lead_days[0] if lead_days else None, fingerprint
    )


def lead(text: str) -> str:
    """The lead: the first sentences of the first paragraph (a reflowed text is one paragraph)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    spans = [span for span in sentence_spans(first) if span[1] > span[0]][:LEAD_SENTENCES]
    return first[spans[0][0] : spans[-1][1]] if spans else ""


def _actor_at(
    ks: Sequence[str],
    ss: Sequence[str],
    i: int,
    actors: Mapping[tuple[str, ...], str],
    longest: int,
) -> tuple[str, int] | None:
    for n in range(min(longest, len(ks) - i), 0, -1):
        key = actors.get(tuple(ks[i : i + n])) or actors.get(("=", *ss[i : i + n]))
        if key is not None:
            return key, n
    return None


def _stem(word: str) -> str:
    """A crude English stem: plural and common verb endings (troops/troop, sanctioned)."""
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + repl
    return word


def mentioned_days(text: str, published: datetime) -> list[date]:
    """The days `text` names, in order: "December 2", "2 December 2021", "on Wednesday". A date
    without a year takes the year that puts it nearest `published`; a weekday is the nearest
    such day within three days of `published` (news writes "on Friday" for this week's)."""
    today = published.astimezone(UTC).date()
    found: list[date] = []
    for m in _DATE.finditer(text):
        if m["weekday"]:
            target = _WEEKDAYS[m["weekday"].lower()]
            offset = (target - today.weekday() + 3) % 7 - 3
            found.append(today + timedelta(days=offset))
            continue
        month_name, day = (m["month"], m["day"]) if m["month"] else (m["month2"], m["day2"])
        year = m["year"] or m["year2"]
        month = _MONTHS[_month_key(month_name)]
        years = [int(year)] if year else [today.year - 1, today.year, today.year + 1]
        options = []
        for y in years:
            try:
                options.append(date(y, month, int(day)))
            except ValueError:
                continue
        if options:
            found.append(min(options, key=lambda d: abs((d - today).days)))
    return found


def _month_key(name: str) -> str:
    low = name.lower().rstrip(".")
    return low if low in _MONTHS else low[:3]


# -- similarity and assignment -----------------------------------------------------------------


def similarity(
    article: Signature, story: Story, background: Background
) -> tuple[float, tuple[str, ...]]:
    """Cosine of the article's and the story's TF-IDF vectors, and the labels of the shared
    terms that weigh most in it (at most six)."""
    a = {t: w * background.idf(t) for t, w in article.terms.items()}
    s = {t: w * background.idf(t) for t, w in story.terms.items()}
    na = math.sqrt(sum(v * v for v in a.values()))
    ns = math.sqrt(sum(v * v for v in s.values()))
    if not na or not ns:
        return 0.0, ()
    parts = {t: a[t] * s[t] for t in a.keys() & s.keys()}
    score = sum(parts.values()) / (na * ns)
    top = sorted(parts, key=lambda t: (-parts[t], t))[:6]
    return score, tuple(story.labels.get(t, t) for t in top)


def day_conflict(article: Signature, story: Story) -> bool:
    """The article's lead dates the event to a day none of the story's leads names."""
    return article.lead_day is not None and bool(story.days) and article.lead_day not in story.days


def assign(
    article: Signature,
    stories: Iterable[Story],
    background: Background,
    *,
    window: timedelta = WINDOW,
    threshold: float = THRESHOLD,
) -> Decision:
    """The story `article` belongs to among `stories` (the candidates the caller holds), or
    None to start a new one, with the reason. `background` should already count `article`."""
    best: Decision | None = None
    conflicts: list[str] = []
    for story in stories:
        if not story.open_at(article.published, window):
            continue
        if article.fingerprint is not None and any(
            m.fingerprint is not None and is_near_duplicate(article.fingerprint, m.fingerprint)
            for m in story.members
        ):
            return Decision(story, 1.0, (), f"near-duplicate of an article of story {story.id}")
        score, shared = similarity(article, story, background)
        if day_conflict(article, story):
            if score >= threshold:
                conflicts.append(story.id)
            continue
        if best is None or score > best.score:
            best = Decision(story, score, shared, "")
    if best is not None and best.score >= threshold and best.story is not None:
        gap = abs(article.published - best.story.last)
        when = _same_day(article, best.story, gap)
        return replace(best, reason=f"joins story {best.story.id}: {when}")
    if conflicts:
        others = ", ".join(conflicts)
        reason = f"new story: the lead dates it {article.lead_day}, not the day of {others}"
    elif best is not None:
        closest = best.story.id if best.story else "?"
        reason = f"new story: closest open story {closest} below {threshold:.2f}"
    else:
        reason = "new story: no open story within the window"
    score, shared = (best.score, best.shared) if best is not None else (0.0, ())
    return Decision(None, score, shared, reason)


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
        decision = assign(article, open_, background, window=window, threshold=threshold)
        if decision.story is None:
            story = Story.start(f"s{len(stories) + 1}", article)
        else:
            story = decision.story.add(article)
        stories[story.id] = story
        placed[article.id] = story.id
        why[article.id] = decision.explain()
    return placed, why
