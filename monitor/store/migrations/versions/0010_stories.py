"""Stories (issue 5): articles grouped as one event, and how arriving articles find them.

Every stored article becomes a story of its own, with the article's id: notification_log.story
and outbox.stories, which held article ids, then name the same stories as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:00:00
"""

import sqlalchemy as sa
from alembic import op

from monitor.store.schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("story_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("story_reason", sa.Text(), nullable=True))
        batch.create_index("ix_articles_story_id", ["story_id"])
    op.execute("UPDATE articles SET story_id = id")
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("articles", sa.Integer(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("lead_terms", sa.JSON(), nullable=False),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stories"),
    )
    op.create_index("ix_stories_last_at", "stories", ["last_at"])
    # The stories of the stored articles: one each, with no terms (they predate grouping, so
    # nothing joins them; their delivery history stays theirs).
    op.execute(
        "INSERT INTO stories (id, first_at, last_at, articles, terms, labels, lead_terms, days,"
        " keys, updated_at) SELECT id, COALESCE(published_at, first_seen_at),"
        " COALESCE(published_at, first_seen_at), 1, '{}', '{}', '{}', '[]', '[]', updated_at"
        " FROM articles"
    )
    op.create_table(
        "story_keys",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["story_id"], ["stories.id"], name="fk_story_keys_story_id_stories", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key", "story_id", name="pk_story_keys"),
    )
    op.create_index("ix_story_keys_story_id", "story_keys", ["story_id"])
    op.create_table(
        "story_background",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("docs", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_story_background"),
    )


def downgrade() -> None:
    op.drop_table("story_background")
    op.drop_index("ix_story_keys_story_id", table_name="story_keys")
    op.drop_table("story_keys")
    op.drop_index("ix_stories_last_at", table_name="stories")
    op.drop_table("stories")
    with op.batch_alter_table("articles") as batch:
        batch.drop_index("ix_articles_story_id")
        batch.drop_column("story_reason")
        batch.drop_column("story_id")
