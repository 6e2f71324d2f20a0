"""The match stage's side of the store: the queue of articles to match, the watches known and
since when, and the matches found.

New and revised articles are stored with `match_pending` set, in the same transaction as the
article; `match_pending` claims a batch of them, lets the caller's pure matcher run, and writes
the matches and clears the flags in that one transaction. A crash anywhere leaves the articles
queued, so no article is ever left unmatched, and none is matched into two rows for one watch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.rules.matcher import Match
from monitor.store.schema import article_sources, articles, feeds, matches, outlets, watches


@dataclass(frozen=True)
class ArticleToMatch:
    """What the matcher reads of a stored article."""

    id: int
    revision: int
    title: str
    text: str
    language: str | None
    first_seen_at: datetime
    backlog: bool
    outlets: frozenset[str]  # every outlet that carried it (slugs)
    tags: frozenset[str]  # its outlets' and feeds' tags


@dataclass(frozen=True)
class StoredMatch:
    id: int
    article_id: int
    watch: str
    score: float
    hits: list[dict[str, Any]]
    snippet: str
    marks: list[list[int]]
    matched_at: datetime
    title: str
    canonical_url: str


MatchFn = Callable[[Sequence[ArticleToMatch]], list[list[Match]]]


def register_watches(
    c: Connection, definitions: dict[str, str], now: datetime
) -> dict[str, datetime]:
    """Record watches not seen before (as of `now`) and edits of known ones; returns when each
    watch was first seen. A watch removed and added again keeps its first date."""
    known = {r.name: r for r in c.execute(select(watches))}
    for name, definition in definitions.items():
        row = known.get(name)
        if row is None:
            values = {"name": name, "definition": definition, "created_at": now, "updated_at": now}
            c.execute(watches.insert().values(**values))
        elif row.definition != definition:
            c.execute(
                update(watches)
                .where(watches.c.name == name)
                .values(definition=definition, updated_at=now)
            )
    rows = c.execute(select(watches.c.name, watches.c.created_at)).all()
    return {name: created for name, created in rows if name in definitions}


# What the matcher reads of an article (its outlets and tags come from its sources).
_TO_MATCH = select(
    articles.c.id,
    articles.c.revision,
    articles.c.title,
    articles.c.text,
    articles.c.language,
    articles.c.first_seen_at,
    articles.c.backlog,
)


def claim_pending(c: Connection, limit: int) -> list[ArticleToMatch]:
    """Up to `limit` queued articles, oldest first; on PostgreSQL rows another worker is
    matching are skipped rather than waited for."""
    query = _TO_MATCH.where(articles.c.match_pending.is_(True)).order_by(articles.c.id).limit(limit)
    if c.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=articles)
    return _with_sources(c, c.execute(query).all())


def articles_between(
    c: Connection, since: datetime | None, after_id: int, limit: int
) -> list[ArticleToMatch]:
    """Stored articles first seen since `since`, by id after `after_id` (for replays)."""
    query = _TO_MATCH.where(articles.c.id > after_id).order_by(articles.c.id).limit(limit)
    if since is not None:
        query = query.where(articles.c.first_seen_at >= since)
    return _with_sources(c, c.execute(query).all())


def _with_sources(c: Connection, rows: Sequence[Any]) -> list[ArticleToMatch]:
    ids = [r.id for r in rows]
    slugs: dict[int, set[str]] = defaultdict(set)
    tags: dict[int, set[str]] = defaultdict(set)
    if ids:
        query = (
            select(article_sources.c.article_id, outlets.c.slug, outlets.c.tags, feeds.c.tags)
            .join(outlets, outlets.c.id == article_sources.c.outlet_id)
            .join(feeds, feeds.c.id == article_sources.c.feed_id)
            .where(article_sources.c.article_id.in_(ids))
        )
        for article_id, slug, outlet_tags, feed_tags in c.execute(query):
            slugs[article_id].add(slug)
            tags[article_id].update(outlet_tags or (), feed_tags or ())
    return [
        ArticleToMatch(
            id=r.id,
            revision=r.revision,
            title=r.title,
            text=r.text,
            language=r.language,
            first_seen_at=r.first_seen_at,
            backlog=r.backlog,
            outlets=frozenset(slugs[r.id]),
            tags=frozenset(tags[r.id]),
        )
        for r in rows
    ]


def save_matches(
    c: Connection, found: Iterable[tuple[ArticleToMatch, list[Match]]], now: datetime
) -> int:
    """Write each article's matches (a revision that matches again updates its row) and take
    the articles off the queue; returns the number of matches written."""
    rows, done = [], []
    for article, article_matches in found:
        done.append(article.id)
        rows += [_match_row(article, m, now) for m in article_matches]
    if rows:
        c.execute(_upsert(c), rows)
    if done:
        c.execute(update(articles).where(articles.c.id.in_(done)).values(match_pending=False))
    return len(rows)


def _match_row(article: ArticleToMatch, m: Match, now: datetime) -> dict[str, Any]:
    return {
        "article_id": article.id,
        "watch": m.watch,
        "revision": article.revision,
        "score": m.score,
        "hits": [
            {"term": h.term, "field": h.field, "start": h.start, "end": h.end, "text": h.text}
            for h in m.hits
        ],
        "snippet": m.snippet.text,
        "marks": [list(mark) for mark in m.snippet.marks],
        "matched_at": now,
        "updated_at": now,
    }


def _upsert(c: Connection) -> Any:
    insert = postgresql.insert if c.dialect.name == "postgresql" else sqlite.insert
    statement = insert(matches)
    changed = ("revision", "score", "hits", "snippet", "marks", "updated_at")
    return statement.on_conflict_do_update(
        index_elements=[matches.c.article_id, matches.c.watch],
        set_={name: statement.excluded[name] for name in changed},
    )


def stored_matches(
    c: Connection, watch: str | None, since: datetime | None, limit: int
) -> list[StoredMatch]:
    """Matches newest first, with their article's title and address."""
    query = (
        select(matches, articles.c.title, articles.c.canonical_url)
        .join(articles, articles.c.id == matches.c.article_id)
        .order_by(matches.c.matched_at.desc(), matches.c.id.desc())
        .limit(limit)
    )
    if watch is not None:
        query = query.where(matches.c.watch == watch)
    if since is not None:
        query = query.where(matches.c.matched_at >= since)
    return [
        StoredMatch(
            id=r.id,
            article_id=r.article_id,
            watch=r.watch,
            score=r.score,
            hits=r.hits,
            snippet=r.snippet,
            marks=r.marks,
            matched_at=r.matched_at,
            title=r.title,
            canonical_url=r.canonical_url,
        )
        for r in c.execute(query)
    ]


def delete_matches_of(c: Connection, article_ids: Sequence[int]) -> None:
    """Matches go with their articles (retention)."""
    for start in range(0, len(article_ids), 500):
        chunk = list(article_ids[start : start + 500])
        c.execute(delete(matches).where(matches.c.article_id.in_(chunk)))
