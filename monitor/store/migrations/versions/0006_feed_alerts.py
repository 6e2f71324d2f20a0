"""Feed-health alerts: one per failing spell of a feed and channel, and its recovery.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 13:00:00
"""

import sqlalchemy as sa
from alembic import op

from monitor.store.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_alerts",
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("failing_since", UTCDateTime(timezone=True), nullable=False),
        sa.Column("alerted_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("recovered_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name="fk_feed_alerts_feed_id_feeds", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("feed_id", "channel", "failing_since", name="pk_feed_alerts"),
    )


def downgrade() -> None:
    op.drop_table("feed_alerts")
