"""WorkData: files kept for jobs, and which jobs read them

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runyard.storage import schema

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workdata",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=200), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("producer_job_id", sa.String(length=32), nullable=True),
        sa.Column("producer_run_id", sa.String(length=32), nullable=True),
        sa.Column("producer_step", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workdata")),
    )
    op.create_index(op.f("ix_workdata_created_at"), "workdata", ["created_at"])
    op.create_index(op.f("ix_workdata_producer_job_id"), "workdata", ["producer_job_id"])
    op.create_table(
        "workdata_reads",
        sa.Column("workdata_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_workdata_reads_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workdata_id"],
            ["workdata.id"],
            name=op.f("fk_workdata_reads_workdata_id_workdata"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workdata_id", "job_id", name=op.f("pk_workdata_reads")),
    )
    op.create_index(op.f("ix_workdata_reads_job_id"), "workdata_reads", ["job_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_workdata_reads_job_id"), table_name="workdata_reads")
    op.drop_table("workdata_reads")
    op.drop_index(op.f("ix_workdata_producer_job_id"), table_name="workdata")
    op.drop_index(op.f("ix_workdata_created_at"), table_name="workdata")
    op.drop_table("workdata")
