"""a run's parent, its retry, and the outputs it reuses

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_run_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("retried_by", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reuse",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("reuse")
        batch_op.drop_column("retried_by")
        batch_op.drop_column("parent_run_id")
