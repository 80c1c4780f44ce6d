"""Taking snapshots of real project folders and materializing private copies of them."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pathlib
import shutil
import subprocess
import uuid

import pytest

from runyard import errors
from runyard.app import projects, service
from runyard.core import snapshots
from runyard.execution import environment
from runyard.storage import snapshots as snapshot_store

T0 = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
ENV = environment.capture()


def write(root: pathlib.Path, path: str, content: str | bytes = "x") -> pathlib.Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        target.write_text(content)
    else:
        target.write_bytes(content)
    return target


@pytest.fixture
def project(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


@pytest.fixture
def store(tmp_path: pathlib.Path) -> snapshot_store.SnapshotStore:
    return snapshot_store.SnapshotStore(str(tmp_path / "artifacts"))


def take(
    store: snapshot_store.SnapshotStore,
    root: pathlib.Path,
    exclude: list[pathlib.Path] | None = None,
) -> snapshot_store.Taken:
    project = projects.project_at(root)
    return store.take(project, environment=ENV, created_at=T0, exclude=exclude or [])


def paths(taken: snapshot_store.Taken) -> list[str]:
    return [f.path for f in taken.snapshot.files]


def blobs(tmp_path: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in (tmp_path / "artifacts").rglob("*") if p.is_file())


GITIGNORED_TREE = {
    ".gitignore": "*.log\n!important.log\nbuild/\n/secret.txt\nnotes/*\n!notes/keep.md\n**/tmp\n",
    "main.py": "print(1)",
    "debug.log": "x",
    "important.log": "keep me",
    "secret.txt": "no",
    "lib/secret.txt": "anchored pattern: only the top one is ignored",
    "build/out.bin": "built",
    "lib/build/out.bin": "directory pattern, any depth",
    "lib/build.py": "a file named like the directory pattern is kept",
    "notes/todo.md": "ignored",
    "notes/keep.md": "re-included",
    "deep/a/tmp/x.txt": "ignored by **/tmp",
    "deep/a/tmpfile.txt": "kept",
    # A nested .gitignore applies relative to its folder and overrides the ones above.
    "pkg/.gitignore": "!*.log\ngenerated/\n/local.cfg\n",
    "pkg/run.log": "re-included by the nested file",
    "pkg/generated/code.py": "ignored",
    "pkg/local.cfg": "ignored: anchored to pkg/",
    "pkg/sub/local.cfg": "kept: the anchor is pkg/, not pkg/sub/",
    "pkg/sub/.gitignore": "*.py\n",
    "pkg/sub/mod.py": "ignored by the deepest file",
    "pkg/sub/data.txt": "kept",
    # A file under an ignored folder cannot be re-included, as in git.
    "cache/.gitignore": "!*\n",
    "cache/blob": "ignored with its folder",
    ".git/config": "never snapshotted",
}
KEPT = sorted(
    [
        ".gitignore",
        "main.py",
        "important.log",
        "lib/secret.txt",
        "lib/build.py",
        "notes/keep.md",
        "deep/a/tmpfile.txt",
        "pkg/.gitignore",
        "pkg/run.log",
        "pkg/sub/local.cfg",
        "pkg/sub/.gitignore",
        "pkg/sub/data.txt",
    ]
)


def make_tree(root: pathlib.Path) -> None:
    for path, content in GITIGNORED_TREE.items():
        write(root, path, content)
    # cache/ is ignored from the top: the pattern is added last so it wins there.
    with (root / ".gitignore").open("a") as fh:
        fh.write("cache/\n")


def test_gitignore_files_are_honoured_with_gits_semantics(
    project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    make_tree(project)

    taken = take(store, project)

    assert paths(taken) == KEPT
    assert taken.notes == ()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_files_kept_are_those_git_itself_does_not_ignore(
    project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    make_tree(project)
    shutil.rmtree(project / ".git")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    assert paths(take(store, project)) == sorted(p for p in listed.split("\0") if p)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_project_inside_a_repository_follows_the_gitignore_files_above_it(
    tmp_path: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write(repo, ".gitignore", "*.log\n/pkg/sub/build/\n!keep.log\n")
    write(repo, "pkg/.gitignore", "secret.txt\n")
    project = repo / "pkg" / "sub"
    for path in [
        "runyard.toml",
        "a.py",
        "run.log",
        "keep.log",
        "secret.txt",
        "build/out.bin",
        "lib/x.py",
        "lib/__pycache__/x.cpython-311.pyc",
        "__pycache__/a.pyc",
    ]:
        write(project, path, "" if path == "runyard.toml" else "x")
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z", "--", "pkg/sub"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    by_git = sorted(p.removeprefix("pkg/sub/") for p in listed.split("\0") if p)

    kept = paths(take(store, project))

    assert kept == ["a.py", "keep.log", "lib/x.py", "runyard.toml"]
    # git keeps the bytecode; runyard always leaves __pycache__ out
    assert kept == [p for p in by_git if "__pycache__" not in p]


def test_the_data_folder_runyards_home_and_excluded_paths_are_left_out(
    project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    write(project, "etl.py")
    write(project, "data/raw.csv", "1,2,3")
    write(project, "inputs/big.parquet", "p")
    write(project, "home/runyard.db", "db")
    write(project, "elsewhere/data/kept.csv", "only the project's data folder is special")

    taken = take(store, project, exclude=[project / "home"])
    write(project, "runyard.toml", 'data_dir = "inputs"\n')
    configured = take(store, project, exclude=[project / "home"])

    assert paths(taken) == ["elsewhere/data/kept.csv", "etl.py", "inputs/big.parquet"]
    assert paths(configured) == [
        "data/raw.csv",
        "elsewhere/data/kept.csv",
        "etl.py",
        "runyard.toml",
    ]


def test_the_facade_leaves_out_runyards_home_database_and_artifacts(
    project: pathlib.Path,
) -> None:
    from runyard.app import settings

    write(project, "etl.py")
    config = settings.Settings.from_env({}, home=project / ".runyard")
    with service.Runyard.open(config) as app:
        taken = app.take_snapshot(project)
        assert (project / ".runyard" / "runyard.db").exists()
        assert paths(taken) == ["etl.py"]
        assert app.get_snapshot(taken.snapshot.id[:10]) == taken.snapshot


def test_symlinks_are_kept_as_files_only_when_they_point_inside_the_project(
    tmp_path: pathlib.Path, project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    write(project, "real.py", "real")
    write(project, "data/big.csv", "big")
    write(project, "pkg/mod.py")
    outside = write(tmp_path, "outside.txt", "secret")
    (project / "alias.py").symlink_to("real.py")
    (project / "escape.txt").symlink_to(outside)
    (project / "dangling").symlink_to(project / "nothing")
    (project / "into_data.csv").symlink_to(project / "data" / "big.csv")
    (project / "folder").symlink_to(project / "pkg")

    taken = take(store, project)

    assert paths(taken) == ["alias.py", "pkg/mod.py", "real.py"]
    by_path = {f.path: f for f in taken.snapshot.files}
    assert by_path["alias.py"].digest == by_path["real.py"].digest
    assert taken.notes == (
        "dangling: symlink left out, it points to nothing",
        "escape.txt: symlink left out, it points outside the project",
        "folder: symlink left out, it points to a folder (copy or move the folder into the "
        "project)",
        "into_data.csv: symlink left out, it points into a folder left out (data, .git, "
        "runyard's home)",
    )


def test_a_snapshot_over_the_limit_is_refused_listing_its_largest_files(
    tmp_path: pathlib.Path, project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    write(project, "runyard.toml", "snapshot_max_mb = 1\n")
    mb = 1024 * 1024
    sizes = {"model.bin": 600_000, "a.csv": 300_000, "b.csv": 200_000, "c.csv": 100_000}
    sizes |= {"d.csv": 50_000, "e.csv": 10_000, "small.py": 10}
    for path, size in sizes.items():
        write(project, path, b"z" * size)

    with pytest.raises(errors.UsageError) as raised:
        take(store, project)

    message = str(raised.value)
    assert f"Project {project} is 1.2 MB to snapshot, over its limit of 1 MB" in message
    assert (
        "the largest files: model.bin (585.9 KB), a.csv (293.0 KB), b.csv (195.3 KB), "
        "c.csv (97.7 KB), d.csv (48.8 KB). Add them to .gitignore, move them to the data "
        "folder (data/, never snapshotted), or raise snapshot_max_mb" in message
    )
    assert "e.csv" not in message and "small.py" not in message
    assert blobs(tmp_path) == []
    assert sum(sizes.values()) > mb

    # Leaving the largest out, as the message says, is enough.
    write(project, ".gitignore", "model.bin\n")
    assert "model.bin" not in paths(take(store, project))


def test_an_unchanged_project_stores_nothing_new_and_one_change_stores_one_blob(
    tmp_path: pathlib.Path, project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    for i in range(20):
        write(project, f"src/m{i}.py", f"value = {i}\n" * 100)
    write(project, "src/copy.py", "value = 0\n" * 100)  # the same content as m0.py
    write(project, "empty.txt", "")

    first = take(store, project)
    again = take(store, project)
    stored = blobs(tmp_path)
    write(project, "src/m7.py", "value = 'changed'\n")
    changed = take(store, project)

    assert first.blobs_written == 21  # 20 contents and the empty one; copy.py shares m0's
    assert first.bytes_written == sum(f.size for f in first.snapshot.files) - 1000
    assert len(stored) == 21
    assert (again.bytes_written, again.blobs_written) == (0, 0)
    assert again.snapshot.id == first.snapshot.id
    assert (changed.bytes_written, changed.blobs_written) == (len("value = 'changed'\n"), 1)
    assert snapshots.diff(first.snapshot, changed.snapshot).changed == ("src/m7.py",)
    assert len(blobs(tmp_path)) == 22


def test_blobs_hold_exactly_their_digests_content_and_are_read_only(
    tmp_path: pathlib.Path, project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    write(project, "a.py", "print('a')\n")

    taken = take(store, project)

    (one,) = taken.snapshot.files
    blob = pathlib.Path(store.blob_path(one.digest))
    assert blob == tmp_path / "artifacts" / "blobs" / "sha256" / one.digest[:2] / one.digest
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == one.digest
    assert blob.stat().st_mode & 0o777 == 0o444


def test_a_file_that_changes_while_it_is_stored_leaves_no_blob(
    tmp_path: pathlib.Path,
    project: pathlib.Path,
    store: snapshot_store.SnapshotStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write(project, "a.py", "new content")
    # As if the file was hashed before an editor rewrote it.
    old = (hashlib.sha256(b"old").hexdigest(), 3)
    monkeypatch.setattr(snapshot_store, "_sha256", lambda _path: old)

    with pytest.raises(errors.UsageError, match=r"a\.py changed while the snapshot was taken"):
        take(store, project)

    assert blobs(tmp_path) == []


def test_materialize_gives_each_run_a_private_writable_copy(
    tmp_path: pathlib.Path, project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    write(project, "etl.py", "print('etl')\n")
    write(project, "pkg/helpers.py", "HELP = 1\n")
    script = write(project, "bin/run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    snapshot = take(store, project).snapshot

    copied = store.materialize(snapshot, tmp_path / "run1")
    store.materialize(snapshot, tmp_path / "run2")

    assert copied == snapshot.total_bytes
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    assert sorted(str(p.relative_to(run1)) for p in run1.rglob("*") if p.is_file()) == [
        "bin/run.sh",
        "etl.py",
        "pkg/helpers.py",
    ]
    assert (run1 / "bin" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (run1 / "etl.py").stat().st_mode & 0o777 == 0o644
    assert subprocess.run([str(run1 / "bin" / "run.sh")], capture_output=True).stdout == b"hi\n"

    # A run writes in place, truncates, appends and adds files: only its own copy changes.
    with (run1 / "etl.py").open("r+b") as fh:
        fh.write(b"XXXXX")
    (run1 / "pkg" / "helpers.py").write_text("")
    with (run1 / "bin" / "run.sh").open("a") as fh:
        fh.write("echo more\n")
    write(run1, "pkg/new.py")

    assert (run2 / "etl.py").read_text() == "print('etl')\n"
    assert (run2 / "pkg" / "helpers.py").read_text() == "HELP = 1\n"
    assert not (run2 / "pkg" / "new.py").exists()
    for f in snapshot.files:
        blob = pathlib.Path(store.blob_path(f.digest))
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == f.digest
        assert os.stat(blob).st_nlink == 1  # never hard-linked into a run's folder
    assert (project / "etl.py").read_text() == "print('etl')\n"


def test_materialize_refuses_paths_that_escape_the_destination(
    tmp_path: pathlib.Path, project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    write(project, "a.py", "a")
    good = take(store, project).snapshot
    digest = good.files[0].digest
    for bad in ("../escaped.py", "/tmp/abs.py", "x/../../escaped.py"):
        # A manifest tampered with in the database: built without make_snapshot's checks.
        evil = snapshots.Snapshot(
            id="0" * 64,
            root=good.root,
            files=(snapshots.SnapshotFile(bad, digest, 1),),
            total_bytes=1,
            environment=ENV,
            created_at=T0,
        )
        dest = tmp_path / "runs" / uuid.uuid4().hex
        dest.parent.mkdir(exist_ok=True)

        with pytest.raises(errors.UsageError, match="not a relative path inside the project"):
            store.materialize(evil, dest)

        assert not dest.exists()
    assert not (tmp_path / "runs" / "escaped.py").exists()
    assert not (tmp_path / "escaped.py").exists()


def test_materialize_refuses_an_existing_folder_and_cleans_up_after_a_missing_blob(
    tmp_path: pathlib.Path, project: pathlib.Path, store: snapshot_store.SnapshotStore
) -> None:
    write(project, "a.py", "a")
    write(project, "b.py", "b")
    snapshot = take(store, project).snapshot
    (tmp_path / "taken").mkdir()

    with pytest.raises(errors.UsageError, match="exists already; give a folder that does not"):
        store.materialize(snapshot, tmp_path / "taken")

    pathlib.Path(store.blob_path(snapshot.files[1].digest)).unlink()
    with pytest.raises(errors.StoreError, match=r"the content of b.py .* is missing"):
        store.materialize(snapshot, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_snapshots_work_the_same_on_an_fsspec_url(project: pathlib.Path) -> None:
    store = snapshot_store.SnapshotStore(f"memory://runyard-test-{uuid.uuid4().hex}")
    write(project, "a.py", "a")
    script = write(project, "run.sh", "#!/bin/sh\n")
    script.chmod(0o755)

    first = take(store, project)
    again = take(store, project)
    dest = project.parent / "run"
    store.materialize(first.snapshot, dest)

    assert (first.blobs_written, again.blobs_written, again.bytes_written) == (2, 0, 0)
    assert (dest / "a.py").read_text() == "a"
    assert (dest / "run.sh").stat().st_mode & 0o777 == 0o755


def test_a_file_that_changes_while_it_is_uploaded_publishes_no_blob(
    project: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = snapshot_store.SnapshotStore(f"memory://runyard-test-{uuid.uuid4().hex}")
    write(project, "a.py", "new content")
    old = (hashlib.sha256(b"old").hexdigest(), 3)
    monkeypatch.setattr(snapshot_store, "_sha256", lambda _path: old)

    with pytest.raises(errors.UsageError, match=r"a\.py changed while the snapshot was taken"):
        take(store, project)

    assert not store.fs.exists(store.blob_path(old[0]))
    assert not store.fs.exists(f"{store.root}/blobs")
