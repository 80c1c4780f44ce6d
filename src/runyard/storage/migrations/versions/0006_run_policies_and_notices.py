"""run retry policies, hooks and their notices, retention; a run's attempt and backoff

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runyard.storage import schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_policy", JSONType, nullable=True))
        batch_op.add_column(sa.Column("hooks", JSONType, nullable=True))
        batch_op.add_column(sa.Column("max_retained_runs", sa.Integer(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("not_before", schema.UTCDateTime(), nullable=True))
    op.create_table(
        "notices",
        sa.Column("id", schema.BigId, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", schema.UTCDateTime(), nullable=True),
        sa.Column("claimed_until", schema.UTCDateTime(), nullable=True),
        sa.Column("delivered_at", schema.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_notices_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    op.create_index(op.f("ix_notices_key"), "notices", ["key"], unique=True)
    op.create_index(
        op.f("ix_notices_state_next_attempt_at"), "notices", ["state", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_notices_state_next_attempt_at"), table_name="notices")
    op.drop_index(op.f("ix_notices_key"), table_name="notices")
    op.drop_table("notices")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("not_before")
        batch_op.drop_column("attempt")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("max_retained_runs")
        batch_op.drop_column("hooks")
        batch_op.drop_column("retry_policy")
