"""concurrency limits per tag

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_limits",
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.Column("most", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_tag_limits")),
    )


def downgrade() -> None:
    op.drop_table("tag_limits")
