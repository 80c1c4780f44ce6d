"""The metadata store's tables (SQLAlchemy Core). Alembic migrations must match them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "api_tokens",
    "artifacts",
    "data_branches",
    "data_commits",
    "data_datums",
    "data_files",
    "data_jobs",
    "data_pipelines",
    "data_repos",
    "events",
    "job_tags",
    "jobs",
    "logs",
    "metadata",
    "notices",
    "registrations",
    "runs",
    "schedules",
    "snapshots",
    "step_runs",
    "tag_limits",
    "ticks",
    "workdata",
    "workdata_reads",
    "workers",
]


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; runyard stores aware UTC times")
        aware: dt.datetime = value.astimezone(dt.UTC)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        stored: dt.datetime = value
        return stored.replace(tzinfo=dt.UTC) if stored.tzinfo is None else stored.astimezone(dt.UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("pipeline_name", sa.String(200), nullable=False, index=True),
    sa.Column("pipeline_version", sa.String(64), nullable=False),
    sa.Column("pipeline_ref", sa.Text, nullable=False),
    sa.Column("grid", JSONType, nullable=False),
    sa.Column("deselected", JSONType, nullable=False),
    sa.Column("max_parallel_runs", sa.Integer, nullable=False),
    sa.Column("run_count", sa.Integer, nullable=False),
    sa.Column("run_timeout", sa.Float),  # seconds; None: no limit
    sa.Column("memory_limit_mb", sa.Integer),
    # A scheduled job's runs, as [grid index, params, priority], copied at every tick.
    sa.Column("run_template", JSONType),
    sa.Column("retry_policy", JSONType),  # RetryPolicy.to_json(); None: failed runs stay failed
    sa.Column("hooks", JSONType),  # [Hook.to_json()]
    sa.Column("max_retained_runs", sa.Integer),  # None: keep every run
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    # The snapshot of the project its runs execute in; None: none was taken. No foreign
    # key: SQLite can add one only by rebuilding the table, which cascades deletes.
    sa.Column("snapshot_id", sa.String(64), index=True),
    # A sub job: the job and run whose step made it. No foreign key (as for snapshot_id);
    # a job with sub jobs is not deleted while they are there.
    sa.Column("parent_job_id", sa.String(32), index=True),
    sa.Column("parent_run_id", sa.String(32)),
)

# A project's files at one moment: their manifest ([[path, sha256, size, mode]], sorted by
# path) and the environment it was taken in. The id is the sha256 of the manifest with the
# root and environment (see core.snapshots.manifest_id); the
# contents are blobs in the artifact store.
snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("root", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("total_bytes", sa.BigInteger, nullable=False),
    sa.Column("environment", JSONType, nullable=False),
    sa.Column("files", JSONType, nullable=False),
    sa.Column("data_dir", sa.Text),  # the project's data folder, relative to root, if inside
)

# The processing steps runyard has seen: pipelines and steps by name and version.
registrations = sa.Table(
    "registrations",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # pipeline, step
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("reference", sa.Text, nullable=False),  # /project/file.py:attribute
    sa.Column("snapshot_id", sa.String(64)),  # the snapshot the file is in, if any
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("params_schema", JSONType, nullable=False),
    sa.Column("registered_at", UTCDateTime, nullable=False),
    sa.Index(None, "name"),
)

# Files kept for jobs: uploaded inputs and files steps wrote; the content is in the artifact
# store. Producer columns have no foreign keys: a job is not deleted while it has outputs.
workdata = sa.Table(
    "workdata",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(200), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("producer_job_id", sa.String(32), index=True),
    sa.Column("producer_run_id", sa.String(32)),
    sa.Column("producer_step", sa.String(200)),
)

# Which jobs take which WorkData as input.
workdata_reads = sa.Table(
    "workdata_reads",
    metadata,
    sa.Column(
        "workdata_id",
        sa.String(32),
        sa.ForeignKey("workdata.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Index(None, "job_id"),
)

# API tokens: only the sha256 of each secret is kept.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),  # read, write, admin
    sa.Column("secret_digest", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
)

job_tags = sa.Table(
    "job_tags",
    metadata,
    sa.Column(
        "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(200), primary_key=True, index=True),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("queued_at", UTCDateTime),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("worker", sa.String(300)),
    sa.Column("reason", sa.Text),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("worker_id", sa.String(64)),  # the worker holding its lease
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("stop_requested_at", UTCDateTime),
    sa.Column("tick_at", UTCDateTime),  # the schedule tick that made it, if any
    sa.Column("parent_run_id", sa.String(32)),  # the run this one retries
    sa.Column("retried_by", sa.String(32)),  # the run that retries this one
    sa.Column("reuse", JSONType),  # {step: {output: uri}}: outputs taken from the parent
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("not_before", UTCDateTime),  # a retry is not claimed before its backoff ends
    sa.Column("note", sa.Text),  # what to know about how it ran (its environment differed)
    sa.Index(None, "job_id", "idx"),
    # The jobs with queued runs, found one index probe per job; the active runs.
    sa.Index(None, "state", "job_id"),
)
# A job's runs by state, each state's in queue order: a claim reads a job's next queued runs
# off it without sorting the job's queue.
sa.Index(
    "ix_runs_claim_order",
    runs.c.job_id,
    runs.c.state,
    runs.c.priority.desc(),
    runs.c.queued_at,
    runs.c.idx,
)

# At most ``most`` runs of jobs tagged ``tag`` run at once, across all jobs and workers.
tag_limits = sa.Table(
    "tag_limits",
    metadata,
    sa.Column("tag", sa.String(200), primary_key=True),
    sa.Column("most", sa.Integer, nullable=False),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(300), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "serve" or "worker"
    sa.Column("slots", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False, index=True),
    sa.Column("stopped_at", UTCDateTime),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column(
        "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("at", UTCDateTime),
    sa.Column("cron", sa.String(200)),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("start_at", UTCDateTime),
    sa.Column("end_at", UTCDateTime),
    sa.Column("overlap", sa.String(16), nullable=False),
    sa.Column("catchup", sa.String(16), nullable=False),
    sa.Column("catchup_limit", sa.Integer, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("next_fire_at", UTCDateTime, index=True),  # None: it will not fire again
)

# One row per tick that fired: the primary key is the tick key that makes a tick fire once,
# however many schedulers share the store.
ticks = sa.Table(
    "ticks",
    metadata,
    sa.Column(
        "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tick_at", UTCDateTime, primary_key=True),
    sa.Column("fired_at", UTCDateTime, nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("note", sa.Text),
)

# The outbox of hooks to call: written in the transaction that ends a run, delivered (with
# retries) by any engine, so a notice is neither lost nor blocks the engine.
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False),  # one notice per event and hook
    sa.Column(
        "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("run_id", sa.String(32)),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("claimed_until", UTCDateTime),  # a deliverer holds it until then
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Index(None, "key", unique=True),
    sa.Index(None, "state", "next_attempt_at"),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("step_name", sa.String(200), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("error_type", sa.String(300)),
    sa.Column("error_message", sa.Text),
    sa.Column("traceback", sa.Text),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("job_id", sa.String(32), nullable=False, index=True),
    sa.Column("run_id", sa.String(32), index=True),
    sa.Column("step_name", sa.String(200)),
    sa.Column("old_state", sa.String(16)),
    sa.Column("new_state", sa.String(16)),
    sa.Column("message", sa.Text),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("step_name", sa.String(200)),
    sa.Column("stream", sa.String(8), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("level", sa.String(16)),
    sa.Column("text", sa.Text, nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("step_name", sa.String(200), primary_key=True),
    sa.Column("output_name", sa.String(200), primary_key=True),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("serializer", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# -- data repos and data pipelines ---------------------------------------------------------
# Repos, branches and immutable commits; a commit's files (path -> sha256, size) are rows of
# data_files, their contents blobs in the artifact store, shared by every commit holding them.
data_repos = sa.Table(
    "data_repos",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("pipeline", sa.String(64)),  # the pipeline whose output repo it is
)

data_branches = sa.Table(
    "data_branches",
    metadata,
    sa.Column(
        "repo",
        sa.String(64),
        sa.ForeignKey("data_repos.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("head", sa.String(32)),  # None: nothing committed yet
)

data_commits = sa.Table(
    "data_commits",
    metadata,
    sa.Column(
        "repo",
        sa.String(64),
        sa.ForeignKey("data_repos.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("id", sa.String(32), primary_key=True),  # a global ID: shared across repos
    sa.Column("branch", sa.String(64), nullable=False),
    sa.Column("parent", sa.String(32)),
    sa.Column("origin", sa.String(8), nullable=False),  # USER, AUTO
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Index(None, "repo", "branch", "created_at"),
)

data_files = sa.Table(
    "data_files",
    metadata,
    sa.Column("repo", sa.String(64), primary_key=True),
    sa.Column("commit_id", sa.String(32), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(
        ["repo", "commit_id"], ["data_commits.repo", "data_commits.id"], ondelete="CASCADE"
    ),
)

data_pipelines = sa.Table(
    "data_pipelines",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec", JSONType, nullable=False),
    sa.Column("salt", sa.String(32), nullable=False),  # part of every datum id
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# One row per pipeline and global ID; the jobs of one ID make a job set.
data_jobs = sa.Table(
    "data_jobs",
    metadata,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline_version", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),  # depth in the job set's DAG
    sa.Column("spec", JSONType, nullable=False),  # the pipeline's spec when it was made
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("input_commits", JSONType, nullable=False),  # [[repo, commit id]]
    sa.Column("output_commit", sa.String(32)),
    sa.Column("reprocess", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("reason", sa.Text),
    sa.Column("restarts", sa.Integer, nullable=False),
    sa.Column("data_processed", sa.Integer, nullable=False),
    sa.Column("data_skipped", sa.Integer, nullable=False),
    sa.Column("data_failed", sa.Integer, nullable=False),
    sa.Column("data_total", sa.Integer, nullable=False),
    sa.Column("download_bytes", sa.BigInteger, nullable=False),
    sa.Column("upload_bytes", sa.BigInteger, nullable=False),
    sa.Column("download_time", sa.Float, nullable=False),
    sa.Column("process_time", sa.Float, nullable=False),
    sa.Column("upload_time", sa.Float, nullable=False),
    sa.Column("worker", sa.String(300)),
    sa.Column("heartbeat_at", UTCDateTime),  # its worker's last sign of life
    sa.Column("stop_requested_at", UTCDateTime),
    sa.Index(None, "id"),
    sa.Index(None, "state", "created_at"),
)

# What each job did with each datum; a datum's SUCCESS / SKIPPED rows carry its outputs,
# which later jobs of the pipeline reuse when they meet the same datum id.
data_datums = sa.Table(
    "data_datums",
    metadata,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("files", JSONType, nullable=False),
    sa.Column("outputs", JSONType, nullable=False),  # [[path, sha256, size]]
    sa.Column("tries", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("logs", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.ForeignKeyConstraint(
        ["pipeline", "job_id"], ["data_jobs.pipeline", "data_jobs.id"], ondelete="CASCADE"
    ),
    sa.Index(None, "pipeline", "id"),
)
