"""Schedules in the store: every tick fires exactly once, with its overlap policy."""

import datetime as dt
import threading
import uuid

import pytest

from runyard.core import schedules, states
from runyard.storage import store as store_mod

from .conftest import Clock, JobBuilder

R = states.RunState
T0 = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)


def hourly(overlap: str = "skip", catchup: str = "latest") -> schedules.Trigger:
    return schedules.make_trigger(now=T0, cron="0 * * * *", overlap=overlap, catchup=catchup)


def scheduled(store: store_mod.Store, jobs: JobBuilder, trigger: schedules.Trigger) -> str:
    job, runs = jobs.build(runs=3)
    store.create_job(job, runs, trigger=trigger, first_fire=trigger.first_fire(T0))
    return job.id


def new_id() -> str:
    return uuid.uuid4().hex


def hour(n: int, minutes: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(hours=n - 8, minutes=minutes)


def test_a_scheduled_job_has_no_runs_until_a_tick_fires_them(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    job_id = scheduled(store, jobs, hourly())
    assert store.list_runs(job_id) == []
    schedule = store.get_schedule(job_id)
    assert schedule is not None and schedule.next_fire_at == hour(9)
    assert store.fire_due_ticks(at=hour(8, 59), new_id=new_id) == []

    (fired,) = store.fire_due_ticks(at=hour(9, 0), new_id=new_id)
    assert fired == (job_id, hour(9), 3, None)
    runs = store.list_runs(job_id)
    assert [(r.index, r.state) for r in runs] == [(0, R.QUEUED), (1, R.QUEUED), (2, R.QUEUED)]
    assert store.get_schedule(job_id).next_fire_at == hour(10)
    # The same moment again fires nothing: the tick has fired.
    assert store.fire_due_ticks(at=hour(9, 0), new_id=new_id) == []


def test_two_schedulers_racing_fire_each_tick_once(
    store: store_mod.Store, jobs: JobBuilder, database_url: str
) -> None:
    # Each thread keeps its own simulated clock, and under load one runs ahead of the other:
    # with catch-up "all", a tick the ahead thread finds missed still fires (once).
    job_ids = [scheduled(store, jobs, hourly(overlap="allow", catchup="all")) for _ in range(3)]
    fired: list[tuple] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    failures: list[BaseException] = []

    def scheduler() -> None:
        own = store_mod.Store.open(database_url)
        try:
            start.wait(timeout=30)
            for minute in range(0, 180, 7):
                got = own.fire_due_ticks(at=hour(9, minute), new_id=new_id)
                with lock:
                    fired.extend(got)
        except BaseException as exc:
            failures.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    keys = [(job_id, tick) for job_id, tick, _, _ in fired]
    assert len(keys) == len(set(keys)) == 9  # 3 jobs x ticks at 09:00, 10:00, 11:00
    for job_id in job_ids:
        assert len(store.list_runs(job_id)) == 9


@pytest.mark.parametrize("overlap", ["skip", "queue", "cancel", "allow"])
def test_overlap_policy_when_the_previous_ticks_runs_still_go(
    store: store_mod.Store, jobs: JobBuilder, overlap: str
) -> None:
    job_id = scheduled(store, jobs, hourly(overlap=overlap))
    store.fire_due_ticks(at=hour(9), new_id=new_id)
    (second,) = store.fire_due_ticks(at=hour(10), new_id=new_id)
    by_tick: dict[dt.datetime, list[R]] = {}
    for run in store.list_runs(job_id):
        by_tick.setdefault(run.tick_at or T0, []).append(run.state)
    if overlap == "skip":
        assert second[2] == 0 and "skipped" in (second[3] or "")
        assert list(by_tick) == [hour(9)]
    elif overlap == "queue":
        assert by_tick[hour(10)] == [R.CREATED] * 3  # waiting for 09:00's runs
        for run in store.list_runs(job_id):  # 09:00's runs end...
            if run.tick_at == hour(9):
                store.request_stop(at=hour(10, 5), run_id=run.id)
        store.fire_due_ticks(at=hour(10, 6), new_id=new_id)  # ...so 10:00's are queued
        states_now = {r.state for r in store.list_runs(job_id) if r.tick_at == hour(10)}
        assert states_now == {R.QUEUED}
    elif overlap == "cancel":
        assert by_tick[hour(9)] == [R.KILLED] * 3
        assert by_tick[hour(10)] == [R.QUEUED] * 3
    else:
        assert by_tick[hour(9)] == by_tick[hour(10)] == [R.QUEUED] * 3


def test_pause_resume_and_run_now(store: store_mod.Store, jobs: JobBuilder, at: Clock) -> None:
    job_id = scheduled(store, jobs, hourly(overlap="allow"))
    store.set_paused(job_id, paused=True, at=hour(8, 30))
    assert store.fire_due_ticks(at=hour(11, 30), new_id=new_id) == []
    assert store.get_schedule(job_id).paused
    # Ticks missed while paused do not fire on resume; the next one after now does.
    store.set_paused(job_id, paused=False, at=hour(11, 30))
    assert store.get_schedule(job_id).next_fire_at == hour(12)
    assert store.run_now(job_id, at=hour(11, 31), new_id=new_id) == 3
    assert len(store.list_runs(job_id, state=R.QUEUED)) == 3
    (fired,) = store.fire_due_ticks(at=hour(12), new_id=new_id)
    assert fired[1] == hour(12)
    kinds = [e.kind for e in store.list_events(job_id=job_id)]
    assert kinds.count("tick") == 2


def test_a_tick_key_already_taken_fires_nothing(store: store_mod.Store, jobs: JobBuilder) -> None:
    # run now twice at the same moment: the second finds the tick key taken. The key is
    # what guards a tick when schedule rows cannot (a restarted scheduler, run now).
    job_id = scheduled(store, jobs, hourly(overlap="allow"))
    assert store.run_now(job_id, at=hour(8, 30), new_id=new_id) == 3
    assert store.run_now(job_id, at=hour(8, 30), new_id=new_id) == 0
    assert len(store.list_runs(job_id)) == 3


def test_schedules_are_listed_the_next_to_fire_first(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    hourly_job = scheduled(store, jobs, hourly())
    once = schedules.make_trigger(now=T0, at=hour(8, 30))
    soon = scheduled(store, jobs, once)
    store.set_paused(hourly_job, paused=True, at=T0)
    listed = store.list_schedules()
    assert [(s.job_id, s.next_fire_at) for s in listed] == [
        (soon, hour(8, 30)),
        (hourly_job, hour(9)),
    ]
    assert [s.paused for s in listed] == [False, True]
    assert store.list_schedules(limit=1)[0].job_id == soon


def test_jobs_are_found_by_part_of_their_name_and_creation_time(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    early, runs = jobs.build(pipeline="nightly_100%", created_at=T0)
    store.create_job(early, runs)
    late, runs = jobs.build(pipeline="adhoc", created_at=T0 + dt.timedelta(hours=1))
    store.create_job(late, runs)

    def ids(**filters: object) -> list[str]:
        return [s.id for s in store.list_jobs(**filters)]  # type: ignore[arg-type]

    assert ids(name="100%") == [early.id]
    assert ids(name="_1") == [early.id]  # LIKE's wildcards are taken literally
    assert ids(name="job") == [late.id, early.id]
    assert ids(created_after=T0 + dt.timedelta(minutes=1)) == [late.id]
    assert ids(created_before=T0 + dt.timedelta(minutes=1)) == [early.id]
