"""A job runs against the snapshot taken when it was created, each run in its own copy."""

from __future__ import annotations

import pathlib
import textwrap
import threading

import pytest
import sqlalchemy as sa

from runyard import errors
from runyard.app import service
from runyard.core import states
from runyard.execution import loader, workspace
from runyard.storage import schema
from runyard.worker import engine

PIPE = """
import os
import pathlib

import runyard


@runyard.step
def work(*, tag: str = "a") -> dict:
    pathlib.Path("out.txt").write_text(tag)  # lands in this run's copy only
    pathlib.Path("data", tag + ".txt").write_text("written by " + tag)  # the shared folder
    return {
        "version": "first",
        "config": pathlib.Path("config.txt").read_text(),
        "shared": pathlib.Path("data/shared.txt").read_text(),
        "cwd": os.getcwd(),
        "module": __file__,
        "listed": sorted(os.listdir(".")),
    }


@runyard.pipeline
def pipe():
    work()
"""


@pytest.fixture
def project(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "project"
    files = {
        "runyard.toml": "",
        "pipe.py": PIPE,
        "config.txt": "one",
        "data/shared.txt": "shared",
        ".gitignore": "secret.txt\n",
        "secret.txt": "do not copy",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(text))
    return root


def run_worker(app: service.Runyard, job_id: str) -> None:
    working = app.worker(kind="worker", options=engine.WorkerOptions(slots=2, poll=0.02))
    thread = threading.Thread(target=working.run, daemon=True)
    thread.start()
    try:
        app.start_job(job_id)
        assert app.wait_job(job_id, timeout=60).state is states.JobState.SUCCESS
    finally:
        working.shut_down()
        thread.join(30)


def test_runs_use_the_snapshot_taken_at_creation_each_in_its_own_copy(
    app: service.Runyard, project: pathlib.Path
) -> None:
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    job = app.create_job(pipe, grid={"work": {"tag": ["a", "b"]}})
    assert job.job.snapshot_id is not None
    snapshot = app.get_snapshot(job.job.snapshot_id)
    assert [f.path for f in snapshot.files] == [
        ".gitignore",
        "config.txt",
        "pipe.py",
        "runyard.toml",
    ]
    assert snapshot.data_dir == "data"

    # Edited after the job was made: none of it reaches its runs. A changed step is a new
    # pipeline version, so a run that loaded today's file would fail to start.
    (project / "config.txt").write_text("two")
    (project / "pipe.py").write_text(PIPE.replace('"first"', '"second"'))
    (project / "extra.txt").write_text("new")
    run_worker(app, job.id)

    runs = app.list_runs(job.id)
    copies = set()
    for run in runs:
        out = app.output(run.id, "work")
        tag = run.params["steps"]["work"]["tag"]
        copy = app.working_copy(run.id)
        assert copy is not None and out["cwd"] == str(copy)
        copies.add(copy)
        assert out["version"] == "first" and out["config"] == "one"
        assert out["shared"] == "shared"  # the data folder is the project's own, linked
        assert out["listed"] == [
            ".gitignore",
            "config.txt",
            "data",
            "out.txt",
            "pipe.py",
            "runyard.toml",
        ]
        assert (copy / "out.txt").read_text() == tag
        assert (project / "data" / f"{tag}.txt").read_text() == f"written by {tag}"
        # Loaded from the snapshot's copy, not from the project.
        assert pathlib.Path(out["module"]).is_relative_to(app.workdirs.root / "snapshots")
        assert run.note is None  # same environment as the snapshot's
    assert len(copies) == 2
    assert not (project / "out.txt").exists()


def test_a_run_notes_when_its_environment_differs_from_its_snapshots(
    app: service.Runyard, project: pathlib.Path
) -> None:
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    job = app.create_job(pipe)
    snapshot = app.get_snapshot(job.job.snapshot_id or "")
    taken_elsewhere = snapshot.environment.to_json()
    taken_elsewhere["python_version"] = "3.10.2"
    taken_elsewhere["distributions"] = {**taken_elsewhere["distributions"], "oldlib": "0.1"}
    with app.store.engine.begin() as conn:  # as if the job had been made on another machine
        conn.execute(
            sa.update(schema.snapshots)
            .where(schema.snapshots.c.id == snapshot.id)
            .values(environment=taken_elsewhere)
        )

    run_worker(app, job.id)

    (run,) = app.list_runs(job.id)
    assert run.note is not None
    assert f"environment differs from snapshot {snapshot.id[:12]}" in run.note
    assert "Python 3.10.2 -> " in run.note
    assert "distributions removed: oldlib 0.1" in run.note


def test_deleted_runs_take_their_working_copies_with_them(
    app: service.Runyard, project: pathlib.Path
) -> None:
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    job = app.create_job(
        pipe, grid={"work": {"tag": ["a", "b", "c"]}}, max_parallel_runs=1, max_retained_runs=1
    )
    run_worker(app, job.id)

    (kept,) = app.list_runs(job.id)
    assert sorted(p.name for p in (app.workdirs.root / "runs").iterdir()) == [kept.id]


def test_a_pipeline_file_left_out_of_the_snapshot_is_refused_and_nothing_is_stored(
    app: service.Runyard, project: pathlib.Path
) -> None:
    (project / ".gitignore").write_text("pipe.py\n")
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline

    with pytest.raises(errors.LoadError, match=r"pipe.py is not in snapshot .*\.gitignore"):
        app.create_job(pipe)
    assert app.list_jobs() == []


def test_without_a_snapshot_runs_work_where_they_are_started(
    app: service.Runyard, project: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    job = app.create_job(pipe, snapshot=False)
    assert job.job.snapshot_id is None

    run_worker(app, job.id)

    (run,) = app.list_runs(job.id)
    assert app.output(run.id, "work")["cwd"] == str(project)
    assert app.working_copy(run.id) is None


HELPED = """
import runyard

import helper


@runyard.step
def versions(*, n: int = 0) -> list:
    import lazy  # imported by the run, after the pipeline was loaded

    return [helper.VERSION, lazy.VERSION]


@runyard.pipeline
def helped():
    versions()
"""


def test_one_engine_runs_each_job_with_its_own_snapshots_modules(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    project = tmp_path / "helped"
    project.mkdir()
    (project / "runyard.toml").write_text("")
    (project / "pipe.py").write_text(HELPED)
    jobs = []
    for version in ("one", "two"):
        (project / "helper.py").write_text(f"VERSION = {version!r}\n")
        (project / "lazy.py").write_text(f"VERSION = 'lazy {version}'\n")
        pipe = loader.load_pipeline(f"{project / 'pipe.py'}:helped").pipeline
        jobs.append(app.create_job(pipe, grid={"versions": {"n": [1, 2, 3, 4]}}))
    assert jobs[0].job.snapshot_id != jobs[1].job.snapshot_id

    working = app.worker(kind="worker", options=engine.WorkerOptions(slots=2, poll=0.02))
    thread = threading.Thread(target=working.run, daemon=True)
    thread.start()
    try:
        for job in jobs:  # queued together: the engine goes back and forth between them
            app.start_job(job.id)
        for job in jobs:
            assert app.wait_job(job.id, timeout=60).state is states.JobState.SUCCESS
    finally:
        working.shut_down()
        thread.join(30)

    for job, version in zip(jobs, ("one", "two"), strict=True):
        for run in app.list_runs(job.id):
            assert app.output(run.id, "versions") == [version, f"lazy {version}"]


def test_a_working_copy_is_private_and_keeps_executable_bits(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "source"
    (source / "bin" / "deep").mkdir(parents=True)
    (source / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (source / "bin" / "run.sh").chmod(0o755)
    (source / "bin" / "deep" / "big.bin").write_bytes(bytes(range(256)) * 5000)
    (source / "notes.txt").write_text("original")
    (source / "empty").mkdir()
    copy = tmp_path / "copy"
    (copy / "stale").mkdir(parents=True)  # a leftover is replaced, not merged

    assert workspace.copy_tree(source, copy) == 3

    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*")) == [
        "bin",
        "bin/deep",
        "bin/deep/big.bin",
        "bin/run.sh",
        "empty",
        "notes.txt",
    ]
    assert (copy / "bin" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (copy / "bin" / "deep" / "big.bin").read_bytes() == bytes(range(256)) * 5000
    (copy / "notes.txt").write_text("changed by a run")
    assert (source / "notes.txt").read_text() == "original"
