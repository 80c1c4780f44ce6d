"""The metadata store: every SQL statement runyard runs is in this module.

One ``Store`` serves SQLite and PostgreSQL; where they differ it says so inline. Writes that
belong together (a job and its runs; a batch of transitions with their events, logs and
artifacts) happen in one transaction, so a crash leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from runyard import errors
from runyard.core import hooks, records, registry, retries, schedules, snapshots, states, tokens
from runyard.storage import (
    datastore,
    endings,
    leases,
    migrate,
    notices,
    retention,
    scheduling,
    schema,
)
from runyard.storage import engine as engines
from runyard.storage import events as events_mod
from runyard.storage import jobs as jobs_sql
from runyard.storage import registry as registry_sql
from runyard.storage import tokens as tokens_sql
from runyard.storage import workdata as workdata_sql

__all__ = ["Changes", "RunTransition", "StepTransition", "Store"]

# Queueing at least this many runs at once refreshes PostgreSQL's statistics of ``runs``.
_MANY_QUEUED = 1000

_RUN_TIME_COLUMN = {
    states.RunState.QUEUED: "queued_at",
    states.RunState.STARTING: "started_at",  # claimed; then, once running, when it started
    states.RunState.RUNNING: "started_at",
    states.RunState.SUCCESS: "finished_at",
    states.RunState.FAILURE: "finished_at",
    states.RunState.KILLED: "finished_at",
}


@dataclasses.dataclass(frozen=True, slots=True)
class RunTransition:
    """A run moving from ``old`` to ``new`` state at ``at``."""

    run_id: str
    job_id: str
    old: states.RunState
    new: states.RunState
    at: dt.datetime
    worker: str | None = None
    reason: str | None = None
    kinds: tuple[str, ...] = ()  # what a FAILURE was, to match the job's retry policy
    # Whether the run's end may call for a retry or hook notices (storage.endings). A
    # recorder that knows the job has no retry policy and no hooks says False, which saves
    # the hot path a query per write.
    follow_up: bool = True
    note: str | None = None  # see ``records.Run.note``


@dataclasses.dataclass(frozen=True, slots=True)
class StepTransition:
    """A step run's new record; ``old`` is its previous state, or None when it is new."""

    job_id: str
    step_run: records.StepRun
    old: states.StepState | None
    at: dt.datetime


@dataclasses.dataclass
class Changes:
    """Writes to make together, in one transaction, in this order."""

    runs: list[RunTransition] = dataclasses.field(default_factory=list)
    steps: list[StepTransition] = dataclasses.field(default_factory=list)
    logs: list[records.LogLine] = dataclasses.field(default_factory=list)
    artifacts: list[records.Artifact] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.steps or self.logs or self.artifacts)


class Store:
    """Jobs, runs, step runs, events, logs and artifact records in one SQL database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        """Connect to ``url`` and bring its schema up to date.

        Raises ``StoreError`` when the database cannot be reached or is too new.
        """
        engine = engines.create_engine(url)
        if migrate_schema:
            migrate.upgrade(engine)
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def data(self) -> datastore.DataStore:
        """Data repos, data pipelines, their jobs and datums, in this database."""
        return datastore.DataStore(self)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        writer = self.engine.connect().execution_options(**{engines.WRITE: True})
        with writer as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- jobs --------------------------------------------------------------------------

    def create_job(
        self,
        job: records.Job,
        runs: Sequence[records.Run],
        *,
        trigger: schedules.Trigger | None = None,
        first_fire: dt.datetime | None = None,
    ) -> None:
        """Store a job, its tags and its runs in one transaction, in batches. With a
        ``trigger`` the runs are the template each tick copies: none is stored yet."""
        self.create_jobs([(job, runs, trigger, first_fire)])

    def create_jobs(
        self,
        jobs: Sequence[
            tuple[
                records.Job,
                Sequence[records.Run],
                schedules.Trigger | None,
                dt.datetime | None,
            ]
        ],
        *,
        inputs: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Store several jobs as ``create_job`` does, all in one transaction: all or none.
        ``inputs``: per job id, the WorkData it reads (``NotFoundError`` for unknown ids)."""
        with self._write() as conn:
            for job, runs, trigger, first_fire in jobs:
                self._insert_job(conn, job, runs, trigger, first_fire)
                if inputs and job.id in inputs:
                    workdata_sql.record_reads(conn, job.id, inputs[job.id])

    def _insert_job(
        self,
        conn: sa.Connection,
        job: records.Job,
        runs: Sequence[records.Run],
        trigger: schedules.Trigger | None,
        first_fire: dt.datetime | None,
    ) -> None:
        conn.execute(
            schema.jobs.insert(),
            {
                "id": job.id,
                "name": job.name,
                "pipeline_name": job.pipeline_name,
                "pipeline_version": job.pipeline_version,
                "pipeline_ref": job.pipeline_ref,
                "grid": dict(job.grid),
                "deselected": list(job.deselected),
                "max_parallel_runs": job.max_parallel_runs,
                "run_count": job.run_count,
                "run_timeout": job.run_timeout,
                "memory_limit_mb": job.memory_limit_mb,
                "created_at": job.created_at,
                "retry_policy": job.retry.to_json() if job.retry else None,
                "hooks": [h.to_json() for h in job.hooks] or None,
                "max_retained_runs": job.max_retained_runs,
                "snapshot_id": job.snapshot_id,
                "parent_job_id": job.parent_job_id,
                "parent_run_id": job.parent_run_id,
                "run_template": (
                    [[r.index, r.params, r.priority] for r in runs] if trigger else None
                ),
            },
        )
        if trigger is not None:
            conn.execute(
                schema.schedules.insert(),
                scheduling.trigger_row(job.id, trigger, first_fire),
            )
            runs = []
        if job.tags:
            conn.execute(schema.job_tags.insert(), [{"job_id": job.id, "tag": t} for t in job.tags])
        rows = [
            {
                "id": r.id,
                "job_id": r.job_id,
                "idx": r.index,
                "params": r.params,
                "state": r.state.value,
                "created_at": r.created_at,
                "priority": r.priority,
            }
            for r in runs
        ]
        for start in range(0, len(rows), 5000):
            conn.execute(schema.runs.insert(), rows[start : start + 5000])
        conn.execute(
            schema.events.insert(),
            {
                "at": job.created_at,
                "kind": "job_created",
                "job_id": job.id,
                "message": f"{len(runs)} run(s) of pipeline {job.pipeline_name}",
            },
        )

    def reconfigure_job(
        self, job: records.Job, runs: Sequence[records.Run], *, at: dt.datetime
    ) -> None:
        """Replace a stored job's processing, grid and runs while none of its runs has been
        queued; raises ``ConflictError`` afterwards."""
        with self._write() as conn:
            jobs_sql.reconfigure(conn, job, runs, at=at)

    def set_tags(self, job_id: str, tags: Sequence[str], *, at: dt.datetime) -> None:
        with self._write() as conn:
            jobs_sql.set_tags(conn, job_id, tags, at=at)

    def delete_job(
        self,
        job_id: str,
        *,
        at: dt.datetime,
        with_outputs: bool = False,
        with_inputs: bool = False,
    ) -> jobs_sql.Deleted:
        """Delete a job and all its runs' records (its events stay); raises
        ``ConflictError`` while it runs (see ``jobs.delete`` for WorkData). The files are
        the caller's to delete."""
        with self._write() as conn:
            return jobs_sql.delete(
                conn, job_id, at=at, with_outputs=with_outputs, with_inputs=with_inputs
            )

    def get_job(self, job_id: str) -> records.Job:
        """The job whose id is ``job_id`` or starts with it.

        Raises ``NotFoundError`` when none or several match.
        """
        with self._read() as conn:
            row = _one_by_prefix(conn, schema.jobs, job_id, "job")
            tags = self._tags(conn, [row.id]).get(row.id, ())
        return _job(row, tags)

    def job_summary(self, job_id: str) -> records.JobSummary:
        job = self.get_job(job_id)
        with self._read() as conn:
            return self._summaries(conn, [job])[0]

    def job_summaries(self, job_ids: Sequence[str]) -> list[records.JobSummary]:
        """The jobs with these exact ids (those that exist), newest first."""
        query = (
            sa.select(schema.jobs)
            .where(schema.jobs.c.id.in_(list(job_ids)))
            .order_by(schema.jobs.c.created_at.desc(), schema.jobs.c.id.desc())
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
            tags = self._tags(conn, [r.id for r in rows])
            return self._summaries(conn, [_job(r, tags.get(r.id, ())) for r in rows])

    def list_jobs(
        self,
        *,
        pipeline: str | None = None,
        state: states.JobState | None = None,
        tag: str | None = None,
        limit: int = 100,
        before: tuple[dt.datetime, str] | None = None,
        parent: str | None = None,
        name: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
    ) -> list[records.JobSummary]:
        """Jobs newest first, filtered; ``state`` filters on the state derived from runs,
        ``parent`` keeps the sub jobs of that job, ``name`` those whose name holds it,
        ``created_after`` / ``created_before`` a time range. ``before`` (created_at, id)
        of the last job of a page gives the next page."""
        query = sa.select(schema.jobs).order_by(
            schema.jobs.c.created_at.desc(), schema.jobs.c.id.desc()
        )
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(schema.jobs.c.name.like(f"%{escaped}%", escape="\\"))
        if created_after is not None:
            query = query.where(schema.jobs.c.created_at >= created_after)
        if created_before is not None:
            query = query.where(schema.jobs.c.created_at < created_before)
        if parent is not None:
            query = query.where(schema.jobs.c.parent_job_id == parent)
        if before is not None:
            at, job_id = before
            c = schema.jobs.c
            query = query.where(
                sa.or_(c.created_at < at, sa.and_(c.created_at == at, c.id < job_id))
            )
        if pipeline:
            query = query.where(schema.jobs.c.pipeline_name == pipeline)
        if tag:
            tagged = sa.select(schema.job_tags.c.job_id).where(schema.job_tags.c.tag == tag)
            query = query.where(schema.jobs.c.id.in_(tagged))
        if state is None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
            tags = self._tags(conn, [r.id for r in rows])
            summaries = self._summaries(conn, [_job(r, tags.get(r.id, ())) for r in rows])
        if state is not None:
            summaries = [s for s in summaries if s.state == state][:limit]
        return summaries

    def _tags(self, conn: sa.Connection, job_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for chunk in _chunks(job_ids):
            query = sa.select(schema.job_tags).where(schema.job_tags.c.job_id.in_(chunk))
            for row in conn.execute(query.order_by(schema.job_tags.c.tag)):
                out.setdefault(row.job_id, []).append(row.tag)
        return {k: tuple(v) for k, v in out.items()}

    def _summaries(
        self, conn: sa.Connection, jobs: Sequence[records.Job]
    ) -> list[records.JobSummary]:
        r = schema.runs.c
        counts: dict[str, dict[states.RunState, int]] = {j.id: {} for j in jobs}
        first: dict[str, dt.datetime | None] = {}
        last: dict[str, dt.datetime | None] = {}
        for chunk in _chunks([j.id for j in jobs]):
            query = (
                sa.select(
                    r.job_id,
                    r.state,
                    sa.func.count(),
                    sa.func.min(r.started_at),
                    sa.func.max(r.finished_at),
                )
                .where(r.job_id.in_(chunk), r.retried_by.is_(None))
                .group_by(r.job_id, r.state)
            )
            for job_id, state, count, started, finished in conn.execute(query):
                counts[job_id][states.RunState(state)] = count
                started = _aware(started)
                finished = _aware(finished)
                if started and (first.get(job_id) is None or started < first[job_id]):  # type: ignore[operator]
                    first[job_id] = started
                if finished and (last.get(job_id) is None or finished > last[job_id]):  # type: ignore[operator]
                    last[job_id] = finished
        out = []
        for job in jobs:
            summary = records.JobSummary(job, counts[job.id], first.get(job.id), None)
            if summary.state in (
                states.JobState.SUCCESS,
                states.JobState.FAILURE,
                states.JobState.KILLED,
            ):
                summary = summary.evolve(finished_at=last.get(job.id))
            out.append(summary)
        return out

    # -- runs --------------------------------------------------------------------------

    def get_run(self, run_id: str) -> records.Run:
        """The run whose id is ``run_id`` or starts with it; raises ``NotFoundError``."""
        with self._read() as conn:
            return _run(_one_by_prefix(conn, schema.runs, run_id, "run"))

    def list_runs(
        self,
        job_id: str,
        *,
        state: states.RunState | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[records.Run]:
        """A job's runs in grid order (retries after the run they retry); with ``limit``,
        one page of them from ``offset``."""
        r = schema.runs.c
        query = sa.select(schema.runs).where(r.job_id == job_id)
        if state is not None:
            query = query.where(r.state == state.value)
        query = query.order_by(r.idx, r.created_at, r.id)
        with self._read() as conn:
            if offset:
                # Far pages: find the page's first grid index on the (job_id, idx) index
                # alone, then read whole rows from there, instead of reading and dropping
                # every row before the page.
                keys = sa.select(r.idx).where(r.job_id == job_id)
                if state is not None:
                    keys = keys.where(r.state == state.value)
                first = conn.execute(keys.order_by(r.idx).limit(1).offset(offset)).scalar()
                if first is None:
                    return []
                before = conn.execute(
                    sa.select(sa.func.count()).select_from(keys.where(r.idx < first).subquery())
                ).scalar_one()
                query = query.where(r.idx >= first).offset(offset - before)
            if limit is not None:
                query = query.limit(limit)
            return [_run(row) for row in conn.execute(query)]

    def count_runs(self, job_id: str, *, state: states.RunState | None = None) -> int:
        """How many runs ``list_runs`` gives (every attempt counted)."""
        query = sa.select(sa.func.count()).where(schema.runs.c.job_id == job_id)
        if state is not None:
            query = query.where(schema.runs.c.state == state.value)
        with self._read() as conn:
            return int(conn.execute(query.select_from(schema.runs)).scalar_one())

    def run_states(self, job_id: str) -> list[tuple[int, str]]:
        """(grid index, state) of every run of a job not retried (its last attempts), in
        grid order: a light read for drawing a large job at a glance.

        Read as two aggregated strings, not row by row: 100,000 rows made into result
        rows cost three times the query itself.
        """
        r = schema.runs.c
        mine = sa.and_(r.job_id == job_id, r.retried_by.is_(None))
        if self.dialect == "postgresql":
            ordered = postgresql.aggregate_order_by
            query = sa.select(
                sa.func.string_agg(sa.cast(r.idx, sa.Text), ordered(sa.literal(","), r.idx)),
                sa.func.string_agg(r.state, ordered(sa.literal(","), r.idx)),
            ).where(mine)
        else:
            rows = sa.select(r.idx, r.state).where(mine).order_by(r.idx).subquery()
            query = sa.select(
                sa.func.group_concat(rows.c.idx, ","), sa.func.group_concat(rows.c.state, ",")
            )
        with self._read() as conn:
            indexes, found = conn.execute(query).one()
        if not indexes:
            return []
        # Sorted again: SQLite keeps the subquery's order in practice but does not promise
        # it (sorting rows already in order costs one pass).
        return sorted(zip(map(int, indexes.split(",")), found.split(","), strict=True))

    def queue_runs(self, job_id: str, *, at: dt.datetime) -> int:
        """Move a job's CREATED runs to QUEUED, with an event each; returns how many."""
        r = schema.runs.c
        with self._write() as conn:
            leases.lock_queue(conn)
            ids = (
                conn.execute(
                    sa.select(r.id)
                    .where(r.job_id == job_id, r.state == states.RunState.CREATED)
                    .order_by(r.idx)
                )
                .scalars()
                .all()
            )
            if not ids:
                return 0
            conn.execute(
                schema.runs.update()
                .where(r.job_id == job_id, r.state == states.RunState.CREATED)
                .values(state=states.RunState.QUEUED.value, queued_at=at)
            )
            self._insert_events(
                conn,
                [
                    _run_event(
                        RunTransition(
                            i, job_id, states.RunState.CREATED, states.RunState.QUEUED, at
                        )
                    )
                    for i in ids
                ],
            )
        self._queued_many(len(ids))
        return len(ids)

    def kill_unstarted_runs(self, job_id: str, *, at: dt.datetime, reason: str) -> int:
        """Move a job's CREATED and QUEUED runs to KILLED, with an event each."""
        r = schema.runs.c
        waiting = [states.RunState.CREATED.value, states.RunState.QUEUED.value]
        pick = sa.select(r.id, r.state).where(r.job_id == job_id, r.state.in_(waiting))
        if self.dialect == "postgresql":
            pick = pick.order_by(r.id).with_for_update()
        with self._write() as conn:
            leases.lock_queue(conn)
            rows = conn.execute(pick).all()
            if not rows:
                return 0
            for chunk in _chunks([row.id for row in rows]):
                conn.execute(
                    schema.runs.update()
                    .where(r.id.in_(chunk))
                    .values(state=states.RunState.KILLED.value, finished_at=at, reason=reason)
                )
            self._insert_events(
                conn,
                [
                    _run_event(
                        RunTransition(
                            row.id,
                            job_id,
                            states.RunState(row.state),
                            states.RunState.KILLED,
                            at,
                            reason=reason,
                        )
                    )
                    for row in rows
                ]
                + endings.follow(
                    conn,
                    [endings.Ended(row.id, job_id, states.RunState.KILLED, at) for row in rows],
                ),
            )
        return len(rows)

    def claim_runs(
        self,
        *,
        job_id: str | None,
        worker: str,
        limit: int,
        at: dt.datetime,
        worker_id: str | None = None,
        lease_until: dt.datetime | None = None,
        within_limits: bool = True,
        changes: Changes | None = None,
    ) -> list[records.Run]:
        """Atomically move up to ``limit`` QUEUED runs to STARTING for ``worker``: highest
        priority first, then oldest, within each job's ``max_parallel_runs``; of one job only
        when ``job_id`` is given. With ``worker_id`` the runs are leased to that worker until
        ``lease_until``. A job's own executor, which keeps to its limit itself, claims
        without ``within_limits``.

        ``changes`` are written first, in the same transaction, as ``apply`` writes them
        (and refused as it refuses them, claiming nothing): a worker records the runs that
        ended, whose slots the claim then sees free, and claims, in one transaction.

        No run is ever handed to two callers, and no job exceeds its limit, however many
        workers claim at once.
        """
        if changes:
            _check(changes)
        with self._write() as conn:
            leases.lock_queue(conn)  # before the changes lock any run
            events = self._write_changes(conn, changes) if changes else []
            rows = leases.claim(
                conn,
                worker=worker,
                worker_id=worker_id,
                limit=limit,
                at=at,
                lease_until=lease_until,
                job_id=job_id,
                within_limits=within_limits,
            )
            claimed = sorted((_run(row) for row in rows), key=lambda run: (run.job_id, run.index))
            events += [
                _run_event(
                    RunTransition(
                        run.id,
                        run.job_id,
                        states.RunState.QUEUED,
                        states.RunState.STARTING,
                        at,
                        worker=worker,
                    )
                )
                for run in claimed
            ]
            self._insert_events(conn, events)
        return claimed

    def create_retry(self, parent: records.Run, run: records.Run) -> None:
        """Store ``run`` (QUEUED) retrying the finished ``parent``, with records of the
        parent's outputs it reuses (``run.reuse``); the parent no longer counts in its job.
        Raises ``TransitionError`` when the parent was retried meanwhile."""
        r = schema.runs.c
        with self._write() as conn:
            marked = conn.execute(
                schema.runs.update()
                .where(r.id == parent.id, r.retried_by.is_(None))
                .values(retried_by=run.id)
            )
            if marked.rowcount == 0:
                raise errors.TransitionError(f"Run {parent.id} was retried meanwhile")
            conn.execute(
                schema.runs.insert(),
                {
                    "id": run.id,
                    "job_id": run.job_id,
                    "idx": run.index,
                    "params": run.params,
                    "state": run.state.value,
                    "created_at": run.created_at,
                    "queued_at": run.queued_at,
                    "priority": run.priority,
                    "parent_run_id": parent.id,
                    "reuse": dict(run.reuse or {}),
                    "tick_at": run.tick_at,
                    "attempt": run.attempt,
                },
            )
            endings.copy_artifacts(conn, parent.id, run.id, run.reuse or {})
            self._insert_events(
                conn,
                [
                    {
                        "at": run.created_at,
                        "kind": "run_retry",
                        "job_id": run.job_id,
                        "run_id": run.id,
                        "step_name": None,
                        "old_state": None,
                        "new_state": run.state.value,
                        "message": f"retries run {parent.id}; reuses "
                        f"{', '.join(sorted(run.reuse or {})) or 'nothing'}",
                    },
                ],
            )

    # -- WorkData ----------------------------------------------------------------------

    def save_workdata(self, data: records.WorkData) -> None:
        """Record a WorkData whose content is stored already."""
        with self._write() as conn:
            workdata_sql.insert(conn, data)

    def get_workdata(self, workdata_id: str) -> records.WorkData:
        with self._read() as conn:
            return workdata_sql.read(conn, workdata_id)

    def list_workdata(
        self, *, producer_job_id: str | None = None, limit: int = 1000
    ) -> list[records.WorkData]:
        with self._read() as conn:
            return workdata_sql.find(conn, producer_job_id=producer_job_id, limit=limit)

    def workdata_inputs(self, job_id: str) -> list[str]:
        with self._read() as conn:
            return workdata_sql.reads_of(conn, job_id)

    def delete_workdata(self, workdata_id: str) -> list[str]:
        """Delete a WorkData record (raises ``ConflictError`` while a job reads it);
        returns the content URIs to delete."""
        with self._write() as conn:
            workdata_sql.read(conn, workdata_id)
            return workdata_sql.delete(conn, [workdata_id])

    # -- the registry ------------------------------------------------------------------

    def register(self, registrations: Sequence[registry.Registration]) -> None:
        """Record processing steps; an existing (kind, name, version) takes the new place."""
        with self._write() as conn:
            registry_sql.register(conn, registrations)

    def registrations(
        self, *, name: str | None = None, kind: registry.Kind | None = None
    ) -> list[registry.Registration]:
        with self._read() as conn:
            return registry_sql.find(conn, name=name, kind=kind)

    # -- API tokens --------------------------------------------------------------------

    def create_token(self, token: tokens.Token, secret: str) -> None:
        """Store ``token`` with the digest of ``secret`` (never the secret itself)."""
        with self._write() as conn:
            tokens_sql.insert(conn, token, secret)

    def check_token(self, text: str) -> tokens.Token:
        """The active token whose text is ``text``; raises ``AuthError``."""
        with self._read() as conn:
            return tokens_sql.check(conn, text)

    def list_tokens(self) -> list[tokens.Token]:
        with self._read() as conn:
            return tokens_sql.list_tokens(conn)

    def revoke_token(self, token_id: str, *, at: dt.datetime) -> tokens.Token:
        """Revoke a token; raises ``NotFoundError``. Revoking it again changes nothing."""
        with self._write() as conn:
            return tokens_sql.revoke(conn, token_id, at=at)

    # -- snapshots ---------------------------------------------------------------------

    def save_snapshot(self, snapshot: snapshots.Snapshot) -> bool:
        """Record ``snapshot``; True when it is new. Saving one whose id is stored already
        changes nothing (the same id means the same files): the first record is kept."""
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self._write() as conn:
            made = conn.execute(
                insert(schema.snapshots)
                .values(
                    id=snapshot.id,
                    root=snapshot.root,
                    data_dir=snapshot.data_dir,
                    created_at=snapshot.created_at,
                    file_count=snapshot.file_count,
                    total_bytes=snapshot.total_bytes,
                    environment=snapshot.environment.to_json(),
                    files=[f.to_json() for f in snapshot.files],
                )
                .on_conflict_do_nothing(index_elements=["id"])
                # Not rowcount: psycopg reports -1 for this statement under SQLAlchemy 2.1.
                .returning(schema.snapshots.c.id)
            )
            return made.first() is not None

    def get_snapshot(self, snapshot_id: str) -> snapshots.Snapshot:
        """The snapshot whose id is ``snapshot_id`` or starts with it.

        Raises ``NotFoundError`` when none or several match.
        """
        with self._read() as conn:
            return _snapshot(_one_by_prefix(conn, schema.snapshots, snapshot_id, "snapshot"))

    def list_snapshots(self, *, limit: int = 100) -> list[snapshots.SnapshotSummary]:
        """Snapshots newest first, without their file lists."""
        c = schema.snapshots.c
        query = (
            sa.select(c.id, c.root, c.file_count, c.total_bytes, c.created_at)
            .order_by(c.created_at.desc(), c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [
                snapshots.SnapshotSummary(
                    id=row.id,
                    root=row.root,
                    file_count=row.file_count,
                    total_bytes=row.total_bytes,
                    created_at=row.created_at,
                )
                for row in conn.execute(query)
            ]

    # -- schedules ---------------------------------------------------------------------

    def fire_due_ticks(
        self, *, at: dt.datetime, new_id: Callable[[], str]
    ) -> list[tuple[str, dt.datetime, int, str | None]]:
        """Fire every schedule tick due at ``at``, each exactly once; what fired."""
        with self._write() as conn:
            fired = scheduling.fire_due(conn, now=at, new_id=new_id)
        self._queued_many(sum(runs for _, _, runs, _ in fired))
        return fired

    def run_now(self, job_id: str, *, at: dt.datetime, new_id: Callable[[], str]) -> int:
        with self._write() as conn:
            made = scheduling.run_now(conn, job_id, now=at, new_id=new_id)
        self._queued_many(made)
        return made

    def _queued_many(self, count: int) -> None:
        """After ``count`` runs were queued at once: on PostgreSQL, refresh the planner's
        statistics of ``runs`` when that was many.

        The claim's queries are planned from them, and until autovacuum's next ANALYZE
        (a minute or more away) they say that no run is queued: the planner then sorts a
        job's whole queue on every claim (13 ms at 10,000 runs, against 0.05 ms on the
        claim index). It is skipped, not waited for, when another ANALYZE or a VACUUM
        holds the table. SQLite's planner uses no statistics here.
        """
        if count < _MANY_QUEUED or self.dialect != "postgresql":
            return
        with self.engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
            try:
                with conn.begin_nested():
                    conn.execute(sa.text("ANALYZE runs"))
            except sa.exc.OperationalError:
                pass  # the table is busy being analyzed or vacuumed: that will do

    def set_paused(self, job_id: str, *, paused: bool, at: dt.datetime) -> None:
        with self._write() as conn:
            scheduling.set_paused(conn, job_id, paused=paused, now=at)

    def get_schedule(self, job_id: str) -> records.Schedule | None:
        with self._read() as conn:
            return scheduling.get_schedule(conn, job_id)

    def list_schedules(
        self, *, limit: int = 1000, job_ids: Sequence[str] | None = None
    ) -> list[records.Schedule]:
        """Schedules (of ``job_ids`` only, when given), the next to fire first."""
        with self._read() as conn:
            return scheduling.list_schedules(conn, limit=limit, job_ids=job_ids)

    # -- hooks and retention -----------------------------------------------------------

    def claim_notices(
        self, *, at: dt.datetime, limit: int, hold_until: dt.datetime
    ) -> list[records.Notice]:
        """Take up to ``limit`` due hook notices to deliver, held until ``hold_until``."""
        with self._read() as conn:
            if not notices.any_due(conn, at=at):
                return []
        with self._write() as conn:
            return notices.claim(conn, at=at, limit=limit, hold_until=hold_until)

    def settle_notice(
        self,
        notice: records.Notice,
        *,
        at: dt.datetime,
        error: str | None = None,
        retry_at: dt.datetime | None = None,
    ) -> None:
        """Record a delivery attempt: delivered, to retry at ``retry_at``, or failed."""
        with self._write() as conn:
            notices.settle(conn, notice, at=at, error=error, retry_at=retry_at)

    def release_notices(self, notice_ids: Sequence[int]) -> None:
        """Hand back notices taken but not delivered: they are due again at once."""
        n = schema.notices.c
        with self._write() as conn:
            conn.execute(
                schema.notices.update().where(n.id.in_(notice_ids)).values(claimed_until=None)
            )

    def list_notices(self, *, job_id: str | None = None) -> list[records.Notice]:
        with self._read() as conn:
            return notices.list_notices(conn, job_id=job_id)

    def prune_runs(self) -> retention.Pruned:
        """Delete the oldest finished runs of jobs beyond their ``max_retained_runs``."""
        with self._read() as conn:
            if not retention.over_limit(conn):
                return retention.Pruned()
        with self._write() as conn:
            return retention.prune(conn)

    def reusable_outputs(self, run_id: str) -> dict[str, dict[str, str]]:
        """A finished run's stored outputs of steps that succeeded: ``{step: {output: uri}}``."""
        with self._read() as conn:
            return endings.reusable_outputs(conn, run_id)

    def queued_count(self, job_id: str) -> int:
        """How many of a job's runs wait in the queue (retries in their backoff too)."""
        r = schema.runs.c
        query = sa.select(sa.func.count()).where(
            r.job_id == job_id, r.state == states.RunState.QUEUED.value
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    # -- workers -----------------------------------------------------------------------

    def register_worker(self, worker: records.Worker) -> None:
        with self._write() as conn:
            conn.execute(schema.workers.insert(), leases.worker_row(worker))

    def heartbeat(self, worker_id: str, *, at: dt.datetime, lease_until: dt.datetime) -> list[str]:
        """Mark a worker alive and renew its runs' leases; returns its runs asked to stop."""
        with self._write() as conn:
            return leases.heartbeat(conn, worker_id=worker_id, at=at, lease_until=lease_until)

    def stop_worker(self, worker_id: str, *, at: dt.datetime) -> None:
        with self._write() as conn:
            conn.execute(
                schema.workers.update()
                .where(schema.workers.c.id == worker_id)
                .values(stopped_at=at)
            )

    def live_workers(self, *, since: dt.datetime) -> list[records.Worker]:
        """Workers that have not stopped and sent a heartbeat after ``since``."""
        w = schema.workers.c
        query = sa.select(schema.workers).where(w.stopped_at.is_(None), w.heartbeat_at > since)
        with self._read() as conn:
            rows = conn.execute(query.order_by(w.started_at)).all()
        return [
            records.Worker(
                id=row.id,
                host=row.host,
                pid=row.pid,
                kind=row.kind,
                slots=row.slots,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                stopped_at=row.stopped_at,
            )
            for row in rows
        ]

    def request_stop(
        self, *, at: dt.datetime, job_id: str | None = None, run_id: str | None = None
    ) -> records.StopOutcome:
        """Stop a job's runs, or one run: unstarted ones end KILLED at once, running ones
        are flagged for the worker that holds them, finished ones are left as they are."""
        with self._write() as conn:
            outcome, events = leases.request_stop(conn, at=at, job_id=job_id, run_id=run_id)
            self._insert_events(conn, events)
        return outcome

    def set_tag_limit(self, tag: str, most: int) -> None:
        """At most ``most`` runs of jobs tagged ``tag`` run at once, across all jobs."""
        with self._write() as conn:
            leases.set_tag_limit(conn, tag, most)

    def tag_limits(self) -> dict[str, int]:
        with self._read() as conn:
            return {row.tag: row.most for row in conn.execute(sa.select(schema.tag_limits))}

    def set_priority(
        self, priority: int, *, job_id: str | None = None, run_id: str | None = None
    ) -> int:
        """Change the priority of a job's (or one run's) runs not yet started; how many."""
        with self._write() as conn:
            return leases.set_priority(conn, priority=priority, job_id=job_id, run_id=run_id)

    def release_runs(
        self, run_ids: Sequence[str], *, worker_id: str, at: dt.datetime, reason: str
    ) -> list[str]:
        """Queue again, in their place, the runs of ``run_ids`` that worker ``worker_id``
        claimed and never started (a worker stopping while it holds runs claimed ahead);
        the ids of those released. Runs no longer STARTING or leased to it are left."""
        if not run_ids:
            return []
        with self._write() as conn:
            released, events = leases.release(
                conn, run_ids=list(run_ids), worker_id=worker_id, at=at, reason=reason
            )
            self._insert_events(conn, events)
        return released

    def recover_lost_runs(self, *, at: dt.datetime) -> list[str]:
        """End as FAILURE "worker lost" every active run whose lease has expired."""
        with self._write() as conn:
            run_ids, events = leases.recover_lost(conn, at=at)
            self._insert_events(conn, events)
        return run_ids

    # -- recording execution -----------------------------------------------------------

    def apply(self, changes: Changes) -> None:
        """Write ``changes`` in one transaction, with an event for every transition.

        Raises ``TransitionError`` (and writes nothing) for a transition the states table
        forbids, or for a run that is no longer in the state the transition starts from.
        """
        _check(changes)
        with self._write() as conn:
            self._insert_events(conn, self._write_changes(conn, changes))

    def _write_changes(self, conn: sa.Connection, changes: Changes) -> list[dict[str, Any]]:
        """Write ``changes`` (checked by ``_check``) but their events; returns the events."""
        self._apply_runs(conn, changes.runs)
        self._apply_steps(conn, changes.steps)
        if changes.logs:
            conn.execute(
                schema.logs.insert(),
                [
                    {
                        "run_id": x.run_id,
                        "step_name": x.step_name,
                        "stream": x.stream,
                        "at": x.at,
                        "level": x.level,
                        "text": x.text,
                    }
                    for x in changes.logs
                ],
            )
        if changes.artifacts:
            conn.execute(
                schema.artifacts.insert(),
                [
                    {
                        "run_id": a.run_id,
                        "step_name": a.step_name,
                        "output_name": a.output_name,
                        "uri": a.uri,
                        "size": a.size,
                        "serializer": a.serializer,
                        "created_at": a.created_at,
                    }
                    for a in changes.artifacts
                ],
            )
        events = [_run_event(t) for t in changes.runs]
        events += [_step_event(s) for s in changes.steps]
        events += endings.follow(
            conn,
            [
                endings.Ended(t.run_id, t.job_id, t.new, t.at, t.kinds)
                for t in changes.runs
                if t.new in states.FINISHED_RUN_STATES and t.follow_up
            ],
        )
        return events

    def _apply_runs(self, conn: sa.Connection, transitions: Sequence[RunTransition]) -> None:
        # A run's successive transitions in one batch become one UPDATE, guarded by the state
        # the first starts from; each transition still gets its own event.
        merged: dict[str, dict[str, Any]] = {}
        for t in transitions:
            row = merged.get(t.run_id)
            if row is None:
                row = merged[t.run_id] = {"b_id": t.run_id, "b_old": t.old.value}
            elif row["state"] != t.old.value:
                raise errors.TransitionError(
                    f"Run {t.run_id} moves from {t.old} in a batch that left it {row['state']}"
                )
            row["state"] = t.new.value
            column = _RUN_TIME_COLUMN.get(t.new)
            if column:
                row[column] = t.at
            if t.worker is not None:
                row["worker"] = t.worker
            if t.reason is not None:
                row["reason"] = t.reason
            if t.note is not None:
                row["note"] = t.note
        # One statement for the whole batch, in run id order: the order in which every
        # transaction that locks several runs locks them (a stop request, a heartbeat).
        params = [
            {"b_id": row["b_id"], "b_old": row["b_old"]}
            | {f"v_{c}": row.get(c) for c in _RUN_UPDATE_COLUMNS}
            for _, row in sorted(merged.items())
        ]
        if not params:
            return
        result = conn.execute(_RUN_UPDATE, params)
        if result.rowcount not in (-1, len(params)):
            raise errors.TransitionError(
                f"{len(params) - result.rowcount} of {len(params)} run(s) were not in the "
                "state their transition starts from; another process changed them"
            )

    def _apply_steps(self, conn: sa.Connection, transitions: Sequence[StepTransition]) -> None:
        # As for runs: a step run inserted and moved in one batch is inserted as it ends up;
        # one moved several times is updated once, guarded by the state it started from.
        inserts: dict[tuple[str, str, int], records.StepRun] = {}
        updates: dict[tuple[str, str, int], tuple[str, records.StepRun]] = {}
        for t in transitions:
            x = t.step_run
            key = (x.run_id, x.step_name, x.attempt)
            if t.old is None or key in inserts:
                inserts[key] = x
            elif key in updates:
                updates[key] = (updates[key][0], x)
            else:
                updates[key] = (t.old.value, x)
        if inserts:
            conn.execute(schema.step_runs.insert(), [_step_row(x) for x in inserts.values()])
        if updates:
            params = [
                {**{f"b_{k}": v for k, v in _step_row(x).items()}, "b_old": old}
                for old, x in updates.values()
            ]
            result = conn.execute(_STEP_UPDATE, params)
            if result.rowcount not in (-1, len(params)):
                raise errors.TransitionError(
                    f"{len(params) - result.rowcount} of {len(params)} step run(s) were not "
                    "recorded in the state their transition starts from; another process "
                    "changed them, or they were never recorded"
                )

    def _insert_events(self, conn: sa.Connection, events: list[dict[str, Any]]) -> None:
        events_mod.insert(conn, events)

    # -- reading what happened ---------------------------------------------------------

    def list_step_runs(self, run_id: str) -> list[records.StepRun]:
        c = schema.step_runs.c
        query = sa.select(schema.step_runs).where(c.run_id == run_id)
        with self._read() as conn:
            rows = conn.execute(
                query.order_by(c.started_at.is_(None), c.started_at, c.step_name, c.attempt)
            ).all()
        return [
            records.StepRun(
                run_id=row.run_id,
                step_name=row.step_name,
                attempt=row.attempt,
                state=states.StepState(row.state),
                started_at=row.started_at,
                finished_at=row.finished_at,
                error_type=row.error_type,
                error_message=row.error_message,
                traceback=row.traceback,
            )
            for row in rows
        ]

    def page_logs(
        self, run_id: str, *, step: str | None = None, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, records.LogLine]]:
        """A run's log lines after position ``after``, in order, at most ``limit``, each with
        its position (increasing; pass the last one as ``after`` to go on)."""
        c = schema.logs.c
        query = sa.select(schema.logs).where(c.run_id == run_id, c.id > after)
        if step is not None:
            query = query.where(c.step_name == step)
        with self._read() as conn:
            rows = conn.execute(query.order_by(c.id).limit(limit)).all()
        return [(row.id, _log_line(row)) for row in rows]

    def list_logs(self, run_id: str, *, step: str | None = None) -> list[records.LogLine]:
        c = schema.logs.c
        query = sa.select(schema.logs).where(c.run_id == run_id)
        if step is not None:
            query = query.where(c.step_name == step)
        with self._read() as conn:
            rows = conn.execute(query.order_by(c.id)).all()
        return [_log_line(row) for row in rows]

    def list_artifacts(self, run_id: str) -> list[records.Artifact]:
        c = schema.artifacts.c
        query = sa.select(schema.artifacts).where(c.run_id == run_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(c.created_at, c.step_name, c.output_name)).all()
        return [
            records.Artifact(
                run_id=row.run_id,
                step_name=row.step_name,
                output_name=row.output_name,
                uri=row.uri,
                size=row.size,
                serializer=row.serializer,
                created_at=row.created_at,
            )
            for row in rows
        ]

    def last_event_id(self) -> int | None:
        """The id of the newest event, None when there is none."""
        with self._read() as conn:
            latest = conn.execute(sa.select(sa.func.max(schema.events.c.id))).scalar()
        return int(latest) if latest is not None else None

    def events_since(
        self,
        after: int,
        *,
        missing: Sequence[int] = (),
        job_id: str | None = None,
        run_id: str | None = None,
        limit: int = 500,
    ) -> list[records.Event]:
        """Events with an id above ``after`` or in ``missing`` (ids seen skipped that may
        still commit), of one job or run if given, in id order, at most ``limit``."""
        c = schema.events.c
        newer: sa.ColumnElement[bool] = c.id > after
        if missing:
            newer = sa.or_(newer, c.id.in_(list(missing)))
        query = sa.select(schema.events).where(newer).order_by(c.id).limit(limit)
        if job_id is not None:
            query = query.where(c.job_id == job_id)
        if run_id is not None:
            query = query.where(c.run_id == run_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_event(row) for row in rows]

    def list_events(
        self,
        *,
        job_id: str | None = None,
        run_id: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[records.Event]:
        """Events in the order they were written, optionally after event id ``after``."""
        c = schema.events.c
        query = sa.select(schema.events).order_by(c.id)
        if job_id is not None:
            query = query.where(c.job_id == job_id)
        if run_id is not None:
            query = query.where(c.run_id == run_id)
        if after is not None:
            query = query.where(c.id > after)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_event(row) for row in rows]


def _check(changes: Changes) -> None:
    """Raise ``TransitionError`` for a transition in ``changes`` the states table forbids."""
    for t in changes.runs:
        states.check_run_transition(t.old, t.new)
    for s in changes.steps:
        if s.old is not None:
            states.check_step_transition(s.old, s.step_run.state)


# What a batch of transitions may set on a run; the columns a run's transitions leave
# unset keep their values.
_RUN_UPDATE_COLUMNS = (
    "state",
    "queued_at",
    "started_at",
    "finished_at",
    "worker",
    "reason",
    "note",
)

# A run's transitions in a batch, as one row, guarded by the state the first starts from.
_RUN_UPDATE = (
    schema.runs.update()
    .where(schema.runs.c.id == sa.bindparam("b_id"), schema.runs.c.state == sa.bindparam("b_old"))
    .values(
        {
            name: sa.func.coalesce(
                sa.bindparam(f"v_{name}", type_=schema.runs.c[name].type), schema.runs.c[name]
            )
            for name in _RUN_UPDATE_COLUMNS
        }
    )
)


# A step run's new record, guarded by the state its first transition starts from.
_STEP_UPDATE = (
    schema.step_runs.update()
    .where(
        schema.step_runs.c.run_id == sa.bindparam("b_run_id"),
        schema.step_runs.c.step_name == sa.bindparam("b_step_name"),
        schema.step_runs.c.attempt == sa.bindparam("b_attempt"),
        schema.step_runs.c.state == sa.bindparam("b_old"),
    )
    .values(
        {
            name: sa.bindparam(f"b_{name}", type_=schema.step_runs.c[name].type)
            for name in (
                "state",
                "started_at",
                "finished_at",
                "error_type",
                "error_message",
                "traceback",
            )
        }
    )
)


def _one_by_prefix(conn: sa.Connection, table: sa.Table, key: str, noun: str) -> sa.Row[Any]:
    if not key or not all(ch.isalnum() for ch in key):
        raise errors.NotFoundError(f"No {noun} {key!r}: ids are letters and digits")
    row = conn.execute(sa.select(table).where(table.c.id == key)).first()
    if row is not None:
        return row
    # The key is letters and digits only, so it holds no wildcard. SQLite's LIKE ignores
    # case; its GLOB does not, like PostgreSQL's LIKE.
    if conn.dialect.name == "sqlite":
        starts = table.c.id.op("GLOB")(f"{key}*")
    else:
        starts = table.c.id.like(f"{key}%")
    rows = conn.execute(sa.select(table).where(starts).order_by(table.c.id).limit(3)).all()
    if not rows:
        raise errors.NotFoundError(f"No {noun} {key!r}; list them with `runyard {noun} list`")
    if len(rows) > 1:
        raise errors.NotFoundError(
            f"{noun.capitalize()} id {key!r} is ambiguous: it starts "
            f"{', '.join(r.id for r in rows)}{'...' if len(rows) > 2 else ''}; give more of it"
        )
    return rows[0]


def _job(row: sa.Row[Any], tags: tuple[str, ...]) -> records.Job:
    return records.Job(
        id=row.id,
        name=row.name,
        pipeline_name=row.pipeline_name,
        pipeline_version=row.pipeline_version,
        pipeline_ref=row.pipeline_ref,
        grid=row.grid,
        deselected=tuple(row.deselected),
        tags=tags,
        max_parallel_runs=row.max_parallel_runs,
        run_count=row.run_count,
        run_timeout=row.run_timeout,
        memory_limit_mb=row.memory_limit_mb,
        created_at=row.created_at,
        retry=retries.RetryPolicy.from_json(row.retry_policy) if row.retry_policy else None,
        hooks=tuple(hooks.Hook.from_json(h) for h in row.hooks or ()),
        max_retained_runs=row.max_retained_runs,
        snapshot_id=row.snapshot_id,
        parent_job_id=row.parent_job_id,
        parent_run_id=row.parent_run_id,
    )


def _snapshot(row: sa.Row[Any]) -> snapshots.Snapshot:
    return snapshots.Snapshot(
        id=row.id,
        root=row.root,
        files=tuple(snapshots.SnapshotFile.from_json(f) for f in row.files),
        total_bytes=row.total_bytes,
        environment=snapshots.Environment.from_json(row.environment),
        created_at=row.created_at,
        data_dir=row.data_dir,
    )


def _event(row: sa.Row[Any]) -> records.Event:
    return records.Event(
        id=row.id,
        at=row.at,
        kind=row.kind,
        job_id=row.job_id,
        run_id=row.run_id,
        step_name=row.step_name,
        old_state=row.old_state,
        new_state=row.new_state,
        message=row.message,
    )


def _log_line(row: sa.Row[Any]) -> records.LogLine:
    return records.LogLine(
        run_id=row.run_id,
        step_name=row.step_name,
        stream=row.stream,
        at=row.at,
        text=row.text,
        level=row.level,
    )


def _run(row: sa.Row[Any]) -> records.Run:
    return records.Run(
        id=row.id,
        job_id=row.job_id,
        index=row.idx,
        params=row.params,
        state=states.RunState(row.state),
        created_at=row.created_at,
        queued_at=row.queued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        worker=row.worker,
        reason=row.reason,
        priority=row.priority,
        stop_requested_at=row.stop_requested_at,
        tick_at=row.tick_at,
        parent_run_id=row.parent_run_id,
        retried_by=row.retried_by,
        reuse=row.reuse,
        attempt=row.attempt,
        not_before=row.not_before,
        note=row.note,
    )


def _step_row(x: records.StepRun) -> dict[str, Any]:
    return {
        "run_id": x.run_id,
        "step_name": x.step_name,
        "attempt": x.attempt,
        "state": x.state.value,
        "started_at": x.started_at,
        "finished_at": x.finished_at,
        "error_type": x.error_type,
        "error_message": x.error_message,
        "traceback": x.traceback,
    }


def _run_event(t: RunTransition) -> dict[str, Any]:
    return events_mod.run_state(t.at, t.job_id, t.run_id, t.old.value, t.new.value, t.reason)


def _step_event(s: StepTransition) -> dict[str, Any]:
    x = s.step_run
    return {
        "at": s.at,
        "kind": "step_state",
        "job_id": s.job_id,
        "run_id": x.run_id,
        "step_name": x.step_name,
        "old_state": s.old.value if s.old else None,
        "new_state": x.state.value,
        "message": x.error_message,
    }


def _aware(value: Any) -> dt.datetime | None:
    """Aggregates bypass the column type on SQLite: parse and mark them UTC here."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
