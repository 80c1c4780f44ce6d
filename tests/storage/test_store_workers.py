"""Workers and leases in the store: claims within limits and by priority, heartbeats that
renew leases, stop requests, and runs whose worker was lost."""

import datetime as dt

import pytest

from runyard import errors
from runyard.core import records, states
from runyard.storage import store as store_mod

from .conftest import Clock, JobBuilder

R = states.RunState
S = states.StepState


def worker(store: store_mod.Store, at: dt.datetime, wid: str = "w1") -> records.Worker:
    made = records.Worker(wid, "host", 1, "worker", 2, at, at)
    store.register_worker(made)
    return made


def test_claims_keep_each_job_within_its_parallel_limit(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    narrow, _ = jobs.create(runs=5, max_parallel_runs=2)
    wide, _ = jobs.create(runs=3, max_parallel_runs=10)
    store.queue_runs(narrow.id, at=at(1))
    store.queue_runs(wide.id, at=at(2))

    claimed = store.claim_runs(job_id=None, worker="w", limit=10, at=at(3))
    by_job = {j: [r for r in claimed if r.job_id == j] for j in (narrow.id, wide.id)}
    assert len(by_job[narrow.id]) == 2 and len(by_job[wide.id]) == 3
    # The narrow job is full until one of its runs ends.
    assert store.claim_runs(job_id=None, worker="w", limit=10, at=at(4)) == []
    run = by_job[narrow.id][0]
    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(run.id, narrow.id, R.STARTING, R.FAILURE, at(5), reason="x")
            ]
        )
    )
    (next_run,) = store.claim_runs(job_id=None, worker="w", limit=10, at=at(6))
    assert next_run.job_id == narrow.id and next_run.index == 2
    # A job's own executor claims past the limit: it keeps to it itself.
    more = store.claim_runs(job_id=narrow.id, worker="w", limit=10, at=at(7), within_limits=False)
    assert [r.index for r in more] == [3, 4]


def test_a_claim_writes_the_changes_it_carries_first_in_its_transaction(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, _ = jobs.create(runs=3, max_parallel_runs=1)
    store.queue_runs(job.id, at=at(1))
    (first,) = store.claim_runs(job_id=None, worker="w", limit=5, at=at(2))
    ended = store_mod.Changes(
        runs=[
            store_mod.RunTransition(first.id, job.id, R.STARTING, R.RUNNING, at(3), "h:1"),
            store_mod.RunTransition(first.id, job.id, R.RUNNING, R.FINISHING, at(4)),
            store_mod.RunTransition(first.id, job.id, R.FINISHING, R.SUCCESS, at(4)),
        ]
    )

    # The job is full until its run's end is written; written first, it frees the slot.
    (second,) = store.claim_runs(job_id=None, worker="w", limit=5, at=at(5), changes=ended)

    assert second.index == 1
    assert store.get_run(first.id).state is R.SUCCESS
    transitions = [
        (e.run_id, e.new_state) for e in store.list_events(job_id=job.id) if e.at >= at(3)
    ]
    assert transitions == [
        (first.id, "RUNNING"),
        (first.id, "FINISHING"),
        (first.id, "SUCCESS"),
        (second.id, "STARTING"),
    ]


def test_a_claim_whose_changes_are_refused_writes_and_claims_nothing(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, _ = jobs.create(runs=3)
    store.queue_runs(job.id, at=at(1))
    (first,) = store.claim_runs(job_id=None, worker="w", limit=1, at=at(2))
    written = store.list_events(job_id=job.id)
    stale = store_mod.Changes(  # the run is STARTING, not RUNNING
        runs=[store_mod.RunTransition(first.id, job.id, R.RUNNING, R.FINISHING, at(3))]
    )

    with pytest.raises(errors.TransitionError):
        store.claim_runs(job_id=None, worker="w", limit=1, at=at(4), changes=stale)

    assert store.list_events(job_id=job.id) == written
    assert [r.state for r in store.list_runs(job.id)] == [R.STARTING, R.QUEUED, R.QUEUED]


def test_higher_priority_runs_are_claimed_first_then_oldest(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    old, _ = jobs.create(runs=2)
    urgent, _ = jobs.create(runs=2, priority=5)
    store.queue_runs(old.id, at=at(1))
    store.queue_runs(urgent.id, at=at(2))
    order = [store.claim_runs(job_id=None, worker="w", limit=1, at=at(3 + i))[0] for i in range(4)]
    assert [r.job_id for r in order] == [urgent.id, urgent.id, old.id, old.id]


def test_heartbeats_renew_leases_and_lost_runs_end_as_failure(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    alive = worker(store, at(0), "alive")
    dead = worker(store, at(0), "dead")
    job, _ = jobs.create(runs=2)
    store.queue_runs(job.id, at=at(1))
    (kept,) = store.claim_runs(
        job_id=None, worker="h:1", limit=1, at=at(2), worker_id=alive.id, lease_until=at(12)
    )
    (lost,) = store.claim_runs(
        job_id=None, worker="h:2", limit=1, at=at(2), worker_id=dead.id, lease_until=at(12)
    )
    store.apply(
        store_mod.Changes(
            runs=[store_mod.RunTransition(lost.id, job.id, R.STARTING, R.RUNNING, at(3))],
            steps=[
                store_mod.StepTransition(
                    job.id, records.StepRun(lost.id, "a", 1, S.PENDING), None, at(3)
                ),
                store_mod.StepTransition(
                    job.id, records.StepRun(lost.id, "b", 1, S.PENDING), None, at(3)
                ),
                store_mod.StepTransition(
                    job.id,
                    records.StepRun(lost.id, "a", 1, S.RUNNING, started_at=at(3)),
                    S.PENDING,
                    at(3),
                ),
            ],
        )
    )
    assert store.heartbeat(alive.id, at=at(10), lease_until=at(20)) == []
    assert store.recover_lost_runs(at=at(11)) == []  # both leases still hold

    assert store.recover_lost_runs(at=at(15)) == [lost.id]
    ended = store.get_run(lost.id)
    assert ended.state is R.FAILURE and "worker lost" in (ended.reason or "")
    steps = {s.step_name: s for s in store.list_step_runs(lost.id)}
    assert steps["a"].state is S.FAILURE and steps["a"].error_type == "WorkerLost"
    assert steps["b"].state is S.KILLED
    assert (steps["b"].error_message or "").startswith("not recorded as started: worker lost")
    assert store.get_run(kept.id).state is R.STARTING
    events = [(e.kind, e.old_state, e.new_state) for e in store.list_events(run_id=lost.id)]
    assert ("run_state", "RUNNING", "FAILURE") in events
    assert ("step_state", "RUNNING", "FAILURE") in events
    assert [w.id for w in store.live_workers(since=at(5))] == ["alive"]
    store.stop_worker(alive.id, at=at(21))
    assert store.live_workers(since=at(5)) == []


def test_a_worker_releases_only_its_own_unstarted_claims_back_into_their_place(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    mine = worker(store, at(0), "mine")
    other = worker(store, at(0), "other")
    job, _ = jobs.create(runs=6)
    store.queue_runs(job.id, at=at(1))
    first, second, third, stopped = store.claim_runs(
        job_id=None, worker="h:1", limit=4, at=at(2), worker_id=mine.id, lease_until=at(12)
    )
    (others,) = store.claim_runs(
        job_id=None, worker="h:2", limit=1, at=at(2), worker_id=other.id, lease_until=at(12)
    )
    store.apply(
        store_mod.Changes(
            runs=[store_mod.RunTransition(first.id, job.id, R.STARTING, R.RUNNING, at(3))]
        )
    )
    store.request_stop(at=at(3), run_id=stopped.id)  # not read by its worker yet
    ids = [first.id, second.id, third.id, stopped.id, others.id]
    released = store.release_runs(ids, worker_id=mine.id, at=at(4), reason="back: stopped")
    # Its started run and the other worker's claim are left as they are; the run whose
    # stop was asked ends as asked.
    assert sorted(released) == sorted([second.id, third.id])
    assert store.get_run(first.id).state is R.RUNNING
    assert store.get_run(others.id).state is R.STARTING
    ended = store.get_run(stopped.id)
    assert (ended.state, ended.reason) == (R.KILLED, "stopped by request")
    for run_id in released:
        run = store.get_run(run_id)
        assert (run.state, run.started_at, run.worker) == (R.QUEUED, None, None)
        last = store.list_events(run_id=run_id)[-1]
        assert (last.old_state, last.new_state, last.message) == (
            "STARTING",
            "QUEUED",
            "back: stopped",
        )
    # They hold no lease: recovering lost runs (the other worker's, whose lease lapsed)
    # leaves them queued, and the next claim takes them first, in order.
    store.heartbeat(mine.id, at=at(5), lease_until=at(15))
    assert store.recover_lost_runs(at=at(13)) == [others.id]
    assert {store.get_run(run_id).state for run_id in released} == {R.QUEUED}
    again = store.claim_runs(job_id=None, worker="h:2", limit=3, at=at(6), worker_id=other.id)
    assert [r.index for r in again] == [second.index, third.index, 5]
    assert store.release_runs([], worker_id=mine.id, at=at(7), reason="x") == []


def test_stop_requests_end_unstarted_runs_and_flag_running_ones(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    holder = worker(store, at(0))
    job, runs = jobs.create(runs=4)
    store.queue_runs(job.id, at=at(1))
    running = store.claim_runs(
        job_id=None, worker="h:1", limit=2, at=at(2), worker_id=holder.id, lease_until=at(30)
    )
    outcome = store.request_stop(at=at(3), job_id=job.id)
    assert set(outcome.killed) == {r.id for r in runs} - {r.id for r in running}
    assert set(outcome.requested) == {r.id for r in running}
    assert outcome.finished == ()
    for run in runs:
        got = store.get_run(run.id)
        if run.id in outcome.killed:
            assert got.state is R.KILLED and got.reason == "stopped by request"
        else:
            assert got.state is R.STARTING and got.stop_requested_at == at(3)
    # The worker learns of it on its next heartbeat.
    assert set(store.heartbeat(holder.id, at=at(4), lease_until=at(30))) == set(outcome.requested)
    # Asking again changes nothing and says the killed runs are over.
    again = store.request_stop(at=at(5), job_id=job.id)
    assert set(again.finished) == set(outcome.killed) and again.killed == ()
    assert store.get_run(running[0].id).stop_requested_at == at(3)


def test_concurrent_claimers_never_exceed_a_jobs_limit(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, database_url: str
) -> None:
    import threading

    job, _ = jobs.create(runs=40, max_parallel_runs=7)
    store.queue_runs(job.id, at=at(1))
    start = threading.Barrier(4)
    got: list[str] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        own = store_mod.Store.open(database_url)
        try:
            start.wait(timeout=30)
            for _ in range(5):
                batch = own.claim_runs(job_id=None, worker=f"w{n}", limit=3, at=at(2))
                with lock:
                    got.extend(r.id for r in batch)
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(got) == len(set(got)) == 7
    assert sum(r.state is R.STARTING for r in store.list_runs(job.id)) == 7


def test_a_tag_limit_holds_across_jobs_and_workers(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    store.set_tag_limit("db", 1)
    first, _ = jobs.create(runs=3, tags=["db"])
    second, _ = jobs.create(runs=3, tags=["db", "nightly"])
    free, _ = jobs.create(runs=2, tags=["nightly"])
    for job in (first, second, free):
        store.queue_runs(job.id, at=at(1))
    claimed = store.claim_runs(job_id=None, worker="w1", limit=10, at=at(2))
    tagged = [r for r in claimed if r.job_id in (first.id, second.id)]
    assert len(tagged) == 1  # one run tagged db at a time, whichever job it is in
    assert len([r for r in claimed if r.job_id == free.id]) == 2
    assert store.claim_runs(job_id=None, worker="w2", limit=10, at=at(3)) == []
    # Even the job's own executor keeps to the tag's limit.
    assert (
        store.claim_runs(job_id=first.id, worker="w3", limit=5, at=at(4), within_limits=False) == []
    )
    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(
                    tagged[0].id, tagged[0].job_id, R.STARTING, R.FAILURE, at(5)
                )
            ]
        )
    )
    assert len(store.claim_runs(job_id=None, worker="w2", limit=10, at=at(6))) == 1
    store.set_tag_limit("db", 3)
    assert store.tag_limits() == {"db": 3}
    assert len(store.claim_runs(job_id=None, worker="w2", limit=10, at=at(7))) == 2


def test_priority_changes_while_queued_reorder_the_queue(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    early, _ = jobs.create(runs=2)
    late, late_runs = jobs.create(runs=2)
    store.queue_runs(early.id, at=at(1))
    store.queue_runs(late.id, at=at(2))
    assert store.set_priority(7, job_id=late.id) == 2
    (first,) = store.claim_runs(job_id=None, worker="w", limit=1, at=at(3))
    assert first.job_id == late.id
    # Only runs not yet started change.
    assert store.set_priority(9, run_id=first.id) == 0
    assert store.set_priority(9, run_id=late_runs[1].id) == 1
