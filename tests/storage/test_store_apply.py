"""The metadata store's contract for recording execution: ``Store.apply`` and what it wrote.

Every test runs on SQLite and on PostgreSQL. ``apply`` writes a batch of run and step
transitions, logs and artifacts in one transaction, with an event per transition. Batches it
must refuse are in ``test_store_apply_refusals.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from runyard.core import records, states
from runyard.storage import store as store_mod

if TYPE_CHECKING:
    from tests.storage.conftest import JobBuilder, Make

R = states.RunState
S = states.StepState
Clock = Callable[[float], dt.datetime]
StartedJob = tuple[records.Job, list[records.Run]]


def run_moves(store: store_mod.Store, run: records.Run) -> list[tuple[Any, ...]]:
    """The run's state events as (old, new, at, message), in the order they were written."""
    return [
        (e.old_state, e.new_state, e.at, e.message)
        for e in store.list_events(run_id=run.id)
        if e.kind == "run_state"
    ]


# -- what a batch writes -----------------------------------------------------------------


# Each run's path, as (old, new, seconds, reason). b fails straight from RUNNING; c fails
# after FINISHING with a reason too, so its FINISHING -> FAILURE shares an UPDATE with b's.
PATHS: dict[str, list[tuple[R, R, float, str | None]]] = {
    "a": [
        (R.STARTING, R.RUNNING, 3, None),
        (R.RUNNING, R.FINISHING, 10, None),
        (R.FINISHING, R.SUCCESS, 13, None),
    ],
    "b": [(R.STARTING, R.RUNNING, 3, None), (R.RUNNING, R.FAILURE, 5, "step 'train' failed")],
    "c": [
        (R.STARTING, R.RUNNING, 4, None),
        (R.RUNNING, R.FINISHING, 12, None),
        (R.FINISHING, R.FAILURE, 14, "could not write outputs"),
    ],
}


@pytest.mark.parametrize("order", ["by time", "run by run: b, c, a", "run by run: a, b, c"])
def test_one_batch_takes_several_runs_through_several_states(
    store: store_mod.Store, started: StartedJob, make: type[Make], at: Clock, order: str
) -> None:
    _, (a, b, c) = started
    runs = {"a": a, "b": b, "c": c}
    moves = [(name, *move) for name, path in PATHS.items() for move in path]
    if order == "by time":  # b's failure comes before anyone's FINISHING
        moves.sort(key=lambda item: item[3])
    else:
        names = order.split(": ")[1].split(", ")
        moves.sort(key=lambda item: names.index(item[0]))

    store.apply(
        store_mod.Changes(
            runs=[
                make.move(runs[name], old, new, at(when), reason)
                for name, old, new, when, reason in moves
            ]
        )
    )

    claimed = [("CREATED", "QUEUED", at(1), None), ("QUEUED", "STARTING", at(2), None)]
    for name, path in PATHS.items():
        run = store.get_run(runs[name].id)
        _, new, when, reason = path[-1]
        assert (run.state, run.finished_at, run.reason) == (new, at(when), reason), name
        # Claimed at 2; started_at is then when its process started (RUNNING).
        assert (run.started_at, run.worker) == (at(path[0][2]), "w:1"), name
        assert run_moves(store, run) == claimed + [
            (str(old), str(new), at(when), reason) for old, new, when, reason in path
        ], name


def test_step_runs_logs_and_artifacts_are_read_back_as_written(
    store: store_mod.Store, started: StartedJob, make: type[Make], at: Clock
) -> None:
    _, (run, other, _) = started
    run_log = make.log(run, None, "loading pipeline", at(3))
    extract_log = make.log(run, "extract", "read 3 files", at(3.5))
    warning = records.LogLine(run.id, "train", "log", at(4.5), "rate is high", "WARNING")
    train_err = records.LogLine(run.id, "train", "stderr", at(5.5), "ValueError: bad rate")
    rows = make.artifact(run, "extract", "rows", at(4))
    model = make.artifact(run, "train", "model", at(6))
    failure = {
        "error_type": "ValueError",
        "error_message": "bad rate",
        "traceback": 'Traceback (most recent call last):\n  File "train.py"\nValueError: bad rate',
    }

    store.apply(
        store_mod.Changes(
            runs=[make.move(run, R.STARTING, R.RUNNING, at(3))],
            steps=[
                make.step(run, "extract", S.RUNNING, None, at(3), started_at=at(3)),
                make.step(run, "train", S.PENDING, None, at(3)),
                make.step(run, "report", S.PENDING, None, at(3)),
            ],
            logs=[run_log, extract_log],
        )
    )
    store.apply(
        store_mod.Changes(
            steps=[
                make.step(
                    run, "extract", S.SUCCESS, S.RUNNING, at(4), started_at=at(3), finished_at=at(4)
                ),
                make.step(run, "train", S.RUNNING, S.PENDING, at(4), started_at=at(4)),
            ],
            logs=[warning],
            artifacts=[rows],
        )
    )
    store.apply(
        store_mod.Changes(
            runs=[make.move(run, R.RUNNING, R.FAILURE, at(7), reason="step 'train' failed")],
            steps=[
                make.step(
                    run,
                    "train",
                    S.FAILURE,
                    S.RUNNING,
                    at(6),
                    started_at=at(4),
                    finished_at=at(6),
                    **failure,
                ),
                make.step(run, "report", S.UPSTREAM_FAILED, S.PENDING, at(6)),
            ],
            logs=[train_err],
            artifacts=[model],
        )
    )

    assert store.list_step_runs(run.id) == [
        records.StepRun(run.id, "extract", 1, S.SUCCESS, at(3), at(4)),
        records.StepRun(run.id, "train", 1, S.FAILURE, at(4), at(6), **failure),
        records.StepRun(run.id, "report", 1, S.UPSTREAM_FAILED),  # never started: last
    ]
    assert store.list_logs(run.id) == [run_log, extract_log, warning, train_err]
    assert store.list_logs(run.id, step="train") == [warning, train_err]
    assert store.list_artifacts(run.id) == [rows, model]
    assert (store.list_step_runs(other.id), store.list_logs(other.id)) == ([], [])
    assert store.list_artifacts(other.id) == []
    step_events = [
        (e.step_name, e.old_state, e.new_state, e.at, e.message)
        for e in store.list_events(run_id=run.id)
        if e.kind == "step_state"
    ]
    assert step_events == [
        ("extract", None, "RUNNING", at(3), None),
        ("train", None, "PENDING", at(3), None),
        ("report", None, "PENDING", at(3), None),
        ("extract", "RUNNING", "SUCCESS", at(4), None),
        ("train", "PENDING", "RUNNING", at(4), None),
        ("train", "RUNNING", "FAILURE", at(6), "bad rate"),
        ("report", "PENDING", "UPSTREAM_FAILED", at(6), None),
    ]


def test_list_events_filters_by_job_run_and_position(
    store: store_mod.Store, jobs: JobBuilder, started: StartedJob, make: type[Make], at: Clock
) -> None:
    job, (a, b, _) = started
    other, _ = jobs.create(runs=1)
    everything = store.list_events()
    mark = everything[-1].id
    assert mark is not None

    store.apply(
        store_mod.Changes(
            runs=[
                make.move(a, R.STARTING, R.RUNNING, at(3)),
                make.move(b, R.STARTING, R.RUNNING, at(3)),
            ],
            steps=[make.step(a, "extract", S.RUNNING, None, at(3), started_at=at(3))],
        )
    )

    ids = [e.id for e in store.list_events()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {e.job_id for e in store.list_events(job_id=job.id)} == {job.id}
    assert [e.kind for e in store.list_events(job_id=other.id)] == ["job_created"]
    assert {e.run_id for e in store.list_events(run_id=a.id)} == {a.id}
    assert [(e.run_id, e.step_name, e.new_state) for e in store.list_events(after=mark)] == [
        (a.id, None, "RUNNING"),
        (b.id, None, "RUNNING"),
        (a.id, "extract", "RUNNING"),
    ]
    assert store.list_events(after=mark, run_id=b.id, limit=5)[0].run_id == b.id
    assert store.list_events(limit=2) == everything[:2]


def _far_from_utc(url: str) -> str:
    """``url`` with a session time zone of +05:30 on PostgreSQL (SQLite has none)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    tz = parsed.update_query_dict({"options": "-c TimeZone=Asia/Kolkata"})
    return tz.render_as_string(hide_password=False)


def test_times_come_back_in_utc_to_the_microsecond_whatever_the_session_time_zone(
    store: store_mod.Store, jobs: JobBuilder, make: type[Make], database_url: str
) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    created = dt.datetime(2026, 3, 2, 1, 0, 0, 1, tzinfo=plus_two)  # 23:00:00.000001 UTC
    queued = dt.datetime(2026, 3, 1, 23, 0, 0, 999999, tzinfo=dt.UTC)
    claimed = dt.datetime(2026, 3, 1, 23, 59, 59, 500001, tzinfo=dt.UTC)
    ended = dt.datetime(2026, 3, 2, 2, 0, 0, 7, tzinfo=plus_two)
    job, _ = jobs.create(runs=1, created_at=created)
    store.queue_runs(job.id, at=queued)
    (run,) = store.claim_runs(job_id=job.id, worker="w:1", limit=1, at=claimed)
    store.apply(
        store_mod.Changes(
            runs=[make.move(run, R.STARTING, R.FAILURE, ended, reason="killed by OOM")],
            steps=[
                make.step(
                    run, "train", S.FAILURE, None, ended, started_at=claimed, finished_at=ended
                )
            ],
            logs=[make.log(run, "train", "out of memory", ended)],
            artifacts=[make.artifact(run, "train", "partial", ended)],
        )
    )

    reader = store_mod.Store.open(_far_from_utc(database_url))
    try:
        times = _times_read_back(reader, job, run)
    finally:
        reader.close()
    expected = {
        "job.created_at": created,
        "run.created_at": created,
        "run.queued_at": queued,
        "run.started_at": claimed,
        "run.finished_at": ended,
        "summary.started_at": claimed,
        "summary.finished_at": ended,
        "step.started_at": claimed,
        "step.finished_at": ended,
        "log.at": ended,
        "artifact.created_at": ended,
        "event.at": ended,
    }
    assert times == expected
    for name, got in times.items():
        assert got is not None and got.utcoffset() == dt.timedelta(0), (name, got)


def _times_read_back(
    store: store_mod.Store, job: records.Job, run: records.Run
) -> dict[str, dt.datetime | None]:
    stored = store.get_run(run.id)
    summary = store.job_summary(job.id)
    (step_run,) = store.list_step_runs(run.id)
    return {
        "job.created_at": store.get_job(job.id).created_at,
        "run.created_at": stored.created_at,
        "run.queued_at": stored.queued_at,
        "run.started_at": stored.started_at,
        "run.finished_at": stored.finished_at,
        "summary.started_at": summary.started_at,
        "summary.finished_at": summary.finished_at,
        "step.started_at": step_run.started_at,
        "step.finished_at": step_run.finished_at,
        "log.at": store.list_logs(run.id)[0].at,
        "artifact.created_at": store.list_artifacts(run.id)[0].created_at,
        "event.at": store.list_events(run_id=run.id)[-1].at,
    }


def test_a_runs_note_is_written_with_its_start_and_kept_to_its_end(
    store: store_mod.Store, started: StartedJob, at: Clock
) -> None:
    _, (a, b, _) = started
    note = "environment differs from snapshot 0123456789ab: numpy 1.26.4 -> 2.0.0"

    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(a.id, a.job_id, R.STARTING, R.RUNNING, at(3), note=note),
                store_mod.RunTransition(b.id, b.job_id, R.STARTING, R.RUNNING, at(3)),
            ]
        )
    )
    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(a.id, a.job_id, R.RUNNING, R.FAILURE, at(5), reason="boom")
            ]
        )
    )

    assert store.get_run(a.id).note == note
    assert store.get_run(a.id).reason == "boom"
    assert store.get_run(b.id).note is None
