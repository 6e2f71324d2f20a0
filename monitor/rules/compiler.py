"""Compile every watch into one automaton and a small program per watch.

Every leaf of every watch (a keyword, a phrase, a wildcard, an actor) becomes a *term* with an id;
identical leaves in different watches share one term. Each term's spellings (its inflections, an
actor's aliases, a hyphenated word split and joined) become patterns over the key stream of
`monitor.rules.text` and go into one Aho-Corasick automaton (pyahocorasick, in C). Matching an
article therefore costs one pass over its text whatever the number of watches.

A watch's query AST becomes a program of nested tuples over term ids, and one or more *ways* to
match: lists of *clauses*, sets of terms of which at least one must be present. A watch has one
way unless it is an OR with ANDs among its alternatives ("ceasefire" OR (@russia AND talks)),
which has one for each. The ways whose every clause met a found term are found with set
operations in C over *postings* (for each term, the ways whose k-th clause holds it), so the
Python work per article follows the watches that can match, not the watches there are. Most
watches are an AND of ORs of terms with NOTs, or an OR of such ANDs without the NOTs: their ways
and exclusions decide them; only the others run their program."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, TypeAlias

import ahocorasick

from monitor.rules import inflect
from monitor.rules.query import (
    ActorRef,
    And,
    Leaf,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    to_query,
)
from monitor.rules.spec import FIELDS, ActorSpec, Alias, RuleSet, WatchSpec
from monitor.rules.text import join_compounds, keys, shapes

# Program opcodes (tuples are the fastest thing to walk in Python).
TERM, AND, OR, NOT, NEAR = range(5)
Program: TypeAlias = tuple[Any, ...]


class RuleCompileError(ValueError):
    """A rule that cannot be compiled (the config layer reports these with file:line)."""


@dataclass(frozen=True, slots=True)
class TermInfo:
    id: int
    label: str  # as a query would write it: troops, "military buildup", sanction*, @putin
    kind: str  # "word", "phrase", "prefix" or "actor"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One spelling of a term, as stored in the automaton."""

    term: int
    words: int  # how many words of the text it spans
    joined: bool  # a hyphenated compound written as one word: matched against joined text
    shape: tuple[str, ...] | None  # case-sensitive: the words as they must be written
    prefix: bool  # the last word is a prefix


@dataclass(frozen=True, slots=True)
class CompiledWatch:
    spec: WatchSpec
    program: Program
    ways: tuple[tuple[frozenset[int], ...], ...]  # the clauses of one way must all be met
    scoring: frozenset[int]  # the terms that count towards the score (not under NOT)
    excluded: frozenset[int]  # terms under a top-level NOT: none may be found
    # True when ways and excluded say all the program says (an AND of ORs of terms, with NOTs;
    # an OR of such ANDs, without), which is most watches: they are decided by set operations.
    decided_by_sets: bool
    # The score of one term by the fields it was found in (bit 1: title, bit 2: text).
    weight_by_fields: tuple[float, float, float, float]
    # False when no score can fall short of the threshold (it is 0, no weight is negative): a
    # match's score is then worked out only if read.
    needs_score: bool
    # Decided by its ways and exclusions alone: decided by sets, no filter, no threshold.
    plain: bool

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class CompiledRules:
    # ahocorasick.Automaton; values are (pattern length, term, words, tuple of Pattern): the term
    # and its words when the patterns are one, not case-sensitive (most), else -1 and 0
    automaton: Any
    terms: tuple[TermInfo, ...]
    watches: tuple[CompiledWatch, ...]
    # term (index) -> for each column (a clause count n and a clause position k, see `columns`),
    # the ways with n clauses whose k-th holds it (empty where none does); None for a term only
    # excluded. (A tuple: indexing it reaches less memory than a dict's lookup.)
    postings: tuple[tuple[frozenset[int], ...] | None, ...]
    # for each number of clauses ways have, the range of its columns (position 0 first)
    columns: tuple[range, ...]
    # A watch's first way is numbered as the watch (its index); its further ways (an OR with
    # ANDs has one for each) are numbered from len(watches) on: the watch of each of those
    further_ways: dict[int, int]
    max_words: int  # the longest pattern, in words
    words: frozenset[str]  # every word of every pattern (a prefix pattern's stem included)
    stems: frozenset[str]  # the stems of prefix patterns

    def could_use(self, word: str) -> bool:
        """Whether some pattern has this word, or a prefix of it (a cheap test before trying a
        hyphenated compound joined)."""
        if word in self.words:
            return True
        return any(word[:n] in self.stems for n in range(3, len(word)))

    def watch(self, name: str) -> CompiledWatch:
        for watch in self.watches:
            if watch.name == name:
                return watch
        raise KeyError(name)


EMPTY_AUTOMATON = ahocorasick.Automaton()
_NONE: frozenset[int] = frozenset()  # one shared object for every empty posting (hot in cache)


def compile_rules(rules: RuleSet) -> CompiledRules:
    """Compile a resolved rule set; raises RuleCompileError for a term with nothing to match."""
    builder = _Builder(rules.actors)
    watches = tuple(builder.watch(spec) for spec in rules.watches)
    postings: dict[int, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    further: dict[int, int] = {}
    for index, watch in enumerate(watches):
        for nth, clauses in enumerate(watch.ways):
            way = index if nth == 0 else len(watches) + len(further)
            if nth:
                further[way] = index
            for k, clause in enumerate(clauses):
                for term in clause:
                    postings[term][(len(clauses), k)].append(way)
    automaton = builder.automaton()
    counts = sorted({len(way) for w in watches for way in w.ways})
    keys = [(n, k) for n in counts for k in range(n)]
    starts = accumulate(counts, initial=0)  # of each count's columns
    return CompiledRules(
        automaton=automaton,
        terms=tuple(builder.terms),
        watches=watches,
        postings=tuple(
            tuple(frozenset(by_clause[key]) if key in by_clause else _NONE for key in keys)
            if (by_clause := postings.get(term))
            else None
            for term in range(len(builder.terms))
        ),
        columns=tuple(range(start, start + n) for start, n in zip(starts, counts, strict=False)),
        further_ways=further,
        max_words=builder.max_words,
        words=frozenset(builder.words),
        stems=frozenset(builder.stems),
    )


class _Builder:
    def __init__(self, actors: dict[str, ActorSpec]) -> None:
        self.actors = actors
        self.terms: list[TermInfo] = []
        self.kinds: list[str] = []
        self.ids: dict[tuple[Any, ...], int] = {}
        self.patterns: dict[str, list[Pattern]] = defaultdict(list)
        self.max_words = 1
        self.words: set[str] = set()
        self.stems: set[str] = set()

    # --- watches ------------------------------------------------------------------------------

    def watch(self, spec: WatchSpec) -> CompiledWatch:
        program = self.program(spec.expr, spec.inflect)
        ways = _ways(program)
        if not ways:
            raise RuleCompileError(f"watch {spec.name!r}: nothing to look for")
        excluded, by_sets = _top_level_exclusions(program)
        by_sets = by_sets and tuple(spec.fields) == FIELDS
        title, text = spec.weights.get("title", 0.0), spec.weights.get("text", 0.0)
        return CompiledWatch(
            spec,
            program,
            ways,
            frozenset(_scoring(program)),
            excluded,
            by_sets,
            (0.0, title, text, title + text),
            spec.threshold > 0 or any(weight < 0 for weight in spec.weights.values()),
            by_sets and not spec.filters and spec.threshold <= 0,
        )

    def program(self, node: Node, inflected: bool) -> Program:
        if isinstance(node, And | Or):
            op = AND if isinstance(node, And) else OR
            items = tuple(self.program(item, inflected) for item in node.items)
            # all terms: the matcher tests them with one set operation instead of a loop
            terms = frozenset(i[1] for i in items) if all(i[0] == TERM for i in items) else None
            return (op, items, terms)
        if isinstance(node, Not):
            return (NOT, self.program(node.item, inflected))
        if isinstance(node, Near):
            left = frozenset(self._operand(node.left, inflected))
            right = frozenset(self._operand(node.right, inflected))
            return (NEAR, left, right, node.within)
        return (TERM, self.term(node, inflected))

    def _operand(self, node: Node, inflected: bool) -> list[int]:
        """A NEAR operand: a leaf, or an OR of leaves (the parser allows nothing else)."""
        if isinstance(node, Or):
            return [t for item in node.items for t in self._operand(item, inflected)]
        return [self.term(node, inflected)]  # type: ignore[arg-type]

    # --- terms --------------------------------------------------------------------------------

    def term(self, leaf: Leaf, inflected: bool) -> int:
        if isinstance(leaf, ActorRef):
            return self._actor(leaf.name)
        if isinstance(leaf, Prefix):
            return self._term("prefix", leaf, leaf.stem, prefix=True, inflected=False)
        if isinstance(leaf, Phrase):
            return self._term("phrase", leaf, " ".join(leaf.words), False, inflected)
        assert isinstance(leaf, Term)
        return self._term("word", leaf, leaf.text, False, inflected)

    def _term(self, kind: str, leaf: Leaf, text: str, prefix: bool, inflected: bool) -> int:
        split = keys(text)
        if not split:
            raise RuleCompileError(f"{to_query(leaf)!r} has no letters or digits to match")
        identity = (kind, tuple(split), prefix, inflected)
        if identity in self.ids:
            return self.ids[identity]
        term = self._new_term(identity, to_query(leaf), kind)
        for variant, joined in _variants(text):
            last = inflect.forms(variant[-1]) if inflected and not prefix else {variant[-1]}
            for form in last:
                self._add(term, [*variant[:-1], form], joined, None, prefix)
        return term

    def _actor(self, name: str) -> int:
        identity = ("actor", name)
        if identity in self.ids:
            return self.ids[identity]
        actor = self.actors.get(name)
        if actor is None:
            raise RuleCompileError(f"unknown actor @{name}")
        term = self._new_term(identity, f"@{name}", "actor")
        for alias in actor.aliases:
            self._alias(term, actor, alias)
        return term

    def _alias(self, term: int, actor: ActorSpec, alias: Alias) -> None:
        text, prefix = alias.text.strip(), alias.text.strip().endswith("*")
        text = text.rstrip("*").rstrip()
        if not keys(text):
            raise RuleCompileError(
                f"actor {actor.name!r}: alias {alias.text!r} has no letters or digits to match"
            )
        for variant, joined in _variants(text):
            shape = _shape(text, joined) if alias.case_sensitive else None
            self._add(term, variant, joined, shape, prefix)

    def _new_term(self, identity: tuple[Any, ...], label: str, kind: str) -> int:
        term = len(self.terms)
        self.ids[identity] = term
        self.terms.append(TermInfo(term, label, kind))
        self.kinds.append(kind)
        return term

    def _add(
        self, term: int, ks: list[str], joined: bool, shape: tuple[str, ...] | None, prefix: bool
    ) -> None:
        stream = " " + " ".join(ks) + ("" if prefix else " ")
        pattern = Pattern(term, len(ks), joined, shape, prefix)
        if pattern not in self.patterns[stream]:
            self.patterns[stream].append(pattern)
        self.max_words = max(self.max_words, len(ks))
        self.words.update(ks)
        if prefix:
            self.stems.add(ks[-1])

    def automaton(self) -> Any:
        if not self.patterns:
            return EMPTY_AUTOMATON
        automaton = ahocorasick.Automaton()
        for stream, patterns in self.patterns.items():
            single = len(patterns) == 1 and patterns[0].shape is None
            term, words = (patterns[0].term, patterns[0].words) if single else (-1, 0)
            automaton.add_word(stream, (len(stream), term, words, tuple(patterns)))
        automaton.make_automaton()
        return automaton


def _variants(text: str) -> list[tuple[list[str], bool]]:
    """The key sequences `text` is written as: hyphens splitting words, and, for a text with a
    hyphenated compound, joined into one word (so "build-up" also matches "buildup")."""
    variants = [(keys(text), False)]
    joined = join_compounds(text)
    if joined is not None:
        variants.append((keys(joined), True))
    return variants


def _shape(text: str, joined: bool) -> tuple[str, ...]:
    return tuple(shapes((join_compounds(text) or text) if joined else text))


def _ways(program: Program) -> tuple[tuple[frozenset[int], ...], ...]:
    """The ways `program` can be true, each as clauses that must all be met; none if it needs
    nothing present. One way, unless the program is an OR with ANDs among its alternatives:
    then one for each AND, and one for the other alternatives together (one clause of their
    terms). A watch of one AND per way is looked at only when one of them is met whole."""
    if program[0] == OR and any(item[0] == AND for item in program[1]):
        ands = [item for item in program[1] if item[0] == AND]
        others = [item for item in program[1] if item[0] != AND]
        parts = ands + ([(OR, tuple(others), None)] if others else [])
        ways = tuple(tuple(dict.fromkeys(_clauses(part))) for part in parts)
        if all(ways):
            return ways
    clauses = tuple(dict.fromkeys(_clauses(program)))
    return (clauses,) if clauses else ()


def _clauses(program: Program) -> list[frozenset[int]]:
    """Sets of terms of which one must be found for `program` to be true."""
    op = program[0]
    if op == TERM:
        return [frozenset({program[1]})]
    if op == AND:
        return [clause for item in program[1] for clause in _clauses(item)]
    if op == OR:
        alternatives = [_clauses(item) for item in program[1]]
        if any(not clauses for clauses in alternatives):
            return []  # an alternative that needs nothing (cannot happen after parsing)
        return [frozenset().union(*(min(clauses, key=len) for clauses in alternatives))]
    if op == NEAR:
        return [program[1], program[2]]
    return []  # NOT: requires an absence


def _top_level_exclusions(program: Program) -> tuple[frozenset[int], bool]:
    """The terms under the program's top-level NOTs, and whether the program is only terms, ORs
    of terms and such NOTs under one AND, or an OR of terms and of ANDs of terms and ORs of
    terms (so its ways and exclusions decide it)."""
    if program[0] == OR:
        decided = all(
            _terms_only(item) or (item[0] == AND and all(_terms_only(i) for i in item[1]))
            for item in program[1]
        )
        return _NONE, decided
    items = program[1] if program[0] == AND else (program,)
    excluded: set[int] = set()
    simple = True
    for item in items:
        if item[0] == NOT:
            inner = item[1]
            simple = simple and _terms_only(inner)
            excluded |= _term_set(inner) if _terms_only(inner) else set()
        else:
            simple = simple and _terms_only(item)
    return frozenset(excluded) or _NONE, simple  # (the shared empty set: no object to reach)


def _terms_only(program: Program) -> bool:
    """A term, or an OR of terms."""
    if program[0] == TERM:
        return True
    return program[0] == OR and all(item[0] == TERM for item in program[1])


def _term_set(program: Program) -> set[int]:
    return {program[1]} if program[0] == TERM else {item[1] for item in program[1]}


def _scoring(program: Program) -> set[int]:
    op = program[0]
    if op == TERM:
        return {program[1]}
    if op in (AND, OR):
        return set().union(*(_scoring(item) for item in program[1]))
    if op == NEAR:
        return set(program[1] | program[2])
    return set()
