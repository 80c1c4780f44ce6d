"""What the Data pages read from the store, a page at a time: commits and data jobs by
offset, a job's datums failed first with counts per state, its transitions, and the
progress events datum counts write (on SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from runyard.core import datapipelines as dp
from runyard.core import datarepos
from runyard.storage import store as store_mod

from .test_store_datarepos import T0, _job, _pipeline, entry


@pytest.fixture
def repo(store: store_mod.Store) -> str:
    store.data.create_repo(datarepos.Repo("images", "", T0))
    return "images"


def later(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_commits_and_jobs_come_a_page_at_a_time_newest_first(
    store: store_mod.Store, repo: str
) -> None:
    for i in range(5):
        store.data.commit(
            repo=repo,
            branch="master",
            commit_id=f"c{i}",
            changes={f"/f{i}": entry(f"/f{i}")},
            origin=datarepos.CommitOrigin.USER,
            at=later(i),
        )
    pages = [
        [c.id for c in store.data.list_commits(repo, "master", limit=2, offset=k)]
        for k in (0, 2, 4)
    ]
    assert pages == [["c4", "c3"], ["c2", "c1"], ["c0"]]
    pipeline = _pipeline()
    jobs = [(_job(f"g{i}"), pipeline) for i in range(3)]
    jobs = [(dataclass_at(j, i), p) for i, (j, p) in enumerate(jobs)]
    store.data.create_pipeline(pipeline, jobs)
    newest = store.data.list_jobs(pipeline="edges", limit=2)
    older = store.data.list_jobs(pipeline="edges", limit=2, offset=2)
    assert [j.id for j in newest] == ["g2", "g1"] and [j.id for j in older] == ["g0"]


def dataclass_at(job: dp.DataJob, seconds: float) -> dp.DataJob:
    return dataclasses.replace(job, created_at=later(seconds))


def _datum(datum_id: str, state: dp.DatumState) -> dp.DatumRecord:
    return dp.DatumRecord("g1", "edges", datum_id, state, (f"images:/{datum_id}",), (), 1, 0.1)


def test_a_jobs_datums_come_failed_first_with_counts_and_progress_events(
    store: store_mod.Store, repo: str
) -> None:
    pipeline = _pipeline()
    store.data.create_pipeline(pipeline, [(_job("g1"), pipeline)])
    claimed = store.data.claim_job(worker="host:1", at=later(1))
    assert claimed is not None
    running = store.data.move_job(claimed, dp.DataJobState.RUNNING, at=later(2), data_total=5)
    assert running is not None
    before = store.last_event_id() or 0
    first = [_datum("a", dp.DatumState.SUCCESS), _datum("z", dp.DatumState.FAILURE)]
    store.data.add_datums(first, counts=("edges", "g1", {"data_processed": 1}), at=later(3))
    rest = [_datum(i, dp.DatumState.SUCCESS) for i in ("b", "c")] + [
        _datum("m", dp.DatumState.FAILURE)
    ]
    store.data.add_datums(rest, counts=("edges", "g1", {"data_processed": 3}), at=later(4))
    store.data.add_datums([], counts=("edges", "g1", {"data_failed": 2}))  # no ``at``: no event
    page, counts = store.data.page_datums("edges", "g1", limit=3)
    assert [d.id for d in page] == ["m", "z", "a"]
    assert counts == {dp.DatumState.SUCCESS: 3, dp.DatumState.FAILURE: 2}
    page, _ = store.data.page_datums("edges", "g1", limit=3, offset=3)
    assert [d.id for d in page] == ["b", "c"]
    progress = [e for e in store.events_since(before) if e.kind == "data_job_progress"]
    assert [(e.job_id, e.step_name, e.new_state, e.message) for e in progress] == [
        ("g1", "edges", "RUNNING", "1 + 0 / 5"),
        ("g1", "edges", "RUNNING", "3 + 0 / 5"),
    ]
    moves = store.data.transitions("edges", "g1")
    assert [(e.old_state, e.new_state) for e in moves] == [
        (None, "CREATED"),
        ("CREATED", "STARTING"),
        ("STARTING", "RUNNING"),
    ]
    assert store.data.transitions("edges", "nope") == []
