"""Watch rules: the match stage's queue (articles.match_pending), the watches seen and when
(a watch fires only on articles first seen after it existed), and the matches found.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00
"""

import sqlalchemy as sa
from alembic import op

from monitor.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Articles stored before this upgrade are not queued: no watch existed when they arrived.
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("match_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_articles_match_pending", ["match_pending"], unique=False)
    op.create_table(
        "watches",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_watches"),
    )
    op.create_table(
        "matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("watch", sa.String(200), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("hits", sa.JSON(), nullable=False),
        sa.Column("snippet", sa.Text(), nullable=False),
        sa.Column("marks", sa.JSON(), nullable=False),
        sa.Column("matched_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name="fk_matches_article_id_articles",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_matches"),
        sa.UniqueConstraint("article_id", "watch", name="uq_matches_article_watch"),
    )
    op.create_index("ix_matches_matched_at", "matches", ["matched_at"], unique=False)
    op.create_index("ix_matches_watch", "matches", ["watch"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_matches_watch", table_name="matches")
    op.drop_index("ix_matches_matched_at", table_name="matches")
    op.drop_table("matches")
    op.drop_table("watches")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index("ix_articles_match_pending")
        batch_op.drop_column("match_pending")
