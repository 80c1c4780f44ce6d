"""SQL for the hooks' outbox: taking due notices to deliver, and settling them.

A deliverer holds the notices it takes until ``claimed_until``; if it dies, another takes
them once that passes. On PostgreSQL two deliverers skip each other's rows (``SKIP
LOCKED``); on SQLite the write transaction serialises them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from runyard.core import hooks, records, states
from runyard.storage import events as events_mod
from runyard.storage import schema

__all__ = ["any_due", "claim", "list_notices", "settle"]

_N = states.NoticeState


def _due(at: dt.datetime) -> sa.ColumnElement[bool]:
    n = schema.notices.c
    return sa.and_(
        n.state == _N.PENDING.value,
        n.next_attempt_at <= at,
        sa.or_(n.claimed_until.is_(None), n.claimed_until < at),
    )


def any_due(conn: sa.Connection, *, at: dt.datetime) -> bool:
    """Whether a notice is due: a read, so an idle deliverer takes no write lock."""
    n = schema.notices.c
    return conn.execute(sa.select(n.id).where(_due(at)).limit(1)).first() is not None


def claim(
    conn: sa.Connection, *, at: dt.datetime, limit: int, hold_until: dt.datetime
) -> list[records.Notice]:
    """Take up to ``limit`` pending notices that are due and held by no one."""
    n = schema.notices.c
    pick = sa.select(n.id).where(_due(at)).order_by(n.next_attempt_at, n.id).limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = list(conn.execute(pick).scalars())
    if not ids:
        return []
    conn.execute(schema.notices.update().where(n.id.in_(ids)).values(claimed_until=hold_until))
    rows = conn.execute(sa.select(schema.notices).where(n.id.in_(ids)).order_by(n.id)).all()
    return [_notice(row) for row in rows]


def settle(
    conn: sa.Connection,
    notice: records.Notice,
    *,
    at: dt.datetime,
    error: str | None,
    retry_at: dt.datetime | None,
) -> None:
    """Record one delivery attempt: delivered (no ``error``), to be tried again at
    ``retry_at``, or failed for good. A final outcome is also an event of the job."""
    n = schema.notices.c
    values: dict[str, Any] = {"attempts": n.attempts + 1, "claimed_until": None}
    if error is None:
        values.update(state=_N.DELIVERED.value, delivered_at=at, last_error=None)
    elif retry_at is not None:
        values.update(next_attempt_at=retry_at, last_error=error)
    else:
        values.update(state=_N.FAILED.value, last_error=error)
    conn.execute(
        schema.notices.update()
        .where(n.id == notice.id, n.state == _N.PENDING.value)
        .values(**values)
    )
    if error is None or retry_at is None:
        shown = hooks.Hook(notice.event, notice.target).display
        outcome = "delivered" if error is None else f"failed for good: {error}"
        events_mod.insert(
            conn,
            [
                {
                    "at": at,
                    "kind": "hook",
                    "job_id": notice.job_id,
                    "run_id": notice.run_id,
                    "step_name": None,
                    "old_state": None,
                    "new_state": values["state"],
                    "message": f"{notice.event} hook {shown} {outcome}",
                }
            ],
        )


def list_notices(conn: sa.Connection, *, job_id: str | None) -> list[records.Notice]:
    n = schema.notices.c
    query = sa.select(schema.notices).order_by(n.id)
    if job_id is not None:
        query = query.where(n.job_id == job_id)
    return [_notice(row) for row in conn.execute(query)]


def _notice(row: Any) -> records.Notice:
    return records.Notice(
        id=row.id,
        job_id=row.job_id,
        run_id=row.run_id,
        event=hooks.HookEvent(row.event),
        target=row.target,
        payload=row.payload,
        state=states.NoticeState(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
    )
