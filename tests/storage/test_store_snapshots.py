"""Snapshot records in the metadata store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest

from runyard import errors
from runyard.core import snapshots
from runyard.storage import store as store_mod
from tests.storage.conftest import Clock, JobBuilder

ENV = snapshots.Environment(
    "3.11.7", "cpython", "Linux-x86_64", {"numpy": "1.26.4", "pydantic": "2.7.1"}
)


def make(at: Clock, seconds: float, *contents: str, root: str = "/work/proj") -> snapshots.Snapshot:
    files = [
        snapshots.SnapshotFile(
            f"src/f{i}.py",
            hashlib.sha256(text.encode()).hexdigest(),
            len(text),
            snapshots.EXECUTABLE if i == 0 else snapshots.PLAIN,
        )
        for i, text in enumerate(contents)
    ]
    return snapshots.make_snapshot(root=root, files=files, environment=ENV, created_at=at(seconds))


def test_a_saved_snapshot_reads_back_equal(store: store_mod.Store, at: Clock) -> None:
    snapshot = make(at, 0, "a", "bb", "ccc")

    assert store.save_snapshot(snapshot) is True

    assert store.get_snapshot(snapshot.id) == snapshot
    assert store.get_snapshot(snapshot.id[:6]) == snapshot


def test_saving_the_same_snapshot_again_keeps_the_first_record(
    store: store_mod.Store, at: Clock
) -> None:
    first = make(at, 0, "a")
    again = make(at, 60, "a")
    assert again.id == first.id

    assert store.save_snapshot(first) is True
    assert store.save_snapshot(again) is False

    assert store.get_snapshot(first.id) == first
    assert len(store.list_snapshots()) == 1


def test_snapshots_are_listed_newest_first_without_their_files(
    store: store_mod.Store, at: Clock
) -> None:
    old, new = make(at, 0, "a"), make(at, 10, "a", "bb")
    store.save_snapshot(old)
    store.save_snapshot(new)

    listed = store.list_snapshots()

    assert [s.id for s in listed] == [new.id, old.id]
    assert listed[0] == snapshots.SnapshotSummary(new.id, "/work/proj", 2, 3, at(10))
    assert [s.id for s in store.list_snapshots(limit=1)] == [new.id]


def test_an_unknown_or_ambiguous_snapshot_id_is_not_found(
    store: store_mod.Store, at: Clock
) -> None:
    with pytest.raises(errors.NotFoundError, match="No snapshot 'abc'; list them with"):
        store.get_snapshot("abc")
    with pytest.raises(errors.NotFoundError, match="ids are letters and digits"):
        store.get_snapshot("../x")

    made = [make(at, i, str(i)) for i in range(40)]
    for s in made:
        store.save_snapshot(s)
    first = sorted(s.id for s in made)[0][0]
    with pytest.raises(errors.NotFoundError, match=f"Snapshot id '{first}' is ambiguous"):
        store.get_snapshot(first)


def test_a_job_keeps_its_snapshot_id(store: store_mod.Store, jobs: JobBuilder, at: Clock) -> None:
    snapshot = make(at, 0, "a")
    store.save_snapshot(snapshot)
    job, runs = jobs.build(runs=1)
    store.create_job(job.evolve(snapshot_id=snapshot.id), runs)
    plain, _ = jobs.create(runs=1)

    assert store.get_job(job.id).snapshot_id == snapshot.id
    assert store.get_job(plain.id).snapshot_id is None


def test_a_snapshots_data_folder_is_kept(store: store_mod.Store, at: Clock) -> None:
    files = make(at, 0, "a").files
    inside = snapshots.make_snapshot(
        root="/p", files=files, environment=ENV, created_at=at(0), data_dir="inputs/big"
    )
    outside = snapshots.make_snapshot(root="/p", files=files, environment=ENV, created_at=at(0))
    assert inside.id != outside.id

    store.save_snapshot(inside)
    store.save_snapshot(outside)

    assert store.get_snapshot(inside.id).data_dir == "inputs/big"
    assert store.get_snapshot(outside.id).data_dir is None
