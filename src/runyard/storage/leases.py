"""SQL for workers and leases: claiming runs within limits, heartbeats, stop requests, and
recovering runs whose worker is gone. ``Store`` calls these inside its transactions.

Claims are serialised (an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite) so that
two workers can never both take a job's last free slot; a claim is short, so this costs
little and keeps the limits exact.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from runyard.core import records, states
from runyard.storage import schema

__all__ = [
    "claim",
    "heartbeat",
    "recover_lost",
    "request_stop",
    "set_priority",
    "set_tag_limit",
]

_CLAIM_LOCK = 0x52554E5A
_R = states.RunState
_S = states.StepState
ACTIVE = [s.value for s in states.ACTIVE_RUN_STATES]
# The queue's order: highest priority first, then the longest queued, then grid order. The
# index ``ix_runs_claim_order`` (job_id, state, then these) hands a job's next queued runs
# over in this order without sorting its queue.
_QUEUE_ORDER = (schema.runs.c.priority.desc(), schema.runs.c.queued_at, schema.runs.c.idx)
UNSTARTED = [_R.CREATED.value, _R.QUEUED.value]


def claim(
    conn: sa.Connection,
    *,
    worker: str,
    worker_id: str | None,
    limit: int,
    at: dt.datetime,
    lease_until: dt.datetime | None,
    job_id: str | None,
    within_limits: bool = True,
) -> list[Any]:
    """Move up to ``limit`` QUEUED runs to STARTING: highest priority first, then oldest,
    and with ``within_limits`` never more running at once for a job than its
    ``max_parallel_runs``."""
    r = schema.runs.c
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK})
    tag_room = _tag_room(conn)
    limited_job = (
        bool(tag_room)
        and job_id is not None
        and bool(
            conn.execute(
                sa.select(sa.func.count()).where(
                    schema.job_tags.c.job_id == job_id, schema.job_tags.c.tag.in_(list(tag_room))
                )
            ).scalar_one()
        )
    )
    if job_id is not None and not within_limits and not limited_job:
        # One job's own executor: one statement takes its next runs.
        pick = (
            sa.select(r.id)
            .where(r.job_id == job_id, r.state == _R.QUEUED.value)
            .order_by(*_QUEUE_ORDER)
            .limit(limit)
        )
        return _take(conn, r.id.in_(pick.scalar_subquery()), worker, worker_id, at, lease_until)
    rooms = _job_rooms(conn, job_id, limit, within_limits)
    candidates: list[Any] = []
    for jid, room in rooms.items():
        candidates += list(
            conn.execute(
                sa.select(r.id, r.job_id, r.priority, r.queued_at, r.idx)
                .where(r.job_id == jid, r.state == _R.QUEUED.value)
                .order_by(*_QUEUE_ORDER)
                .limit(room)
            ).all()
        )
    candidates.sort(key=lambda c: (-c.priority, c.queued_at, c.idx))
    job_tags: dict[str, list[str]] = {}
    if tag_room:
        for jid, tag in conn.execute(
            sa.select(schema.job_tags.c.job_id, schema.job_tags.c.tag).where(
                schema.job_tags.c.job_id.in_({c.job_id for c in candidates}),
                schema.job_tags.c.tag.in_(list(tag_room)),
            )
        ):
            job_tags.setdefault(jid, []).append(tag)
    chosen = []
    for c in candidates:
        tags = job_tags.get(c.job_id, [])
        if any(tag_room[t] <= 0 for t in tags):
            continue  # a tag it carries is at its limit
        for t in tags:
            tag_room[t] -= 1
        chosen.append(c.id)
        if len(chosen) == limit:
            break
    if not chosen:
        return []
    return _take(conn, r.id.in_(chosen), worker, worker_id, at, lease_until)


def _job_rooms(
    conn: sa.Connection, job_id: str | None, limit: int, within_limits: bool
) -> dict[str, int]:
    """How many runs each job with queued runs (``job_id`` only, when given) may start
    now: at most ``limit``, and with ``within_limits`` no more than its
    ``max_parallel_runs`` less its active runs. Jobs with no room are left out.

    One statement, which reads indexes only, never the whole queue: the jobs with queued
    runs are found by a loose scan of ``ix_runs_state_job_id`` (one index probe per job,
    where a ``DISTINCT`` would read every queued run), each job's active runs are counted
    on an index too.
    """
    r = schema.runs.c
    j = schema.jobs.c
    columns: list[Any] = [j.id, j.max_parallel_runs]
    if within_limits:
        active = schema.runs.alias("active_run")
        columns.append(
            sa.select(sa.func.count())
            .where(active.c.job_id == j.id, active.c.state.in_(ACTIVE))
            .scalar_subquery()
        )
    if job_id is not None:
        query = sa.select(*columns).where(j.id == job_id)
    else:
        # WITH RECURSIVE q(job_id): the smallest job id with a queued run, then the next
        # larger one, and so on, until there is none.
        inner = schema.runs.alias("queued_run")
        first = sa.select(sa.func.min(r.job_id)).where(r.state == _R.QUEUED.value)
        q = sa.select(first.scalar_subquery().label("job_id")).cte("q", recursive=True)
        following = (
            sa.select(sa.func.min(inner.c.job_id))
            .where(inner.c.state == _R.QUEUED.value, inner.c.job_id > q.c.job_id)
            .scalar_subquery()
        )
        q = q.union_all(sa.select(following).where(q.c.job_id.is_not(None)))
        query = sa.select(*columns).select_from(q.join(schema.jobs, j.id == q.c.job_id))
    rooms: dict[str, int] = {}
    for row in conn.execute(query):
        room = min(row[1] - row[2], limit) if within_limits else limit
        if room > 0:
            rooms[row[0]] = room
    return rooms


def _tag_room(conn: sa.Connection) -> dict[str, int]:
    """How many more runs each limited tag allows to start now, across every job."""
    limits = dict((row.tag, row.most) for row in conn.execute(sa.select(schema.tag_limits)))
    if not limits:
        return {}
    jt = schema.job_tags.c
    r = schema.runs.c
    running = dict(
        (tag, count)
        for tag, count in conn.execute(
            sa.select(jt.tag, sa.func.count())
            .select_from(schema.runs.join(schema.job_tags, jt.job_id == r.job_id))
            .where(r.state.in_(ACTIVE), jt.tag.in_(list(limits)))
            .group_by(jt.tag)
        )
    )
    return {tag: most - running.get(tag, 0) for tag, most in limits.items()}


def set_tag_limit(conn: sa.Connection, tag: str, most: int) -> None:
    """At most ``most`` runs of jobs tagged ``tag`` at once (replacing any earlier limit)."""
    conn.execute(schema.tag_limits.delete().where(schema.tag_limits.c.tag == tag))
    conn.execute(schema.tag_limits.insert().values(tag=tag, most=most))


def set_priority(
    conn: sa.Connection, *, priority: int, job_id: str | None, run_id: str | None
) -> int:
    """Change the priority of a job's (or one run's) runs that have not started; how many."""
    r = schema.runs.c
    which = r.job_id == job_id if job_id is not None else r.id == run_id
    return conn.execute(
        schema.runs.update().where(which, r.state.in_(UNSTARTED)).values(priority=priority)
    ).rowcount


def _take(
    conn: sa.Connection,
    which: sa.ColumnElement[bool],
    worker: str,
    worker_id: str | None,
    at: dt.datetime,
    lease_until: dt.datetime | None,
) -> list[Any]:
    """Move the chosen runs that are still QUEUED to STARTING for ``worker``."""
    r = schema.runs.c
    return list(
        conn.execute(
            schema.runs.update()
            .where(which, r.state == _R.QUEUED.value)
            .values(
                state=_R.STARTING.value,
                started_at=at,
                worker=worker,
                worker_id=worker_id,
                lease_expires_at=lease_until,
            )
            .returning(*schema.runs.c)
        ).all()
    )


def heartbeat(
    conn: sa.Connection, *, worker_id: str, at: dt.datetime, lease_until: dt.datetime
) -> list[str]:
    """Mark the worker alive and extend the leases of its runs; returns those of its runs
    someone asked to stop."""
    r = schema.runs.c
    conn.execute(
        schema.workers.update().where(schema.workers.c.id == worker_id).values(heartbeat_at=at)
    )
    conn.execute(
        schema.runs.update()
        .where(r.worker_id == worker_id, r.state.in_(ACTIVE))
        .values(lease_expires_at=lease_until)
    )
    return list(
        conn.execute(
            sa.select(r.id).where(
                r.worker_id == worker_id, r.state.in_(ACTIVE), r.stop_requested_at.is_not(None)
            )
        ).scalars()
    )


def request_stop(
    conn: sa.Connection, *, at: dt.datetime, job_id: str | None, run_id: str | None
) -> tuple[records.StopOutcome, list[dict[str, Any]]]:
    """Stop a job's runs (or one run): unstarted ones end KILLED now, running ones are
    flagged for their worker. Returns the outcome and the events to write."""
    r = schema.runs.c
    pick = sa.select(r.id, r.job_id, r.state, r.stop_requested_at)
    pick = pick.where(r.job_id == job_id) if job_id is not None else pick.where(r.id == run_id)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update()
    rows = conn.execute(pick).all()
    killed = [row for row in rows if row.state in UNSTARTED]
    running = [row for row in rows if row.state in ACTIVE]
    finished = [row for row in rows if row.state not in UNSTARTED and row.state not in ACTIVE]
    reason = "stopped by request"
    events: list[dict[str, Any]] = []
    if killed:
        conn.execute(
            schema.runs.update()
            .where(r.id.in_([row.id for row in killed]), r.state.in_(UNSTARTED))
            .values(state=_R.KILLED.value, finished_at=at, reason=reason)
        )
        events += [
            {
                "at": at,
                "kind": "run_state",
                "job_id": row.job_id,
                "run_id": row.id,
                "step_name": None,
                "old_state": row.state,
                "new_state": _R.KILLED.value,
                "message": reason,
            }
            for row in killed
        ]
    fresh = [row for row in running if row.stop_requested_at is None]
    if fresh:
        conn.execute(
            schema.runs.update()
            .where(r.id.in_([row.id for row in fresh]))
            .values(stop_requested_at=at)
        )
        events += [
            {
                "at": at,
                "kind": "stop_requested",
                "job_id": row.job_id,
                "run_id": row.id,
                "step_name": None,
                "old_state": row.state,
                "new_state": None,
                "message": reason,
            }
            for row in fresh
        ]
    outcome = records.StopOutcome(
        tuple(row.id for row in killed),
        tuple(row.id for row in running),
        tuple(row.id for row in finished),
    )
    return outcome, events


def recover_lost(conn: sa.Connection, *, at: dt.datetime) -> tuple[list[str], list[dict[str, Any]]]:
    """End the active runs whose lease expired (their worker stopped renewing it) as
    FAILURE "worker lost", with their running steps FAILURE and pending ones KILLED.

    Returns the run ids and the events to write.
    """
    r = schema.runs.c
    pick = sa.select(r.id, r.job_id, r.state, r.worker).where(
        r.state.in_(ACTIVE), r.lease_expires_at < at
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    rows = conn.execute(pick).all()
    events: list[dict[str, Any]] = []
    s = schema.step_runs.c
    for row in rows:
        reason = f"worker lost: {row.worker or 'its worker'} stopped renewing the run's lease"
        conn.execute(
            schema.runs.update()
            .where(r.id == row.id, r.state == row.state)
            .values(state=_R.FAILURE.value, finished_at=at, reason=reason)
        )
        events.append(
            {
                "at": at,
                "kind": "run_state",
                "job_id": row.job_id,
                "run_id": row.id,
                "step_name": None,
                "old_state": row.state,
                "new_state": _R.FAILURE.value,
                "message": reason,
            }
        )
        steps = conn.execute(
            sa.select(s.step_name, s.attempt, s.state).where(
                s.run_id == row.id, s.state.in_([_S.RUNNING.value, _S.PENDING.value])
            )
        ).all()
        for step in steps:
            new = _S.FAILURE if step.state == _S.RUNNING.value else _S.KILLED
            conn.execute(
                schema.step_runs.update()
                .where(s.run_id == row.id, s.step_name == step.step_name, s.attempt == step.attempt)
                .values(
                    state=new.value,
                    finished_at=at,
                    error_type="WorkerLost" if new is _S.FAILURE else None,
                    error_message=reason if new is _S.FAILURE else f"never ran: {reason}",
                )
            )
            events.append(
                {
                    "at": at,
                    "kind": "step_state",
                    "job_id": row.job_id,
                    "run_id": row.id,
                    "step_name": step.step_name,
                    "old_state": step.state,
                    "new_state": new.value,
                    "message": reason,
                }
            )
    return [row.id for row in rows], events


def worker_row(worker: records.Worker) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "kind": worker.kind,
        "slots": worker.slots,
        "started_at": worker.started_at,
        "heartbeat_at": worker.heartbeat_at,
        "stopped_at": worker.stopped_at,
    }
