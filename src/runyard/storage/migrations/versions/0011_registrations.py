"""the registry of processing steps: pipelines and steps by name and version

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runyard.storage import schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("params_schema", JSONType, nullable=False),
        sa.Column("registered_at", schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "version", name=op.f("pk_registrations")),
    )
    op.create_index(op.f("ix_registrations_name"), "registrations", ["name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_registrations_name"), table_name="registrations")
    op.drop_table("registrations")
