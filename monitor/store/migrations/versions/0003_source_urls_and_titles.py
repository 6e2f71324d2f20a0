"""Index article_sources.url (every new article is looked up by the address a feed gave), and
keep each source's own headline (it tells a story from a wall that every page of a site shows).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 03:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("article_sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.Text(), nullable=True))
        batch_op.create_index("ix_article_sources_url", ["url"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("article_sources", schema=None) as batch_op:
        batch_op.drop_index("ix_article_sources_url")
        batch_op.drop_column("title")
