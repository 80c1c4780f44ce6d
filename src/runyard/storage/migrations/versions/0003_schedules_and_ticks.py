"""schedules, ticks, a job's run template, a run's tick

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import runyard.storage.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = runyard.storage.schema.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("at", UTC, nullable=True),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("start_at", UTC, nullable=True),
        sa.Column("end_at", UTC, nullable=True),
        sa.Column("overlap", sa.String(length=16), nullable=False),
        sa.Column("catchup", sa.String(length=16), nullable=False),
        sa.Column("catchup_limit", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_schedules_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_schedules_next_fire_at"), ["next_fire_at"], unique=False
        )
    op.create_table(
        "ticks",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("tick_at", UTC, nullable=False),
        sa.Column("fired_at", UTC, nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_ticks_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "tick_at", name=op.f("pk_ticks")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "run_template",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tick_at", UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("tick_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("run_template")
    op.drop_table("ticks")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedules_next_fire_at"))
    op.drop_table("schedules")
