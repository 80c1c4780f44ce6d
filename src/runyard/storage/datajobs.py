"""SQL for data pipelines, their data jobs and the datums each job processed or skipped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from runyard import errors
from runyard.core import datapipelines as dp
from runyard.core import datarepos, records
from runyard.storage import datarepos as repos_sql
from runyard.storage import schema

__all__ = [
    "add_datums",
    "claim",
    "create_jobs",
    "delete_pipeline",
    "find_datum",
    "get_pipeline",
    "insert_pipeline",
    "job_spec",
    "list_datums",
    "list_jobs",
    "list_pipelines",
    "move",
    "page_datums",
    "progress_event",
    "read_job",
    "recover_lost",
    "request_stop",
    "reusable",
    "transitions",
    "update_job",
    "update_pipeline",
]

_P = schema.data_pipelines.c
_J = schema.data_jobs.c
_D = schema.data_datums.c


# -- pipelines --------------------------------------------------------------------------


def insert_pipeline(conn: sa.Connection, pipeline: dp.Pipeline) -> None:
    """Store a new pipeline and its output repo; ``ConflictError`` when either name is
    taken."""
    if conn.execute(sa.select(_P.name).where(_P.name == pipeline.name)).first() is not None:
        raise errors.ConflictError(
            f"Pipeline {pipeline.name!r} exists already; change it with `runyard pipeline "
            "update -f SPEC`, or delete it first"
        )
    repos_sql.create_repo(
        conn,
        datarepos.Repo(
            pipeline.name,
            f"Output of pipeline {pipeline.name}",
            pipeline.created_at,
            pipeline.name,
        ),
        branch=pipeline.spec.output_branch,
    )
    conn.execute(
        schema.data_pipelines.insert().values(
            name=pipeline.name,
            version=pipeline.version,
            spec=pipeline.spec.to_json(),
            salt=pipeline.salt,
            created_at=pipeline.created_at,
            updated_at=pipeline.updated_at,
        )
    )


def update_pipeline(conn: sa.Connection, pipeline: dp.Pipeline) -> None:
    conn.execute(
        schema.data_pipelines.update()
        .where(_P.name == pipeline.name)
        .values(
            version=pipeline.version,
            spec=pipeline.spec.to_json(),
            salt=pipeline.salt,
            updated_at=pipeline.updated_at,
        )
    )


def get_pipeline(conn: sa.Connection, name: str) -> dp.Pipeline:
    row = conn.execute(sa.select(schema.data_pipelines).where(_P.name == name)).first()
    if row is None:
        known = conn.execute(sa.select(_P.name)).scalars().all()
        raise errors.NotFoundError(
            f"No pipeline {name!r}{errors.did_you_mean(name, known)}; make one with "
            "`runyard pipeline create -f SPEC`"
        )
    return _pipeline(row)


def list_pipelines(conn: sa.Connection) -> list[dp.Pipeline]:
    rows = conn.execute(sa.select(schema.data_pipelines).order_by(_P.name)).all()
    return [_pipeline(r) for r in rows]


def delete_pipeline(conn: sa.Connection, name: str) -> None:
    """Delete a pipeline, its jobs and datums, and its output repo."""
    get_pipeline(conn, name)
    conn.execute(schema.data_datums.delete().where(_D.pipeline == name))
    conn.execute(schema.data_jobs.delete().where(_J.pipeline == name))
    conn.execute(schema.data_pipelines.delete().where(_P.name == name))
    repos_sql.delete_repo(conn, name)


def _pipeline(row: sa.Row[Any]) -> dp.Pipeline:
    return dp.Pipeline(
        spec=dp.parse_spec(row.spec),
        version=row.version,
        salt=row.salt,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# -- data jobs --------------------------------------------------------------------------


def create_jobs(conn: sa.Connection, jobs: Sequence[tuple[dp.DataJob, dp.Pipeline]]) -> None:
    """Store data jobs, each with the spec and salt of its pipeline as it is now."""
    if not jobs:
        return
    conn.execute(
        schema.data_jobs.insert(),
        [
            {
                "pipeline": job.pipeline,
                "id": job.id,
                "pipeline_version": job.pipeline_version,
                "state": str(job.state),
                "position": job.position,
                "spec": pipeline.spec.to_json(),
                "salt": pipeline.salt,
                "input_commits": [list(pair) for pair in job.input_commits],
                "output_commit": None,
                "reprocess": job.reprocess,
                "created_at": job.created_at,
                "reason": job.reason,
                "restarts": 0,
                "data_processed": 0,
                "data_skipped": 0,
                "data_failed": 0,
                "data_total": 0,
                "download_bytes": 0,
                "upload_bytes": 0,
                "download_time": 0.0,
                "process_time": 0.0,
                "upload_time": 0.0,
            }
            for job, pipeline in jobs
        ],
    )
    conn.execute(
        schema.events.insert(),
        [_event(job, None, job.state, job.created_at, job.reason) for job, _ in jobs],
    )


def read_job(conn: sa.Connection, pipeline: str, job_id: str) -> dp.DataJob:
    """The job of ``pipeline`` whose id is ``job_id`` or starts with it."""
    rows = conn.execute(
        sa.select(schema.data_jobs)
        .where(_J.pipeline == pipeline, _J.id.startswith(job_id, autoescape=True))
        .limit(2)
    ).all()
    exact = [r for r in rows if r.id == job_id]
    if exact:
        return _job(exact[0])
    if not rows or not job_id:
        raise errors.NotFoundError(
            f"Pipeline {pipeline!r} has no job {job_id!r}; list them with "
            f"`runyard list job -p {pipeline}`"
        )
    if len(rows) > 1:
        raise errors.NotFoundError(f"Job id {job_id!r} is ambiguous; give more of it")
    return _job(rows[0])


def job_spec(conn: sa.Connection, pipeline: str, job_id: str) -> tuple[dp.PipelineSpec, str]:
    """The spec and salt a job runs with."""
    row = conn.execute(
        sa.select(_J.spec, _J.salt).where(_J.pipeline == pipeline, _J.id == job_id)
    ).one()
    return dp.parse_spec(row.spec), row.salt


def list_jobs(
    conn: sa.Connection,
    *,
    job_id: str | None = None,
    pipeline: str | None = None,
    states: Iterable[dp.DataJobState] = (),
    limit: int = 1000,
    offset: int = 0,
) -> list[dp.DataJob]:
    """Jobs newest first (within a job set, upstream first); ``job_id`` may be a prefix;
    ``offset`` of them left out."""
    query = (
        sa.select(schema.data_jobs)
        .order_by(_J.created_at.desc(), _J.id, _J.position, _J.pipeline)
        .limit(limit)
        .offset(offset)
    )
    if job_id is not None:
        query = query.where(_J.id.startswith(job_id, autoescape=True))
    if pipeline is not None:
        query = query.where(_J.pipeline == pipeline)
    wanted = [str(s) for s in states]
    if wanted:
        query = query.where(_J.state.in_(wanted))
    found = [_job(r) for r in conn.execute(query).all()]
    sets: dict[str, int] = {}
    for job in found:
        sets.setdefault(job.id, len(sets))
    return sorted(found, key=lambda j: (sets[j.id], j.position, j.pipeline))


def claim(
    conn: sa.Connection, *, worker: str, at: dt.datetime, job_id: str | None = None
) -> dp.DataJob | None:
    """Take the oldest CREATED job (of job set ``job_id``; upstream first) for ``worker``:
    it is STARTING now. None when there is none. Two workers never take the same job."""
    query = (
        sa.select(_J.pipeline, _J.id)
        .where(_J.state == str(dp.DataJobState.CREATED))
        .order_by(_J.created_at, _J.position)
        .limit(5)
    )
    if job_id is not None:
        query = query.where(_J.id == job_id)
    candidates = conn.execute(query).all()
    for c in candidates:
        taken = conn.execute(
            schema.data_jobs.update()
            .where(
                _J.pipeline == c.pipeline,
                _J.id == c.id,
                _J.state == str(dp.DataJobState.CREATED),
            )
            .values(
                state=str(dp.DataJobState.STARTING),
                worker=worker,
                started_at=at,
                heartbeat_at=at,
            )
        )
        if taken.rowcount == 1:
            job = read_job(conn, c.pipeline, c.id)
            conn.execute(
                schema.events.insert().values(
                    **_event(job, dp.DataJobState.CREATED, job.state, at, f"taken by {worker}")
                )
            )
            return job
    return None


def move(
    conn: sa.Connection,
    job: dp.DataJob,
    new: dp.DataJobState,
    *,
    at: dt.datetime,
    reason: str | None = None,
    **fields: Any,
) -> dp.DataJob | None:
    """Move a job from its current state to ``new`` (checked against the transitions
    table), with ``fields``; None when its state changed meanwhile (it was stopped)."""
    dp.check_data_job_transition(job.state, new)
    values: dict[str, Any] = {"state": str(new), **fields}
    if reason is not None:
        values["reason"] = reason
    if new.finished:
        values["finished_at"] = at
    if new is dp.DataJobState.STARTING:
        values["started_at"] = at
    done = conn.execute(
        schema.data_jobs.update()
        .where(_J.pipeline == job.pipeline, _J.id == job.id, _J.state == str(job.state))
        .values(**values)
    )
    if done.rowcount != 1:
        return None
    conn.execute(schema.events.insert().values(**_event(job, job.state, new, at, reason)))
    return read_job(conn, job.pipeline, job.id)


def _event(
    job: dp.DataJob,
    old: dp.DataJobState | None,
    new: dp.DataJobState,
    at: dt.datetime,
    reason: str | None,
) -> dict[str, Any]:
    """A data job's transition for the event log: its job set's id as the job id, its
    pipeline as the step name (a data job is one pipeline's part of the set)."""
    return {
        "at": at,
        "kind": "data_job_state",
        "job_id": job.id,
        "run_id": None,
        "step_name": job.pipeline,
        "old_state": str(old) if old is not None else None,
        "new_state": str(new),
        "message": reason,
    }


def progress_event(conn: sa.Connection, pipeline: str, job_id: str, *, at: dt.datetime) -> None:
    """A ``data_job_progress`` event: the job's datum counts moved (its state did not);
    the message is its progress, "processed + skipped / total"."""
    job = read_job(conn, pipeline, job_id)
    conn.execute(
        schema.events.insert().values(
            at=at,
            kind="data_job_progress",
            job_id=job.id,
            run_id=None,
            step_name=job.pipeline,
            old_state=None,
            new_state=str(job.state),
            message=job.progress,
        )
    )


def transitions(conn: sa.Connection, pipeline: str, job_id: str) -> list[records.Event]:
    """The job's state changes from the event log, oldest first."""
    c = schema.events.c
    rows = conn.execute(
        sa.select(schema.events)
        .where(c.job_id == job_id, c.kind == "data_job_state", c.step_name == pipeline)
        .order_by(c.id)
    ).all()
    return [
        records.Event(
            r.id, r.at, r.kind, r.job_id, r.run_id, r.step_name, r.old_state, r.new_state, r.message
        )
        for r in rows
    ]


def update_job(conn: sa.Connection, pipeline: str, job_id: str, **fields: Any) -> None:
    conn.execute(
        schema.data_jobs.update().where(_J.pipeline == pipeline, _J.id == job_id).values(**fields)
    )


def recover_lost(conn: sa.Connection, *, at: dt.datetime, lease: float) -> list[dp.DataJob]:
    """Jobs whose worker has given no sign of life for ``lease`` seconds: one whose output
    commit is written ends SUCCESS; the others go back to CREATED (RESTART + 1) with their
    datum records deleted, for any worker to run again. Returns them as they are now."""
    since = at - dt.timedelta(seconds=lease)
    rows = conn.execute(
        sa.select(schema.data_jobs).where(
            _J.state.in_([str(s) for s in dp.ACTIVE]), _J.heartbeat_at < since
        )
    ).all()
    recovered = []
    for row in rows:
        job = _job(row)
        why = f"restarted: its worker {job.worker} gave no sign of life for {lease:g} s"
        if job.output_commit is not None:
            moved = move(conn, job, dp.DataJobState.SUCCESS, at=at)
        else:
            conn.execute(
                schema.data_datums.delete().where(_D.pipeline == job.pipeline, _D.job_id == job.id)
            )
            moved = move(
                conn,
                job,
                dp.DataJobState.CREATED,
                at=at,
                reason=why,
                restarts=job.restarts + 1,
                worker=None,
                heartbeat_at=None,
                data_processed=0,
                data_skipped=0,
                data_failed=0,
                data_total=0,
            )
        if moved is not None:
            recovered.append(moved)
    return recovered


def request_stop(conn: sa.Connection, job: dp.DataJob, *, at: dt.datetime) -> bool:
    """Stop a job: one no worker took yet ends KILLED now; a running one is asked to stop.
    False when it had finished already."""
    if job.state.finished:
        return False
    if job.state is dp.DataJobState.CREATED:
        moved = move(conn, job, dp.DataJobState.KILLED, at=at, reason="stopped by a user")
        if moved is not None:
            return True
    conn.execute(
        schema.data_jobs.update()
        .where(_J.pipeline == job.pipeline, _J.id == job.id)
        .values(stop_requested_at=at)
    )
    return True


# -- datums -----------------------------------------------------------------------------


def add_datums(conn: sa.Connection, datums: Sequence[dp.DatumRecord]) -> None:
    """Record datums; a SKIPPED one without its outputs (its SUCCESS record has them)."""
    if not datums:
        return
    conn.execute(
        schema.data_datums.insert(),
        [
            {
                "pipeline": d.pipeline,
                "job_id": d.job_id,
                "id": d.id,
                "state": str(d.state),
                "files": list(d.files),
                "outputs": (
                    [[o.path, o.digest, o.size] for o in d.outputs]
                    if d.state is not dp.DatumState.SKIPPED
                    else []
                ),
                "tries": d.tries,
                "seconds": d.seconds,
                "logs": d.logs,
                "error": d.error,
            }
            for d in datums
        ],
    )


def reusable(
    conn: sa.Connection, pipeline: str, datum_ids: Sequence[str]
) -> dict[str, tuple[datarepos.FileEntry, ...]]:
    """The outputs of the datums among ``datum_ids`` that a job of ``pipeline`` processed
    successfully before (a SKIPPED record keeps no outputs: the SUCCESS one has them)."""
    found: dict[str, tuple[datarepos.FileEntry, ...]] = {}
    for start in range(0, len(datum_ids), 500):
        chunk = datum_ids[start : start + 500]
        rows = conn.execute(
            sa.select(_D.id, _D.outputs).where(
                _D.pipeline == pipeline, _D.id.in_(chunk), _D.state == str(dp.DatumState.SUCCESS)
            )
        ).all()
        for row in rows:
            found[row.id] = tuple(datarepos.FileEntry(p, d, s) for p, d, s in row.outputs)
    return found


def list_datums(conn: sa.Connection, pipeline: str, job_id: str) -> list[dp.DatumRecord]:
    rows = conn.execute(
        sa.select(schema.data_datums)
        .where(_D.pipeline == pipeline, _D.job_id == job_id)
        .order_by(_D.state, _D.id)
    ).all()
    return [_datum(r) for r in rows]


# Failed datums first: they are what a person looks at a job's datums for.
_DATUM_ORDER = sa.case(
    (_D.state == str(dp.DatumState.FAILURE), 0),
    (_D.state == str(dp.DatumState.SUCCESS), 1),
    else_=2,
)


def page_datums(
    conn: sa.Connection, pipeline: str, job_id: str, *, limit: int, offset: int = 0
) -> tuple[list[dp.DatumRecord], dict[dp.DatumState, int]]:
    """One page of a job's datum records, failed first, then by id; and how many records
    it has of each state."""
    mine = sa.and_(_D.pipeline == pipeline, _D.job_id == job_id)
    counts = {
        dp.DatumState(state): int(n)
        for state, n in conn.execute(
            sa.select(_D.state, sa.func.count()).where(mine).group_by(_D.state)
        ).all()
    }
    rows = conn.execute(
        sa.select(schema.data_datums)
        .where(mine)
        .order_by(_DATUM_ORDER, _D.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [_datum(r) for r in rows], counts


def find_datum(conn: sa.Connection, datum_id: str, job_id: str | None = None) -> dp.DatumRecord:
    """The newest record of the datum ``datum_id`` (or a unique prefix), in ``job_id``'s
    job when given; failures first, since they are what one asks for logs about."""
    query = sa.select(schema.data_datums).where(_D.id.startswith(datum_id, autoescape=True))
    if job_id is not None:
        query = query.where(_D.job_id == job_id)
    rows = conn.execute(query.limit(50)).all()
    if not rows or not datum_id:
        raise errors.NotFoundError(
            f"No datum {datum_id!r}; list a job's datums with `runyard list datum PIPELINE@JOB_ID`"
        )
    if len({r.id for r in rows}) > 1:
        raise errors.NotFoundError(f"Datum id {datum_id!r} is ambiguous; give more of it")
    order = {str(dp.DatumState.FAILURE): 0, str(dp.DatumState.SUCCESS): 1}
    return _datum(min(rows, key=lambda r: order.get(r.state, 2)))


def _datum(row: sa.Row[Any]) -> dp.DatumRecord:
    return dp.DatumRecord(
        job_id=row.job_id,
        pipeline=row.pipeline,
        id=row.id,
        state=dp.DatumState(row.state),
        files=tuple(row.files),
        outputs=tuple(datarepos.FileEntry(p, d, s) for p, d, s in row.outputs),
        tries=row.tries,
        seconds=row.seconds,
        logs=row.logs,
        error=row.error,
    )


def _job(row: sa.Row[Any]) -> dp.DataJob:
    return dp.DataJob(
        pipeline=row.pipeline,
        id=row.id,
        pipeline_version=row.pipeline_version,
        state=dp.DataJobState(row.state),
        created_at=row.created_at,
        position=row.position,
        input_commits=tuple((r, c) for r, c in row.input_commits),
        output_commit=row.output_commit,
        reprocess=row.reprocess,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reason=row.reason,
        restarts=row.restarts,
        data_processed=row.data_processed,
        data_skipped=row.data_skipped,
        data_failed=row.data_failed,
        data_total=row.data_total,
        download_bytes=row.download_bytes,
        upload_bytes=row.upload_bytes,
        download_time=row.download_time,
        process_time=row.process_time,
        upload_time=row.upload_time,
        worker=row.worker,
        stop_requested=row.stop_requested_at is not None,
    )
