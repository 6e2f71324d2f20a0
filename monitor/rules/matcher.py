"""Match an article against compiled rules: find every term in one pass, then evaluate only the
watches those terms can trigger.

Pure: `match(rules, document)` returns the matches, `explain(rules, document, watch)` says why a
watch did or did not match. Both read the title and text the store keeps (boilerplate removed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from monitor.rules.compiler import (
    AND,
    NOT,
    OR,
    TERM,
    CompiledRules,
    CompiledWatch,
    Pattern,
    Program,
)
from monitor.rules.snippet import Snippet, best_snippet
from monitor.rules.spec import FIELDS, Filters
from monitor.rules.text import Scanned, word_shape


@dataclass(frozen=True, slots=True)
class Document:
    """What matching reads of an article."""

    title: str
    text: str
    outlets: frozenset[str] = frozenset()  # slugs of the outlets that carried it
    tags: frozenset[str] = frozenset()
    language: str | None = None


class Hit(NamedTuple):
    """A term found in a field: character offsets and word indexes into that field."""

    term: int
    field: str
    start: int
    end: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class TermHit:
    """A matched term as stored and shown: what the rule said and what the text says."""

    term: str  # the rule's spelling: troops, @putin, sanction*
    field: str
    start: int
    end: int
    text: str  # as written in the article: "Troops", "Zelenskyy’s"


@dataclass(frozen=True, slots=True)
class Match:
    watch: str
    score: float
    hits: tuple[TermHit, ...]
    snippet: Snippet

    @property
    def terms(self) -> tuple[str, ...]:
        """The distinct terms that matched, in the order first found."""
        return tuple(dict.fromkeys(hit.term for hit in self.hits))


@dataclass
class Found:
    """Every term found in a document, and the scanned fields (kept for proximity/snippets)."""

    scans: dict[str, Scanned]
    by_term: dict[int, list[Hit]]

    def within(self, fields: Sequence[str]) -> dict[int, list[Hit]]:
        """The hits in these fields only."""
        if len(fields) == len(FIELDS):
            return self.by_term
        kept: dict[int, list[Hit]] = {}
        for term, hits in self.by_term.items():
            if inside := [hit for hit in hits if hit.field in fields]:
                kept[term] = inside
        return kept


# --------------------------------------------------------------------------------------------------
# Finding terms


def find(rules: CompiledRules, doc: Document) -> Found:
    """Run the automaton over the title and the text."""
    scans = {"title": Scanned.of(doc.title), "text": Scanned.of(doc.text)}
    by_term: dict[int, list[Hit]] = defaultdict(list)
    for field, scan in scans.items():
        seen: set[Hit] = set()
        for hit in _hits(rules, scan, field):
            if hit not in seen:
                seen.add(hit)
                by_term[hit.term].append(hit)
    return Found(scans, dict(by_term))


def _hits(rules: CompiledRules, scan: Scanned, field: str) -> Iterable[Hit]:
    if not scan.keys:
        return
    automaton = rules.automaton
    spans, words = scan.spans, scan.words
    for end, (length, patterns) in automaton.iter(scan.stream):
        first = scan.token_at(end - length + 2)
        for p in patterns:
            last = first + p.words - 1
            if p.shape is None or _shape_fits(p, words[first : last + 1]):
                yield Hit(p.term, field, spans[first][0], spans[last][1], first, last)
    # A hyphenated compound is also tried as one word ("build-up" as "buildup").
    for lo, hi in scan.compounds():
        yield from _compound_hits(rules, scan, field, lo, hi)


def _compound_hits(
    rules: CompiledRules, scan: Scanned, field: str, lo: int, hi: int
) -> Iterable[Hit]:
    """Hits that include the compound words[lo..hi] written as one word, looked for in a window
    of the words around it as long as the longest pattern."""
    reach = rules.max_words - 1
    begin, stop = max(0, lo - reach), min(len(scan.keys), hi + 1 + reach)
    window = [*scan.keys[begin:lo], "".join(scan.keys[lo : hi + 1]), *scan.keys[hi + 1 : stop]]
    joined = lo - begin  # the compound's index in the window
    shapes = [
        *scan.words[begin:lo],
        "".join(word_shape(w) for w in scan.words[lo : hi + 1]),
        *scan.words[hi + 1 : stop],
    ]
    stream = " " + " ".join(window) + " "
    starts, at = [], 1
    for key in window:
        starts.append(at)
        at += len(key) + 1
    for end, (length, patterns) in rules.automaton.iter(stream):
        first_w = starts.index(end - length + 2)
        for p in patterns:
            last_w = first_w + p.words - 1
            if not first_w <= joined <= last_w:
                continue  # the split text already gave this hit
            if p.shape is not None and not _shape_fits(p, shapes[first_w : last_w + 1]):
                continue
            first = begin + first_w if first_w < joined else lo
            last = hi + (last_w - joined) if last_w >= joined else begin + last_w
            yield Hit(p.term, field, scan.spans[first][0], scan.spans[last][1], first, last)


def _shape_fits(pattern: Pattern, words: Sequence[str]) -> bool:
    """A case-sensitive spelling: the text's words as written (diacritics aside) must agree."""
    assert pattern.shape is not None
    shapes = [word_shape(w) for w in words]
    if pattern.prefix:
        return shapes[:-1] == list(pattern.shape[:-1]) and shapes[-1].startswith(pattern.shape[-1])
    return tuple(shapes) == pattern.shape


# --------------------------------------------------------------------------------------------------
# Evaluating watches


def match(rules: CompiledRules, doc: Document) -> list[Match]:
    """Every watch the document matches, in the order the watches are defined."""
    found = find(rules, doc)
    if not found.by_term:
        return []
    present = set(found.by_term)
    candidates: set[int] = set()
    for term in present:
        candidates.update(rules.triggers.get(term, ()))
    matches = []
    for index in sorted(candidates):
        watch = rules.watches[index]
        if any(clause.isdisjoint(present) for clause in watch.clauses):
            continue
        if not passes(watch.spec.filters, doc):
            continue
        hits = found.within(watch.spec.fields)
        if not evaluate(watch.program, hits, found.scans):
            continue
        score = score_of(watch, hits)
        if score >= watch.spec.threshold:
            matches.append(_result(rules, watch, hits, found, score))
    return matches


def passes(filters: Filters, doc: Document) -> bool:
    """Whether the document is one the watch looks at (outlet, tags, language)."""
    if filters.outlets and filters.outlets.isdisjoint(doc.outlets):
        return False
    if filters.tags and filters.tags.isdisjoint(doc.tags):
        return False
    return not filters.languages or _language_in(doc.language, filters.languages)


def _language_in(language: str | None, wanted: frozenset[str]) -> bool:
    """ "en-GB" is in {"en"}; "en" is not in {"en-GB"}."""
    if language is None:
        return False
    language = language.casefold()
    wanted = frozenset(w.casefold() for w in wanted)
    return language in wanted or language.split("-")[0] in wanted


def evaluate(program: Program, hits: Mapping[int, list[Hit]], scans: dict[str, Scanned]) -> bool:
    op = program[0]
    if op == TERM:
        return program[1] in hits
    if op == AND:
        return all(evaluate(item, hits, scans) for item in program[1])
    if op == OR:
        return any(evaluate(item, hits, scans) for item in program[1])
    if op == NOT:
        return not evaluate(program[1], hits, scans)
    return closest(program, hits, scans) is not None


def closest(
    program: Program, hits: Mapping[int, list[Hit]], scans: dict[str, Scanned]
) -> tuple[Hit, Hit] | None:
    """For a NEAR program: a left and a right hit close enough, or None."""
    _, left_terms, right_terms, within = program
    left = [hit for term in left_terms for hit in hits.get(term, ())]
    right = [hit for term in right_terms for hit in hits.get(term, ())]
    for a in left:
        for b in right:
            if a.field == b.field and _near(a, b, within, scans[a.field]):
                return a, b
    return None


def _near(a: Hit, b: Hit, within: int | str, scan: Scanned) -> bool:
    if within == "sentence":
        return scan.sentence_of(a.start) == scan.sentence_of(b.start)
    if within == "paragraph":
        return scan.paragraph_of(a.start) == scan.paragraph_of(b.start)
    # NEAR/N: the later one starts at most N words after the earlier one ends (adjacent = 1)
    assert isinstance(within, int)
    return max(b.first - a.last, a.first - b.last) <= within


def score_of(watch: CompiledWatch, hits: Mapping[int, list[Hit]]) -> float:
    """The sum, over each scoring term and each field it was found in, of that field's weight:
    a term in the title counts `weights.title`, in the text `weights.text`, in both the sum."""
    weights = watch.spec.weights
    total = 0.0
    for term in watch.scoring:
        for field in {hit.field for hit in hits.get(term, ())}:
            total += weights.get(field, 0.0)
    return total


def _result(
    rules: CompiledRules,
    watch: CompiledWatch,
    hits: Mapping[int, list[Hit]],
    found: Found,
    score: float,
) -> Match:
    mine = [hit for term in watch.scoring for hit in hits.get(term, ())]
    mine.sort(key=lambda hit: (FIELDS.index(hit.field), hit.start))
    texts = {field: scan.text for field, scan in found.scans.items()}
    term_hits = tuple(
        TermHit(rules.terms[h.term].label, h.field, h.start, h.end, texts[h.field][h.start : h.end])
        for h in mine
    )
    return Match(watch.name, score, term_hits, snippet_for(found, mine))


def snippet_for(found: Found, hits: Sequence[Hit]) -> Snippet:
    """The best sentence or two of the text; the title when the text is empty."""
    text = found.scans["text"].text
    if text.strip():
        return best_snippet(text, [(h.start, h.end, h.term) for h in hits if h.field == "text"])
    title = found.scans["title"].text
    marks = tuple(sorted({(h.start, h.end) for h in hits if h.field == "title"}))
    return best_snippet(title, [(s, e, 0) for s, e in marks])
