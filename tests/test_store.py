"""The store on SQLite and PostgreSQL: migrations, schedule leases, dedupe, revisions, learning."""

from __future__ import annotations

import subprocess
import sys
from contextlib import nullcontext
from datetime import timedelta

from sqlalchemy import create_engine, inspect, text

from monitor.config import FeedSpec
from monitor.store import NewArticle, Store
from tests.support import pg_database


def spec(name: str, outlet: str = "rferl", url: str | None = None, minutes: int = 10):
    return FeedSpec(
        name=name,
        outlet=outlet,
        outlet_name=outlet.upper(),
        url=url or f"http://127.0.0.1:9/{name}.xml",
        interval=timedelta(minutes=minutes),
        language="en",
        tags=("wire",),
    )


def article(url: str, text: str = "Russia massed troops near Ukraine. " * 10, **kw) -> NewArticle:
    from monitor.extract import content_hash

    values = dict(
        canonical_url=url,
        title="Blinken in Kyiv",
        author=None,
        published_at=None,
        language="en",
        text=text,
        text_source="page",
        content_hash=content_hash(text),
        backlog=False,
    )
    values.update(kw)
    return NewArticle(**values)


def claim_one(store: Store, name: str, clock, owner: str = "w1"):
    (feed,) = store.claim_due_feeds(
        owner, clock(), timedelta(minutes=5), 10, names=[name], ignore_schedule=True
    )
    return feed


def test_migrations_create_every_table_at_the_newest_revision(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "outlets",
        "feeds",
        "articles",
        "article_revisions",
        "article_sources",
        "boilerplate_lines",
        "stories",
        "story_keys",
        "story_background",
        "alembic_version",
    } <= tables
    with store.engine.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() == "0010"


def test_upgrading_from_the_first_schema_keeps_existing_rows(db_url, clock):
    old = Store.open(db_url, migrate=False)
    old.upgrade("0001")
    columns = {c["name"] for c in inspect(old.engine).get_columns("feeds")}
    assert "last_problem" not in columns
    with old.engine.begin() as c:
        c.execute(
            text(
                "insert into outlets (slug, name, tags, created_at) "
                "values ('rferl', 'RFE/RL', '[]', :now)"
            ),
            {"now": clock()},
        )
        c.execute(
            text(
                "insert into feeds (name, outlet_id, url, interval_s, tags, active, "
                "next_poll_at, consecutive_failures, created_at) values ('rferl', 1, "
                "'http://x/f', 600, '[]', true, :now, 0, :now)"
            ),
            {"now": clock()},
        )
    old.close()
    upgraded = Store.open(db_url)
    assert [h.name for h in upgraded.feed_health()] == ["rferl"]
    columns = {c["name"] for c in inspect(upgraded.engine).get_columns("feeds")}
    assert {"last_problem", "failing_since"} <= columns
    upgraded.close()


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path}/deep/folder/monitor.db")
    with store.engine.connect() as c:
        assert c.execute(text("pragma journal_mode")).scalar() == "wal"
    store.close()
    assert (tmp_path / "deep/folder/monitor.db").exists()


def test_sync_adds_updates_and_retires_feeds(store, clock):
    store.sync_feeds([spec("a"), spec("b")], clock())
    store.sync_feeds([spec("a", minutes=30)], clock())
    health = {h.name: h for h in store.feed_health()}
    assert health["a"].active and not health["b"].active
    feed = claim_one(store, "a", clock)
    assert feed.interval == timedelta(minutes=30)
    assert (
        store.claim_due_feeds(
            "w", clock(), timedelta(minutes=5), 10, names=["b"], ignore_schedule=True
        )
        == []
    )


def test_a_leased_feed_is_not_claimed_again_until_the_lease_expires(store, clock):
    store.sync_feeds([spec("a"), spec("b")], clock())
    first = store.claim_due_feeds("w1", clock(), timedelta(minutes=5), 1)
    second = store.claim_due_feeds("w2", clock(), timedelta(minutes=5), 10)
    assert len(first) == 1 and len(second) == 1 and first[0].id != second[0].id
    assert store.claim_due_feeds("w3", clock(), timedelta(minutes=5), 10) == []
    clock.advance(minutes=6)
    assert len(store.claim_due_feeds("w3", clock(), timedelta(minutes=5), 10)) == 2


def test_bookkeeping_of_an_expired_lease_does_not_overwrite_the_new_holder(store, clock):
    store.sync_feeds([spec("a")], clock())
    stale = claim_one(store, "a", clock, owner="w1")
    clock.advance(minutes=6)
    claim_one(store, "a", clock, owner="w2")
    store.record_failure(stale, "w1", clock(), clock() + timedelta(hours=1), "boom", 500)
    (health,) = store.feed_health()
    assert health.consecutive_failures == 0 and health.last_error is None


def test_failures_count_up_and_a_success_resets_them(store, clock):
    store.sync_feeds([spec("a")], clock())
    for n in (1, 2):
        feed = claim_one(store, "a", clock)
        store.record_failure(feed, "w1", clock(), clock(), f"HTTP 500 #{n}", 500)
    (health,) = store.feed_health()
    assert (health.consecutive_failures, health.last_error) == (2, "HTTP 500 #2")
    assert health.failing_since is not None
    feed = claim_one(store, "a", clock)
    store.record_success(feed, "w1", clock(), clock(), 200, '"e1"', None, None)
    (health,) = store.feed_health()
    assert health.consecutive_failures == 0 and health.failing_since is None
    assert claim_one(store, "a", clock).etag == '"e1"'


def test_the_same_url_in_two_feeds_is_one_article_with_two_sources(store, clock):
    store.sync_feeds([spec("a"), spec("b")], clock())
    a, b = claim_one(store, "a", clock), claim_one(store, "b", clock)
    first = store.ingest(a, "g1", "h1", "http://x/1", article("http://x/1"), clock())
    second = store.ingest(b, "other-guid", "h1", "http://x/1", article("http://x/1"), clock())
    assert (first.outcome, second.outcome) == ("new", "duplicate")
    assert first.article_id == second.article_id
    assert store.counts()["articles"] == 1 and store.counts()["sources"] == 2


def test_the_same_text_at_another_outlets_url_is_a_duplicate_by_hash(store, clock):
    store.sync_feeds([spec("a"), spec("m", outlet="mirror")], clock())
    a, m = claim_one(store, "a", clock), claim_one(store, "m", clock)
    first = store.ingest(a, "g1", "h", "http://x/1", article("http://x/1"), clock())
    assert store.pages_new_to_outlet(m.outlet_id, ["http://mirror/9"]) == {"http://mirror/9"}
    copy = store.ingest(m, "g9", "h", "http://mirror/9", article("http://mirror/9"), clock())
    assert copy.outcome == "duplicate" and copy.article_id == first.article_id
    assert store.pages_new_to_outlet(m.outlet_id, ["http://mirror/9", "http://x/1"]) == {
        "http://x/1"  # the mirror outlet carried /9 now; /1 is the other outlet's page
    }
    (view,) = store.articles()
    assert view.outlets == ("mirror", "rferl")


def test_short_texts_are_not_deduplicated_by_hash(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    one = store.ingest(a, "g1", "h", "http://x/1", article("http://x/1", text="Breaking."), clock())
    two = store.ingest(a, "g2", "h", "http://x/2", article("http://x/2", text="Breaking."), clock())
    assert (one.outcome, two.outcome) == ("new", "new")


def test_changed_text_at_a_known_url_is_a_new_revision_that_keeps_the_old(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    store.ingest(a, "g1", "h1", "http://x/1", article("http://x/1"), clock())
    edited = article("http://x/1", text="Updated: Russia massed more troops. " * 10)
    again = store.ingest(a, "g1", "h2", "http://x/1", edited, clock())
    assert again.outcome == "revision"
    (view,) = store.articles()
    assert view.revision == 2 and view.text.startswith("Updated")
    counts = store.counts()
    assert (counts["articles"], counts["revisions"], counts["sources"]) == (1, 1, 1)


def test_another_outlet_cannot_overwrite_an_article_through_its_canonical_url(store, clock):
    store.sync_feeds([spec("a"), spec("m", outlet="mirror")], clock())
    a, m = claim_one(store, "a", clock), claim_one(store, "m", clock)
    store.ingest(a, "g1", "h", "http://x/1", article("http://x/1"), clock())
    other = article("http://x/1", text="A shortened, rewritten copy of the story. " * 5)
    result = store.ingest(m, "g2", "h", "http://mirror/1", other, clock())
    assert result.outcome == "duplicate"
    (view,) = store.articles()
    assert view.revision == 1 and view.text.startswith("Russia")


def test_an_entry_seen_again_unchanged_is_reported_unchanged(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    store.ingest(a, "g1", "h1", "http://x/1", article("http://x/1"), clock())
    assert store.ingest(a, "g1", "h2", "http://x/1", article("http://x/1"), clock()).outcome == (
        "unchanged"
    )
    assert store.entry_hashes(a.id, ["g1", "nope"]) == {"g1": "h2"}


def test_a_line_becomes_boilerplate_on_the_configured_page_count(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    learned = [
        store.learn_boilerplate(a.outlet_id, [{"k1": "Share this:", f"p{i}": "story"}], 3)
        for i in range(4)
    ]
    assert learned == [frozenset(), frozenset(), frozenset({"k1"}), frozenset()]
    assert store.learned_boilerplate(a.outlet_id, 3) == frozenset({"k1"})


def test_learned_boilerplate_of_many_outlets_is_read_at_once_and_kept_apart(store, clock):
    store.sync_feeds([spec("a", "rferl"), spec("b", "tass"), spec("c", "kyivpost")], clock())
    a, b, c = (claim_one(store, name, clock) for name in "abc")
    assert len({a.outlet_id, b.outlet_id, c.outlet_id}) == 3
    for i in range(3):
        store.learn_boilerplate(a.outlet_id, [{"ka": "Share this:", f"p{i}": "story"}], 3)
        store.learn_boilerplate(b.outlet_id, [{"kb": "Read more", f"q{i}": "story"}], 3)
    store.learn_boilerplate(c.outlet_id, [{"kc": "Once only"}], 3)
    ids = [b.outlet_id, c.outlet_id, a.outlet_id, b.outlet_id]
    assert store.learned_boilerplate_many(ids, 3) == [
        frozenset({"kb"}),
        frozenset(),
        frozenset({"ka"}),
        frozenset({"kb"}),
    ]
    assert store.learned_boilerplate_many(ids, 1)[1] == frozenset({"kc"})


def test_retention_purges_old_articles_and_their_sources(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    store.ingest(a, "g1", "h", "http://x/1", article("http://x/1"), clock())
    clock.advance(days=10)
    store.ingest(
        a, "g2", "h", "http://x/2", article("http://x/2", text="Other story. " * 20), clock()
    )
    assert store.purge(clock() - timedelta(days=5)) == 1
    assert [v.canonical_url for v in store.articles()] == ["http://x/2"]
    assert store.counts()["sources"] == 1


def test_article_search_is_case_insensitive_over_title_and_text(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    store.ingest(a, "g1", "h", "http://x/1", article("http://x/1"), clock())
    assert len(store.articles(search="TROOPS")) == 1
    assert store.articles(search="sanctions") == []
    assert len(store.articles(outlet="rferl")) == 1 and store.articles(outlet="other") == []


def test_naive_datetimes_are_refused(tmp_path):
    import pytest

    store = Store.open(f"sqlite:///{tmp_path}/m.db")
    from datetime import datetime

    with pytest.raises(Exception, match="naive datetime"):
        store.sync_feeds([spec("a")], datetime(2022, 1, 1))
    store.close()


def test_postgres_claims_skip_rows_locked_by_another_transaction(pg_url, clock):
    store = Store.open(pg_url)
    store.sync_feeds([spec("a"), spec("b")], clock())
    other = create_engine(pg_url)
    with other.begin() as c:  # another worker mid-claim holds a row lock on the first feed
        c.execute(text("select id from feeds where name = 'a' for update"))
        claimed = store.claim_due_feeds("w2", clock(), timedelta(minutes=5), 10)
        assert [f.name for f in claimed] == ["b"]
    other.dispose()
    store.close()


def test_a_story_whose_link_changed_under_the_same_guid_is_a_revision(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    first = store.ingest(a, "story-123", "h1", "http://x/old", article("http://x/old"), clock())
    moved = article("http://x/new", text="Updated: more troops massed at the border. " * 8)
    second = store.ingest(a, "story-123", "h2", "http://x/new", moved, clock())
    assert (second.outcome, second.article_id) == ("revision", first.article_id)
    assert store.counts()["articles"] == 1


def test_the_original_takes_over_from_a_partner_that_was_stored_first(store, clock):
    store.sync_feeds([spec("a"), spec("m", outlet="partner")], clock())
    a, m = claim_one(store, "a", clock), claim_one(store, "m", clock)
    excerpt = article("http://x/1", text="An excerpt of the story, republished. " * 4)
    store.ingest(m, "p1", "h", "http://partner/1", excerpt, clock())  # rel=canonical -> x/1
    result = store.ingest(a, "g1", "h", "http://x/1", article("http://x/1"), clock())
    assert result.outcome == "revision"
    (view,) = store.articles()
    assert view.text.startswith("Russia massed") and view.outlets == ("partner", "rferl")


def test_a_nul_character_does_not_make_an_entry_unstorable(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    store.ingest(a, "g1", "h", "http://x/1", article("http://x/1", title="Kyiv\x00 talks"), clock())
    assert [v.title for v in store.articles()] == ["Kyiv talks"]


def test_search_treats_percent_and_underscore_as_characters(store, clock):
    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    store.ingest(
        a, "g1", "h", "http://x/1", article("http://x/1", text="Up 5% on the day. " * 9), clock()
    )
    store.ingest(
        a, "g2", "h", "http://x/2", article("http://x/2", text="Up 55 on the day. " * 9), clock()
    )
    assert [v.canonical_url for v in store.articles(search="5%")] == ["http://x/1"]


def test_one_off_commands_add_feeds_without_retiring_the_daemons(store, clock):
    store.sync_feeds([spec("a")], clock())
    store.sync_feeds([spec("b")], clock(), retire=False)
    assert {h.name: h.active for h in store.feed_health()} == {"a": True, "b": True}


def test_a_worker_does_not_reclaim_a_feed_it_is_still_polling(store, clock):
    store.sync_feeds([spec("a")], clock())
    (feed,) = store.claim_due_feeds("w1", clock(), timedelta(seconds=3), 10)
    clock.advance(seconds=5)  # lease expired while the poll is still running
    assert store.claim_due_feeds("w1", clock(), timedelta(seconds=3), 10, exclude=[feed.id]) == []
    assert store.renew_leases([feed.id], "w1", clock() + timedelta(minutes=5)) == 1
    assert store.claim_due_feeds("w2", clock(), timedelta(seconds=3), 10) == []


def test_a_batch_dedupes_against_its_own_earlier_entries(store, clock):
    """ingest_many answers lookups from a prefetch; what the batch wrote must count too."""
    from monitor.store import EntryToStore

    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    same_text = "Sanctions were widened on Tuesday to cover shipping. " * 5
    batch = [
        EntryToStore("g1", "h1", "http://x/1", article("http://x/1")),
        EntryToStore("g2", "h2", "http://x/1", article("http://x/1")),  # same URL, other GUID
        EntryToStore("g3", "h3", "http://x/3", article("http://x/3", text=same_text)),
        EntryToStore("g4", "h4", "http://x/4", article("http://x/4", text=same_text)),
        EntryToStore("g1", "h1b", "http://x/1", article("http://x/1", text=same_text + "!")),
    ]
    results = store.ingest_many(a, batch, clock())
    assert [r.outcome for r in results] == ["new", "duplicate", "new", "duplicate", "revision"]
    assert results[1].article_id == results[0].article_id == results[4].article_id
    assert results[3].article_id == results[2].article_id
    assert store.counts()["articles"] == 2 and store.counts()["sources"] == 4


def test_a_batch_sees_rows_stored_before_it_and_one_entry_at_a_time_agrees(store, clock):
    from monitor.store import EntryToStore

    store.sync_feeds([spec("a"), spec("m", outlet="mirror")], clock())
    a, m = claim_one(store, "a", clock), claim_one(store, "m", clock)
    first = store.ingest(a, "g1", "h", "http://x/1", article("http://x/1"), clock())
    results = store.ingest_many(
        m,
        [
            EntryToStore("m1", "h", "http://mirror/1", article("http://mirror/1")),  # by text
            # rel=canonical to the original: another source, its different text is no edit
            EntryToStore("m2", "h", "http://mirror/2", article("http://x/1", text="x" * 300)),
            EntryToStore("m3", "h", "http://mirror/3", article("http://mirror/3", text="y" * 300)),
        ],
        clock(),
    )
    assert [r.outcome for r in results] == ["duplicate", "duplicate", "new"]
    assert results[0].article_id == results[1].article_id == first.article_id


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path, clock):
    """Reads take no write lock: `monitor articles` answers while the daemon holds a write."""
    import threading

    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    store.sync_feeds([spec("a")], clock())
    other = Store.open(f"sqlite:///{tmp_path / 'm.db'}", migrate=False)
    answered = threading.Event()
    with other.engine.begin() as c:  # BEGIN IMMEDIATE: holds the write lock until the end
        c.execute(text("UPDATE feeds SET last_status = 200"))
        reader = threading.Thread(target=lambda: (store.counts(), answered.set()))
        reader.start()
        assert answered.wait(10), "a read waited for the writer's lock"
    reader.join()
    other.close()
    store.close()


def _schema_of(store: Store) -> dict[str, object]:
    """Every table's columns (name, type, nullable), indexes, unique constraints and keys.

    Columns in name order: a migration adds a column at the end of its table."""
    found: dict[str, object] = {}
    i = inspect(store.engine)
    for table in sorted(i.get_table_names()):
        found[table] = (
            sorted((c["name"], str(c["type"]), c["nullable"]) for c in i.get_columns(table)),
            sorted((x["name"], tuple(x["column_names"])) for x in i.get_indexes(table)),
            sorted(
                (x["name"] or "", tuple(x["column_names"])) for x in i.get_unique_constraints(table)
            ),
            i.get_pk_constraint(table)["constrained_columns"],
            sorted(
                (tuple(x["constrained_columns"]), x["referred_table"], x["options"].get("ondelete"))
                for x in i.get_foreign_keys(table)
            ),
        )
    return found


def test_the_migrations_create_exactly_the_tables_schema_py_describes(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from monitor.store.schema import HEAD_REVISION, metadata

    migrated = Store.open(db_url, migrate=False)
    migrated.upgrade("head")
    with migrated.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
        assert c.execute(text("select version_num from alembic_version")).scalar() == (
            HEAD_REVISION
        )
    assert diff == []
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "monitor.store:migrations")
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION
    migrated.close()


def test_a_new_database_gets_the_same_schema_as_the_migrations_give(db_url, tmp_path):
    """Store.open creates an empty database from schema.py and stamps it, without Alembic."""
    if db_url.startswith("sqlite"):
        other_url = f"sqlite:///{tmp_path}/migrated.db"
        other = nullcontext(other_url)
    else:
        other = pg_database()
    with other as migrated_url:
        created = Store.open(db_url)
        migrated = Store.open(migrated_url, migrate=False)
        migrated.upgrade("head")
        assert _schema_of(created) == _schema_of(migrated)
        created.close()
        migrated.close()


def test_opening_a_new_or_current_database_does_not_load_alembic(tmp_path):
    script = (
        "import sys; from monitor.store import Store; "
        f"Store.open('sqlite:///{tmp_path}/m.db').close(); "
        f"Store.open('sqlite:///{tmp_path}/m.db').close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_an_old_database_is_upgraded_by_the_migrations_on_open(db_url):
    old = Store.open(db_url, migrate=False)
    old.upgrade("0007")
    old.close()
    store = Store.open(db_url)
    with store.engine.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() == "0010"
    assert "ix_matches_updated_at" in {
        x["name"] for x in inspect(store.engine).get_indexes("matches")
    }
    store.close()


def test_feeds_stored_in_one_transaction_dedupe_as_if_each_had_its_own(store, clock):
    """atomic() with expect_ingest: later feeds see what earlier ones queued, not stale lookups."""
    from monitor.store import EntryToStore

    store.sync_feeds([spec("a"), spec("b"), spec("m", outlet="mirror")], clock())
    a, b, m = (claim_one(store, n, clock) for n in "abm")
    wall = "Please accept cookies to read this page. " * 5
    batches = [
        (a, [EntryToStore("a1", "h", "http://x/1", article("http://x/1"))]),
        (
            b,
            [
                EntryToStore("b1", "h", "http://x/1?b", article("http://x/1")),  # same URL
                EntryToStore("b2", "h", "http://x/2", article("http://x/2", text=wall)),
                EntryToStore(
                    "b3", "h", "http://x/3", article("http://x/3", text=wall, entry_title="Other")
                ),
            ],
        ),
        (m, [EntryToStore("m1", "h", "http://mirror/3", article("http://mirror/3", text=wall))]),
    ]

    def store_all():
        store.expect_ingest(batches)
        return [store.ingest_many(feed, rows, clock()) for feed, rows in batches]

    results = store.atomic(store_all)
    assert [[r.outcome for r in rs] for rs in results] == [
        ["new"],
        ["duplicate", "new", "new"],  # a wall under another headline is no duplicate
        ["duplicate"],  # across outlets, the same text is the same article
    ]
    assert results[1][0].article_id == results[0][0].article_id
    assert results[2][0].article_id == results[1][1].article_id
    assert store.counts()["articles"] == 3 and store.counts()["sources"] == 5
    # one feed at a time, the next transaction asks the database: the same answers
    again = [store.ingest_many(feed, rows, clock()) for feed, rows in batches]
    assert [[r.outcome for r in rs] for rs in again] == [
        ["unchanged"],
        ["unchanged"] * 3,
        ["unchanged"],
    ]


def test_a_naive_publication_time_is_refused_by_ingest(store, clock):
    from datetime import datetime

    import pytest

    store.sync_feeds([spec("a")], clock())
    a = claim_one(store, "a", clock)
    naive = article("http://x/1", published_at=datetime(2022, 1, 1))
    with pytest.raises(Exception, match="naive datetime"):
        store.ingest(a, "g1", "h", "http://x/1", naive, clock())
    assert store.counts()["articles"] == 0
