"""Per-outlet boilerplate as the store keeps it: how many pages of an outlet carried each line
key, the keys seen on enough pages (its learned boilerplate), and stored texts cleaned again
once more is learned. Functions of a connection, called by the Store (monitor.boilerplate
decides what a line key is and what to do with the learned ones)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, insert, select, update

from monitor.store.schema import article_sources, articles, boilerplate_lines
from monitor.store.sql import chunks, one_of

OUTLETS_PER_QUERY = 1000  # each adds a term to the statement


def lines_of(c: Connection, outlet_ids: Sequence[int], min_pages: int) -> dict[int, frozenset[str]]:
    """Each outlet's line keys seen on `min_pages` pages or more."""
    found: dict[int, set[str]] = {o: set() for o in outlet_ids}
    b = boilerplate_lines.c
    for chunk in chunks(outlet_ids, OUTLETS_PER_QUERY):
        query = select(b.outlet_id, b.line_key).where(
            one_of(c, b.outlet_id, chunk), b.pages >= min_pages
        )
        for outlet_id, key in c.execute(query):
            found[outlet_id].add(key)
    return {o: frozenset(keys) for o, keys in found.items()}


def pages_new_to_outlet(c: Connection, outlet_id: int, urls: Sequence[str]) -> set[str]:
    """The URLs the outlet has no source at yet: pages whose lines the learner has not
    counted (a page counted twice would make its own text look like boilerplate)."""
    query = select(article_sources.c.url).where(
        article_sources.c.outlet_id == outlet_id, article_sources.c.url.in_(list(urls))
    )
    return set(urls) - set(c.execute(query).scalars())


def count_pages(
    c: Connection, outlet_id: int, pages: Sequence[dict[str, str]], min_pages: int
) -> frozenset[str]:
    """Count one more page for each line key of each page (key -> a sample line); return
    the keys that just became boilerplate."""
    seen_in = Counter(k for page in pages for k in page)
    samples = {k: s for page in pages for k, s in page.items()}
    counts = dict(
        c.execute(
            select(boilerplate_lines.c.line_key, boilerplate_lines.c.pages).where(
                boilerplate_lines.c.outlet_id == outlet_id,
                boilerplate_lines.c.line_key.in_(list(seen_in)),
            )
        ).all()
    )
    fresh = [
        {"outlet_id": outlet_id, "line_key": k, "pages": n, "sample": samples[k][:500]}
        for k, n in seen_in.items()
        if k not in counts
    ]
    if fresh:
        c.execute(insert(boilerplate_lines), fresh)
    by_increment: dict[int, list[str]] = {}
    for k, n in seen_in.items():
        if k in counts:
            by_increment.setdefault(n, []).append(k)
    for n, keys in by_increment.items():  # one statement for the keys counted n more times
        c.execute(
            update(boilerplate_lines)
            .where(
                boilerplate_lines.c.outlet_id == outlet_id,
                boilerplate_lines.c.line_key.in_(keys),
            )
            .values(pages=boilerplate_lines.c.pages + n)
        )
    return frozenset(
        k for k, n in seen_in.items() if counts.get(k, 0) < min_pages <= counts.get(k, 0) + n
    )


def rewrite_texts(
    c: Connection,
    outlet_id: int,
    rewrite: Callable[[str], str],
    hash_text: Callable[[str], str],
    limit: int,
) -> int:
    """Clean the outlet's `limit` latest stored texts again; how many changed."""
    changed = 0
    rows = c.execute(
        select(articles.c.id, articles.c.text)
        .where(articles.c.outlet_id == outlet_id)
        .order_by(articles.c.id.desc())
        .limit(limit)
    )
    for row in rows.all():
        text = rewrite(row.text)
        if text != row.text:
            c.execute(
                update(articles)
                .where(articles.c.id == row.id)
                .values(text=text, content_hash=hash_text(text))
            )
            changed += 1
    return changed
