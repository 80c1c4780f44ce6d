"""SQL for schedules: firing due ticks (each exactly once), pausing, resuming, running now.

A tick fires by inserting its key (job, tick time) into ``ticks``; only the scheduler whose
insert succeeds makes the tick's runs, so two schedulers on one store, or a restarted one,
never fire a tick twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from runyard import errors
from runyard.core import records, schedules, states
from runyard.storage import events as events_mod
from runyard.storage import leases, schema

__all__ = ["fire_due", "get_schedule", "list_schedules", "run_now", "set_paused", "trigger_row"]

_R = states.RunState
BUSY = [_R.CREATED.value, _R.QUEUED.value, *leases.ACTIVE]


def trigger_row(
    job_id: str, trigger: schedules.Trigger, next_fire: dt.datetime | None
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "at": trigger.at,
        "cron": trigger.cron,
        "timezone": trigger.timezone,
        "start_at": trigger.start,
        "end_at": trigger.end,
        "overlap": trigger.overlap.value,
        "catchup": trigger.catchup.value,
        "catchup_limit": trigger.catchup_limit,
        "paused": False,
        "next_fire_at": next_fire,
    }


def _trigger(row: Any) -> schedules.Trigger:
    return schedules.Trigger(
        at=row.at,
        cron=row.cron,
        timezone=row.timezone,
        start=row.start_at,
        end=row.end_at,
        overlap=schedules.Overlap(row.overlap),
        catchup=schedules.Catchup(row.catchup),
        catchup_limit=row.catchup_limit,
    )


def get_schedule(conn: sa.Connection, job_id: str) -> records.Schedule | None:
    row = conn.execute(
        sa.select(schema.schedules).where(schema.schedules.c.job_id == job_id)
    ).first()
    if row is None:
        return None
    return records.Schedule(job_id, _trigger(row), row.paused, row.next_fire_at)


def list_schedules(
    conn: sa.Connection, *, limit: int, job_ids: Sequence[str] | None = None
) -> list[records.Schedule]:
    """Every job's schedule (of ``job_ids`` only, when given), the next to fire first,
    then those that will not fire again."""
    c = schema.schedules.c
    query = (
        sa.select(schema.schedules)
        .order_by(c.next_fire_at.is_(None), c.next_fire_at, c.job_id)
        .limit(limit)
    )
    if job_ids is not None:
        query = query.where(c.job_id.in_(list(job_ids)))
    return [
        records.Schedule(row.job_id, _trigger(row), row.paused, row.next_fire_at)
        for row in conn.execute(query)
    ]


def fire_due(
    conn: sa.Connection, *, now: dt.datetime, new_id: Callable[[], str]
) -> list[tuple[str, dt.datetime, int, str | None]]:
    """Fire every tick that is due: (job id, tick, runs made, note) for each."""
    s = schema.schedules.c
    pick = sa.select(schema.schedules).where(
        s.paused.is_(False), s.next_fire_at.is_not(None), s.next_fire_at <= now
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    fired = []
    for row in conn.execute(pick).all():
        trigger = _trigger(row)
        due, following = trigger.due(row.next_fire_at, now)
        for tick in due:
            outcome = _fire(conn, row.job_id, tick, now=now, overlap=trigger.overlap, new_id=new_id)
            if outcome is not None:
                fired.append(outcome)
        conn.execute(
            schema.schedules.update().where(s.job_id == row.job_id).values(next_fire_at=following)
        )
    _release_waiting_batches(conn, now=now)
    return fired


def run_now(
    conn: sa.Connection, job_id: str, *, now: dt.datetime, new_id: Callable[[], str]
) -> int:
    """Make a batch of a scheduled job's runs now, whatever its schedule says."""
    outcome = _fire(
        conn, job_id, now, now=now, overlap=schedules.Overlap.ALLOW, new_id=new_id, note="run now"
    )
    return outcome[2] if outcome else 0


def set_paused(conn: sa.Connection, job_id: str, *, paused: bool, now: dt.datetime) -> None:
    """Pause or resume a schedule; ticks missed while paused do not fire."""
    row = conn.execute(
        sa.select(schema.schedules).where(schema.schedules.c.job_id == job_id)
    ).first()
    if row is None:
        raise errors.UsageError(
            f"Job {job_id} has no schedule to pause or resume; only --at and --cron jobs do"
        )
    values: dict[str, Any] = {"paused": paused}
    if not paused and row.paused and row.next_fire_at is not None:
        values["next_fire_at"] = _trigger(row).next_after(now) if row.cron else row.next_fire_at
    conn.execute(
        schema.schedules.update().where(schema.schedules.c.job_id == job_id).values(**values)
    )


def _fire(
    conn: sa.Connection,
    job_id: str,
    tick: dt.datetime,
    *,
    now: dt.datetime,
    overlap: schedules.Overlap,
    new_id: Callable[[], str],
    note: str | None = None,
) -> tuple[str, dt.datetime, int, str | None] | None:
    """Fire one tick of a job, once: None when it had fired already."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT ... ON CONFLICT.
    made = conn.execute(
        insert(schema.ticks)
        .values(job_id=job_id, tick_at=tick, fired_at=now, runs=0, note=note)
        .on_conflict_do_nothing()
        .returning(schema.ticks.c.job_id)
    ).first()
    if made is None:
        return None
    r = schema.runs.c
    busy = conn.execute(
        sa.select(sa.func.count()).where(r.job_id == job_id, r.state.in_(BUSY))
    ).scalar_one()
    t = schema.ticks.c
    events: list[dict[str, Any]] = []
    if busy and overlap is schedules.Overlap.SKIP:
        note = "skipped: the previous tick's runs are still going"
        conn.execute(
            schema.ticks.update().where(t.job_id == job_id, t.tick_at == tick).values(note=note)
        )
        events_mod.insert(conn, [_tick_event(job_id, now, tick, 0, note)])
        return job_id, tick, 0, note
    if busy and overlap is schedules.Overlap.CANCEL:
        _, stop_events = leases.request_stop(conn, at=now, job_id=job_id, run_id=None)
        events += stop_events
    waits = bool(busy) and overlap is schedules.Overlap.QUEUE
    template = conn.execute(
        sa.select(schema.jobs.c.run_template).where(schema.jobs.c.id == job_id)
    ).scalar_one()
    state = _R.CREATED if waits else _R.QUEUED
    rows = [
        {
            "id": new_id(),
            "job_id": job_id,
            "idx": index,
            "params": params,
            "state": state.value,
            "created_at": now,
            "queued_at": None if waits else now,
            "priority": priority,
            "tick_at": tick,
        }
        for index, params, priority in template or []
    ]
    for start in range(0, len(rows), 5000):
        conn.execute(schema.runs.insert(), rows[start : start + 5000])
    if not waits:
        events += [
            events_mod.run_state(now, job_id, row["id"], _R.CREATED.value, _R.QUEUED.value, None)
            for row in rows
        ]
    note = note or ("waiting for the previous tick's runs" if waits else None)
    conn.execute(
        schema.ticks.update()
        .where(t.job_id == job_id, t.tick_at == tick)
        .values(runs=len(rows), note=note)
    )
    events.append(_tick_event(job_id, now, tick, len(rows), note))
    events_mod.insert(conn, events)
    return job_id, tick, len(rows), note


def _release_waiting_batches(conn: sa.Connection, *, now: dt.datetime) -> None:
    """Queue the oldest waiting batch of each job whose earlier runs have all finished."""
    r = schema.runs.c
    waiting = conn.execute(
        sa.select(r.job_id, sa.func.min(r.tick_at))
        .where(r.state == _R.CREATED.value, r.tick_at.is_not(None))
        .group_by(r.job_id)
    ).all()
    for job_id, tick in waiting:
        going = conn.execute(
            sa.select(sa.func.count()).where(
                r.job_id == job_id, r.state.in_([_R.QUEUED.value, *leases.ACTIVE])
            )
        ).scalar_one()
        if going:
            continue
        ids = (
            conn.execute(
                sa.select(r.id).where(
                    r.job_id == job_id, r.state == _R.CREATED.value, r.tick_at == tick
                )
            )
            .scalars()
            .all()
        )
        conn.execute(
            schema.runs.update().where(r.id.in_(ids)).values(state=_R.QUEUED.value, queued_at=now)
        )
        events_mod.insert(
            conn,
            [
                events_mod.run_state(now, job_id, run_id, _R.CREATED.value, _R.QUEUED.value, None)
                for run_id in ids
            ],
        )


def _tick_event(
    job_id: str, now: dt.datetime, tick: dt.datetime, runs: int, note: str | None
) -> dict[str, Any]:
    return {
        "at": now,
        "kind": "tick",
        "job_id": job_id,
        "run_id": None,
        "step_name": None,
        "old_state": None,
        "new_state": None,
        "message": f"tick {tick.isoformat()}: {runs} run(s)" + (f"; {note}" if note else ""),
    }
