"""What follows a run's end in the store: automatic retries by the job's policy (with their
backoff respected by claims), the hooks' notices in the outbox, each job completion noticed
once, and deleting runs beyond a job's ``max_retained_runs``."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from runyard.core import hooks, records, retries, states
from runyard.storage import store as store_mod

from .conftest import Clock, JobBuilder, Make

R = states.RunState
S = states.StepState
N = states.NoticeState
E = hooks.HookEvent


def fail(
    store: store_mod.Store,
    run: records.Run,
    when: dt.datetime,
    make: type[Make],
    kinds: tuple[str, ...] = ("builtins.ConnectionError", "builtins.OSError"),
) -> None:
    """Record ``run`` (STARTING) running step ``a`` to success (or reusing its output, in a
    retry) and step ``b`` to failure."""
    reused = "a" in (run.reuse or {})
    store.apply(
        store_mod.Changes(
            runs=[
                make.move(run, R.STARTING, R.RUNNING, when),
                make.move(run, R.RUNNING, R.FINISHING, when),
                store_mod.RunTransition(
                    run.id, run.job_id, R.FINISHING, R.FAILURE, when, reason="b broke", kinds=kinds
                ),
            ],
            steps=[
                make.step(run, "a", S.SKIPPED if reused else S.SUCCESS, None, when),
                make.step(run, "b", S.FAILURE, None, when, error_type=kinds[0]),
            ],
            artifacts=[] if reused else [make.artifact(run, "a", "result", when)],
        )
    )


def succeed(store: store_mod.Store, run: records.Run, when: dt.datetime, make: type[Make]) -> None:
    store.apply(
        store_mod.Changes(
            runs=[
                make.move(run, R.STARTING, R.RUNNING, when),
                make.move(run, R.RUNNING, R.FINISHING, when),
                make.move(run, R.FINISHING, R.SUCCESS, when),
            ]
        )
    )


def claim_one(store: store_mod.Store, job: records.Job, when: dt.datetime) -> list[records.Run]:
    return store.claim_runs(job_id=job.id, worker="w:1", limit=10, at=when)


def test_a_failed_run_is_queued_again_after_its_backoff_reusing_what_succeeded(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    policy = retries.RetryPolicy(retries=2, delay=10, backoff=3, jitter=0, on=("ConnectionError",))
    job, _ = jobs.create(runs=1, retry=policy)
    store.queue_runs(job.id, at=at(0))
    (first,) = claim_one(store, job, at(1))
    fail(store, first, at(2), make)

    parent = store.get_run(first.id)
    assert parent.state is R.FAILURE and parent.retried_by is not None
    retry = store.get_run(parent.retried_by)
    assert retry.state is R.QUEUED and retry.parent_run_id == first.id
    assert (retry.attempt, retry.index, retry.params) == (2, first.index, first.params)
    assert retry.not_before == at(12)  # 10 s after the failure
    assert retry.reuse == {"a": {"result": f"file:///blobs/{first.id}/a/result"}}
    assert [a.step_name for a in store.list_artifacts(retry.id)] == ["a"]
    # The job is not over: its failed run no longer counts, its retry waits.
    assert store.job_summary(job.id).state is states.JobState.QUEUED
    assert any(e.kind == "run_retry" for e in store.list_events(run_id=retry.id))

    assert claim_one(store, job, at(11)) == []  # still in its backoff
    (second,) = claim_one(store, job, at(12))
    assert second.id == retry.id
    fail(store, second, at(13), make)
    third = store.get_run(store.get_run(second.id).retried_by or "")
    assert third.attempt == 3 and third.not_before == at(13 + 30)  # 10 s x 3

    (taken,) = claim_one(store, job, at(50))
    fail(store, taken, at(51), make)
    last = store.get_run(taken.id)
    assert last.state is R.FAILURE and last.retried_by is None  # two retries were all it had
    summary = store.job_summary(job.id)
    assert summary.state is states.JobState.FAILURE and summary.counts == {R.FAILURE: 1}


@pytest.mark.parametrize(
    ("on", "kinds", "retried"),
    [
        ((), ("builtins.ValueError",), True),  # no filter: every failure
        (
            ("ConnectionError",),
            ("builtins.ConnectionRefusedError", "builtins.ConnectionError"),
            True,
        ),
        (("builtins.ConnectionError",), ("builtins.ConnectionError",), True),
        (("ConnectionError",), ("builtins.ValueError", "builtins.Exception"), False),
        (("WorkerLost",), ("TimedOut",), False),
    ],
)
def test_only_failures_of_the_chosen_kinds_are_retried(
    store: store_mod.Store,
    jobs: JobBuilder,
    at: Clock,
    make: type[Make],
    on: tuple[str, ...],
    kinds: tuple[str, ...],
    retried: bool,
) -> None:
    job, _ = jobs.create(runs=1, retry=retries.RetryPolicy(retries=3, on=on))
    store.queue_runs(job.id, at=at(0))
    (run,) = claim_one(store, job, at(1))
    fail(store, run, at(2), make, kinds=kinds)
    assert (store.get_run(run.id).retried_by is not None) is retried


def test_a_killed_run_is_never_retried(store: store_mod.Store, jobs: JobBuilder, at: Clock) -> None:
    job, _ = jobs.create(runs=2, retry=retries.RetryPolicy(retries=3))
    store.queue_runs(job.id, at=at(0))
    (running,) = store.claim_runs(job_id=job.id, worker="w:1", limit=1, at=at(1))
    store.request_stop(at=at(2), job_id=job.id)  # the queued one ends KILLED at once
    store.apply(
        store_mod.Changes(
            runs=[store_mod.RunTransition(running.id, job.id, R.STARTING, R.KILLED, at(3))]
        )
    )
    assert {r.state for r in store.list_runs(job.id)} == {R.KILLED}
    assert all(r.retried_by is None for r in store.list_runs(job.id))


def test_a_run_whose_worker_was_lost_is_retried_while_it_has_retries(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, _ = jobs.create(runs=1, retry=retries.RetryPolicy(retries=1, on=("WorkerLost",)))
    store.queue_runs(job.id, at=at(0))
    store.register_worker(records.Worker("w1", "host", 1, "worker", 1, at(0), at(0)))
    (run,) = store.claim_runs(
        job_id=None, worker="h:1", limit=1, at=at(1), worker_id="w1", lease_until=at(5)
    )
    assert store.recover_lost_runs(at=at(6)) == [run.id]
    lost = store.get_run(run.id)
    assert lost.state is R.FAILURE and lost.reason and lost.reason.startswith("worker lost")
    retry = store.get_run(lost.retried_by or "")
    assert retry.state is R.QUEUED and retry.attempt == 2

    (again,) = store.claim_runs(
        job_id=None, worker="h:2", limit=1, at=at(7), worker_id="w1", lease_until=at(9)
    )
    assert again.id == retry.id
    store.recover_lost_runs(at=at(10))
    assert store.get_run(retry.id).state is R.FAILURE
    assert store.get_run(retry.id).retried_by is None  # its one retry is spent
    assert store.job_summary(job.id).state is states.JobState.FAILURE


def test_run_hooks_get_a_notice_per_hook_and_a_retried_failure_gets_none(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    job, _ = jobs.create(
        runs=2,
        retry=retries.RetryPolicy(retries=1),
        hooks=[
            hooks.Hook(E.RUN_FAILURE, "https://hooks.example.com/secret-token"),
            hooks.Hook(E.RUN_FAILURE, "/srv/hooks.py:page"),
            hooks.Hook(E.RUN_SUCCESS, "/srv/hooks.py:log"),
        ],
    )
    store.queue_runs(job.id, at=at(0))
    good, bad = claim_one(store, job, at(1))
    succeed(store, good, at(2), make)
    fail(store, bad, at(3), make)  # retried: no failure notice yet
    notices = store.list_notices(job_id=job.id)
    assert [(n.event, n.run_id) for n in notices] == [(E.RUN_SUCCESS, good.id)]
    assert notices[0].payload["run"]["state"] == "SUCCESS"
    assert notices[0].payload["job"]["pipeline"] == "etl"

    (retry,) = claim_one(store, job, at(4))
    fail(store, retry, at(5), make)  # no retries left: a failure for good
    failures = [n for n in store.list_notices(job_id=job.id) if n.event is E.RUN_FAILURE]
    assert sorted(n.target for n in failures) == [
        "/srv/hooks.py:page",
        "https://hooks.example.com/secret-token",
    ]
    assert all(n.run_id == retry.id and n.state is N.PENDING for n in failures)
    assert failures[0].payload["run"]["attempt"] == 2
    assert failures[0].payload["run"]["reason"] == "b broke"


def test_a_job_completes_once_when_its_last_run_ends(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    job, _ = jobs.create(runs=3, hooks=[hooks.Hook(E.JOB_COMPLETE, "https://h.example.com/x")])
    store.queue_runs(job.id, at=at(0))
    runs = claim_one(store, job, at(1))
    succeed(store, runs[0], at(2), make)
    fail(store, runs[1], at(3), make)
    assert store.list_notices(job_id=job.id) == []
    succeed(store, runs[2], at(4), make)
    (done,) = store.list_notices(job_id=job.id)
    assert done.event is E.JOB_COMPLETE and done.run_id is None
    assert done.payload["job"]["state"] == "FAILURE"
    assert done.payload["job"]["run_counts"] == {"FAILURE": 1, "SUCCESS": 2}


def test_two_workers_ending_a_jobs_last_runs_at_once_notice_its_completion_once(
    database_url: str, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    for round_ in range(5):
        job, _ = jobs.create(runs=2, hooks=[hooks.Hook(E.JOB_COMPLETE, "https://h.example.com")])
        jobs.store.queue_runs(job.id, at=at(0))
        runs = claim_one(jobs.store, job, at(1))
        stores = [store_mod.Store.open(database_url) for _ in runs]
        barrier = threading.Barrier(len(runs))
        problems: list[BaseException] = []

        def end(
            store: store_mod.Store,
            run: records.Run,
            barrier: threading.Barrier = barrier,
            problems: list[BaseException] = problems,
        ) -> None:
            try:
                barrier.wait(5)
                succeed(store, run, at(2), make)
            except BaseException as exc:  # reported below
                problems.append(exc)

        threads = [
            threading.Thread(target=end, args=pair) for pair in zip(stores, runs, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for s in stores:
            s.close()
        assert problems == []
        events = [n.event for n in jobs.store.list_notices(job_id=job.id)]
        assert events == [E.JOB_COMPLETE], f"round {round_}"


def test_each_tick_of_a_schedule_completes_on_its_own(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    from runyard.core import schedules

    job, made = jobs.build(runs=1, hooks=[hooks.Hook(E.JOB_COMPLETE, "https://h.example.com")])
    trigger = schedules.Trigger(cron="* * * * *", overlap=schedules.Overlap.ALLOW)
    store.create_job(job, made, trigger=trigger, first_fire=at(0))
    ids = iter(f"{i:032x}" for i in range(1, 100))
    store.fire_due_ticks(at=at(61), new_id=lambda: next(ids))
    (first,) = claim_one(store, job, at(62))
    store.run_now(job.id, at=at(63), new_id=lambda: next(ids))
    (second,) = claim_one(store, job, at(64))
    succeed(store, second, at(65), make)
    succeed(store, first, at(66), make)
    ticks = [n.payload["tick_at"] for n in store.list_notices(job_id=job.id)]
    assert len(ticks) == 2 and len(set(ticks)) == 2


def test_notices_are_handed_out_once_and_settled(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    job, _ = jobs.create(runs=3, hooks=[hooks.Hook(E.RUN_SUCCESS, "https://h.example.com/t")])
    store.queue_runs(job.id, at=at(0))
    for run in claim_one(store, job, at(1)):
        succeed(store, run, at(2), make)

    taken = store.claim_notices(at=at(3), limit=2, hold_until=at(60))
    rest = store.claim_notices(at=at(3), limit=10, hold_until=at(60))
    assert len(taken) == 2 and len(rest) == 1
    assert store.claim_notices(at=at(4), limit=10, hold_until=at(60)) == []  # all held

    delivered, retried, failed = [*taken, *rest]
    store.settle_notice(delivered, at=at(5))
    store.settle_notice(retried, at=at(5), error="HTTP 502 Bad Gateway", retry_at=at(30))
    store.settle_notice(failed, at=at(5), error="ConnectError: refused")
    by_id = {n.id: n for n in store.list_notices(job_id=job.id)}
    assert by_id[delivered.id].state is N.DELIVERED and by_id[delivered.id].attempts == 1
    assert by_id[retried.id].state is N.PENDING and by_id[retried.id].last_error == (
        "HTTP 502 Bad Gateway"
    )
    assert by_id[failed.id].state is N.FAILED
    assert store.claim_notices(at=at(29), limit=10, hold_until=at(90)) == []
    (again,) = store.claim_notices(at=at(30), limit=10, hold_until=at(90))
    assert again.id == retried.id and again.attempts == 1
    # A deliverer that died holding a notice: another takes it once the hold ends.
    assert store.claim_notices(at=at(91), limit=10, hold_until=at(120))[0].id == retried.id
    messages = [e.message or "" for e in store.list_events(job_id=job.id) if e.kind == "hook"]
    assert len(messages) == 2 and not any("/t" in m for m in messages)  # URL path hidden


def test_runs_beyond_a_jobs_retention_are_deleted_oldest_first(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    job, _ = jobs.create(runs=5, max_retained_runs=2)
    other, _ = jobs.create(runs=2)
    store.queue_runs(job.id, at=at(0))
    store.queue_runs(other.id, at=at(0))
    runs = claim_one(store, job, at(1))
    for i, run in enumerate(runs[:4]):
        fail(store, run, at(10 + i), make)
    for run in claim_one(store, other, at(1)):
        succeed(store, run, at(20), make)

    pruned = store.prune_runs()
    assert set(pruned.run_ids) == {runs[0].id, runs[1].id}
    assert set(pruned.unused) == {f"file:///blobs/{r.id}/a/result" for r in runs[:2]}
    left = {r.id for r in store.list_runs(job.id)}
    assert left == {r.id for r in runs[2:]}  # the unfinished one is never deleted
    assert store.list_step_runs(runs[0].id) == [] and store.list_artifacts(runs[0].id) == []
    assert store.list_events(run_id=runs[0].id) == []
    assert len(store.list_runs(other.id)) == 2  # keeps every run
    assert store.prune_runs().run_ids == ()


def test_a_pruned_runs_files_that_its_retry_reuses_are_kept(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    job, _ = jobs.create(runs=1, retry=retries.RetryPolicy(retries=3), max_retained_runs=1)
    store.queue_runs(job.id, at=at(0))
    (first,) = claim_one(store, job, at(1))
    fail(store, first, at(2), make)
    (second,) = claim_one(store, job, at(3))
    succeed(store, second, at(4), make)
    pruned = store.prune_runs()
    assert pruned.run_ids == (first.id,)
    reused = f"file:///blobs/{first.id}/a/result"
    assert pruned.unused == () and pruned.still_used == (reused,)
    assert [a.uri for a in store.list_artifacts(second.id)] == [reused]


def test_a_schedules_old_ticks_go_with_its_pruned_runs(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    from runyard.core import schedules

    job, made = jobs.build(
        runs=1,
        max_retained_runs=1,
        hooks=[hooks.Hook(E.JOB_COMPLETE, "https://h.example.com")],
    )
    trigger = schedules.Trigger(cron="* * * * *", overlap=schedules.Overlap.ALLOW)
    store.create_job(job, made, trigger=trigger, first_fire=at(0))
    ids = iter(f"{i:032x}" for i in range(1, 100))
    for minute in (1, 2, 3):
        store.fire_due_ticks(at=at(60 * minute + 1), new_id=lambda: next(ids))
        (run,) = claim_one(store, job, at(60 * minute + 2))
        succeed(store, run, at(60 * minute + 3), make)
    for notice in store.claim_notices(at=at(500), limit=10, hold_until=at(600)):
        store.settle_notice(notice, at=at(501))
    assert len([e for e in store.list_events(job_id=job.id) if e.kind == "tick"]) == 3

    assert len(store.prune_runs().run_ids) == 2
    (kept,) = store.list_runs(job.id)
    ticks = [e for e in store.list_events(job_id=job.id) if e.kind == "tick"]
    assert len(ticks) == 1 and ticks[0].at >= kept.created_at
    (notice,) = store.list_notices(job_id=job.id)
    assert notice.payload["tick_at"] == kept.tick_at.isoformat()  # type: ignore[union-attr]


def test_an_end_marked_as_needing_no_follow_up_is_written_as_it_is(
    store: store_mod.Store, jobs: JobBuilder, at: Clock, make: type[Make]
) -> None:
    # A recorder that knows a job has no retry policy and no hooks says so, and the store
    # takes its word: no lookup, no retry, no notice.
    job, _ = jobs.create(runs=1, retry=retries.RetryPolicy(retries=3))
    store.queue_runs(job.id, at=at(0))
    (run,) = claim_one(store, job, at(1))
    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(
                    run.id, job.id, R.STARTING, R.FAILURE, at(2), reason="x", follow_up=False
                )
            ]
        )
    )
    assert store.get_run(run.id).retried_by is None
