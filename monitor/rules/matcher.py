"""Match an article against compiled rules: find every term in one pass, then evaluate only the
watches those terms can trigger.

Pure: `match(rules, document)` returns the matches, `explain(rules, document, watch)` says why a
watch did or did not match. Both read the title and text the store keeps (boilerplate removed)."""

from __future__ import annotations

import dataclasses
import functools
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from itertools import accumulate
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
    TermInfo,
)
from monitor.rules.snippet import Snippet, best_snippet
from monitor.rules.spec import FIELDS, Filters
from monitor.rules.text import Compound, Scanned, shapes


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


class Match:
    """A watch an article matched, with its score; every term found (field, offsets, as written)
    and the snippet are worked out when first read, so deciding costs only the decision (one
    small object per match: an article matches dozens of watches, most never read further)."""

    __slots__ = ("_compiled", "_found", "_hits", "_score", "_resolved")

    def __init__(
        self,
        compiled: CompiledWatch,
        found: Found,
        hits: Mapping[int, list[Hit]],
        score: float | None = None,  # None: worked out when read (when no threshold needs it)
    ) -> None:
        self._compiled = compiled
        self._found = found
        self._hits = hits
        self._score = score
        self._resolved: tuple[tuple[TermHit, ...], Snippet] | None = None

    @property
    def watch(self) -> str:
        """The watch's name (read when used: at 10,000 watches, its spec is far in memory)."""
        return self._compiled.spec.name

    @property
    def score(self) -> float:
        if self._score is None:
            found, watch, hits = self._found, self._compiled, self._hits
            self._score = _score(found, watch) if hits is found.by_term else score_of(watch, hits)
        return self._score

    def _resolve(self) -> tuple[tuple[TermHit, ...], Snippet]:
        if self._resolved is None:
            self._resolved = _details(self._compiled, self._hits, self._found)
        return self._resolved

    @property
    def hits(self) -> tuple[TermHit, ...]:
        return self._resolve()[0]

    @property
    def snippet(self) -> Snippet:
        return self._resolve()[1]

    def __repr__(self) -> str:
        return f"Match({self.watch!r}, score={self.score:g})"

    @property
    def terms(self) -> tuple[str, ...]:
        """The distinct terms that matched, in the order first found."""
        return tuple(dict.fromkeys(hit.term for hit in self.hits))


class HitMap(Mapping[int, list[Hit]]):
    """Term -> its hits, worked out when first asked: most watches only need to know which terms
    were found, and proximity needs only their sentences, paragraphs or word indexes (`places`,
    `word_spans`), so a Hit's offsets are worked out only for the terms a snippet, an
    explanation or a watch limited to some fields reads."""

    def __init__(self, scans: dict[str, Scanned], raw: dict[int, list[tuple[str, int, int]]]):
        self._scans = scans
        self._raw = raw  # term -> (field, where its first key starts in the stream, words)
        self.present = frozenset(raw)
        self._done: dict[int, list[Hit]] = {}
        self._places: dict[tuple[int, str], frozenset[tuple[str, int]]] = {}
        self._ends: dict[str, dict[str, list[int]]] = {}  # unit -> field -> its ends, in stream
        self._word_spans: dict[int, dict[str, list[tuple[int, int]]]] = {}
        self.extra: dict[int, list[Hit]] = {}  # hits found already resolved (compounds)

    def __getitem__(self, term: int) -> list[Hit]:
        done = self._done.get(term)
        if done is None:
            if term not in self._raw:
                raise KeyError(term)
            done = self._done[term] = self._resolve(term)
        return done

    def _resolve(self, term: int) -> list[Hit]:
        hits = []
        for field, at, words in self._raw[term]:
            if at < 0:
                continue  # a placeholder for hits that came resolved
            scan = self._scans[field]
            first = scan.token_at(at)
            last = first + words - 1
            start, end = scan.span(first, last)
            hits.append(Hit(term, field, start, end, first, last))
        hits += self.extra.get(term, ())
        return list(dict.fromkeys(hits))  # one place can be found twice (split and joined)

    def __contains__(self, term: object) -> bool:
        return term in self._raw

    def __iter__(self) -> Iterator[int]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def places(self, term: int, unit: str) -> frozenset[tuple[str, int]]:
        """The (field, sentence or paragraph number) where a term was found, worked out from
        the stream positions without building its hits; kept for the article."""
        found = self._places.get((term, unit))
        if found is None:
            ends = self._ends.get(unit)
            if ends is None:
                ends = self._ends[unit] = {
                    f: scan.ends_in_stream(unit) for f, scan in self._scans.items()
                }
            spots = {
                (field, bisect_right(ends[field], at))
                for field, at, _ in self._raw[term]
                if at >= 0  # not a compound's placeholder
            }
            for hit in self.extra.get(term, ()):
                spots.add((hit.field, self._scans[hit.field].unit_of(unit, hit.start)))
            found = self._places[(term, unit)] = frozenset(spots)
        return found

    def word_spans(self, term: int) -> dict[str, list[tuple[int, int]]]:
        """Each field's (first, last) word indexes where a term was found, sorted: what NEAR/N
        compares, worked out from the stream positions without building its hits; kept for the
        article."""
        spans = self._word_spans.get(term)
        if spans is None:
            by_field: dict[str, list[tuple[int, int]]] = defaultdict(list)
            for field, at, words in self._raw[term]:
                if at >= 0:  # not a compound's placeholder
                    first = self._scans[field].word_index(at)
                    by_field[field].append((first, first + words - 1))
            for hit in self.extra.get(term, ()):
                by_field[hit.field].append((hit.first, hit.last))
            spans = self._word_spans[term] = {f: sorted(s) for f, s in by_field.items()}
        return spans

    def fields(self) -> dict[int, int]:
        """Each term's fields as bits: 1 title, 2 text."""
        bits = {"title": 1, "text": 2}
        found: dict[int, int] = {}
        for term, raw in self._raw.items():
            mask = 0
            for field, _, _ in raw:
                mask |= bits[field]
            found[term] = mask
        return found


@dataclass(eq=False)
class Found:
    """Every term found in a document, and the scanned fields (kept for proximity/snippets)."""

    scans: dict[str, Scanned]
    by_term: HitMap
    terms: Sequence[TermInfo]  # the rules' terms, for their labels
    shown: dict[Hit, TermHit] = dataclasses.field(default_factory=dict)  # built by _details, shared

    @functools.cached_property
    def fields_found(self) -> dict[int, int]:
        """Each term's fields as bits: 1 title, 2 text (for scoring)."""
        return self.by_term.fields()

    def within(self, fields: Sequence[str]) -> Mapping[int, list[Hit]]:
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
    raw: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    extra: dict[int, list[Hit]] = defaultdict(list)
    for field, scan in scans.items():
        _find_in(rules, scan, field, raw, extra)
    hits = HitMap(scans, dict(raw))
    hits.extra = dict(extra)
    return Found(scans, hits, rules.terms)


def _find_in(
    rules: CompiledRules,
    scan: Scanned,
    field: str,
    raw: dict[int, list[tuple[str, int, int]]],
    extra: dict[int, list[Hit]],
) -> None:
    if not scan.keys:
        return
    for end, (length, term, words, patterns) in rules.automaton.iter(scan.stream):
        at = end - length + 2  # where the first key starts in the stream
        if term >= 0:  # one pattern, not case-sensitive: its objects need not be read
            raw[term].append((field, at, words))
            continue
        for p in patterns:
            if p.shape is not None and not _written_so(p, scan, at):
                continue
            raw[p.term].append((field, at, p.words))
    # A compound is also tried as one word ("build-up" as "buildup"), if any pattern has it.
    for compound in scan.compounds(rules.could_use):
        for hit in _compound_hits(rules, scan, field, compound):
            extra[hit.term].append(hit)
            raw[hit.term].append((field, -1, 0))  # found: presence and field


def _compound_hits(
    rules: CompiledRules, scan: Scanned, field: str, compound: Compound
) -> Iterable[Hit]:
    """Hits that include the compound's words joined into one word, looked for in a window of
    the words around them as long as the longest pattern."""
    lo, hi = compound.first, compound.last
    reach = rules.max_words - 1
    begin, stop = max(0, lo - reach), min(len(scan.keys), hi + 1 + reach)
    keys = scan.keys
    window = [*keys[begin:lo], "".join(keys[lo : hi + 1]), *keys[hi + 1 : stop]]
    joined = lo - begin  # the compound's index in the window

    def word(w: int) -> int:  # the first word of the text under window word w
        return begin + w if w <= joined else hi + (w - joined)

    stream = " " + " ".join(window) + " "
    starts = list(accumulate((len(k) + 1 for k in window), initial=1))
    for end, (length, _, _, patterns) in rules.automaton.iter(stream):
        first_w = starts.index(end - length + 2)
        for p in patterns:
            last_w = first_w + p.words - 1
            if not first_w <= joined <= last_w:
                continue  # the split text gave this hit already
            first = word(first_w)
            last = hi if last_w == joined else word(last_w)
            start = scan.offset_at(scan.locate(first, compound))
            stop = scan.offset_at(scan.locate(last, compound)) + len(keys[last])
            if p.shape is not None and not _shape_fits(
                p, _joined_shapes(scan.text[start:stop], first, lo, hi)
            ):
                continue
            yield Hit(p.term, field, start, stop, first, last)


def _written_so(pattern: Pattern, scan: Scanned, at: int) -> bool:
    """Whether the words of the text at stream position `at` are written as the
    case-sensitive pattern says."""
    assert pattern.shape is not None
    if pattern.words == 1:  # most such aliases ("US", "NATO"): compare the word as written
        start = scan.offset_at(at)
        word = scan.text[start : start + scan.stream.index(" ", at) - at]
        if word.isascii():  # no diacritics to fold: as written is its shape
            shape = pattern.shape[0]
            return word.startswith(shape) if pattern.prefix else word == shape
    start, end = scan.text_span(at, pattern.words)
    return _shape_fits(pattern, shapes(scan.text[start:end]))


def _joined_shapes(written: str, first: int, lo: int, hi: int) -> list[str]:
    """The shapes of words `first`... (`written`), those of the compound lo..hi joined."""
    words = shapes(written)
    a, b = lo - first, hi - first  # the compound's words among them
    return [*words[:a], "".join(words[a : b + 1]), *words[b + 1 :]]


def _shape_fits(pattern: Pattern, shapes: Sequence[str]) -> bool:
    """A case-sensitive spelling: the text's words as written (diacritics aside) must agree."""
    assert pattern.shape is not None
    if pattern.prefix:
        head, last = list(pattern.shape[:-1]), pattern.shape[-1]
        return list(shapes[:-1]) == head and shapes[-1].startswith(last)
    return tuple(shapes) == pattern.shape


# --------------------------------------------------------------------------------------------------
# Evaluating watches


def match(rules: CompiledRules, doc: Document) -> list[Match]:
    """Every watch the document matches, in the order the watches are defined."""
    found = find(rules, doc)
    if not found.by_term:
        return []
    present = found.by_term.present
    matches = []
    watches = rules.watches
    for index in candidates(rules, present):
        watch = watches[index]
        if watch.excluded and not watch.excluded.isdisjoint(present):
            continue  # a found term rules it out (a top-level NOT)
        if watch.plain:  # decided: a way met whole, nothing excluded found
            matches.append(Match(watch, found, found.by_term))
            continue
        spec = watch.spec
        if spec.filters and not passes(spec.filters, doc):
            continue
        hits = found.within(spec.fields)
        if not watch.decided_by_sets and not evaluate(watch.program, hits, found.scans):
            continue
        if not watch.needs_score:
            matches.append(Match(watch, found, hits))
            continue
        score = _score(found, watch) if hits is found.by_term else score_of(watch, hits)
        if score >= spec.threshold:
            matches.append(Match(watch, found, hits, score))
    return matches


def candidates(rules: CompiledRules, present: Iterable[int]) -> list[int]:
    """The watches (indexes, in order) with a way each of whose clauses met a found term: the
    only ones looked at further. Unions and intersections of postings, in C: each found term's
    postings are one row (a set per clause position), and zip turns the rows into the sets of
    each clause position. (Fewer objects to reach than a set per term and position looked up
    one by one: at 10,000 watches, reaching them is most of the time.)"""
    rows = list(filter(None, map(rules.postings.__getitem__, present)))
    if not rows:
        return []
    sets = list(zip(*rows, strict=True))
    found: set[int] = set()
    for columns in rules.columns:
        found |= _all_met([sets[c] for c in columns])
    return sorted(set(map(rules.further_ways.get, found, found)))  # a way's watch


def _all_met(clauses: list[tuple[frozenset[int], ...]]) -> frozenset[int]:
    """The ways in (a set of) every clause position. The first position's union is then only
    filtered: `survivors & ways` walks the smaller of the two, so the common terms' long
    postings (@ukraine's) are not copied into a union."""
    survivors = frozenset().union(*filter(None, clauses[0]))
    for sets in clauses[1:]:
        if not survivors:
            break
        survivors = frozenset().union(*map(survivors.intersection, filter(None, sets)))
    return survivors


def passes(filters: Filters, doc: Document) -> bool:
    """Whether the document is one the watch looks at (outlet, tags, language)."""
    if not filters:
        return True
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
        if program[2] is not None:
            return all(term in hits for term in program[2])
        return all(evaluate(item, hits, scans) for item in program[1])
    if op == OR:
        if program[2] is not None:
            return not program[2].isdisjoint(_present(hits))
        return any(evaluate(item, hits, scans) for item in program[1])
    if op == NOT:
        return not evaluate(program[1], hits, scans)
    return _near_met(program, hits, scans)


def _present(hits: Mapping[int, list[Hit]]) -> Set[int]:
    return hits.present if isinstance(hits, HitMap) else hits.keys()


def _near_met(program: Program, hits: Mapping[int, list[Hit]], scans: dict[str, Scanned]) -> bool:
    _, left, right, within = program
    if isinstance(within, int):
        if isinstance(hits, HitMap):
            return _words_apart(hits, left, right, within)
        return closest(program, hits, scans) is not None
    # the same sentence or paragraph: compare the sets of places each side was found in
    present = _present(hits)
    mine = [_places(hits, term, within, scans) for term in left & present]
    if not mine:
        return False
    places = frozenset().union(*mine)
    return any(not places.isdisjoint(_places(hits, t, within, scans)) for t in right & present)


def _words_apart(hits: HitMap, left: Set[int], right: Set[int], within: int) -> bool:
    """Whether a left term and a right term were found in the same field, the later one
    starting at most `within` words after the earlier one ends (as `_near` says)."""
    lefts = [hits.word_spans(term) for term in left & hits.present]
    rights = [hits.word_spans(term) for term in right & hits.present]
    for field in {field for spans in lefts for field in spans}:
        theirs = sorted(span for spans in rights for span in spans.get(field, ()))
        if not theirs:
            continue
        firsts = [first for first, _ in theirs]
        longest = max(last - first for first, last in theirs)
        for spans in lefts:
            for first, last in spans.get(field, ()):
                # only right spans starting from `within` + `longest` words before this one to
                # `within` words after it can be that close
                low = bisect_left(firsts, first - within - longest)
                high = bisect_right(firsts, last + within)
                for b_first, b_last in theirs[low:high]:
                    if max(b_first - last, first - b_last) <= within:
                        return True
    return False


def _places(
    hits: Mapping[int, list[Hit]], term: int, unit: str, scans: dict[str, Scanned]
) -> frozenset[tuple[str, int]]:
    """The (field, sentence or paragraph number) a term was found in."""
    if isinstance(hits, HitMap):
        return hits.places(term, unit)
    return frozenset((h.field, scans[h.field].unit_of(unit, h.start)) for h in hits[term])


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


def _score(found: Found, watch: CompiledWatch) -> float:
    """score_of over every field, from the found terms' fields (kept for the article)."""
    fields, weight = found.fields_found, watch.weight_by_fields
    return sum(weight[fields[t]] for t in watch.scoring if t in fields)


def score_of(watch: CompiledWatch, hits: Mapping[int, list[Hit]]) -> float:
    """The sum, over each scoring term and each field it was found in, of that field's weight:
    a term in the title counts `weights.title`, in the text `weights.text`, in both the sum."""
    weights = watch.spec.weights
    total = 0.0
    for term in watch.scoring:
        for field in {hit.field for hit in hits.get(term, ())}:
            total += weights.get(field, 0.0)
    return total


def _details(
    watch: CompiledWatch, hits: Mapping[int, list[Hit]], found: Found
) -> tuple[tuple[TermHit, ...], Snippet]:
    mine = [hit for term in watch.scoring for hit in hits.get(term, ())]
    mine.sort(key=_in_reading_order)
    shown = found.shown
    for hit in mine:  # one article's matches share their terms: each is built once
        if hit not in shown:
            text = found.scans[hit.field].text[hit.start : hit.end]
            label = found.terms[hit.term].label
            shown[hit] = TermHit(label, hit.field, hit.start, hit.end, text)
    return tuple(shown[hit] for hit in mine), snippet_for(found, mine)


def _in_reading_order(hit: Hit) -> tuple[int, int]:
    return (0 if hit.field == "title" else 1, hit.start)


def snippet_for(found: Found, hits: Sequence[Hit]) -> Snippet:
    """The best sentence or two of the text; the title when the text is empty."""
    scan = found.scans["text"]
    if scan.keys:
        in_text = [(h.start, h.end, h.term) for h in hits if h.field == "text"]
        return best_snippet(
            scan.text,
            in_text,
            sentences=scan.sentence_spans,
            sentence_of=scan.sentence_of,
        )
    title = found.scans["title"].text
    marks = tuple(sorted({(h.start, h.end) for h in hits if h.field == "title"}))
    return best_snippet(title, [(s, e, 0) for s, e in marks])
