"""Reading a large job a page at a time, and all its runs' states at once (what the web UI
shows), on every backend."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from runyard.core import records, states
from runyard.storage import store as store_mod

if TYPE_CHECKING:
    from tests.storage.conftest import JobBuilder

R = states.RunState


def test_runs_are_paged_in_grid_order_with_retries_after_their_run(
    store: store_mod.Store, jobs: JobBuilder
) -> None:
    job, runs = jobs.create(runs=7, shuffled=True)
    by_index = sorted(runs, key=lambda r: r.index)
    store.apply(
        store_mod.Changes(
            runs=[
                store_mod.RunTransition(
                    by_index[2].id, job.id, R.CREATED, R.KILLED, by_index[2].created_at
                )
            ]
        )
    )
    retry = records.Run(
        id=uuid.uuid4().hex,
        job_id=job.id,
        index=2,
        params=by_index[2].params,
        state=R.QUEUED,
        created_at=by_index[2].created_at + dt.timedelta(seconds=1),
        queued_at=by_index[2].created_at + dt.timedelta(seconds=1),
        parent_run_id=by_index[2].id,
        attempt=2,
    )
    store.create_retry(store.get_run(by_index[2].id), retry)

    every = store.list_runs(job.id)
    assert [(r.index, r.attempt) for r in every] == [
        (0, 1), (1, 1), (2, 1), (2, 2), (3, 1), (4, 1), (5, 1), (6, 1)
    ]  # fmt: skip
    for offset in range(9):
        page = store.list_runs(job.id, limit=3, offset=offset)
        assert [r.id for r in page] == [r.id for r in every[offset : offset + 3]]
    assert store.count_runs(job.id) == 8
    assert [r.index for r in store.list_runs(job.id, state=R.CREATED, limit=2, offset=3)] == [
        4,
        5,
    ]
    assert store.count_runs(job.id, state=R.QUEUED) == 1

    # The states of the last attempts, in grid order.
    assert store.run_states(job.id) == [
        (0, "CREATED"), (1, "CREATED"), (2, "QUEUED"), (3, "CREATED"),
        (4, "CREATED"), (5, "CREATED"), (6, "CREATED"),
    ]  # fmt: skip
    empty, _ = jobs.create(runs=0)
    assert store.run_states(empty.id) == [] and store.list_runs(empty.id, offset=5) == []
