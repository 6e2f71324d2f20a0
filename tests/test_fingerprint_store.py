"""Fingerprints in the store, on SQLite and PostgreSQL: add, replace, look up through the bands."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from monitor.fingerprint import DEFAULT, Fingerprint, fingerprint
from monitor.store.fingerprints import (
    add_fingerprint,
    add_fingerprints,
    candidates,
    near_duplicates,
    remove_fingerprint,
)
from monitor.store.schema import article_bands, article_fingerprints, articles
from tests.neardup.cases import by_id

NOW = datetime(2022, 1, 20, 8, 0, tzinfo=UTC)


def fp_of(text: str) -> Fingerprint:
    found = fingerprint(text)
    assert found is not None
    return found


def stored(c, text: str, n: int) -> int:
    """An article row to hang a fingerprint on."""
    return c.execute(
        insert(articles)
        .values(
            canonical_url=f"http://127.0.0.1/a/{n}",
            title=f"article {n}",
            first_seen_at=NOW,
            updated_at=NOW,
            text=text,
            text_source="page",
            content_hash=f"{n:064d}",
            revision=1,
            backlog=False,
        )
        .returning(articles.c.id)
    ).scalar_one()


def test_a_copy_is_found_among_stored_articles_and_others_are_not(store):
    t = by_id()
    with store.engine.begin() as c:
        ids = {}
        for n, name in enumerate(["000/original", "001/original", "002/original", "003/original"]):
            ids[name] = stored(c, t[name].text, n)
            add_fingerprint(c, ids[name], fp_of(t[name].text))
    with store.engine.connect() as c:
        found = near_duplicates(c, fp_of(t["002/as-republished"].text))
        assert [d.article_id for d in found] == [ids["002/original"]]
        assert found[0].similarity >= DEFAULT.threshold
        assert near_duplicates(c, fp_of(t["004/original"].text)) == []
        trimmed = near_duplicates(c, fp_of(t["003/rewrite-heavy-trunc80-chrome"].text))
        assert [d.article_id for d in trimmed] == [ids["003/original"]]


def test_the_lookup_verifies_what_the_bands_propose(store):
    """A candidate sharing a band is still refused when its estimated similarity is low."""
    t = by_id()
    teaser = t["brief/Putin-Kiev-preparing-operation-Donbas"]
    with store.engine.begin() as c:
        full = stored(c, t["000/trunc60"].text, 1)
        add_fingerprint(c, full, fp_of(t["000/trunc60"].text))
    with store.engine.connect() as c:
        proposed = [i for i, _ in candidates(c, fp_of(teaser.text))]
        assert proposed == [full]  # the teaser quotes it: they share a band
        assert near_duplicates(c, fp_of(teaser.text)) == []


def test_the_earliest_stored_copy_comes_first_and_an_article_can_leave_itself_out(store):
    t = by_id()
    with store.engine.begin() as c:
        first = stored(c, t["001/original"].text, 1)
        second = stored(c, t["001/chrome-mirror"].text, 2)
        add_fingerprints(
            c,
            [(second, fp_of(t["001/chrome-mirror"].text)), (first, fp_of(t["001/original"].text))],
            new=True,  # both were just inserted: nothing to replace
        )
    with store.engine.connect() as c:
        found = near_duplicates(c, fp_of(t["001/trunc80"].text))
        assert [d.article_id for d in found] == [first, second]
        own = near_duplicates(c, fp_of(t["001/original"].text), exclude=[first])
        assert [d.article_id for d in own] == [second]


def test_a_new_fingerprint_replaces_the_old_bands_and_removal_forgets_them(store):
    t = by_id()
    with store.engine.begin() as c:
        a = stored(c, t["003/original"].text, 1)
        add_fingerprint(c, a, fp_of(t["003/original"].text))
        add_fingerprint(c, a, fp_of(t["004/original"].text))  # the text was revised
        assert c.execute(select(func.count()).select_from(article_bands)).scalar() == (
            DEFAULT.bands
        )
    with store.engine.connect() as c:
        assert near_duplicates(c, fp_of(t["003/original"].text)) == []
        assert [d.article_id for d in near_duplicates(c, fp_of(t["004/trunc80"].text))] == [a]
    with store.engine.begin() as c:
        remove_fingerprint(c, a)
        assert c.execute(select(func.count()).select_from(article_fingerprints)).scalar() == 0
        assert near_duplicates(c, fp_of(t["004/trunc80"].text)) == []


def test_deleting_an_article_deletes_its_fingerprint_and_bands(store):
    t = by_id()
    with store.engine.begin() as c:
        a = stored(c, t["000/original"].text, 1)
        add_fingerprint(c, a, fp_of(t["000/original"].text))
    with store.engine.begin() as c:
        c.execute(articles.delete().where(articles.c.id == a))
        assert c.execute(select(func.count()).select_from(article_bands)).scalar() == 0
        assert c.execute(select(func.count()).select_from(article_fingerprints)).scalar() == 0
