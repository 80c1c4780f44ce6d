"""SQL for retention: deleting the oldest finished runs of jobs beyond their
``max_retained_runs``, with their step runs, logs, events and artifact records, and the
schedule's ticks and notices older than the runs kept.

The artifact files are the caller's to delete, after the transaction: ``Pruned`` says
which files no remaining record points at (a retry reuses its parent's files, so a
deleted parent's files may still be in use).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from runyard.core import states
from runyard.storage import schema

__all__ = ["Pruned", "over_limit", "prune"]

FINISHED = [s.value for s in states.FINISHED_RUN_STATES]


@dataclasses.dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune deleted: runs, the files no one uses now, and the files of those runs
    that remaining runs still use."""

    run_ids: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    still_used: tuple[str, ...] = ()


def over_limit(conn: sa.Connection) -> list[tuple[str, int]]:
    """(job id, runs to keep) of each job with more finished runs than it keeps."""
    r = schema.runs.c
    j = schema.jobs.c
    return [
        (row.id, row.max_retained_runs)
        for row in conn.execute(
            sa.select(j.id, j.max_retained_runs)
            .select_from(schema.jobs.join(schema.runs, r.job_id == j.id))
            .where(j.max_retained_runs.is_not(None), r.state.in_(FINISHED))
            .group_by(j.id, j.max_retained_runs)
            .having(sa.func.count() > j.max_retained_runs)
        )
    ]


def prune(conn: sa.Connection, *, most: int = 1000) -> Pruned:
    """Delete (at most ``most``) finished runs beyond each job's ``max_retained_runs``,
    oldest first by finish time."""
    r = schema.runs.c
    doomed: list[str] = []
    pruned_jobs: list[str] = []
    for job_id, keep in over_limit(conn):
        doomed += conn.execute(
            sa.select(r.id)
            .where(r.job_id == job_id, r.state.in_(FINISHED))
            .order_by(r.finished_at.desc(), r.id.desc())
            .offset(keep)
            .limit(most - len(doomed))
        ).scalars()
        pruned_jobs.append(job_id)
        if len(doomed) >= most:
            break
    if not doomed:
        return Pruned()
    a = schema.artifacts.c
    uris = set(conn.execute(sa.select(a.uri).where(a.run_id.in_(doomed))).scalars())
    conn.execute(schema.events.delete().where(schema.events.c.run_id.in_(doomed)))
    conn.execute(
        schema.notices.delete().where(
            schema.notices.c.run_id.in_(doomed),
            schema.notices.c.state != states.NoticeState.PENDING.value,
        )
    )
    # Step runs, logs and artifact records go with their run (ON DELETE CASCADE).
    conn.execute(schema.runs.delete().where(r.id.in_(doomed)))
    for job_id in pruned_jobs:
        _forget_old_ticks(conn, job_id)
    still = set()
    if uris:
        still = set(conn.execute(sa.select(a.uri).where(a.uri.in_(list(uris)))).scalars())
    return Pruned(tuple(doomed), tuple(sorted(uris - still)), tuple(sorted(still)))


def _forget_old_ticks(conn: sa.Connection, job_id: str) -> None:
    """A schedule's records older than the job's oldest run left: its ticks, their events,
    and its delivered completion notices. Ticks that old never fire again (a schedule
    only fires from its next tick on), so the tick keys are no longer needed."""
    r = schema.runs.c
    oldest = conn.execute(sa.select(sa.func.min(r.created_at)).where(r.job_id == job_id)).scalar()
    if oldest is None:
        return
    if isinstance(oldest, str):  # SQLite's aggregate bypasses the column type
        oldest = dt.datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    t, e, n = schema.ticks.c, schema.events.c, schema.notices.c
    conn.execute(schema.ticks.delete().where(t.job_id == job_id, t.fired_at < oldest))
    conn.execute(
        schema.events.delete().where(
            e.job_id == job_id, e.run_id.is_(None), e.kind.in_(["tick", "hook"]), e.at < oldest
        )
    )
    conn.execute(
        schema.notices.delete().where(
            n.job_id == job_id,
            n.run_id.is_(None),
            n.state != states.NoticeState.PENDING.value,
            n.created_at < oldest,
        )
    )
