"""sub jobs: the job and run whose step made a job

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_job_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("parent_run_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_parent_job_id"), ["parent_job_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_parent_job_id"))
        batch_op.drop_column("parent_run_id")
        batch_op.drop_column("parent_job_id")
