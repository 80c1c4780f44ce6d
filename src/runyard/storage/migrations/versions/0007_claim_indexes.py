"""indexes that let a claim read the queue without scanning or sorting it

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_job_id_state"))
        batch_op.drop_index(batch_op.f("ix_runs_state"))
        batch_op.create_index(
            "ix_runs_claim_order",
            ["job_id", "state", sa.text("priority DESC"), "queued_at", "idx"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_runs_state_job_id"), ["state", "job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_state_job_id"))
        batch_op.drop_index("ix_runs_claim_order")
        batch_op.create_index(batch_op.f("ix_runs_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_job_id_state"), ["job_id", "state"], unique=False)
