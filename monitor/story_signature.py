"""An article's story signature: what it is about, as story grouping compares it (pure).

Part of `monitor.stories` (which re-exports these names): the names an article mentions
(capitalised words, actor spellings folded to the actor's key through actors.yaml), the dates
it mentions (resolved against its published time, weekdays included), its content words, and
its *lead*: the first sentences of its first paragraph of running text, which say what the
event is, who is in it and which day it happened.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from monitor.fingerprint import Fingerprint
from monitor.rules.text import keys, sentence_spans, shapes

NAME_WEIGHT = 2.0  # a name or a date says more about the event than a content word
DATE_WEIGHT = 2.0
LEAD_WEIGHT = 3.0  # the lead says what the event is; the body adds background and side news
LEAD_SENTENCES = 2
LEAD_MIN_WORDS = 12  # a lead sentence; "Breaking News", "Share this:" and the like are shorter
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
class Signature:
    """What an article is about, as story grouping compares it."""

    id: str
    published: datetime
    terms: Mapping[str, float]  # term -> weighted term frequency
    labels: Mapping[str, str]  # term -> how an explanation shows it ("Blinken", "2022-01-19")
    lead_day: date | None  # the day the lead paragraph dates the event to, if it does
    fingerprint: Fingerprint | None = None
    lead_terms: Mapping[str, float] = field(default_factory=dict)  # the lead's terms alone


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
    index = _ActorIndex.of(actors or {})
    counts: dict[str, float] = {}
    labels: dict[str, str] = {}
    lead_counts: dict[str, float] = {}
    lead_text = lead(text)
    for term, label, weight in _paragraph_terms(lead_text, index):
        lead_counts[term] = lead_counts.get(term, 0.0) + weight
        # the lead again, on top of its paragraph
        counts[term] = counts.get(term, 0.0) + weight * (LEAD_WEIGHT - 1.0)
        labels.setdefault(term, label)
    for paragraph in text.splitlines():
        for term, label, weight in _paragraph_terms(paragraph, index):
            counts[term] = counts.get(term, 0.0) + weight
            labels.setdefault(term, label)
    days = mentioned_days(text, published)
    for d in days:
        term = f"#{d.isoformat()}"
        counts[term] = counts.get(term, 0.0) + DATE_WEIGHT
        labels[term] = d.isoformat()
    return Signature(
        article_id,
        published,
        _damped(counts),
        labels,
        lead_day(lead_text, published),
        fingerprint,
        _damped(lead_counts),
    )


def _damped(counts: Mapping[str, float]) -> dict[str, float]:
    """Sublinear term frequency: the tenth mention of a name adds less than the second."""
    return {t: (1.0 + math.log(c)) if c >= 1 else c for t, c in counts.items()}


@dataclass(frozen=True)
class _ActorIndex:
    """Actor spellings (from `spellings`) by their first word: most words start none, and
    one dictionary look-up tells (each word of each article is asked)."""

    by_key: dict[str, tuple[tuple[tuple[str, ...], str], ...]]  # longest spelling first
    by_shape: dict[str, tuple[tuple[tuple[str, ...], str], ...]]  # case-sensitive ones

    @classmethod
    def of(cls, actors: Mapping[tuple[str, ...], str]) -> _ActorIndex:
        known = _INDEXES.get(id(actors))
        if known is not None and known[0] is actors:
            return known[1]
        by_key: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        by_shape: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for words, key in actors.items():
            if words[0] == "=":
                by_shape.setdefault(words[1], []).append((words[1:], key))
            else:
                by_key.setdefault(words[0], []).append((words, key))
        index = cls(_longest_first(by_key), _longest_first(by_shape))
        if len(_INDEXES) > 8:  # one or two actors files in a process; reloads replace them
            _INDEXES.clear()
        _INDEXES[id(actors)] = (actors, index)
        return index

    def at(self, ks: Sequence[str], ss: Sequence[str], i: int) -> tuple[str, int] | None:
        """The actor whose spelling starts at word i, longest first, and its length."""
        best: tuple[str, int] | None = None
        for table, words in ((self.by_key, ks), (self.by_shape, ss)):
            for spelling, key in table.get(words[i], ()):
                n = len(spelling)
                if (best is None or n > best[1]) and tuple(words[i : i + n]) == spelling:
                    best = (key, n)
                    break  # the longest of this table that fits
        return best


def _longest_first(
    table: dict[str, list[tuple[tuple[str, ...], str]]],
) -> dict[str, tuple[tuple[tuple[str, ...], str], ...]]:
    return {w: tuple(sorted(v, key=lambda sk: -len(sk[0]))) for w, v in table.items()}


_INDEXES: dict[int, tuple[Mapping[tuple[str, ...], str], _ActorIndex]] = {}
_WORD_TERMS: dict[str, tuple[str, str, float] | None] = {}  # a lowercase word's term, or None
_WORD_TERMS_MAX = 30_000  # distinct words kept: most of news English, ~8 MB at most


def _paragraph_terms(paragraph: str, actors: _ActorIndex) -> list[tuple[str, str, float]]:
    """(term, label, weight) of each word of a paragraph that says which event: actors by
    their key, other capitalised words as names, content words stemmed; the rest left out."""
    ks, ss = keys(paragraph), shapes(paragraph)
    found: list[tuple[str, str, float]] = []
    by_key, by_shape = actors.by_key, actors.by_shape
    i, n = 0, len(ks)
    while i < n:
        k, s = ks[i], ss[i]
        if k in by_key or s in by_shape:
            hit = actors.at(ks, ss, i)
            if hit is not None:
                key, length = hit
                found.append((f"@{key}", " ".join(ss[i : i + length]), NAME_WEIGHT))
                i += length
                continue
        i += 1
        if s[0].isupper():
            if len(k) >= 3 and not k.isdigit() and k not in STOPWORDS:
                found.append((f"@{k}", s, NAME_WEIGHT))
            continue
        term = _WORD_TERMS.get(k, _UNKNOWN)
        if term is _UNKNOWN:
            term = _word_term(k)
            if len(_WORD_TERMS) >= _WORD_TERMS_MAX:
                _WORD_TERMS.clear()
            _WORD_TERMS[k] = term
        if term is not None:
            found.append(term)
    return found


_UNKNOWN = ("", "", 0.0)


def _word_term(k: str) -> tuple[str, str, float] | None:
    """A lowercase word's term: its stem, unless it is short, a number or a stopword."""
    if len(k) < 3 or k.isdigit() or k in STOPWORDS:
        return None
    return _stem(k), f"'{k}'", WORD_WEIGHT


def lead_day(lead_text: str, published: datetime) -> date | None:
    """The day the lead dates the event to: its first date. A lead that announces a plan ("is
    set to travel to Berlin on January 20") dates the planned event, another event than the
    day's news it may be published with."""
    days = mentioned_days(lead_text, published)
    return days[0] if days else None


def lead(text: str) -> str:
    """The lead: the first sentences of the first paragraph of `LEAD_MIN_WORDS` words or more
    (a line of leaked chrome, a headline or "Share this:" is shorter; a reflowed text is one
    paragraph), or of the first paragraph when none is that long."""
    paragraphs = [line for line in text.splitlines() if line.strip()]
    first = next((p for p in paragraphs if _reads_as_lead(p)), paragraphs[0] if paragraphs else "")
    spans = [span for span in sentence_spans(first) if span[1] > span[0]][:LEAD_SENTENCES]
    return first[spans[0][0] : spans[-1][1]] if spans else ""


def _reads_as_lead(paragraph: str) -> bool:
    """A paragraph of running text: `LEAD_MIN_WORDS` words or more, most not capitalised (so
    not "Breaking News", "Share this:" nor a headline in title case)."""
    words = paragraph.split()
    capitalised = sum(1 for w in words if w[:1].isupper())
    return len(words) >= LEAD_MIN_WORDS and capitalised * 2 < len(words)


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
