"""project snapshots; the snapshot a job's runs execute in

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runyard.storage import schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("environment", JSONType, nullable=False),
        sa.Column("files", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    op.create_index(op.f("ix_snapshots_created_at"), "snapshots", ["created_at"])
    # A plain column (no foreign key): on SQLite adding one means rebuilding ``jobs``, and
    # dropping the old table would cascade to every run.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_snapshot_id"), ["snapshot_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_snapshot_id"))
        batch_op.drop_column("snapshot_id")
    op.drop_index(op.f("ix_snapshots_created_at"), table_name="snapshots")
    op.drop_table("snapshots")
