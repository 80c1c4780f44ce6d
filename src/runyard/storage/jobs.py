"""SQL for changing a job after it was made: its processing and parameters while none of its
runs has been queued, its tags at any time, and deleting it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from runyard import errors
from runyard.core import records, states
from runyard.storage import leases, schema
from runyard.storage import workdata as workdata_sql

__all__ = ["Deleted", "delete", "reconfigure", "set_tags"]

_CREATED = states.RunState.CREATED.value
_FINISHED = [s.value for s in states.FINISHED_RUN_STATES]


def reconfigure(
    conn: sa.Connection, job: records.Job, runs: Sequence[records.Run], *, at: dt.datetime
) -> None:
    """Give ``job`` (stored already) its new processing, grid and runs, replacing its runs.

    Raises ``ConflictError`` when a run of it has been queued: what was started stays as
    it was started.
    """
    leases.lock_queue(conn)  # no run of it can be queued or claimed meanwhile
    r = schema.runs.c
    started = list(
        conn.execute(
            sa.select(r.id).where(r.job_id == job.id, r.state != _CREATED).limit(5)
        ).scalars()
    )
    if started:
        raise errors.ConflictError(
            f"Job {job.id} has started (runs {', '.join(started)}); its processing and "
            "parameters can no longer change. Create a new job"
        )
    has_schedule = conn.execute(
        sa.select(schema.schedules.c.job_id).where(schema.schedules.c.job_id == job.id)
    ).first()
    if has_schedule is not None:
        raise errors.ConflictError(f"Job {job.id} is scheduled; its runs are made by its ticks")
    conn.execute(
        schema.jobs.update()
        .where(schema.jobs.c.id == job.id)
        .values(
            pipeline_name=job.pipeline_name,
            pipeline_version=job.pipeline_version,
            pipeline_ref=job.pipeline_ref,
            grid=dict(job.grid),
            deselected=list(job.deselected),
            run_count=job.run_count,
            snapshot_id=job.snapshot_id,
        )
    )
    # Every run is CREATED (checked above, in this write transaction): none is claimable.
    conn.execute(schema.runs.delete().where(r.job_id == job.id))
    if runs:
        conn.execute(
            schema.runs.insert(),
            [
                {
                    "id": run.id,
                    "job_id": run.job_id,
                    "idx": run.index,
                    "params": run.params,
                    "state": run.state.value,
                    "created_at": run.created_at,
                    "priority": run.priority,
                }
                for run in runs
            ],
        )
    conn.execute(
        schema.events.insert(),
        {
            "at": at,
            "kind": "job_configured",
            "job_id": job.id,
            "message": f"{len(runs)} run(s) of {job.pipeline_name} {job.pipeline_version}",
        },
    )


def set_tags(conn: sa.Connection, job_id: str, tags: Sequence[str], *, at: dt.datetime) -> None:
    t = schema.job_tags.c
    conn.execute(schema.job_tags.delete().where(t.job_id == job_id))
    if tags:
        conn.execute(schema.job_tags.insert(), [{"job_id": job_id, "tag": tag} for tag in tags])
    conn.execute(
        schema.events.insert(),
        {"at": at, "kind": "job_tagged", "job_id": job_id, "message": ", ".join(tags) or "-"},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Deleted:
    """What deleting a job took with it: its runs, and the artifact files to delete."""

    run_ids: tuple[str, ...]
    uris: tuple[str, ...]


def delete(
    conn: sa.Connection,
    job_id: str,
    *,
    at: dt.datetime,
    with_outputs: bool = False,
    with_inputs: bool = False,
) -> Deleted:
    """Delete a job with its runs, step runs, logs, artifact records, schedule, ticks and
    notices; its events stay, with a last one saying it was deleted.

    Raises ``ConflictError`` naming the runs while any of them is queued or running,
    naming its sub jobs while it has some, and naming its output WorkData unless
    ``with_outputs`` (then they go too, unless another job reads one: ``ConflictError``).
    ``with_inputs`` also deletes the WorkData it read that no other job reads.
    """
    leases.lock_queue(conn)
    children = list(
        conn.execute(
            sa.select(schema.jobs.c.id).where(schema.jobs.c.parent_job_id == job_id).limit(11)
        ).scalars()
    )
    if children:
        listed = ", ".join(children[:10]) + (" and more" if len(children) > 10 else "")
        raise errors.ConflictError(
            f"Job {job_id} has sub jobs ({listed}); delete them first, or delete it with "
            "its sub jobs"
        )
    r = schema.runs.c
    busy = list(
        conn.execute(
            sa.select(r.id).where(r.job_id == job_id, r.state.not_in([_CREATED, *_FINISHED]))
        ).scalars()
    )
    if busy:
        listed = ", ".join(busy[:10]) + (f" and {len(busy) - 10} more" if len(busy) > 10 else "")
        raise errors.ConflictError(
            f"Job {job_id} is running (runs {listed}); stop it first (runyard job stop)"
        )
    outputs = workdata_sql.outputs_of(conn, job_id)
    if outputs and not with_outputs:
        listed = ", ".join(outputs[:10]) + (" and more" if len(outputs) > 10 else "")
        raise errors.ConflictError(
            f"Job {job_id} has output WorkData ({listed}); delete it with its outputs "
            "(delete_output_workdata) or delete them first"
        )
    files = workdata_sql.delete(conn, outputs, but_job=job_id)
    if with_inputs:
        w = schema.workdata_reads.c
        alone = [
            workdata_id
            for workdata_id in workdata_sql.reads_of(conn, job_id)
            if not conn.execute(
                sa.select(w.job_id).where(w.workdata_id == workdata_id, w.job_id != job_id)
            ).first()
        ]
        files += workdata_sql.delete(conn, alone, but_job=job_id)
    run_ids = tuple(conn.execute(sa.select(r.id).where(r.job_id == job_id)).scalars())
    a = schema.artifacts.c
    uris: set[str] = set()
    for start in range(0, len(run_ids), 500):
        chunk = list(run_ids[start : start + 500])
        uris |= set(conn.execute(sa.select(a.uri).where(a.run_id.in_(chunk))).scalars())
    # Runs (with their step runs, logs and artifact records), tags, schedule, ticks and
    # notices go with the job (ON DELETE CASCADE); events have no foreign key and stay.
    conn.execute(schema.jobs.delete().where(schema.jobs.c.id == job_id))
    still: set[str] = set()
    if uris:  # a retry in another job never reuses these, but be sure
        still = set(conn.execute(sa.select(a.uri).where(a.uri.in_(list(uris)))).scalars())
    conn.execute(
        schema.events.insert(),
        {"at": at, "kind": "job_deleted", "job_id": job_id, "message": f"{len(run_ids)} run(s)"},
    )
    return Deleted(run_ids, tuple(sorted(uris - still)) + tuple(files))
