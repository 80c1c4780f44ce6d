"""What follows a run's end, in the transaction that records it: an automatic retry when
the job's retry policy allows one, and the notices of the job's hooks (run failure, run
success, job completion) in the ``notices`` outbox.

Because both are written with the run's final state, a crash can lose neither, and a job
never looks finished between a failed run and its retry. Every path that ends runs calls
``follow``: recorded transitions, lost workers, stop requests, interrupted jobs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from runyard.core import hooks, retries, states
from runyard.storage import schema

__all__ = ["Ended", "copy_artifacts", "follow", "reusable_outputs"]

_R = states.RunState
_S = states.StepState
UNFINISHED = [_R.CREATED.value, _R.QUEUED.value, *(s.value for s in states.ACTIVE_RUN_STATES)]


# Built once: building a statement costs the engine more than running it.
_JOBS = sa.select(
    schema.jobs.c.id,
    schema.jobs.c.name,
    schema.jobs.c.pipeline_name,
    schema.jobs.c.retry_policy,
    schema.jobs.c.hooks,
).where(schema.jobs.c.id.in_(sa.bindparam("ids", expanding=True)))


@dataclasses.dataclass(frozen=True, slots=True)
class Ended:
    """A run that has just reached a final state; ``kinds`` name its failure."""

    run_id: str
    job_id: str
    state: states.RunState
    at: dt.datetime
    kinds: tuple[str, ...] = ()


def follow(
    conn: sa.Connection,
    ended: Sequence[Ended],
    *,
    rand: Callable[[], float] = random.random,
) -> list[dict[str, Any]]:
    """Retry the failed runs the policy allows and write the hooks' notices; call it after
    the runs' final states are written. Returns the events to write."""
    if not ended:
        return []
    j = schema.jobs.c
    jobs = {row.id: row for row in conn.execute(_JOBS, {"ids": list({e.job_id for e in ended})})}
    busy = [jid for jid, row in jobs.items() if row.retry_policy or row.hooks]
    if not busy:
        return []
    events: list[dict[str, Any]] = []
    retried: set[str] = set()
    for end in ended:
        row = jobs[end.job_id]
        if end.state is _R.FAILURE and row.retry_policy:
            policy = retries.RetryPolicy.from_json(row.retry_policy)
            event = _retry(conn, end, policy, rand)
            if event is not None:
                events.append(event)
                retried.add(end.run_id)
    with_hooks = sorted(jid for jid in busy if jobs[jid].hooks)
    if with_hooks and conn.dialect.name == "postgresql":
        # Two workers ending a job's last two runs at once must not both miss (or both
        # see) its completion: whoever locks the job second sees the other's run ended.
        conn.execute(sa.select(j.id).where(j.id.in_(with_hooks)).order_by(j.id).with_for_update())
    notices: list[dict[str, Any]] = []
    batches: set[tuple[str, dt.datetime | None]] = set()
    runs = _runs(conn, [e.run_id for e in ended if jobs[e.job_id].hooks])
    for end in ended:
        job = jobs[end.job_id]
        if not job.hooks or end.run_id not in runs:
            continue
        run = runs[end.run_id]
        what: hooks.HookEvent | None = None
        if end.state is _R.SUCCESS:
            what = hooks.HookEvent.RUN_SUCCESS
        elif end.state is _R.FAILURE and end.run_id not in retried:
            what = hooks.HookEvent.RUN_FAILURE
        if what is not None:
            payload = {"event": what.value, "job": _job_payload(job), "run": _run_payload(run)}
            notices += _notices(job, what, f"{what.value}:{run.id}", run.id, end.at, payload)
        batches.add((end.job_id, run.tick_at))
    for job_id, tick in sorted(batches, key=lambda b: (b[0], b[1] is not None, b[1])):
        notices += _completion(conn, jobs[job_id], tick, ended[0].at)
    if notices:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(schema.notices).on_conflict_do_nothing(index_elements=["key"]), notices)
    return events


def reusable_outputs(conn: sa.Connection, run_id: str) -> dict[str, dict[str, str]]:
    """The stored outputs of a finished run's steps that succeeded (or reused theirs):
    ``{step: {output: uri}}``. A retry from failure reuses these and runs the rest; the
    rest is closed downstream, since a step succeeds only after its inputs did."""
    s = schema.step_runs.c
    latest: dict[str, tuple[int, str]] = {}
    for name, attempt, state in conn.execute(
        sa.select(s.step_name, s.attempt, s.state).where(s.run_id == run_id)
    ):
        if name not in latest or attempt > latest[name][0]:
            latest[name] = (attempt, state)
    done = {n for n, (_, state) in latest.items() if state in (_S.SUCCESS, _S.SKIPPED)}
    a = schema.artifacts.c
    out: dict[str, dict[str, str]] = {}
    for step, output, uri in conn.execute(
        sa.select(a.step_name, a.output_name, a.uri).where(a.run_id == run_id)
    ):
        if step in done:
            out.setdefault(step, {})[output] = uri
    return out


def _retry(
    conn: sa.Connection, end: Ended, policy: retries.RetryPolicy, rand: Callable[[], float]
) -> dict[str, Any] | None:
    """Queue the next attempt of a failed run when ``policy`` allows; its event."""
    r = schema.runs.c
    parent = conn.execute(sa.select(schema.runs).where(r.id == end.run_id)).first()
    if parent is None or parent.retried_by is not None or parent.state != _R.FAILURE.value:
        return None
    if not policy.allows(parent.attempt, end.kinds):
        return None
    wait = policy.delay_after(parent.attempt, rand())
    new_id = uuid.uuid4().hex
    reuse = reusable_outputs(conn, parent.id)
    conn.execute(schema.runs.update().where(r.id == parent.id).values(retried_by=new_id))
    conn.execute(
        schema.runs.insert(),
        {
            "id": new_id,
            "job_id": parent.job_id,
            "idx": parent.idx,
            "params": parent.params,
            "state": _R.QUEUED.value,
            "created_at": end.at,
            "queued_at": end.at,
            "priority": parent.priority,
            "tick_at": parent.tick_at,
            "parent_run_id": parent.id,
            "reuse": reuse,
            "attempt": parent.attempt + 1,
            "not_before": end.at + dt.timedelta(seconds=wait) if wait > 0 else None,
        },
    )
    copy_artifacts(conn, parent.id, new_id, reuse)
    return {
        "at": end.at,
        "kind": "run_retry",
        "job_id": parent.job_id,
        "run_id": new_id,
        "step_name": None,
        "old_state": None,
        "new_state": _R.QUEUED.value,
        "message": f"attempt {parent.attempt + 1} of {policy.retries + 1}: retries run "
        f"{parent.id} after {wait:.2f} s; reuses {', '.join(sorted(reuse)) or 'nothing'}",
    }


def copy_artifacts(
    conn: sa.Connection, from_run: str, to_run: str, reuse: Mapping[str, Mapping[str, str]]
) -> None:
    """Give ``to_run`` records of the outputs it reuses from ``from_run`` (same files)."""
    a = schema.artifacts.c
    if not reuse:
        return
    rows = [
        row
        for row in conn.execute(
            sa.select(schema.artifacts).where(a.run_id == from_run, a.step_name.in_(list(reuse)))
        )
        if row.output_name in reuse[row.step_name]
    ]
    conn.execute(
        schema.artifacts.insert(),
        [
            {
                "run_id": to_run,
                "step_name": row.step_name,
                "output_name": row.output_name,
                "uri": row.uri,
                "size": row.size,
                "serializer": row.serializer,
                "created_at": row.created_at,
            }
            for row in rows
        ],
    )


def _runs(conn: sa.Connection, run_ids: list[str]) -> dict[str, Any]:
    if not run_ids:
        return {}
    r = schema.runs.c
    query = sa.select(
        r.id,
        r.idx,
        r.state,
        r.params,
        r.reason,
        r.attempt,
        r.tick_at,
        r.started_at,
        r.finished_at,
        r.parent_run_id,
    ).where(r.id.in_(run_ids))
    return {row.id: row for row in conn.execute(query)}


def _completion(
    conn: sa.Connection, job: Any, tick: dt.datetime | None, at: dt.datetime
) -> list[dict[str, Any]]:
    """The job-complete notices of a job's batch (its runs, or one tick's) once no run of it
    is left to finish."""
    if not any(h["event"] == hooks.HookEvent.JOB_COMPLETE.value for h in job.hooks):
        return []
    r = schema.runs.c
    same_batch = r.tick_at.is_(None) if tick is None else r.tick_at == tick
    counts = {
        states.RunState(state): n
        for state, n in conn.execute(
            sa.select(r.state, sa.func.count())
            .where(r.job_id == job.id, same_batch, r.retried_by.is_(None))
            .group_by(r.state)
        )
    }
    if any(counts.get(_R(s), 0) for s in UNFINISHED):
        return []
    total = sum(counts.values())
    payload = {
        "event": hooks.HookEvent.JOB_COMPLETE.value,
        "job": {
            **_job_payload(job),
            "state": states.job_state(counts).value,
            "run_counts": {str(k): v for k, v in sorted(counts.items())},
        },
        "tick_at": tick.isoformat() if tick else None,
    }
    key = f"job_complete:{job.id}:{tick.isoformat() if tick else '-'}:{total}"
    return _notices(job, hooks.HookEvent.JOB_COMPLETE, key, None, at, payload)


def _notices(
    job: Any,
    event: hooks.HookEvent,
    key: str,
    run_id: str | None,
    at: dt.datetime,
    payload: dict[str, Any],
) -> list[dict[str, Any]]:
    """One notice per hook of ``job`` on ``event``; ``key`` makes each be written once."""
    return [
        {
            "key": f"{key}:{i}",
            "job_id": job.id,
            "run_id": run_id,
            "event": event.value,
            "target": hook["target"],
            "payload": {**payload, "at": at.isoformat()},
            "state": states.NoticeState.PENDING.value,
            "attempts": 0,
            "created_at": at,
            "next_attempt_at": at,
        }
        for i, hook in enumerate(job.hooks)
        if hook["event"] == event.value
    ]


def _job_payload(job: Any) -> dict[str, Any]:
    return {"id": job.id, "name": job.name, "pipeline": job.pipeline_name}


def _run_payload(run: Any) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": run.id,
        "index": run.idx,
        "state": run.state,
        "reason": run.reason,
        "attempt": run.attempt,
        "params": run.params,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "tick_at": iso(run.tick_at),
        "parent_run_id": run.parent_run_id,
    }
