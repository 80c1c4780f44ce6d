"""The metadata store's contract for the queue: queueing runs and claiming them.

Every test runs on SQLite and on PostgreSQL. A claimed run must never reach two workers, so
the last test claims from several threads at once, each with its own store.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from runyard.core import states
from runyard.storage import store as store_mod

if TYPE_CHECKING:
    from tests.storage.conftest import JobBuilder

R = states.RunState
Clock = Callable[[float], dt.datetime]


def test_queue_runs_moves_created_runs_to_queued_with_an_event_each(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, runs = jobs.create(runs=3)
    other, _ = jobs.create(runs=2)

    assert store.queue_runs(job.id, at=at(1)) == 3

    assert [(r.state, r.queued_at) for r in store.list_runs(job.id)] == [(R.QUEUED, at(1))] * 3
    assert {r.state for r in store.list_runs(other.id)} == {R.CREATED}
    events = [e for e in store.list_events(job_id=job.id) if e.kind == "run_state"]
    assert sorted((e.run_id, e.old_state, e.new_state, e.at) for e in events) == sorted(
        (r.id, "CREATED", "QUEUED", at(1)) for r in runs
    )


def test_queue_runs_a_second_time_queues_nothing(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, _ = jobs.create(runs=3)
    store.queue_runs(job.id, at=at(1))
    written = store.list_events(job_id=job.id)

    assert store.queue_runs(job.id, at=at(2)) == 0

    assert store.list_events(job_id=job.id) == written
    assert {r.queued_at for r in store.list_runs(job.id)} == {at(1)}


def test_claim_runs_hands_out_queued_runs_in_grid_order_up_to_the_limit(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, _ = jobs.create(runs=5, shuffled=True)
    store.queue_runs(job.id, at=at(1))

    first = store.claim_runs(job_id=job.id, worker="host-a:1", limit=2, at=at(2))
    second = store.claim_runs(job_id=job.id, worker="host-b:2", limit=2, at=at(3))
    third = store.claim_runs(job_id=job.id, worker="host-a:1", limit=2, at=at(4))

    assert [r.index for r in first] == [0, 1]
    assert [r.index for r in second] == [2, 3]
    assert [r.index for r in third] == [4]
    assert store.claim_runs(job_id=job.id, worker="host-a:1", limit=2, at=at(5)) == []
    assert {(r.state, r.worker, r.started_at) for r in first} == {(R.STARTING, "host-a:1", at(2))}
    assert {(r.state, r.worker, r.started_at) for r in second} == {(R.STARTING, "host-b:2", at(3))}
    assert store.list_runs(job.id) == first + second + third
    claims = [
        (e.run_id, e.at)
        for e in store.list_events(job_id=job.id)
        if (e.old_state, e.new_state) == ("QUEUED", "STARTING")
    ]
    assert sorted(claims) == sorted((r.id, r.started_at) for r in first + second + third)


def test_claim_runs_ignores_runs_that_are_not_queued(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    created, _ = jobs.create(runs=2)
    queued, queued_runs = jobs.create(runs=1)
    store.queue_runs(queued.id, at=at(1))

    claimed = store.claim_runs(job_id=None, worker="w:1", limit=10, at=at(2))

    assert [r.id for r in claimed] == [queued_runs[0].id]
    assert store.claim_runs(job_id=created.id, worker="w:1", limit=10, at=at(3)) == []
    assert {r.state for r in store.list_runs(created.id)} == {R.CREATED}


def test_claim_runs_filters_by_job(store: store_mod.Store, jobs: JobBuilder, at: Clock) -> None:
    first, _ = jobs.create(runs=2)
    second, second_runs = jobs.create(runs=2)
    store.queue_runs(first.id, at=at(1))
    store.queue_runs(second.id, at=at(2))

    claimed = store.claim_runs(job_id=second.id, worker="w:1", limit=10, at=at(3))

    assert [r.id for r in claimed] == [r.id for r in second_runs]
    assert {r.state for r in store.list_runs(first.id)} == {R.QUEUED}


def test_claim_runs_without_a_job_takes_the_longest_queued_runs_first(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    newer, _ = jobs.create(runs=2, created_at=at(0))
    older, _ = jobs.create(runs=2, created_at=at(1))
    store.queue_runs(older.id, at=at(5))  # queued first, though created later
    store.queue_runs(newer.id, at=at(10))

    claimed = store.claim_runs(job_id=None, worker="w:1", limit=3, at=at(11))

    assert sorted((r.job_id, r.index) for r in claimed) == sorted(
        [(older.id, 0), (older.id, 1), (newer.id, 0)]
    )


def test_concurrent_claimers_never_get_the_same_run(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, database_url: str
) -> None:
    job, runs = jobs.create(runs=120, max_parallel_runs=1000)
    store.queue_runs(job.id, at=at(1))
    workers = [f"host-{n}:{n}" for n in range(4)]
    start = threading.Barrier(len(workers))
    claimed: dict[str, list[str]] = {}
    failures: list[BaseException] = []

    def claim_until_empty(worker: str) -> None:
        own = store_mod.Store.open(database_url)  # its own engine and connections
        try:
            start.wait(timeout=30)
            ids: list[str] = []
            while batch := own.claim_runs(job_id=job.id, worker=worker, limit=3, at=at(2)):
                assert len(batch) <= 3, f"{worker} was handed {len(batch)} runs for limit=3"
                ids += [r.id for r in batch]
            claimed[worker] = ids
        except BaseException as exc:
            failures.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=claim_until_empty, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    everything = [run_id for ids in claimed.values() for run_id in ids]
    assert len(everything) == len(set(everything)), "a run was claimed twice"
    assert set(everything) == {r.id for r in runs}
    owners = {run_id: worker for worker, ids in claimed.items() for run_id in ids}
    assert {r.id: r.worker for r in store.list_runs(job.id)} == owners
    assert {r.state for r in store.list_runs(job.id)} == {R.STARTING}
    starts = [e.run_id for e in store.list_events(job_id=job.id) if e.new_state == "STARTING"]
    assert sorted(starts) == sorted(everything)


def test_claim_runs_without_a_job_finds_every_job_with_room_and_queued_runs(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    # Ids in a known order, so that jobs with nothing to claim sit between the others.
    a, _ = jobs.create(runs=2, job_id="a" * 32)
    b, _ = jobs.create(runs=2, job_id="b" * 32)  # never queued
    c, _ = jobs.create(runs=3, job_id="c" * 32, max_parallel_runs=1)
    d, _ = jobs.create(runs=1, job_id="d" * 32)
    e, _ = jobs.create(runs=1, job_id="e" * 32)
    for n, job in enumerate((a, c, d, e)):
        store.queue_runs(job.id, at=at(n))
    (full,) = store.claim_runs(job_id=c.id, worker="w:1", limit=5, at=at(5))
    store.kill_unstarted_runs(d.id, at=at(6), reason="stopped")

    claimed = store.claim_runs(job_id=None, worker="w:2", limit=10, at=at(7))

    assert full.index == 0
    assert sorted((r.job_id, r.index) for r in claimed) == [
        (a.id, 0),
        (a.id, 1),
        (e.id, 0),
    ]
    assert {r.state for r in store.list_runs(b.id)} == {R.CREATED}


def test_a_claim_reads_indexes_and_never_sorts_the_queue(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    """A claim's cost must not grow with the queue: on SQLite, whose plans do not depend
    on statistics, none of its queries scans ``runs`` or sorts in a temporary B-tree, and
    it updates the runs it takes by their ids."""
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL plans from statistics: checked on SQLite")
    for n in range(3):
        job, _ = jobs.create(runs=50, max_parallel_runs=5)
        store.queue_runs(job.id, at=at(n))
    store.set_tag_limit("db", 3)
    statements: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, params: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE")):
            statements.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert len(store.claim_runs(job_id=None, worker="w", limit=4, at=at(9))) == 4
        assert len(store.claim_runs(job_id=job.id, worker="w", limit=2, at=at(9))) == 2
        mine = store.claim_runs(job_id=job.id, worker="w", limit=9, at=at(9), within_limits=False)
        assert len(mine) == 9
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)

    assert len([s for s, _ in statements if s.startswith("UPDATE")]) == 3
    with store.engine.connect() as conn:
        for statement, params in statements:
            plan = [
                row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            ]
            assert not [p for p in plan if "TEMP B-TREE" in p or p.startswith("SCAN runs")], (
                statement,
                plan,
            )
            if statement.startswith("UPDATE"):
                assert [p for p in plan if " runs " in f"{p} "] == [
                    "SEARCH runs USING INDEX sqlite_autoindex_runs_1 (id=?)"
                ], plan


def test_queueing_many_runs_refreshes_postgresql_statistics(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    """Until the planner knows that runs are queued, it sorts a job's whole queue on every
    claim; a bulk queue tells it at once rather than at autovacuum's next visit."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite plans these queries without statistics")
    job, _ = jobs.create(runs=1000)

    store.queue_runs(job.id, at=at(1))

    with store.engine.connect() as conn:
        known = conn.execute(
            sa.text(
                "SELECT most_common_vals::text FROM pg_stats "
                "WHERE tablename = 'runs' AND attname = 'state'"
            )
        ).scalar_one()
    assert known == "{QUEUED}"
