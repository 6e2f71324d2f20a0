"""Feed problems that cost no data, failing-since for health alerts, learned boilerplate lines.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 03:10:00
"""

import sqlalchemy as sa
from alembic import op

import monitor.store.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failing_since", monitor.store.schema.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("last_problem", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("last_problem_at", monitor.store.schema.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "boilerplate_lines",
        sa.Column("outlet_id", sa.Integer(), nullable=False),
        sa.Column("line_key", sa.String(length=64), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("sample", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["outlet_id"],
            ["outlets.id"],
            name=op.f("fk_boilerplate_lines_outlet_id_outlets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outlet_id", "line_key", name=op.f("pk_boilerplate_lines")),
    )


def downgrade() -> None:
    op.drop_table("boilerplate_lines")
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_column("last_problem_at")
        batch_op.drop_column("last_problem")
        batch_op.drop_column("failing_since")
