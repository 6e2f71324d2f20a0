"""Tables of the store. The migrations under migrations/versions create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite keeps no zone, so store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use UTC-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


HEAD_REVISION = "0010"
"""The newest migration's revision: a database stamped with it has exactly the tables below
(tests/test_store.py checks both against the migrations)."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

outlets = Table(
    "outlets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("language", String(20)),
    Column("tags", JSON, nullable=False, default=list),
    Column("created_at", UTCDateTime, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("outlet_id", Integer, ForeignKey("outlets.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("language", String(20)),
    Column("tags", JSON, nullable=False, default=list),
    Column("active", Boolean, nullable=False, default=True),
    # schedule state: the schedule is data, so a restart resumes and backoff survives
    Column("next_poll_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("etag", Text),
    Column("last_modified", Text),
    # health
    Column("last_polled_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("first_success_at", UTCDateTime),  # null until the first poll: its entries are backlog
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("failing_since", UTCDateTime),
    Column("last_problem", Text),  # a recovered parse problem or a page that failed; not a failure
    Column("last_problem_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_feeds_next_poll_at", "active", "next_poll_at"),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("canonical_url", Text, nullable=False),
    Column("guid", Text),
    Column("title", Text, nullable=False),
    Column("author", Text),
    Column("published_at", UTCDateTime),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("language", String(20)),
    Column("text", Text, nullable=False),
    Column("text_source", String(10), nullable=False),  # "page" or "feed"
    Column("content_hash", String(64), nullable=False),
    Column("revision", Integer, nullable=False, default=1),
    Column("backlog", Boolean, nullable=False, default=False),  # first-run entry: never alerts
    Column("outlet_id", Integer, ForeignKey("outlets.id", ondelete="SET NULL")),
    # new or revised, not yet matched against the watches: the match stage's durable queue
    Column("match_pending", Boolean, nullable=False, default=False, server_default=false()),
    # The story it reports (stories.id; null when story grouping is off or it predates it),
    # and why it was put there (monitor.stories.Decision.explain). Added by migration 0010.
    Column("story_id", Integer),
    Column("story_reason", Text),
    UniqueConstraint("canonical_url", name="uq_articles_canonical_url"),
    Index("ix_articles_content_hash", "content_hash"),
    Index("ix_articles_first_seen_at", "first_seen_at"),
    Index("ix_articles_match_pending", "match_pending"),
    Index("ix_articles_story_id", "story_id"),
)

article_revisions = Table(
    "article_revisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("replaced_at", UTCDateTime, nullable=False),
    Index("ix_article_revisions_article_id", "article_id"),
)

article_sources = Table(
    "article_sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("outlet_id", Integer, ForeignKey("outlets.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text),
    Column("guid", Text, nullable=False),
    Column("title", Text),  # the headline this source gave the entry
    Column("entry_hash", String(64), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    UniqueConstraint("feed_id", "guid", name="uq_article_sources_feed_guid"),
    Index("ix_article_sources_article_id", "article_id"),
    Index("ix_article_sources_url", "url"),
    # the delivery planner's "which stories gained an outlet since" (migration 0008)
    Index("ix_article_sources_first_seen_at", "first_seen_at"),
)

boilerplate_lines = Table(
    "boilerplate_lines",
    metadata,
    Column("outlet_id", Integer, ForeignKey("outlets.id", ondelete="CASCADE"), primary_key=True),
    Column("line_key", String(64), primary_key=True),
    Column("pages", Integer, nullable=False),
    Column("sample", Text, nullable=False),
)

watches = Table(
    "watches",
    metadata,
    # When each watch was first seen: a watch fires only on articles first seen after it existed.
    Column("name", String(200), primary_key=True),
    Column("definition", Text, nullable=False),  # the rule as a canonical query, to tell edits
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

matches = Table(
    "matches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("watch", String(200), nullable=False),
    Column("revision", Integer, nullable=False),  # the article revision that matched
    Column("score", Float, nullable=False),
    Column("hits", JSON, nullable=False),  # [{term, field, start, end, text}]
    Column("snippet", Text, nullable=False),
    Column("marks", JSON, nullable=False),  # [[start, end]] into the snippet
    Column("matched_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("article_id", "watch", name="uq_matches_article_watch"),
    Index("ix_matches_matched_at", "matched_at"),
    Index("ix_matches_watch", "watch"),
    Index("ix_matches_updated_at", "updated_at"),  # the delivery planner's "changed since"
)

outbox = Table(
    "outbox",
    metadata,
    # One message to one channel, rendered, written in the transaction that records which
    # stories it covers (notification_log): a crash either keeps both or neither.
    Column("id", Integer, primary_key=True),
    Column("channel", String(200), nullable=False),
    Column("route", String(200), nullable=False),  # the watch, or "feed-health"
    Column("kind", String(20), nullable=False),  # alert, digest, update, health
    Column("stories", JSON, nullable=False),  # story ids (notification_log.story)
    Column("title", Text, nullable=False),
    Column("content", JSON, nullable=False),  # subject, text, html, slack payloads, markdown
    Column("status", String(10), nullable=False),  # pending, sent, failed (permanently)
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

notification_log = Table(
    "notification_log",
    metadata,
    # What each channel was told about each story: never the same thing twice.
    Column("route", String(200), primary_key=True),
    Column("story", Integer, primary_key=True),  # stories.id (an article id before 0010)
    Column("channel", String(200), primary_key=True),
    Column("outlets", Integer, nullable=False),  # how many outlets carried it when sent
    Column("terms", JSON),  # the matched terms it was sent with (new ones make an update)
    Column("first_sent_at", UTCDateTime, nullable=False),
    Column("last_sent_at", UTCDateTime, nullable=False),
    Column("outbox_id", Integer, nullable=False),
)

routes = Table(
    "routes",
    metadata,
    # The timing state of each (watch, channel): when its last message was made, and for a
    # digest how far it has covered. A restart resumes from here; a missed digest is sent.
    Column("route", String(200), primary_key=True),
    Column("channel", String(200), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_message_at", UTCDateTime),
    Column("digest_until", UTCDateTime),
)

feed_alerts = Table(
    "feed_alerts",
    metadata,
    # One alert per failing spell of a feed and channel, and one message when it recovers.
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True),
    Column("channel", String(200), primary_key=True),
    Column("failing_since", UTCDateTime, primary_key=True),
    Column("alerted_at", UTCDateTime, nullable=False),
    Column("recovered_at", UTCDateTime),
)

article_fingerprints = Table(
    "article_fingerprints",
    metadata,
    # The near-duplicate sketch of an article's text (monitor.fingerprint, issue 5).
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("scheme", String(40), nullable=False),  # which Scheme made it: another can't compare
    Column("minima", LargeBinary, nullable=False),  # Fingerprint.to_bytes()
    Column("shingles", Integer, nullable=False),
)

article_bands = Table(
    "article_bands",
    metadata,
    # The LSH index of the fingerprints: one row per band of each; a lookup is one probe of the
    # primary key per band of the text looked up (its leading column is the key).
    Column("band_key", BigInteger, primary_key=True, autoincrement=False),
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_article_bands_article_id", "article_id"),  # replacing and cascading deletes
)

stories = Table(
    "stories",
    metadata,
    # Articles grouped as one event (monitor.stories.Story), grown as articles arrive. Its id
    # is the id of the article that started it, so an article's story before 0010 is itself.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("first_at", UTCDateTime, nullable=False),  # its members' published times
    Column("last_at", UTCDateTime, nullable=False),
    Column("articles", Integer, nullable=False),
    Column("terms", JSON, nullable=False),  # term -> summed weight (the heaviest kept)
    Column("labels", JSON, nullable=False),  # term -> how an explanation shows it
    Column("lead_terms", JSON, nullable=False),  # its members' leads' terms, summed (heaviest)
    Column("days", JSON, nullable=False),  # the days its members' leads date it to (ISO)
    Column("keys", JSON, nullable=False),  # its rows in story_keys
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_stories_last_at", "last_at"),
)

story_keys = Table(
    "story_keys",
    metadata,
    # How an arriving article finds the stories it may join: each member's heaviest terms.
    Column("key", String(200), primary_key=True),
    Column("story_id", Integer, ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_story_keys_story_id", "story_id"),
)

story_background = Table(
    "story_background",
    metadata,
    # The document frequencies story similarity weighs terms by, as one count-min sketch
    # (monitor.store.clusters.Frequencies): one row, read and written once a transaction.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("docs", BigInteger, nullable=False),
    Column("counts", LargeBinary, nullable=False),
)
