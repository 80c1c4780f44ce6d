"""Data repos, branches, commits and files; data pipelines, their jobs and datums

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from runyard.storage import schema

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "data_jobs",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("input_commits", _JSON, nullable=False),
        sa.Column("output_commit", sa.String(length=32), nullable=True),
        sa.Column("reprocess", sa.Boolean(), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("started_at", schema.UTCDateTime(), nullable=True),
        sa.Column("finished_at", schema.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("data_processed", sa.Integer(), nullable=False),
        sa.Column("data_skipped", sa.Integer(), nullable=False),
        sa.Column("data_failed", sa.Integer(), nullable=False),
        sa.Column("data_total", sa.Integer(), nullable=False),
        sa.Column("download_bytes", sa.BigInteger(), nullable=False),
        sa.Column("upload_bytes", sa.BigInteger(), nullable=False),
        sa.Column("download_time", sa.Float(), nullable=False),
        sa.Column("process_time", sa.Float(), nullable=False),
        sa.Column("upload_time", sa.Float(), nullable=False),
        sa.Column("worker", sa.String(length=300), nullable=True),
        sa.Column("heartbeat_at", schema.UTCDateTime(), nullable=True),
        sa.Column("stop_requested_at", schema.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", "id", name=op.f("pk_data_jobs")),
    )
    op.create_index(op.f("ix_data_jobs_id"), "data_jobs", ["id"], unique=False)
    op.create_index(
        op.f("ix_data_jobs_state_created_at"), "data_jobs", ["state", "created_at"], unique=False
    )
    op.create_table(
        "data_pipelines",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("updated_at", schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_pipelines")),
    )
    op.create_table(
        "data_repos",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("pipeline", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_repos")),
    )
    op.create_table(
        "data_branches",
        sa.Column("repo", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("head", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["repo"],
            ["data_repos.name"],
            name=op.f("fk_data_branches_repo_data_repos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repo", "name", name=op.f("pk_data_branches")),
    )
    op.create_table(
        "data_commits",
        sa.Column("repo", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("branch", sa.String(length=64), nullable=False),
        sa.Column("parent", sa.String(length=32), nullable=True),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repo"],
            ["data_repos.name"],
            name=op.f("fk_data_commits_repo_data_repos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repo", "id", name=op.f("pk_data_commits")),
    )
    op.create_index(
        op.f("ix_data_commits_repo_branch_created_at"),
        "data_commits",
        ["repo", "branch", "created_at"],
        unique=False,
    )
    op.create_table(
        "data_datums",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("files", _JSON, nullable=False),
        sa.Column("outputs", _JSON, nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("logs", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline", "job_id"],
            ["data_jobs.pipeline", "data_jobs.id"],
            name=op.f("fk_data_datums_pipeline_data_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline", "job_id", "id", name=op.f("pk_data_datums")),
    )
    op.create_index(
        op.f("ix_data_datums_pipeline_id"), "data_datums", ["pipeline", "id"], unique=False
    )
    op.create_table(
        "data_files",
        sa.Column("repo", sa.String(length=64), nullable=False),
        sa.Column("commit_id", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repo", "commit_id"],
            ["data_commits.repo", "data_commits.id"],
            name=op.f("fk_data_files_repo_data_commits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repo", "commit_id", "path", name=op.f("pk_data_files")),
    )


def downgrade() -> None:
    op.drop_table("data_files")
    op.drop_index(op.f("ix_data_datums_pipeline_id"), table_name="data_datums")
    op.drop_table("data_datums")
    op.drop_index(op.f("ix_data_commits_repo_branch_created_at"), table_name="data_commits")
    op.drop_table("data_commits")
    op.drop_table("data_branches")
    op.drop_table("data_repos")
    op.drop_table("data_pipelines")
    op.drop_index(op.f("ix_data_jobs_state_created_at"), table_name="data_jobs")
    op.drop_index(op.f("ix_data_jobs_id"), table_name="data_jobs")
    op.drop_table("data_jobs")
