"""Benchmark 4: matching 1,000-word articles against 10, 100, 1,000 and 10,000 watches.

    .venv/bin/python -m tests.benchmarks.matching [--quick] [--profile] [--json FILE]

Watches are generated deterministically (fixed seed) from the term lists in
tests/benchmarks/data/ (actors with their aliases, news-monitoring keywords by topic), in the
shapes users write: actors AND keywords, the same with `near: sentence`, keyword-only watches,
query strings, some with exclusions; each built with `parse_query` as the config layer does.
Articles are 1,000 words of shuffled paragraphs of the five corpus stories. In one run:
`compile_rules` for each size, the median time of `match(rules, doc)` per article for each size
(sizes interleaved in rounds), and a naive baseline that loops over the watches with compiled
Python regexes (one per OR-group of a watch), on a subset of the same articles.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.demo.site import STORIES, demo_pages
from monitor.rules import inflect
from monitor.rules.compiler import CompiledRules, compile_rules
from monitor.rules.matcher import Document, candidates, find, match
from monitor.rules.query import (
    ActorRef,
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    parse_query,
)
from monitor.rules.spec import ActorSpec, Alias, RuleSet, WatchSpec
from tests.benchmarks.common import Result, cli, finish, load_note

DATA = Path(__file__).parent / "data"
SEED = 20240611
SIZES = (10, 100, 1_000, 10_000)
WORDS = 1_000  # per article
TARGET_SPEEDUP = 100.0  # naive / compiled at 10,000 watches
TARGET_MS = 1.0  # per article at 10,000 watches
TARGET_GROWTH = 3.0  # 10,000 watches / 10 watches
TARGET_COMPILE_S = 2.0  # compile_rules for 10,000 watches

# -- term lists ----------------------------------------------------------------------------------


def _blocks(path: Path) -> dict[str, list[str]]:
    """`## name` headers and the non-comment lines under each."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("## "):
            current = blocks.setdefault(line[3:].strip(), [])
        elif line and not line.startswith("#"):
            current.append(line)
    return blocks


def load_actors() -> tuple[dict[str, ActorSpec], dict[str, list[str]]]:
    """Every actor by id, and the actor ids of each group."""
    actors: dict[str, ActorSpec] = {}
    groups: dict[str, list[str]] = {}
    for group, lines in _blocks(DATA / "actors.txt").items():
        for line in lines:
            name, _, rest = line.partition(":")
            aliases = tuple(
                Alias(a.strip().lstrip("="), case_sensitive=a.strip().startswith("="))
                for a in rest.split(",")
                if a.strip()
            )
            actors[name.strip()] = ActorSpec(name.strip(), aliases)
            groups.setdefault(group, []).append(name.strip())
    return actors, groups


def load_keywords() -> dict[str, list[str]]:
    """Keywords by topic (the `exclusions` topic included)."""
    return {
        topic: [t.strip() for t in " ".join(lines).split(",") if t.strip()]
        for topic, lines in _blocks(DATA / "keywords.txt").items()
    }


# -- watches -------------------------------------------------------------------------------------

_BARE_WORD = re.compile(r"\w+(?:[-'’.]\w+)*\*?")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})


def _term(text: str) -> str:
    """A keyword as a query writes it: bare word, prefix wildcard, or a quoted phrase."""
    if _BARE_WORD.fullmatch(text) and text.rstrip("*") not in _OPERATORS:
        return text
    return '"' + text.replace('"', "") + '"'


def _any(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "(" + " OR ".join(items) + ")"


@dataclass(frozen=True)
class Generated:
    spec: WatchSpec
    shape: str  # which of the shapes below
    query: str


class _Generator:
    """Deterministic watches in the shapes users write (see SHAPES)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.actors, self.groups = load_actors()
        keywords = load_keywords()
        self.exclusions = keywords.pop("exclusions")
        self.topics = keywords

    def actors_of(self, low: int, high: int) -> list[str]:
        group = self.rng.choice(sorted(self.groups))
        k = min(self.rng.randint(low, high), len(self.groups[group]))
        return ["@" + a for a in self.rng.sample(self.groups[group], k)]

    def keywords_of(self, low: int, high: int, topic: str | None = None) -> list[str]:
        topic = topic or self.rng.choice(sorted(self.topics))
        return [_term(k) for k in self.rng.sample(self.topics[topic], self.rng.randint(low, high))]

    def exclude(self) -> str:
        excluded = [_term(x) for x in self.rng.sample(self.exclusions, self.rng.randint(1, 3))]
        return f" NOT {_any(excluded)}"

    def maybe_exclude(self) -> str:
        return self.exclude() if self.rng.random() < 0.25 else ""

    def structured(self) -> tuple[str, str]:
        actors = _any(self.actors_of(1, 3))
        words = _any(self.keywords_of(2, 6))
        return "actors+keywords", f"{actors} AND {words}{self.maybe_exclude()}"

    def structured_near(self) -> tuple[str, str]:
        actors = _any(self.actors_of(1, 3))
        words = _any(self.keywords_of(2, 6))
        return "actors+keywords near:sentence", f"{actors} NEAR/sentence {words}"

    def keywords_only(self) -> tuple[str, str]:
        topic = self.rng.choice(sorted(self.topics))
        if self.rng.random() < 0.4:  # two keyword groups ("groups:" in watches.yaml)
            first, second = self.keywords_of(2, 4, topic), self.keywords_of(2, 4, topic)
            return "keywords only", f"{_any(first)} AND {_any(second)}{self.maybe_exclude()}"
        return "keywords only", f"{_any(self.keywords_of(2, 6, topic))}{self.maybe_exclude()}"

    def query(self) -> tuple[str, str]:
        rng = self.rng
        form = rng.randrange(7)
        topic = rng.choice(sorted(self.topics))
        a = _any(self.actors_of(1, 2))
        k1, k2 = _any(self.keywords_of(1, 4, topic)), _any(self.keywords_of(1, 3, topic))
        if form == 0:
            q = f"{a} AND {k1}{self.exclude()}"
        elif form == 1:  # two actors both present: "russia AND china AND ..."
            b = self.actors_of(1, 1)[0]
            q = f"{self.actors_of(1, 1)[0]} AND {b} AND {k1}"
        elif form == 2:
            q = f"{k1} NEAR/{rng.choice((3, 5, 10, 20))} {k2}"
        elif form == 3:
            q = f"{self.actors_of(1, 1)[0]} NEAR/{rng.choice((5, 10))} {k1}"
        elif form == 4:
            phrase = '"' + rng.choice([t for t in self.topics[topic] if " " in t]) + '"'
            q = f"{phrase} OR ({a} AND {k1})"
        elif form == 5:
            q = f"{a} AND {k1} AND {k2}"
        else:
            q = f"{a} NEAR/paragraph {k1}{self.exclude()}"
        return "query string", q

    SHAPES: tuple[tuple[str, float], ...] = (
        ("structured", 0.40),
        ("structured_near", 0.15),
        ("keywords_only", 0.15),
        ("query", 0.30),
    )

    def watches(self, n: int) -> list[Generated]:
        names, weights = zip(*self.SHAPES, strict=True)
        out = []
        for i in range(n):
            shape, query = getattr(self, self.rng.choices(names, weights)[0])()
            out.append(Generated(WatchSpec(f"w{i:05d}", parse_query(query)), shape, query))
        return out


# -- articles ------------------------------------------------------------------------------------


def articles(n: int, seed: int = SEED) -> list[Document]:
    """`n` articles of exactly WORDS words: the corpus stories' paragraphs shuffled, cut at
    WORDS; each with one of the demo pages' headlines as its title."""
    paragraphs = [p for story in STORIES.values() for p in story.splitlines() if p.strip()]
    titles = list(dict.fromkeys(page.title for page in demo_pages()))
    docs = []
    for k in range(n):
        rng = random.Random(seed + k)
        order = paragraphs[:]
        rng.shuffle(order)
        chosen, count = [], 0
        for p in order:
            words = p.split()
            if count + len(words) >= WORDS:
                chosen.append(" ".join(words[: WORDS - count]))
                break
            chosen.append(p)
            count += len(words)
        docs.append(Document(titles[k % len(titles)], "\n".join(chosen)))
    return docs


# -- the naive baseline --------------------------------------------------------------------------


def _words_regex(text: str) -> str:
    """Words of `text` in order, separated by any non-letters (hyphens, dots: none needed)."""
    parts = re.split(r"(\W+)", text.strip())
    out = []
    for part in parts:
        if not part:
            continue
        if re.fullmatch(r"\W+", part):
            out.append(r"\W+" if any(c.isspace() for c in part) else r"\W*")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _leaf_alternatives(leaf: Node, actors: dict[str, ActorSpec], inflected: bool) -> list[str]:
    if isinstance(leaf, ActorRef):
        alts = []
        for alias in actors[leaf.name].aliases:
            text = alias.text.strip()
            body = _words_regex(text.rstrip("*")) + (r"\w*" if text.endswith("*") else "")
            alts.append(f"(?-i:{body})" if alias.case_sensitive else body)
        return alts
    if isinstance(leaf, Prefix):
        return [_words_regex(leaf.stem) + r"\w*"]
    words = list(leaf.words) if isinstance(leaf, Phrase) else [leaf.text]  # type: ignore[union-attr]
    head = _words_regex(" ".join(words[:-1])) + r"\W+" if len(words) > 1 else ""
    last = words[-1]
    if inflected and re.fullmatch(r"[A-Za-z]+", last):
        forms = sorted(inflect.forms(last.casefold()), key=len, reverse=True)
        return [head + "(?:" + "|".join(forms) + ")"]
    return [head + _words_regex(last)]


def _alternation(items: list[Node], actors: dict[str, ActorSpec], inflected: bool) -> str:
    alts = [a for item in items for a in _leaf_alternatives(item, actors, inflected)]
    return r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)"


_LEAVES = (Term, Phrase, Prefix, ActorRef)
_GAP = {"sentence": r"[^.!?\n]*?", "paragraph": r"[^\n]*?"}

Check = Callable[[str], bool]


def _group(node: Node) -> list[Node]:
    """The leaves of an OR-group, or the one leaf."""
    return list(node.items) if isinstance(node, Or) else [node]


def _naive_node(node: Node, actors: dict[str, ActorSpec], inflected: bool) -> Check:
    """One compiled regex per OR-group of leaves; AND/OR/NOT in Python, short-circuiting."""
    if isinstance(node, _LEAVES) or (
        isinstance(node, Or) and all(isinstance(i, _LEAVES) for i in node.items)
    ):
        search = re.compile(_alternation(_group(node), actors, inflected), re.IGNORECASE).search
        return lambda text: search(text) is not None
    if isinstance(node, Near):
        left, right = (
            _alternation(_group(side), actors, inflected) for side in (node.left, node.right)
        )
        if isinstance(node.within, int):
            gap = rf"(?:\W+\w+){{0,{node.within - 1}}}\W+"
        else:
            gap = _GAP[node.within]
        rx = re.compile(f"{left}{gap}{right}|{right}{gap}{left}", re.IGNORECASE)
        search = rx.search
        return lambda text: search(text) is not None
    if isinstance(node, Not):
        inner = _naive_node(node.item, actors, inflected)
        return lambda text: not inner(text)
    parts = [_naive_node(item, actors, inflected) for item in node.items]
    if isinstance(node, And):
        return lambda text: all(p(text) for p in parts)
    return lambda text: any(p(text) for p in parts)


def naive_watches(specs: list[WatchSpec], actors: dict[str, ActorSpec]) -> list[tuple[str, Check]]:
    return [(s.name, _naive_node(s.expr, actors, s.inflect)) for s in specs]


def naive_match(watches: list[tuple[str, Check]], doc: Document) -> list[str]:
    text = doc.title + "\n" + doc.text
    return [name for name, check in watches if check(text)]


# -- measuring -----------------------------------------------------------------------------------


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def _funnel(rules: CompiledRules, doc: Document) -> tuple[int, int, int]:
    """Terms found, candidate watches (one of their ways to match has every clause met by a
    term found), and those among them that needed their program run (not decided by set
    operations alone)."""
    present = set(find(rules, doc).by_term)
    looked_at = candidates(rules, present)
    programs = sum(1 for i in looked_at if not rules.watches[i].decided_by_sets)
    return len(present), len(looked_at), programs


def _with_details(rules: CompiledRules, doc: Document) -> None:
    """match() and then every match's terms and snippet, as the store reads them."""
    for m in match(rules, doc):
        _ = m.hits, m.snippet


def _profile(rules: CompiledRules, docs: list[Document]) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        for doc in docs:
            match(rules, doc)
    prof.disable()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(order).print_stats(25)
        print(out.getvalue())


def main() -> None:
    args = cli("matching", __doc__ or "")
    started = time.monotonic()
    n_docs, naive_docs, rounds = (8, 2, 3) if args.quick else (20, 5, 5)
    result = Result("matching", "Watch matching", ".venv/bin/python -m tests.benchmarks.matching")
    generator = _Generator(SEED)
    generated = generator.watches(max(SIZES))
    actors = generator.actors
    docs = articles(n_docs)
    n_keywords = sum(len(v) for v in generator.topics.values())
    print(
        f"matching: {len(actors)} actors, {n_keywords} keywords in {len(generator.topics)} "
        f"topics, {len(generated):,} watches, {n_docs} articles of {WORDS} words, "
        f"{rounds} rounds",
        flush=True,
    )

    rulesets = {n: RuleSet(actors, tuple(g.spec for g in generated[:n])) for n in SIZES}
    compiled = {n: compile_rules(rulesets[n]) for n in SIZES}
    compile_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        compile_rules(rulesets[max(SIZES)])
        compile_times.append(time.perf_counter() - t0)
    big = compiled[max(SIZES)]

    for n in SIZES:  # warm-up (fills the word-key cache, as a running daemon has it)
        for doc in docs:
            match(compiled[n], doc)
    if args.profile:
        _profile(big, docs)

    per_doc: dict[int, list[list[float]]] = {n: [[] for _ in docs] for n in SIZES}
    for r in range(rounds):  # interleaved, so that background load hits every size alike
        order = SIZES[r % len(SIZES) :] + SIZES[: r % len(SIZES)]
        for n in order:
            rules = compiled[n]
            for i, doc in enumerate(docs):
                t0 = time.perf_counter()
                match(rules, doc)
                per_doc[n][i].append(time.perf_counter() - t0)
    doc_ms = {n: [_median_ms(ts) for ts in per_doc[n]] for n in SIZES}
    median_ms = {n: statistics.median(doc_ms[n]) for n in SIZES}
    detail_times: list[list[float]] = [[] for _ in docs]
    for _ in range(rounds):
        for i, doc in enumerate(docs):
            t0 = time.perf_counter()
            _with_details(big, doc)
            detail_times[i].append(time.perf_counter() - t0)
    detail_ms = statistics.median(_median_ms(ts) for ts in detail_times)

    # the naive loop, on the first articles only (it is slow), in this same run
    t0 = time.perf_counter()
    naive = naive_watches([g.spec for g in generated], actors)
    naive_build = time.perf_counter() - t0
    subset = docs[:naive_docs]
    naive_ms: dict[int, float] = {}
    naive_found: list[list[str]] = []
    for n in SIZES:
        times = []
        for doc in subset:
            t0 = time.perf_counter()
            names = naive_match(naive[:n], doc)
            times.append(time.perf_counter() - t0)
            if n == max(SIZES):
                naive_found.append(names)
        naive_ms[n] = _median_ms(times)
    compiled_subset_ms = statistics.median(doc_ms[max(SIZES)][:naive_docs])

    compiled_found = [[m.watch for m in match(big, doc)] for doc in docs]
    funnel = [_funnel(big, doc) for doc in docs]

    # -- figures
    compile_s = statistics.median(compile_times)
    result.add(
        f"compile_rules, {max(SIZES):,} watches (median of 3)",
        compile_s,
        "s",
        target=f"<= {TARGET_COMPILE_S:g} s",
        met=compile_s <= TARGET_COMPILE_S,
    )
    for n in SIZES[:-1]:
        result.add(f"match() per article, {n:,} watches (median)", median_ms[n], "ms")
    top = median_ms[max(SIZES)]
    result.add(
        f"match() per article, {max(SIZES):,} watches (median)",
        top,
        "ms",
        target=f"<= {TARGET_MS:g} ms",
        met=top <= TARGET_MS,
    )
    lo, hi = min(doc_ms[max(SIZES)]), max(doc_ms[max(SIZES)])
    result.add("  same, fastest / slowest article", f"{lo:.2f} / {hi:.2f}", "ms")
    result.add(
        f"  same, with every match's terms and snippet worked out ({max(SIZES):,} watches)",
        detail_ms,
        "ms",
    )
    growth = top / median_ms[min(SIZES)]
    result.add(
        f"growth from {min(SIZES)} to {max(SIZES):,} watches",
        growth,
        "x",
        target=f"<= {TARGET_GROWTH:g} x",
        met=growth <= TARGET_GROWTH,
    )
    for n in SIZES:
        result.add(f"naive regex loop per article, {n:,} watches", naive_ms[n], "ms")
    speedup = naive_ms[max(SIZES)] / compiled_subset_ms
    result.add(
        f"naive / compiled at {max(SIZES):,} watches (same {naive_docs} articles)",
        speedup,
        "x",
        target=f">= {TARGET_SPEEDUP:g} x",
        met=speedup >= TARGET_SPEEDUP,
    )
    c_counts = [len(f) for f in compiled_found[:naive_docs]]
    n_counts = [len(f) for f in naive_found]
    result.add(
        f"matches per article at {max(SIZES):,} watches (same {naive_docs} articles)",
        f"compiled {', '.join(map(str, c_counts))}; naive {', '.join(map(str, n_counts))}",
    )
    both = sum(
        len(set(c) & set(n)) for c, n in zip(compiled_found[:naive_docs], naive_found, strict=True)
    )
    union = sum(
        len(set(c) | set(n)) for c, n in zip(compiled_found[:naive_docs], naive_found, strict=True)
    )
    result.add("  watches matched by both / by either", f"{both:,} / {union:,}")
    terms_found, looked_at, programs = (statistics.median(col) for col in zip(*funnel, strict=True))
    result.add(
        "per article: terms found / candidate watches (a way to match with every clause met) "
        "/ of those, programs run / matched",
        f"{terms_found:.0f} / {looked_at:.0f} / {programs:.0f} / "
        f"{statistics.median(len(f) for f in compiled_found):.0f}",
    )
    small = compiled[min(SIZES)]  # what the growth figure divides by: no hits, no matches?
    result.add(
        f"  same at {min(SIZES)} watches: terms found / matched",
        f"{statistics.median(len(find(small, doc).by_term) for doc in docs):.0f} / "
        f"{statistics.median(len(match(small, doc)) for doc in docs):.0f}",
    )

    # -- method notes
    shapes: dict[str, int] = {}
    for g in generated:
        shapes[g.shape] = shapes.get(g.shape, 0) + 1
    excluded = sum(1 for g in generated if " NOT " in g.query)
    near = sum(1 for g in generated if "NEAR/" in g.query)
    examples: dict[str, str] = {}
    for g in generated:
        examples.setdefault(g.shape, g.query)
    all_keywords = [k for v in generator.topics.values() for k in v]
    n_phrases = sum(" " in k for k in all_keywords)
    n_wildcards = sum(k.endswith("*") for k in all_keywords)
    result.note(
        f"Term lists (tests/benchmarks/data/): {len(actors)} actors in {len(generator.groups)} "
        "groups (countries with demonyms and capitals, leaders and ministers, organisations, "
        "companies, armed groups; "
        f"{sum(len(a.aliases) for a in actors.values()):,} aliases, "
        f"{sum(al.case_sensitive for a in actors.values() for al in a.aliases)} of them "
        f"case-sensitive such as NATO, EU, UN, IMF) and {n_keywords:,} keywords in "
        f"{len(generator.topics)} topics ({n_phrases:,} phrases, {n_wildcards} prefix "
        f"wildcards), plus {len(generator.exclusions)} typical exclusions."
    )
    result.note(
        f"{len(generated):,} watches, random.Random({SEED}); the smaller sets are its first 10, "
        "100 and 1,000. Shapes: "
        + ", ".join(f"{k} {v / len(generated):.0%}" for k, v in shapes.items())
        + f"; {excluded / len(generated):.0%} have an exclusion (NOT), "
        f"{near / len(generated):.0%} a NEAR. Actors (1-3) come from one group, keywords (2-6) "
        "from one topic, each watch built with parse_query as WatchSpec(name, expr). Examples: "
        + "; ".join(f"`{q}`" for q in examples.values())
    )
    result.note(
        f"{n_docs} articles of exactly {WORDS} words: the {len(STORIES)} corpus stories' "
        "paragraphs shuffled (one seed per article) and cut at 1,000 words, titled with the "
        "demo pages' headlines; Document(title, text). Every size is compiled once and warmed "
        f"on every article; then {rounds} rounds each time every size over every article "
        "(rotating the order of sizes). An article's time is its median over rounds; a size's "
        "figure is the median over articles. The word-key cache is warm, as in a running daemon."
    )
    result.note(
        "match() decides: it returns each matching watch with its score, as the naive loop "
        "returns watch names. A match's terms (field, offsets) and snippet are worked out when "
        "first read; the store reads them for every match it keeps, so the row 'with every "
        "match's terms and snippet' is what the match stage costs per article."
    )
    result.note(
        "Naive baseline: for each watch, one Python `re` regex (re.IGNORECASE, (?<!\\w)...(?!\\w) "
        "boundaries) per OR-group of terms, combined with Python and/or/not (short-circuit); an "
        "actor is the alternation of its aliases (case-sensitive ones as (?-i:...)); a keyword's "
        "last word is the alternation of monitor.rules.inflect.forms, a wildcard stem\\w*; NEAR/N "
        "is left(\\W+\\w+){0,N-1}\\W+right either way; NEAR/sentence is approximated as no . ! ? "
        "or line break between the two (so 'U.S.' ends a sentence there), NEAR/paragraph as no "
        "line break; diacritics are not folded. It searches title + newline + text. Timed once "
        f"per article on the first {naive_docs} articles for every size, after the timed "
        f"compiled rounds; building its {len(naive):,} watches took {naive_build:.1f} s. The "
        f"speed-up divides its median by the compiled median over the same {naive_docs} "
        f"articles ({compiled_subset_ms:.2f} ms)."
    )
    load_note(result)
    finish(result, args.json, started)


if __name__ == "__main__":
    main()
