"""Why a watch did or did not match an article, as a tree a user can read (`test-rules --explain`).

Pure, like the matcher it mirrors: the same `find`, filters, programs and score."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.rules.compiler import AND, NOT, OR, TERM, CompiledRules, CompiledWatch, Program
from monitor.rules.matcher import (
    Document,
    Found,
    Hit,
    closest,
    evaluate,
    find,
    passes,
    score_of,
)
from monitor.rules.spec import Filters

YES, NO = "✓", "✗"
MAX_SHOWN = 3  # spellings shown per term


@dataclass(frozen=True)
class Explanation:
    watch: str
    matched: bool
    reason: str  # one line
    lines: tuple[str, ...]  # the evaluation tree, indented two spaces a level


def explain(rules: CompiledRules, doc: Document, watch_name: str) -> Explanation:
    """Evaluate one watch on one document, saying what each part of the rule found."""
    watch = rules.watch(watch_name)
    spec = watch.spec
    if not passes(spec.filters, doc):
        return Explanation(watch.name, False, _filter_reason(spec.filters, doc), ())
    found = find(rules, doc)
    hits = found.within(spec.fields)
    lines = tuple(_tree(rules, watch.program, hits, found, 0))
    if not evaluate(watch.program, hits, found.scans):
        fields = "" if len(spec.fields) == 2 else f" (looking in {', '.join(spec.fields)} only)"
        return Explanation(watch.name, False, f"the rule is not satisfied{fields}", lines)
    score = score_of(watch, hits)
    if score < spec.threshold:
        reason = f"score {score:g} is below the threshold {spec.threshold:g}{_weights(watch)}"
        return Explanation(watch.name, False, reason, lines)
    return Explanation(watch.name, True, f"matched with score {score:g}{_weights(watch)}", lines)


def _weights(watch: CompiledWatch) -> str:
    w = watch.spec.weights
    return f" (title {w.get('title', 0):g}, text {w.get('text', 0):g} per term found)"


def _filter_reason(filters: Filters, doc: Document) -> str:
    if filters.outlets and filters.outlets.isdisjoint(doc.outlets):
        return f"outlet {_list(doc.outlets)} is not one of {_list(filters.outlets)}"
    if filters.tags and filters.tags.isdisjoint(doc.tags):
        return f"tags {_list(doc.tags)} include none of {_list(filters.tags)}"
    return f"language {doc.language or '(unknown)'} is not one of {_list(filters.languages)}"


def _list(items: frozenset[str]) -> str:
    return ", ".join(sorted(items)) or "(none)"


def _tree(
    rules: CompiledRules, program: Program, hits: Mapping[int, list[Hit]], found: Found, depth: int
) -> list[str]:
    pad = "  " * depth
    op = program[0]
    ok = evaluate(program, hits, found.scans)
    mark = YES if ok else NO
    if op == TERM:
        return [f"{pad}{mark} {_term(rules, program[1], hits, found)}"]
    if op in (AND, OR):
        head = "all of" if op == AND else "any of"
        lines = [f"{pad}{mark} {head}:"]
        for item in program[1]:
            lines += _tree(rules, item, hits, found, depth + 1)
        return lines
    if op == NOT:
        inner = _tree(rules, program[1], hits, found, depth + 1)
        return [f"{pad}{mark} none of:", *inner]
    return [f"{pad}{mark} {_near(rules, program, hits, found)}"]


def _term(rules: CompiledRules, term: int, hits: Mapping[int, list[Hit]], found: Found) -> str:
    label = rules.terms[term].label
    mine = hits.get(term, [])
    if not mine:
        return f"{label}: not found"
    spellings = list(
        dict.fromkeys(f"{found.scans[h.field].text[h.start : h.end]!r} ({h.field})" for h in mine)
    )
    shown = ", ".join(spellings[:MAX_SHOWN]) + (" …" if len(spellings) > MAX_SHOWN else "")
    return f"{label}: {len(mine)} found: {shown}"


def _near(
    rules: CompiledRules, program: Program, hits: Mapping[int, list[Hit]], found: Found
) -> str:
    _, left, right, within = program
    unit = f"the same {within}" if isinstance(within, str) else f"{within} words"
    names = [" or ".join(rules.terms[t].label for t in sorted(side)) for side in (left, right)]
    head = f"{names[0]} within {unit} of {names[1]}"
    pair = closest(program, hits, found.scans)
    if pair is not None:
        a, b = pair
        text = found.scans[a.field].text
        return f"{head}: {text[a.start : a.end]!r} and {text[b.start : b.end]!r} ({a.field})"
    counts = [sum(len(hits.get(t, ())) for t in side) for side in (left, right)]
    if not all(counts):
        missing = names[0] if not counts[0] else names[1]
        return f"{head}: {missing} not found"
    return f"{head}: both found ({counts[0]} and {counts[1]} times), never that close"
