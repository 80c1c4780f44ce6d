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
from runyard.storage import endings, schema
from runyard.storage import events as events_mod

__all__ = [
    "claim",
    "heartbeat",
    "lock_queue",
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
    ``max_parallel_runs``. A retry is not taken before its ``not_before``. The caller holds
    ``lock_queue``."""
    tag_room = _tag_room(conn)
    limited_job = (
        bool(tag_room)
        and job_id is not None
        and bool(conn.execute(_Q.job_limited, {"job_id": job_id, "tags": list(tag_room)}).scalar())
    )
    taking = {"b_at": at, "b_worker": worker, "b_worker_id": worker_id, "b_lease": lease_until}
    if job_id is not None and not within_limits and not limited_job:
        # One job's own executor: its next runs, whatever else runs.
        chosen = list(
            conn.execute(_Q.next_runs, {"job_id": job_id, "room": limit, "now": at}).scalars()
        )
    else:
        chosen = _choose(conn, job_id, limit, within_limits, tag_room, at)
    if not chosen:
        return []
    take = _Q.take_sqlite if conn.dialect.name == "sqlite" else _Q.take
    return list(conn.execute(take, {"ids": chosen, **taking}))


def lock_queue(conn: sa.Connection) -> None:
    """Serialise this transaction with every other that claims runs or changes runs it
    does not own (stop requests, queueing, priorities), until it ends: PostgreSQL's
    advisory lock; on SQLite every write transaction is serialised already.

    Take it before touching any run: a transaction that held rows of ``runs`` while it
    waited for this lock could deadlock with one that holds it and waits for them.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_Q.lock, {"k": _CLAIM_LOCK})


def _choose(
    conn: sa.Connection,
    job_id: str | None,
    limit: int,
    within_limits: bool,
    tag_room: dict[str, int],
    at: dt.datetime,
) -> list[str]:
    """The ids of the next runs to take: those of each job with room, then across jobs in
    queue order, skipping runs of jobs whose tags are at their limit."""
    if job_id is None:
        found = conn.execute(_Q.rooms if within_limits else _Q.rooms_unlimited)
    else:
        found = conn.execute(
            _Q.job_room if within_limits else _Q.job_room_unlimited, {"job_id": job_id}
        )
    candidates: list[Any] = []
    for row in found.all():
        room = min(row[1] - row[2], limit) if within_limits else limit
        if room > 0:
            found_runs = {"job_id": row[0], "room": room, "now": at}
            candidates += conn.execute(_Q.next_runs, found_runs).all()
    candidates.sort(key=lambda c: (-c.priority, c.queued_at, c.idx))
    job_tags: dict[str, list[str]] = {}
    if tag_room and candidates:
        rows = conn.execute(
            _Q.job_tags, {"job_ids": list({c.job_id for c in candidates}), "tags": list(tag_room)}
        )
        for jid, tag in rows:
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
    return chosen


def _tag_room(conn: sa.Connection) -> dict[str, int]:
    """How many more runs each limited tag allows to start now, across every job."""
    limits: dict[str, int] = {tag: most for tag, most in conn.execute(_Q.tag_limits)}
    if not limits:
        return {}
    running: dict[str, int] = {
        tag: count for tag, count in conn.execute(_Q.tags_running, {"tags": list(limits)})
    }
    return {tag: most - running.get(tag, 0) for tag, most in limits.items()}


class _Claims:
    """The claim's statements, built once: building a statement costs more than running
    it (the engine claims about once per run), and their compiled forms are cached.

    None reads the whole queue: the jobs with queued runs are found by a loose scan of
    ``ix_runs_state_job_id`` (one index probe per job, where a ``DISTINCT`` would read
    every queued run) that also counts each job's active runs on an index, and a job's
    next runs are read off ``ix_runs_claim_order`` in queue order.
    """

    def __init__(self) -> None:
        runs = schema.runs
        r = runs.c
        j = schema.jobs.c
        jt = schema.job_tags.c
        queued = r.state == _R.QUEUED.value
        when = r.started_at.type
        self.lock = sa.text("SELECT pg_advisory_xact_lock(:k)")
        self.tag_limits = sa.select(schema.tag_limits.c.tag, schema.tag_limits.c.most)
        self.tags_running = (
            sa.select(jt.tag, sa.func.count())
            .select_from(runs.join(schema.job_tags, jt.job_id == r.job_id))
            .where(r.state.in_(ACTIVE), jt.tag.in_(sa.bindparam("tags", expanding=True)))
            .group_by(jt.tag)
        )
        self.job_limited = sa.select(sa.func.count()).where(
            jt.job_id == sa.bindparam("job_id"), jt.tag.in_(sa.bindparam("tags", expanding=True))
        )
        self.job_tags = sa.select(jt.job_id, jt.tag).where(
            jt.job_id.in_(sa.bindparam("job_ids", expanding=True)),
            jt.tag.in_(sa.bindparam("tags", expanding=True)),
        )
        # (job id, max_parallel_runs, active runs) of each job with queued runs, or of one.
        active = runs.alias("active_run")
        count_active = (
            sa.select(sa.func.count())
            .where(active.c.job_id == j.id, active.c.state.in_(ACTIVE))
            .scalar_subquery()
        )
        nothing = sa.literal(0)
        # WITH RECURSIVE q(job_id): the smallest job id with a queued run, then the next
        # larger one, and so on, until there is none.
        later = runs.alias("queued_run")
        first = sa.select(sa.func.min(r.job_id)).where(queued).scalar_subquery()
        q = sa.select(first.label("job_id")).cte("q", recursive=True)
        following = (
            sa.select(sa.func.min(later.c.job_id))
            .where(later.c.state == _R.QUEUED.value, later.c.job_id > q.c.job_id)
            .scalar_subquery()
        )
        q = q.union_all(sa.select(following).where(q.c.job_id.is_not(None)))
        with_queued = q.join(schema.jobs, j.id == q.c.job_id)
        self.rooms = sa.select(j.id, j.max_parallel_runs, count_active).select_from(with_queued)
        self.rooms_unlimited = sa.select(j.id, j.max_parallel_runs, nothing).select_from(
            with_queued
        )
        one_job = j.id == sa.bindparam("job_id")
        self.job_room = sa.select(j.id, j.max_parallel_runs, count_active).where(one_job)
        self.job_room_unlimited = sa.select(j.id, j.max_parallel_runs, nothing).where(one_job)
        # A job's next ``room`` queued runs, in queue order.
        # A retry waiting out its backoff is not taken before its ``not_before``.
        ready = sa.or_(r.not_before.is_(None), r.not_before <= sa.bindparam("now", type_=when))
        self.next_runs = (
            sa.select(r.id, r.job_id, r.priority, r.queued_at, r.idx)
            .where(r.job_id == sa.bindparam("job_id"), queued, ready)
            .order_by(*_QUEUE_ORDER)
            .limit(sa.bindparam("room"))
        )
        # Move the chosen runs that are still QUEUED to STARTING, found by their ids. On
        # SQLite the state check is marked likely(): otherwise, for more than a couple of
        # ids, its planner finds the rows by walking the queue on ix_runs_state_job_id.
        take = (
            runs.update()
            .values(
                state=_R.STARTING.value,
                started_at=sa.bindparam("b_at", type_=when),
                worker=sa.bindparam("b_worker"),
                worker_id=sa.bindparam("b_worker_id"),
                lease_expires_at=sa.bindparam("b_lease", type_=when),
            )
            .returning(*r)
        )
        chosen = r.id.in_(sa.bindparam("ids", expanding=True))
        self.take = take.where(chosen, queued)
        self.take_sqlite = take.where(chosen, sa.func.likely(queued))


_Q = _Claims()


def set_tag_limit(conn: sa.Connection, tag: str, most: int) -> None:
    """At most ``most`` runs of jobs tagged ``tag`` at once (replacing any earlier limit)."""
    conn.execute(schema.tag_limits.delete().where(schema.tag_limits.c.tag == tag))
    conn.execute(schema.tag_limits.insert().values(tag=tag, most=most))


def set_priority(
    conn: sa.Connection, *, priority: int, job_id: str | None, run_id: str | None
) -> int:
    """Change the priority of a job's (or one run's) runs that have not started; how many."""
    lock_queue(conn)
    r = schema.runs.c
    which = r.job_id == job_id if job_id is not None else r.id == run_id
    return conn.execute(
        schema.runs.update().where(which, r.state.in_(UNSTARTED)).values(priority=priority)
    ).rowcount


def heartbeat(
    conn: sa.Connection, *, worker_id: str, at: dt.datetime, lease_until: dt.datetime
) -> list[str]:
    """Mark the worker alive and extend the leases of its runs; returns those of its runs
    someone asked to stop."""
    r = schema.runs.c
    conn.execute(
        schema.workers.update().where(schema.workers.c.id == worker_id).values(heartbeat_at=at)
    )
    if conn.dialect.name == "postgresql":
        # Lock its runs in id order first, as a stop request locks a job's runs: in the
        # UPDATE's own order the two could deadlock.
        conn.execute(
            sa.select(r.id)
            .where(r.worker_id == worker_id, r.state.in_(ACTIVE))
            .order_by(r.id)
            .with_for_update()
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
    lock_queue(conn)
    pick = sa.select(r.id, r.job_id, r.state, r.stop_requested_at)
    pick = pick.where(r.job_id == job_id) if job_id is not None else pick.where(r.id == run_id)
    if conn.dialect.name == "postgresql":
        # In id order, as every transaction that locks several runs does (see heartbeat).
        pick = pick.order_by(r.id).with_for_update()
    rows = conn.execute(pick).all()
    killed = [row for row in rows if row.state in UNSTARTED]
    running = [row for row in rows if row.state in ACTIVE]
    finished = [row for row in rows if row.state not in UNSTARTED and row.state not in ACTIVE]
    reason = "stopped by request"
    events: list[dict[str, Any]] = []
    if killed:
        events += _kill_unstarted(conn, killed, UNSTARTED, at=at, reason=reason)
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


def _kill_unstarted(
    conn: sa.Connection, rows: list[Any], unstarted: list[str], *, at: dt.datetime, reason: str
) -> list[dict[str, Any]]:
    """End runs whose process never started (``rows``: id, job_id, state; still in one of
    the ``unstarted`` states) as KILLED; the events to write."""
    r = schema.runs.c
    conn.execute(
        schema.runs.update()
        .where(r.id.in_([row.id for row in rows]), r.state.in_(unstarted))
        .values(state=_R.KILLED.value, finished_at=at, reason=reason)
    )
    events = [
        events_mod.run_state(at, row.job_id, row.id, row.state, _R.KILLED.value, reason)
        for row in rows
    ]
    return events + endings.follow(
        conn, [endings.Ended(row.id, row.job_id, _R.KILLED, at) for row in rows]
    )


def release(
    conn: sa.Connection, *, run_ids: list[str], worker_id: str, at: dt.datetime, reason: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Put back in the queue the runs of ``run_ids`` that worker ``worker_id`` claimed and
    never started (still STARTING and leased to it), in their place: queue order is by
    priority and queue time, which a claim does not change. Those whose stop was asked end
    KILLED instead.

    Returns the run ids released and the events to write.
    """
    lock_queue(conn)
    r = schema.runs.c
    mine = sa.and_(r.id.in_(run_ids), r.state == _R.STARTING.value, r.worker_id == worker_id)
    found = conn.execute(
        sa.select(r.id, r.job_id, r.state, r.stop_requested_at).where(mine).order_by(r.id)
    ).all()
    # A run whose stop was asked (the worker had not read it yet) ends as asked.
    stopping = [row for row in found if row.stop_requested_at is not None]
    rows = [row for row in found if row.stop_requested_at is None]
    events = (
        _kill_unstarted(conn, stopping, [_R.STARTING.value], at=at, reason="stopped by request")
        if stopping
        else []
    )
    if not rows:
        return [], events
    conn.execute(
        schema.runs.update()
        .where(r.id.in_([row.id for row in rows]))
        .values(
            state=_R.QUEUED.value,
            started_at=None,
            worker=None,
            worker_id=None,
            lease_expires_at=None,
        )
    )
    events += [
        events_mod.run_state(at, row.job_id, row.id, _R.STARTING.value, _R.QUEUED.value, reason)
        for row in rows
    ]
    return [row.id for row in rows], events


def recover_lost(conn: sa.Connection, *, at: dt.datetime) -> tuple[list[str], list[dict[str, Any]]]:
    """End the active runs whose lease expired (their worker stopped renewing it) as
    FAILURE "worker lost", with their running steps FAILURE and pending ones KILLED; a run
    whose job's retry policy allows it is queued again (failure kind ``WorkerLost``).

    A pending step is "not recorded as started", not "never ran": a worker writes what its
    runs report every few milliseconds, so a step that began just before its worker died
    may still be PENDING here.

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
            events_mod.run_state(at, row.job_id, row.id, row.state, _R.FAILURE.value, reason)
        )
        steps = conn.execute(
            sa.select(s.step_name, s.attempt, s.state).where(
                s.run_id == row.id, s.state.in_([_S.RUNNING.value, _S.PENDING.value])
            )
        ).all()
        unstarted = f"not recorded as started: {reason}"
        for step in steps:
            new = _S.FAILURE if step.state == _S.RUNNING.value else _S.KILLED
            conn.execute(
                schema.step_runs.update()
                .where(s.run_id == row.id, s.step_name == step.step_name, s.attempt == step.attempt)
                .values(
                    state=new.value,
                    finished_at=at,
                    error_type="WorkerLost" if new is _S.FAILURE else None,
                    error_message=reason if new is _S.FAILURE else unstarted,
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
    events += endings.follow(
        conn,
        [endings.Ended(row.id, row.job_id, _R.FAILURE, at, ("WorkerLost",)) for row in rows],
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
