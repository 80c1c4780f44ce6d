"""Batches ``Store.apply`` must refuse: forbidden and stale transitions write nothing at all.

Every test runs on SQLite and on PostgreSQL. Each refused batch also carries valid
transitions, step runs, logs and artifacts, and the test checks that none of them was kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from runyard import errors
from runyard.core import records, states
from runyard.storage import store as store_mod

if TYPE_CHECKING:
    from tests.storage.conftest import Make

R = states.RunState
S = states.StepState
Clock = Callable[[float], dt.datetime]
StartedJob = tuple[records.Job, list[records.Run]]


def everything(store: store_mod.Store, job: records.Job) -> dict[str, Any]:
    """All the store holds about ``job``: compared before and after a refused batch."""
    runs = store.list_runs(job.id)
    return {
        "runs": runs,
        "events": store.list_events(job_id=job.id),
        "steps": [store.list_step_runs(r.id) for r in runs],
        "logs": [store.list_logs(r.id) for r in runs],
        "artifacts": [store.list_artifacts(r.id) for r in runs],
    }


def with_riders(
    changes: store_mod.Changes, run: records.Run, make: type[Make], at: Clock
) -> store_mod.Changes:
    """``changes`` plus valid writes for ``run`` that must be dropped with them."""
    changes.steps.append(make.step(run, "rider", S.RUNNING, None, at(50), started_at=at(50)))
    changes.logs.append(make.log(run, "rider", "must not be kept", at(50)))
    changes.artifacts.append(make.artifact(run, "rider", "out", at(50)))
    return changes


def test_a_forbidden_run_transition_writes_nothing_from_its_batch(
    store: store_mod.Store, started: StartedJob, make: type[Make], at: Clock
) -> None:
    job, (done, other, _) = started
    store.apply(
        store_mod.Changes(
            runs=[
                make.move(done, R.STARTING, R.RUNNING, at(3)),
                make.move(done, R.RUNNING, R.FINISHING, at(4)),
                make.move(done, R.FINISHING, R.SUCCESS, at(5)),
            ]
        )
    )
    before = everything(store, job)
    batch = store_mod.Changes(
        runs=[
            make.move(other, R.STARTING, R.RUNNING, at(6)),
            make.move(done, R.SUCCESS, R.RUNNING, at(6)),
        ]
    )

    with pytest.raises(errors.TransitionError, match="SUCCESS to RUNNING"):
        store.apply(with_riders(batch, other, make, at))

    assert everything(store, job) == before


def test_a_forbidden_step_transition_writes_nothing_from_its_batch(
    store: store_mod.Store, started: StartedJob, make: type[Make], at: Clock
) -> None:
    job, (run, _, _) = started
    store.apply(store_mod.Changes(steps=[make.step(run, "train", S.PENDING, None, at(3))]))
    before = everything(store, job)
    batch = store_mod.Changes(
        runs=[make.move(run, R.STARTING, R.RUNNING, at(4))],
        steps=[make.step(run, "train", S.SUCCESS, S.PENDING, at(4), finished_at=at(4))],
    )

    with pytest.raises(errors.TransitionError, match="PENDING to SUCCESS"):
        store.apply(with_riders(batch, run, make, at))

    assert everything(store, job) == before


@pytest.mark.parametrize(
    "case",
    [
        "old state is behind the row",
        "run was killed meanwhile",
        "one stale run among several in one update",
        "run does not exist",
    ],
)
def test_a_stale_run_transition_writes_nothing_from_its_batch(
    store: store_mod.Store, started: StartedJob, make: type[Make], at: Clock, case: str
) -> None:
    job, (a, b, c) = started
    # a and b move STARTING -> RUNNING in the same batch, in an UPDATE that runs before the
    # stale one fails: those rows must be rolled back too.
    valid = [make.move(a, R.STARTING, R.RUNNING, at(6)), make.move(b, R.STARTING, R.RUNNING, at(6))]
    if case == "old state is behind the row":  # c is STARTING; the batch thinks RUNNING
        stale = [make.move(c, R.RUNNING, R.FINISHING, at(6))]
    elif case == "run was killed meanwhile":  # another process killed c first
        store.apply(store_mod.Changes(runs=[make.move(c, R.STARTING, R.KILLED, at(5))]))
        stale = [
            make.move(c, R.STARTING, R.RUNNING, at(6)),
            make.move(c, R.RUNNING, R.FINISHING, at(6)),
        ]
    elif case == "one stale run among several in one update":  # c is RUNNING already
        store.apply(store_mod.Changes(runs=[make.move(c, R.STARTING, R.RUNNING, at(5))]))
        stale = [make.move(c, R.STARTING, R.RUNNING, at(6))]
    else:
        stale = [make.move(c.evolve(id="f" * 32), R.STARTING, R.RUNNING, at(6))]
    before = everything(store, job)

    with pytest.raises(errors.TransitionError):
        store.apply(with_riders(store_mod.Changes(runs=valid + stale), a, make, at))

    assert everything(store, job) == before


def test_a_stale_step_transition_writes_nothing_from_its_batch(
    store: store_mod.Store, started: StartedJob, make: type[Make], at: Clock
) -> None:
    job, (run, _, _) = started
    store.apply(
        store_mod.Changes(
            steps=[
                make.step(run, "train", S.RUNNING, None, at(3), started_at=at(3)),
                make.step(run, "train", S.SUCCESS, S.RUNNING, at(4), finished_at=at(4)),
            ]
        )
    )
    before = everything(store, job)
    # Say a reaper that has not seen the success kills the step it believes RUNNING.
    batch = store_mod.Changes(
        steps=[make.step(run, "train", S.KILLED, S.RUNNING, at(9), finished_at=at(9))]
    )

    with pytest.raises(errors.TransitionError):
        store.apply(with_riders(batch, run, make, at))

    assert everything(store, job) == before


def test_moving_a_step_run_that_was_never_recorded_writes_nothing(
    store: store_mod.Store, started: StartedJob, make: type[Make], at: Clock
) -> None:
    job, (run, _, _) = started
    before = everything(store, job)
    batch = store_mod.Changes(
        steps=[make.step(run, "ghost", S.SUCCESS, S.RUNNING, at(4), finished_at=at(4))]
    )

    with pytest.raises(errors.TransitionError):
        store.apply(with_riders(batch, run, make, at))

    assert everything(store, job) == before
