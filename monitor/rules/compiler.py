"""Compile every watch into one automaton and a small program per watch.

Every leaf of every watch (a keyword, a phrase, a wildcard, an actor) becomes a *term* with an id;
identical leaves in different watches share one term. Each term's spellings (its inflections, an
actor's aliases, a hyphenated word split and joined) become patterns over the key stream of
`monitor.rules.text` and go into one Aho-Corasick automaton (pyahocorasick, in C). Matching an
article therefore costs one pass over its text whatever the number of watches; only the watches
that one of the found terms can trigger are then evaluated (see `monitor.rules.matcher`).

A watch's query AST becomes a program of nested tuples over term ids, and a list of *clauses*:
sets of terms of which at least one must be present for the watch to match at all. The cheapest
clause decides which terms trigger the watch; the others are checked with one set operation each
before the program runs."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
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
from monitor.rules.spec import ActorSpec, Alias, RuleSet, WatchSpec
from monitor.rules.text import join_compounds, keys, word_shape, words

# Program opcodes (tuples are the fastest thing to walk in Python).
TERM, AND, OR, NOT, NEAR = range(5)
Program: TypeAlias = tuple[Any, ...]

# How often a term of each kind is expected to occur, to pick the clause that triggers a watch:
# actors ("Russia", "Ukraine") are in most articles this tool reads; a phrase is rare.
_KIND_COST = {"actor": 8, "word": 2, "prefix": 3, "phrase": 1}


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
    clauses: tuple[frozenset[int], ...]  # each must meet the terms found
    scoring: frozenset[int]  # the terms that count towards the score (not under NOT)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class CompiledRules:
    automaton: Any  # ahocorasick.Automaton; values are (pattern length, tuple of Pattern)
    terms: tuple[TermInfo, ...]
    watches: tuple[CompiledWatch, ...]
    triggers: dict[int, tuple[int, ...]]  # term id -> indexes of the watches it triggers
    max_words: int  # the longest pattern, in words
    version: str  # a digest of the rules, to tell one compiled set from another

    def watch(self, name: str) -> CompiledWatch:
        for watch in self.watches:
            if watch.name == name:
                return watch
        raise KeyError(name)


EMPTY_AUTOMATON = ahocorasick.Automaton()


def compile_rules(rules: RuleSet) -> CompiledRules:
    """Compile a resolved rule set; raises RuleCompileError for a term with nothing to match."""
    builder = _Builder(rules.actors)
    watches = tuple(builder.watch(spec) for spec in rules.watches)
    triggers: dict[int, list[int]] = defaultdict(list)
    for index, watch in enumerate(watches):
        for term in _cheapest(watch.clauses, builder.kinds):
            triggers[term].append(index)
    automaton = builder.automaton()
    digest = hashlib.sha256(repr(rules).encode()).hexdigest()[:16]
    return CompiledRules(
        automaton=automaton,
        terms=tuple(builder.terms),
        watches=watches,
        triggers={term: tuple(ids) for term, ids in triggers.items()},
        max_words=builder.max_words,
        version=digest,
    )


def _cheapest(clauses: tuple[frozenset[int], ...], kinds: list[str]) -> frozenset[int]:
    return min(clauses, key=lambda clause: sum(_KIND_COST[kinds[t]] for t in clause))


class _Builder:
    def __init__(self, actors: dict[str, ActorSpec]) -> None:
        self.actors = actors
        self.terms: list[TermInfo] = []
        self.kinds: list[str] = []
        self.ids: dict[tuple[Any, ...], int] = {}
        self.patterns: dict[str, list[Pattern]] = defaultdict(list)
        self.max_words = 1

    # --- watches ------------------------------------------------------------------------------

    def watch(self, spec: WatchSpec) -> CompiledWatch:
        program = self.program(spec.expr, spec.inflect)
        clauses = tuple(dict.fromkeys(_clauses(program)))
        if not clauses:
            raise RuleCompileError(f"watch {spec.name!r}: nothing to look for")
        return CompiledWatch(spec, program, clauses, frozenset(_scoring(program)))

    def program(self, node: Node, inflected: bool) -> Program:
        if isinstance(node, And | Or):
            op = AND if isinstance(node, And) else OR
            return (op, tuple(self.program(item, inflected) for item in node.items))
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

    def automaton(self) -> Any:
        if not self.patterns:
            return EMPTY_AUTOMATON
        automaton = ahocorasick.Automaton()
        for stream, patterns in self.patterns.items():
            automaton.add_word(stream, (len(stream), tuple(patterns)))
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
    return tuple(word_shape(w) for w in words((join_compounds(text) or text) if joined else text))


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


def _scoring(program: Program) -> set[int]:
    op = program[0]
    if op == TERM:
        return {program[1]}
    if op in (AND, OR):
        return set().union(*(_scoring(item) for item in program[1]))
    if op == NEAR:
        return set(program[1] | program[2])
    return set()
