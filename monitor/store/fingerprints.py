"""Near-duplicate fingerprints of stored articles, and the lookup of a text's near-duplicates.

Each article has at most one fingerprint (of its current text) and one ``article_bands`` row per
band of it. A lookup sends the text's band keys in one statement, which probes the band index
once per key and returns the candidates' fingerprints; the candidates are then verified here,
in Python (``Scheme.is_near_duplicate``). Cost depends on how many stored texts share a band
with the one looked up, not on how many are stored.

All functions run inside the caller's transaction (a Connection), like monitor.store.ingest, so
the ingest step can fingerprint a new article in the transaction that stores it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from monitor.fingerprint import DEFAULT, Fingerprint, Scheme
from monitor.store.schema import article_bands, article_fingerprints
from monitor.store.sql import insert_rows, one_of


@dataclass(frozen=True)
class NearDuplicate:
    """A stored article whose text is a near-duplicate of the one looked up."""

    article_id: int
    similarity: float  # estimated Jaccard similarity of the two texts' shingles


def scheme_name(scheme: Scheme = DEFAULT) -> str:
    """What the scheme column says: fingerprints of two schemes are never compared."""
    return f"oph-k{scheme.shingle}-{scheme.bins}-{scheme.bands}x{scheme.rows}"


def add_fingerprints(
    c: Connection,
    fingerprints: Iterable[tuple[int, Fingerprint]],
    scheme: Scheme = DEFAULT,
    new: bool = False,
) -> None:
    """Store the fingerprints of these articles (id, fingerprint), replacing any they had.

    ``new=True`` says the articles were just inserted and have none: the two deletes that
    clear old rows are skipped (bulk loads and the ingest of new articles)."""
    items = list(fingerprints)
    if not items:
        return
    if not new:  # a revised text replaces the old fingerprint
        ids = [article_id for article_id, _ in items]
        c.execute(delete(article_bands).where(one_of(c, article_bands.c.article_id, ids)))
        c.execute(
            delete(article_fingerprints).where(one_of(c, article_fingerprints.c.article_id, ids))
        )
    name = scheme_name(scheme)
    insert_rows(
        c,
        article_fingerprints,
        [
            {"article_id": i, "scheme": name, "minima": fp.to_bytes(), "shingles": fp.shingles}
            for i, fp in items
        ],
    )
    bands = [
        {"band_key": key, "article_id": i}
        for i, fp in items
        for key in dict.fromkeys(scheme.band_keys(fp))  # keys of one text are distinct anyway
    ]
    insert_rows(c, article_bands, bands)


def add_fingerprint(
    c: Connection, article_id: int, fp: Fingerprint, scheme: Scheme = DEFAULT
) -> None:
    """Store one article's fingerprint, replacing any it had."""
    add_fingerprints(c, [(article_id, fp)], scheme)


def remove_fingerprint(c: Connection, article_id: int) -> None:
    """Forget an article's fingerprint (its text is gone or too short now)."""
    c.execute(delete(article_bands).where(article_bands.c.article_id == article_id))
    c.execute(delete(article_fingerprints).where(article_fingerprints.c.article_id == article_id))


def candidates(
    c: Connection, fp: Fingerprint, scheme: Scheme = DEFAULT
) -> list[tuple[int, Fingerprint]]:
    """Stored fingerprints that share a band with this one (one statement on the band index)."""
    keys = list(dict.fromkeys(scheme.band_keys(fp)))
    f = article_fingerprints.c
    sharing = select(article_bands.c.article_id).where(one_of(c, article_bands.c.band_key, keys))
    rows = c.execute(
        select(f.article_id, f.minima, f.shingles).where(
            f.article_id.in_(sharing), f.scheme == scheme_name(scheme)
        )
    )
    return [(row.article_id, Fingerprint.from_bytes(row.minima, row.shingles)) for row in rows]


def near_duplicates(
    c: Connection,
    fp: Fingerprint,
    scheme: Scheme = DEFAULT,
    exclude: Sequence[int] = (),
) -> list[NearDuplicate]:
    """The stored articles this fingerprint's text is a near-duplicate of, earliest first.

    Earliest means lowest article id: the copy that was stored first is the canonical one
    (see docs/near-duplicates.md), so ``near_duplicates(...)[0]`` is the article a new copy
    becomes another source of."""
    found = [
        NearDuplicate(article_id, scheme.similarity(fp, other))
        for article_id, other in candidates(c, fp, scheme)
        if article_id not in exclude and scheme.is_near_duplicate(fp, other)
    ]
    return sorted(found, key=lambda d: d.article_id)
