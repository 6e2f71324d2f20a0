"""The rules a running daemon matches with, and the match stage's pure function.

`ActiveRules` pairs the compiled rules with the date each watch was first seen (kept in the
store): a watch added today does not fire on an article first seen yesterday, even if that article
is still waiting in the match queue. A reload builds a new `ActiveRules` and swaps it in with one
assignment, so a batch being matched finishes with the rules it started with."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor import metrics
from monitor.rules.compiler import CompiledRules
from monitor.rules.matcher import Document, Match, match
from monitor.rules.query import to_query
from monitor.rules.spec import RuleSet, WatchSpec
from monitor.store.matching import ArticleToMatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveRules:
    compiled: CompiledRules
    since: dict[str, datetime] = field(default_factory=dict)  # watch -> first seen
    rules: RuleSet = field(default_factory=lambda: RuleSet({}, ()))  # with channels, for delivery


def definitions(rules: RuleSet) -> dict[str, str]:
    """Each watch as one canonical line, stored to tell when a watch was edited."""
    return {watch.name: definition(watch) for watch in rules.watches}


def definition(watch: WatchSpec) -> str:
    f = watch.filters
    parts = [
        to_query(watch.expr),
        f"fields={','.join(watch.fields)}",
        f"outlets={','.join(sorted(f.outlets))}",
        f"tags={','.join(sorted(f.tags))}",
        f"languages={','.join(sorted(f.languages))}",
        f"weights={','.join(f'{k}:{v:g}' for k, v in sorted(watch.weights.items()))}",
        f"threshold={watch.threshold:g}",
        f"inflect={watch.inflect}",
    ]
    return " | ".join(parts)


def document(article: ArticleToMatch) -> Document:
    return Document(article.title, article.text, article.outlets, article.tags, article.language)


def match_stored(active: ActiveRules, articles: Sequence[ArticleToMatch]) -> list[list[Match]]:
    """Each stored article's matches, leaving out watches newer than the article."""
    if not active.compiled.watches:
        return [[] for _ in articles]
    found = []
    for article in articles:
        try:
            matches = match(active.compiled, document(article))
        except Exception:  # a bug on one article must not hold up the queue behind it
            log.exception("article %d could not be matched; it is left unmatched", article.id)
            matches = []
        found.append([m for m in matches if _existed(active, m.watch, article.first_seen_at)])
        metrics.matched(m.watch for m in found[-1])
    return found


def _existed(active: ActiveRules, watch: str, first_seen: datetime) -> bool:
    since = active.since.get(watch)
    return since is None or since <= first_seen
