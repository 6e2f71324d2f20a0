"""Index when matches were made or updated and when articles gained a source: the delivery
planner asks, every tick, which watches changed since its last look (monitor.dispatch.Planner).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_matches_updated_at", "matches", ["updated_at"])
    op.create_index("ix_article_sources_first_seen_at", "article_sources", ["first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_article_sources_first_seen_at", table_name="article_sources")
    op.drop_index("ix_matches_updated_at", table_name="matches")
