"""The metadata store's contract for jobs: creating, finding, summarising and listing them.

Every test runs on SQLite and on PostgreSQL (the ``store`` fixture); the other parts of the
contract are in ``test_store_claims.py`` and ``test_store_apply.py``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from runyard import errors
from runyard.core import records, states
from runyard.storage import store as store_mod

if TYPE_CHECKING:
    from tests.storage.conftest import JobBuilder

R = states.RunState
J = states.JobState
Clock = Callable[[float], dt.datetime]


def _finish(
    store: store_mod.Store, run: records.Run, new: R, when: dt.datetime, reason: str | None = None
) -> None:
    """Take a STARTING run through RUNNING (at once, as it was claimed: its start time stays
    the claim's) and FINISHING unless it fails, to ``new`` at ``when``."""
    path = [R.STARTING, R.RUNNING] + ([] if new == R.FAILURE else [R.FINISHING]) + [new]
    assert run.started_at is not None
    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(
                    run.id,
                    run.job_id,
                    old,
                    nxt,
                    run.started_at if nxt is R.RUNNING else when,
                    reason=reason,
                )
                for old, nxt in itertools.pairwise(path)
            ]
        )
    )


# -- creating and finding jobs -------------------------------------------------------------


def test_create_job_stores_the_job_its_tags_and_its_runs(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    job, runs = jobs.create(runs=3, tags=("nightly", "baseline"))
    untagged, _ = jobs.create(runs=1)

    got = store.get_job(job.id)
    assert got.evolve(tags=()) == job.evolve(tags=())
    assert sorted(got.tags) == ["baseline", "nightly"]
    assert store.get_job(untagged.id).tags == ()
    assert store.list_runs(job.id) == runs
    assert store.get_run(runs[1].id) == runs[1]


def test_create_job_writes_a_job_created_event(store: store_mod.Store, jobs: JobBuilder) -> None:
    job, _ = jobs.create(runs=2)
    jobs.create(runs=1)

    events = store.list_events(job_id=job.id)

    assert [(e.kind, e.job_id, e.run_id, e.at) for e in events] == [
        ("job_created", job.id, None, job.created_at)
    ]


def test_jobs_and_runs_are_found_by_a_unique_prefix_of_their_id(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    first, _ = jobs.create(job_id="abc1" + "0" * 28)
    second, runs = jobs.create(job_id="abd2" + "0" * 28)

    assert store.get_job("abc").id == first.id
    assert store.get_job("abd2").id == second.id
    assert store.get_run(runs[0].id[:12]) == runs[0]


def test_an_exact_id_wins_over_longer_ids_it_is_a_prefix_of(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    short, _ = jobs.create(job_id="abc")
    jobs.create(job_id="abcdef")

    assert store.get_job("abc").id == short.id


def test_an_unknown_id_raises_not_found_naming_it(store: store_mod.Store, jobs: JobBuilder) -> None:
    jobs.create(job_id="abc1" + "0" * 28)

    with pytest.raises(errors.NotFoundError, match="fff0"):
        store.get_job("fff0")
    with pytest.raises(errors.NotFoundError, match="fff1"):
        store.get_run("fff1")


def test_an_ambiguous_prefix_raises_not_found_naming_the_candidates(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    first, _ = jobs.create(job_id="abc1" + "0" * 28)
    second, _ = jobs.create(job_id="abc2" + "0" * 28)

    with pytest.raises(errors.NotFoundError, match="ambiguous") as raised:
        store.get_job("abc")

    assert first.id in str(raised.value)
    assert second.id in str(raised.value)


@pytest.mark.parametrize("key", ["a%", "a_", "ab-1", "ab 1", "", "ab1'; DROP TABLE jobs; --"])
def test_ids_with_other_than_letters_and_digits_are_not_found(
    store: store_mod.Store, jobs: JobBuilder, key: str
) -> None:
    job, _ = jobs.create(job_id="ab12" + "0" * 28)

    with pytest.raises(errors.NotFoundError, match="letters and digits"):
        store.get_job(key)
    with pytest.raises(errors.NotFoundError, match="letters and digits"):
        store.get_run(key)
    assert [s.id for s in store.list_jobs()] == [job.id]


def test_id_lookup_is_case_sensitive_on_every_backend(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    job, _ = jobs.create(job_id="abc1" + "0" * 28)

    with pytest.raises(errors.NotFoundError):
        store.get_job(job.id.upper())
    with pytest.raises(errors.NotFoundError):
        store.get_job("ABC")


# -- many runs ---------------------------------------------------------------------------


def test_a_10000_run_job_is_written_in_a_few_statements(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    job, runs = jobs.build(runs=10_000, shuffled=True)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split("(")[0].strip())  # executemany counts once

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        store.create_job(job, runs)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)

    assert len(statements) <= 10, statements
    got = store.list_runs(job.id)
    assert [r.index for r in got] == list(range(10_000))
    assert got == sorted(runs, key=lambda run: run.index)


# -- summaries ---------------------------------------------------------------------------


def test_a_jobs_state_counts_and_times_follow_its_runs(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, _ = jobs.create(runs=3)
    summary = store.job_summary(job.id)
    assert (summary.state, dict(summary.counts)) == (J.CREATED, {R.CREATED: 3})
    assert (summary.started_at, summary.finished_at) == (None, None)

    store.queue_runs(job.id, at=at(1))
    summary = store.job_summary(job.id)
    assert (summary.state, dict(summary.counts)) == (J.QUEUED, {R.QUEUED: 3})
    assert summary.started_at is None

    (run0,) = store.claim_runs(job_id=job.id, worker="w:1", limit=1, at=at(5))
    summary = store.job_summary(job.id)
    assert (summary.state, dict(summary.counts)) == (J.RUNNING, {R.QUEUED: 2, R.STARTING: 1})
    assert summary.started_at == at(5)

    _finish(store, run0, R.SUCCESS, at(30))
    summary = store.job_summary(job.id)
    assert (summary.state, dict(summary.counts)) == (J.RUNNING, {R.QUEUED: 2, R.SUCCESS: 1})
    assert summary.finished_at is None  # not every run has finished

    run1, run2 = store.claim_runs(job_id=job.id, worker="w:2", limit=2, at=at(10))
    _finish(store, run1, R.FAILURE, at(20), reason="step 'train' failed")
    _finish(store, run2, R.SUCCESS, at(25))
    summary = store.job_summary(job.id)
    assert (summary.state, dict(summary.counts)) == (J.FAILURE, {R.SUCCESS: 2, R.FAILURE: 1})
    assert summary.started_at == at(5)  # the earliest start, though it was not the last claim
    assert summary.finished_at == at(30)  # the latest finish, though it was written first
    assert summary.done == 3


def test_a_job_is_successful_only_when_every_run_succeeded(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, _ = jobs.create(runs=2)
    store.queue_runs(job.id, at=at(1))
    for run in store.claim_runs(job_id=job.id, worker="w:1", limit=2, at=at(2)):
        _finish(store, run, R.SUCCESS, at(3 + run.index))

    summary = store.job_summary(job.id)

    assert (summary.state, dict(summary.counts)) == (J.SUCCESS, {R.SUCCESS: 2})
    assert (summary.started_at, summary.finished_at) == (at(2), at(4))


def test_a_job_with_a_killed_run_and_no_failure_is_killed(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    job, runs = jobs.create(runs=2)
    never_queued, _ = jobs.create(runs=1)
    store.queue_runs(job.id, at=at(1))
    (run0,) = store.claim_runs(job_id=job.id, worker="w:1", limit=1, at=at(2))
    _finish(store, run0, R.SUCCESS, at(3))
    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(runs[1].id, job.id, R.QUEUED, R.KILLED, at(40)),
                store_mod.RunTransition(
                    store.list_runs(never_queued.id)[0].id,
                    never_queued.id,
                    R.CREATED,
                    R.KILLED,
                    at(41),
                ),
            ]
        )
    )

    summary = store.job_summary(job.id)
    assert (summary.state, dict(summary.counts)) == (J.KILLED, {R.SUCCESS: 1, R.KILLED: 1})
    assert (summary.started_at, summary.finished_at) == (at(2), at(40))
    killed = store.job_summary(never_queued.id)
    assert (killed.state, killed.started_at, killed.finished_at) == (J.KILLED, None, at(41))


# -- listing -----------------------------------------------------------------------------


def test_list_jobs_returns_the_newest_first(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    middle, _ = jobs.create(created_at=at(60))
    oldest, _ = jobs.create(created_at=at(0))
    newest, _ = jobs.create(created_at=at(120))

    assert [s.id for s in store.list_jobs()] == [newest.id, middle.id, oldest.id]


def test_list_jobs_filters_by_pipeline_tag_state_and_limit(
    store: store_mod.Store, jobs: JobBuilder, at: Clock
) -> None:
    j1, _ = jobs.create(runs=2, pipeline="etl", tags=("nightly",), created_at=at(0))
    j2, _ = jobs.create(runs=1, pipeline="train", tags=("nightly", "gpu"), created_at=at(1))
    j3, _ = jobs.create(runs=1, pipeline="etl", tags=("gpu",), created_at=at(2))
    j4, _ = jobs.create(runs=3, pipeline="etl", created_at=at(3))
    store.queue_runs(j1.id, at=at(4))
    store.queue_runs(j4.id, at=at(4))

    def ids(**filters: Any) -> list[str]:
        return [s.id for s in store.list_jobs(**filters)]

    assert ids(pipeline="etl") == [j4.id, j3.id, j1.id]
    assert ids(pipeline="missing") == []
    assert ids(tag="nightly") == [j2.id, j1.id]
    assert ids(tag="gpu", pipeline="etl") == [j3.id]
    assert ids(state=J.QUEUED) == [j4.id, j1.id]
    assert ids(state=J.QUEUED, limit=1) == [j4.id]  # the limit applies after the state filter
    assert ids(state=J.CREATED, limit=1) == [j3.id]
    assert ids(state=J.SUCCESS) == []
    assert ids(limit=2) == [j4.id, j3.id]

    tagged = {s.id: s for s in store.list_jobs(tag="gpu")}
    assert sorted(tagged[j2.id].job.tags) == ["gpu", "nightly"]
    assert dict(store.list_jobs(pipeline="etl", limit=1)[0].counts) == {R.QUEUED: 3}
