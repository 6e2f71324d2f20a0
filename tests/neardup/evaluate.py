"""Score near-duplicate detection on the labelled set, and list the cases it gets wrong.

    .venv/bin/python -m tests.neardup.evaluate             # the monitor's scheme
    .venv/bin/python -m tests.neardup.evaluate --compare   # and the alternatives measured

A pair is found when the two fingerprints share a band key (the index lookup) and the
verification accepts it, exactly as the store decides. Every pair of texts of tests/neardup/cases
is scored. Then every text is grouped into stories one at a time in published order
(monitor.stories.group, as ingest would) and every pair scored against the story labels.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor import stories
from monitor.config.loader import load_yaml_model
from monitor.config.rules import ActorsFile
from monitor.fingerprint import DEFAULT, Scheme, fingerprint
from tests.neardup.cases import Pair, extended_pairs, extended_texts, pairs, published, texts
from tests.neardup.schemes import Candidate, KPermutation, OnePermutation, SimHash

TARGET_RECALL = 0.95
TARGET_PRECISION = 0.99
STORY_TARGET_PRECISION = 0.95
STORY_TARGET_RECALL = 0.80


@dataclass
class Judged:
    pair: Pair
    candidate: bool  # the two share an index key
    score: float | None  # None: a text too short to fingerprint

    def found(self, threshold: float) -> bool:
        return self.candidate and self.score is not None and self.score >= threshold


@dataclass
class Scores:
    scheme: str
    threshold: float
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    wrong: list[Judged] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Run:
    scheme: Candidate
    judged: list[Judged]
    ms_per_text: float
    positives_candidate: float  # share of true pairs that share a key
    negatives_candidate: float  # share of other pairs that share a key


def judge(scheme: Candidate) -> Run:
    """Fingerprint every text and judge every labelled pair."""
    started = time.perf_counter()
    fps = {t.id: scheme.fingerprint(t.text) for t in texts()}
    ms = (time.perf_counter() - started) * 1000 / len(fps)
    keys = {tid: set(scheme.keys(fp)) if fp is not None else set() for tid, fp in fps.items()}
    judged = []
    for p in pairs():
        fa, fb = fps[p.a.id], fps[p.b.id]
        score = scheme.score(fa, fb) if fa is not None and fb is not None else None
        judged.append(Judged(p, bool(keys[p.a.id] & keys[p.b.id]), score))
    pos = [j for j in judged if j.pair.near_duplicate]
    neg = [j for j in judged if not j.pair.near_duplicate]
    return Run(
        scheme,
        judged,
        ms,
        sum(j.candidate for j in pos) / len(pos),
        sum(j.candidate for j in neg) / len(neg),
    )


def scores(run: Run, threshold: float | None = None) -> Scores:
    """Confusion counts of a run at a threshold (the scheme's own by default)."""
    t = run.scheme.threshold if threshold is None else threshold
    out = Scores(run.scheme.name, t)
    for j in run.judged:
        found, truth = j.found(t), j.pair.near_duplicate
        if found and truth:
            out.tp += 1
        elif found:
            out.fp += 1
            out.wrong.append(j)
        elif truth:
            out.fn += 1
            out.wrong.append(j)
        else:
            out.tn += 1
    return out


def best_recall(run: Run, precision: float = TARGET_PRECISION) -> Scores:
    """The threshold with the highest recall at the given precision (ties: the highest)."""
    thresholds = sorted({j.score for j in run.judged if j.candidate and j.score is not None})
    best = scores(run, 1.01)
    for t in thresholds:
        s = scores(run, t)
        if s.precision >= precision and s.recall >= best.recall:
            best = s
    return best


def evaluate(scheme: Scheme = DEFAULT) -> Scores:
    """The monitor's decision on every labelled pair."""
    return scores(judge(OnePermutation(scheme)))


def alternatives() -> list[Candidate]:
    out: list[Candidate] = []
    for k in (2, 3, 4):
        for bins, bands, rows in (
            (128, 16, 2),
            (128, 20, 2),
            (128, 24, 2),
            (256, 32, 2),
            (128, 16, 3),
        ):
            out.append(OnePermutation(Scheme(shingle=k, bins=bins, bands=bands, rows=rows)))
    for k in (2, 3):
        out.append(KPermutation(shingle=k, perms=128, bands=16, rows=2))
    for k in (1, 2, 3):
        out.append(SimHash(shingle=k, blocks=4))
        out.append(SimHash(shingle=k, blocks=8))
    return out


def _line(j: Judged) -> str:
    truth = "near-duplicate" if j.pair.near_duplicate else "different"
    score = "no fingerprint" if j.score is None else f"score {j.score:.3f}"
    band = "shares a band" if j.candidate else "no band shared"
    return f"  {j.pair.name}: truly {truth}; {score}, {band}"


def report(s: Scores, run: Run) -> list[str]:
    n_pos = s.tp + s.fn
    lines = [
        f"{s.scheme} at threshold {s.threshold:.3f}",
        f"  labelled pairs: {len(run.judged)} ({n_pos} near-duplicate, "
        f"{s.fp + s.tn} not), texts: {len(texts())}",
        f"  precision {s.precision:.4f} (target >= {TARGET_PRECISION}), "
        f"recall {s.recall:.4f} (target >= {TARGET_RECALL})",
        f"  true pairs sharing a band: {run.positives_candidate:.4f}; "
        f"other pairs sharing a band: {run.negatives_candidate:.4f}",
        f"  fingerprint time: {run.ms_per_text:.2f} ms a text (mean over the set)",
    ]
    if s.wrong:
        lines.append(f"  wrong ({len(s.wrong)}):")
        lines += [_line(j) for j in sorted(s.wrong, key=lambda j: j.pair.name)]
    else:
        lines.append("  wrong: none")
    scored = [j for j in run.judged if j.score is not None]
    lows = sorted((j for j in scored if j.pair.near_duplicate), key=lambda j: j.score or 0)
    highs = sorted((j for j in scored if not j.pair.near_duplicate), key=lambda j: -(j.score or 0))
    lines.append("  closest calls, near-duplicates with the lowest scores:")
    lines += [_line(j) for j in lows[:4]]
    lines.append("  closest calls, different texts with the highest scores:")
    lines += [_line(j) for j in highs[:4]]
    return lines


def salted(salts: int = 8) -> list[Scores]:
    """The monitor's scheme with other shingle hashes: how much the estimate's noise costs."""
    return [
        scores(judge(OnePermutation(replace(DEFAULT, salt=f"salt{i}".encode()))))
        for i in range(salts)
    ]


@dataclass
class StoryScores:
    """Pairwise story scores of incremental grouping in published order."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    wrong: list[tuple[Pair, bool]] = field(default_factory=list)  # (pair, grouped together)
    placed: dict[str, str] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def actor_spellings() -> dict[tuple[str, ...], str]:
    """Actor keys by folded alias, from the shipped config/actors.yaml."""
    path = Path(__file__).resolve().parents[2] / "config" / "actors.yaml"
    specs = load_yaml_model(path, ActorsFile).specs()
    return stories.spellings(
        {k: [(a.text, a.case_sensitive) for a in s.aliases] for k, s in specs.items()}
    )


def story_signatures(extended: bool = False) -> list[stories.Signature]:
    actors, when = actor_spellings(), published()
    return [
        stories.signature(t.id, t.text, when[t.id], actors=actors, fingerprint=fingerprint(t.text))
        for t in (extended_texts() if extended else texts())
    ]


def evaluate_stories(
    threshold: float = stories.THRESHOLD,
    window: timedelta = stories.WINDOW,
    *,
    lead_min: float = stories.LEAD_MIN,
    extended: bool = False,
) -> StoryScores:
    """Group every text incrementally in published order and score every labelled pair: of the
    base set, or of the base set and the extra hard cases (`extended`)."""
    signatures = story_signatures(extended)
    placed, why = stories.group(signatures, threshold=threshold, window=window, lead_min=lead_min)
    out = StoryScores(placed=placed, why=why)
    for p in extended_pairs() if extended else pairs():
        got = placed[p.a.id] == placed[p.b.id]
        if got and p.same_story:
            out.tp += 1
        elif got:
            out.fp += 1
            out.wrong.append((p, got))
        elif p.same_story:
            out.fn += 1
            out.wrong.append((p, got))
        else:
            out.tn += 1
    return out


def story_report(s: StoryScores, limit: int = 40, name: str = "base set") -> list[str]:
    lines = [
        f"stories, {name} (threshold {stories.THRESHOLD}, window {stories.WINDOW}): "
        f"{s.tp + s.fn} same-story pairs, {s.fp + s.tn} not",
        f"  precision {s.precision:.4f} (target >= {STORY_TARGET_PRECISION}), "
        f"recall {s.recall:.4f} (target >= {STORY_TARGET_RECALL})",
    ]
    by_text: dict[str, list[str]] = {}
    for p, got in s.wrong:  # summarised by text: most wrong pairs share one misplaced text
        key = "grouped, truly different" if got else "apart, truly one story"
        by_text.setdefault(f"{key}: {p.a.story} / {p.b.story}", []).append(p.name)
    lines.append(f"  wrong pairs ({len(s.wrong)}), by the two stories:")
    for key, names in sorted(by_text.items()):
        lines.append(f"    {key}: {len(names)} pairs, e.g. {names[0]}")
    lines.append("  placements of texts that are not near-duplicates of a story member:")
    shown = 0
    for tid, why in sorted(s.why.items(), key=lambda kv: published()[kv[0]]):
        if "near-duplicate" in why or shown >= limit:
            continue
        shown += 1
        lines.append(f"    {tid} -> {s.placed[tid]}: {why}")
    return lines


def compare(candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    rows = []
    for c in candidates:
        run = judge(c)
        own, best = scores(run), best_recall(run)
        rows.append(
            {
                "scheme": c.name,
                "ms": run.ms_per_text,
                "bytes": c.bytes_stored(),
                "band_recall": run.positives_candidate,
                "band_noise": run.negatives_candidate,
                "best_threshold": best.threshold,
                "best_recall": best.recall,
                "best_precision": best.precision,
                "own_threshold": own.threshold,
                "own_precision": own.precision,
                "own_recall": own.recall,
            }
        )
        print(
            f"{c.name:44} {run.ms_per_text:6.2f} ms  {c.bytes_stored():5} B  "
            f"band recall {run.positives_candidate:.3f}  band noise {run.negatives_candidate:.3f}  "
            f"best recall@P>=.99 {best.recall:.3f} (t={best.threshold:.3f}, "
            f"P={best.precision:.3f})",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.neardup.evaluate")
    parser.add_argument("--compare", action="store_true", help="also measure the alternatives")
    args = parser.parse_args()
    run = judge(OnePermutation(DEFAULT))
    print("\n".join(report(scores(run), run)))
    print()
    print("\n".join(story_report(evaluate_stories())))
    print()
    extended = evaluate_stories(extended=True)
    print("\n".join(story_report(extended, limit=60, name="extended set")))
    if args.compare:
        print("\nthe same scheme with 8 other shingle hashes (the estimator's noise):")
        for s in salted():
            print(f"  precision {s.precision:.4f} recall {s.recall:.4f} ({len(s.wrong)} wrong)")
        print("\nalternatives (recall at the best threshold with precision >= 0.99):")
        compare(alternatives())


if __name__ == "__main__":
    main()
