"""The data side of the store: repos, commits, files, pipelines, data jobs and datums, on
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from runyard import errors
from runyard.core import datapipelines as dp
from runyard.core import datarepos
from runyard.storage import store as store_mod

T0 = dt.datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=dt.UTC)
USER = datarepos.CommitOrigin.USER


def entry(path: str, n: int = 1) -> datarepos.FileEntry:
    return datarepos.FileEntry(path, f"{n:064x}", n * 10)


def put(store: store_mod.Store, commit_id: str, *paths: str, repo: str = "images", **kw: object):
    return store.data.commit(
        repo=repo,
        branch=str(kw.pop("branch", "master")),
        commit_id=commit_id,
        changes={p: entry(p, i + 1) for i, p in enumerate(paths)},
        origin=USER,
        at=T0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def repo(store: store_mod.Store) -> str:
    store.data.create_repo(datarepos.Repo("images", "pictures", T0))
    return "images"


def test_a_repo_is_created_once_with_an_empty_master(store: store_mod.Store, repo: str) -> None:
    assert store.data.get_repo(repo) == datarepos.Repo("images", "pictures", T0)
    assert store.data.branches(repo) == [datarepos.Branch("images", "master", None)]
    with pytest.raises(errors.ConflictError, match="exists already"):
        store.data.create_repo(datarepos.Repo("images", "", T0))
    with pytest.raises(errors.NotFoundError, match="did you mean 'images'"):
        store.data.get_repo("imagse")


def test_a_commit_keeps_its_parents_files_and_moves_the_head(
    store: store_mod.Store, repo: str
) -> None:
    first = put(store, "c1", "/a.png", "/dir/b.png")
    second = put(store, "c2", "/dir/b.png", "/c.png")
    assert first.parent is None and second.parent == "c1"
    assert second.file_count == 3 and second.size == 10 + 10 + 20
    assert store.data.find_commit(repo, "master").id == "c2"
    assert [f.path for f in store.data.files(repo, "c1")] == ["/a.png", "/dir/b.png"]
    assert [f.path for f in store.data.files(repo, "c2")] == ["/a.png", "/c.png", "/dir/b.png"]
    # The old commit is unchanged: commits are immutable.
    assert store.data.files(repo, "c1")[1] == entry("/dir/b.png", 2)
    assert store.data.files(repo, "c2")[2] == entry("/dir/b.png", 1)


def test_deleting_a_folder_and_replacing_everything(store: store_mod.Store, repo: str) -> None:
    put(store, "c1", "/a", "/dir/b", "/dir/c", "/dirx")
    gone = put(store, "c2", deleted_folders=["/dir"])
    assert [f.path for f in store.data.files(repo, gone.id)] == ["/a", "/dirx"]
    replaced = put(store, "c3", "/only", replace=True)
    assert [f.path for f in store.data.files(repo, replaced.id)] == ["/only"]


def test_folder_listing_is_exact_and_case_sensitive(store: store_mod.Store, repo: str) -> None:
    put(store, "c1", "/Data/x", "/data/y", "/data_z", "/data%/w")
    assert [f.path for f in store.data.files(repo, "c1", "/data")] == ["/data/y"]
    assert [f.path for f in store.data.files(repo, "c1", "/Data")] == ["/Data/x"]
    assert [f.path for f in store.data.files(repo, "c1", "/data%")] == ["/data%/w"]


def test_commits_are_found_by_branch_id_or_prefix(store: store_mod.Store, repo: str) -> None:
    put(store, "abc111", "/a")
    put(store, "abd222", "/b", branch="dev")
    assert store.data.find_commit(repo, "dev").id == "abd222"
    assert store.data.find_commit(repo, "abc").id == "abc111"
    with pytest.raises(errors.NotFoundError, match="ambiguous"):
        store.data.find_commit(repo, "ab")
    with pytest.raises(errors.NotFoundError, match="no branch or commit"):
        store.data.find_commit(repo, "zzz")
    assert [c.id for c in store.data.list_commits(repo, "dev")] == ["abd222"]
    with pytest.raises(errors.ConflictError, match="has a commit"):
        put(store, "abc111", "/c")


def test_concurrent_commits_to_one_branch_never_share_a_parent(
    store: store_mod.Store, repo: str
) -> None:
    def commit(n: int) -> None:
        put(store, f"c{n:03d}", f"/f{n}")

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    commits = store.data.list_commits(repo)
    parents = [c.parent for c in commits]
    assert len(set(parents)) == len(parents) == 8
    head = store.data.find_commit(repo, "master")
    assert head.file_count == 8  # each commit saw every earlier one


def test_deleting_a_repo_deletes_its_commits(store: store_mod.Store, repo: str) -> None:
    put(store, "c1", "/a")
    store.data.delete_repo(repo)
    assert store.data.list_repos() == []
    store.data.create_repo(datarepos.Repo("images", "", T0))
    assert store.data.branches("images") == [datarepos.Branch("images", "master", None)]


def _pipeline(name: str = "edges") -> dp.Pipeline:
    spec = dp.parse_spec(
        {
            "pipeline": {"name": name},
            "input": {"pfs": {"repo": "images", "glob": "/*"}},
            "transform": {"cmd": ["true"]},
        }
    )
    return dp.Pipeline(spec, 1, "s" * 32, T0, T0)


def _job(job_id: str, pipeline: str = "edges", position: int = 0) -> dp.DataJob:
    return dp.DataJob(pipeline, job_id, 1, dp.DataJobState.CREATED, T0, position=position)


def test_a_pipeline_gets_its_output_repo(store: store_mod.Store, repo: str) -> None:
    store.data.create_pipeline(_pipeline())
    assert store.data.get_repo("edges").pipeline == "edges"
    assert store.data.get_pipeline("edges").spec == _pipeline().spec
    with pytest.raises(errors.ConflictError, match="exists already"):
        store.data.create_pipeline(_pipeline())
    store.data.delete_pipeline("edges")
    with pytest.raises(errors.NotFoundError):
        store.data.get_repo("edges")


def test_a_job_is_claimed_once_and_moves_by_the_table(store: store_mod.Store, repo: str) -> None:
    pipeline = _pipeline()
    store.data.create_pipeline(pipeline, [(_job("g1"), pipeline)])
    claimed = store.data.claim_job(worker="w1", at=T0)
    assert claimed is not None and claimed.state is dp.DataJobState.STARTING
    assert store.data.claim_job(worker="w2", at=T0) is None
    with pytest.raises(errors.TransitionError):
        store.data.move_job(claimed, dp.DataJobState.SUCCESS, at=T0)
    running = store.data.move_job(claimed, dp.DataJobState.RUNNING, at=T0, data_total=3)
    assert running is not None and running.data_total == 3
    # A stale record (still STARTING) cannot move the job: it changed meanwhile.
    assert store.data.move_job(claimed, dp.DataJobState.RUNNING, at=T0) is None
    # Every transition is in the event log, under the job set's id.
    logged = [
        (e.kind, e.step_name, e.old_state, e.new_state) for e in store.list_events(job_id="g1")
    ]
    assert logged == [
        ("data_job_state", "edges", None, "CREATED"),
        ("data_job_state", "edges", "CREATED", "STARTING"),
        ("data_job_state", "edges", "STARTING", "RUNNING"),
    ]


def test_a_stop_kills_a_waiting_job_and_flags_a_running_one(
    store: store_mod.Store, repo: str
) -> None:
    pipeline = _pipeline()
    store.data.create_pipeline(pipeline, [(_job("g1"), pipeline), (_job("g2"), pipeline)])
    waiting = store.data.get_job("edges", "g2")
    assert store.data.request_stop(waiting, at=T0)
    assert store.data.get_job("edges", "g2").state is dp.DataJobState.KILLED
    claimed = store.data.claim_job(worker="w1", at=T0)
    assert claimed is not None and claimed.id == "g1"
    assert store.data.request_stop(claimed, at=T0)
    assert store.data.get_job("edges", "g1").stop_requested


def test_datums_done_before_are_reusable(store: store_mod.Store, repo: str) -> None:
    pipeline = _pipeline()
    store.data.create_pipeline(pipeline, [(_job("g1"), pipeline)])
    out = (entry("/out/a", 5),)
    records = [
        dp.DatumRecord("g1", "edges", "d1", dp.DatumState.SUCCESS, ("images:/a",), out, 1, 0.5),
        dp.DatumRecord(
            "g1",
            "edges",
            "d2",
            dp.DatumState.FAILURE,
            ("images:/b",),
            (),
            3,
            0.1,
            "boom\n",
            "exited 1",
        ),
    ]
    store.data.add_datums(records, counts=("edges", "g1", {"data_processed": 1}))
    assert store.data.reusable("edges", ["d1", "d2", "d3"]) == {"d1": out}
    assert store.data.get_job("edges", "g1").data_processed == 1
    assert store.data.find_datum("d2").logs == "boom\n"
    assert [d.id for d in store.data.list_datums("edges", "g1")] == ["d2", "d1"]


def test_a_job_whose_worker_went_silent_is_restarted(store: store_mod.Store, repo: str) -> None:
    pipeline = _pipeline()
    store.data.create_pipeline(pipeline, [(_job("g1"), pipeline), (_job("g2"), pipeline)])
    first = store.data.claim_job(worker="host:1", at=T0)
    second = store.data.claim_job(worker="host:1", at=T0)
    assert first is not None and second is not None
    running = store.data.move_job(first, dp.DataJobState.RUNNING, at=T0, data_total=2)
    assert running is not None
    done = dp.DatumRecord("g1", "edges", "d1", dp.DatumState.SUCCESS, ("images:/a",))
    store.data.add_datums([done], counts=("edges", "g1", {"data_processed": 1}))
    second = store.data.move_job(second, dp.DataJobState.RUNNING, at=T0)
    assert second is not None
    store.data.move_job(second, dp.DataJobState.FINISHING, at=T0, output_commit="g2")
    later = T0 + dt.timedelta(seconds=20)
    assert store.data.recover_lost_jobs(at=later, lease=30) == []  # within the lease
    recovered = store.data.recover_lost_jobs(at=T0 + dt.timedelta(seconds=31), lease=30)
    by_id = {j.id: j for j in recovered}
    assert by_id["g1"].state is dp.DataJobState.CREATED
    assert by_id["g1"].restarts == 1 and by_id["g1"].data_processed == 0
    assert "host:1 gave no sign of life" in (by_id["g1"].reason or "")
    assert store.data.list_datums("edges", "g1") == []
    assert by_id["g2"].state is dp.DataJobState.SUCCESS
    again = store.data.claim_job(worker="host:2", at=later)
    assert again is not None and again.id == "g1" and again.worker == "host:2"
