"""Data repos and data pipelines through the app facade: commits trigger job sets, datums are
skipped when done before, failures, timeouts, stops, upstream failures, egress."""

from __future__ import annotations

import pathlib
import textwrap
import threading
import time

import pytest

from runyard import errors
from runyard.app import service
from runyard.core import datapipelines as dp

S = dp.DataJobState
UPPER = (
    'tr a-z A-Z < "$RUNYARD_INPUT_TEXTS" > "$RUNYARD_OUTPUT_DIR/$(basename $RUNYARD_INPUT_TEXTS)"'
)


def spec(name: str = "upper", stdin: str = UPPER, **more: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": "texts", "glob": "/*"}},
        "transform": {"cmd": ["sh"], "stdin": [stdin]},
        "parallelism": 2,
    }
    raw.update(more)
    return raw


def text(app: service.Runyard, target: str) -> str:
    return b"".join(app.data.read_file(target)).decode()


@pytest.fixture
def texts(app: service.Runyard, tmp_path: pathlib.Path) -> pathlib.Path:
    """A repo ``texts`` holding /a.txt, /b.txt, /c.txt (no pipeline yet)."""
    folder = tmp_path / "texts"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.txt").write_text(f"file {name}\n")
    app.data.create_repo("texts")
    app.data.put_files("texts@master:/", [folder], recursive=True)
    return folder


def run(app: service.Runyard, jobs: list[dp.DataJob]) -> list[dp.DataJob]:
    assert jobs, "the commit triggered no job"
    return app.data.run_job_set(jobs[0].id)


def test_a_pipeline_processes_its_inputs_head_at_once(
    app: service.Runyard, texts: pathlib.Path
) -> None:
    _, jobs = app.data.create_pipeline(spec())
    (job,) = run(app, jobs)
    assert job.state is S.SUCCESS
    assert (job.data_processed, job.data_skipped, job.data_total) == (3, 0, 3)
    assert text(app, "upper@master:/b.txt") == "FILE B\n"
    assert job.download_bytes == job.upload_bytes == 3 * 7
    assert app.data.commit_of("upper@master").origin.value == "AUTO"


def test_a_commit_changing_one_file_processes_one_datum(
    app: service.Runyard, texts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    _, jobs = app.data.create_pipeline(spec())
    run(app, jobs)
    changed = tmp_path / "b.txt"
    changed.write_text("new b\n")
    commit, jobs = app.data.put_files("texts@master:/b.txt", [changed])
    assert [j.id for j in jobs] == [commit.id]  # the global ID is the commit's
    (job,) = run(app, jobs)
    assert job.progress == "1 + 2 / 3"
    assert text(app, "upper@master:/b.txt") == "NEW B\n"
    assert text(app, "upper@master:/a.txt") == "FILE A\n"  # reused, not processed
    states = {d.state for d in app.data.list_datums(f"upper@{job.id}")}
    assert states == {dp.DatumState.SUCCESS, dp.DatumState.SKIPPED}


def test_reprocess_processes_every_datum_again(app: service.Runyard, texts: pathlib.Path) -> None:
    _, jobs = app.data.create_pipeline(spec())
    run(app, jobs)
    pipeline, jobs = app.data.create_pipeline(spec(), update=True, reprocess=True)
    assert pipeline.version == 2
    (job,) = run(app, jobs)
    assert job.progress == "3 + 0 / 3"
    _, jobs = app.data.create_pipeline(spec(), update=True)
    (job,) = run(app, jobs)
    assert job.progress == "0 + 3 / 3"


def test_a_failing_datum_fails_the_job_after_its_tries_and_keeps_its_logs(
    app: service.Runyard, texts: pathlib.Path
) -> None:
    script = (
        'echo "looking at $RUNYARD_INPUT_TEXTS"; '
        'case "$RUNYARD_INPUT_TEXTS" in *b.txt) exit 3;; esac; ' + UPPER
    )
    _, jobs = app.data.create_pipeline(spec(stdin=script, datum_tries=2))
    (job,) = run(app, jobs)
    assert job.state is S.FAILURE
    assert (job.data_processed, job.data_failed) == (2, 1)
    assert "1 of 3 datum(s) failed" in (job.reason or "")
    (bad,) = [d for d in app.data.list_datums(f"upper@{job.id}") if d.state.value == "FAILURE"]
    assert bad.tries == 2
    assert bad.error == "the transform exited 3"
    assert bad.logs.count("looking at") == 2 and "b.txt" in bad.logs
    assert app.data.datum(bad.id[:10]).logs == bad.logs
    with pytest.raises(errors.NotFoundError):
        app.data.commit_of("upper@master")  # a failed job writes no output commit


def test_a_datum_over_its_timeout_is_killed(app: service.Runyard, texts: pathlib.Path) -> None:
    _, jobs = app.data.create_pipeline(
        spec(stdin="sleep 30", datum_timeout="0.3s", datum_tries=1, parallelism=3)
    )
    started = time.monotonic()
    (job,) = run(app, jobs)
    assert time.monotonic() - started < 20
    assert job.state is S.FAILURE and job.data_failed == 3
    assert all("datum_timeout" in (d.error or "") for d in app.data.list_datums(f"upper@{job.id}"))


def test_downstream_jobs_share_the_id_and_fail_when_upstream_fails(
    app: service.Runyard, texts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    app.data.create_pipeline(spec(stdin='grep -q BAD "$RUNYARD_INPUT_TEXTS" && exit 1; ' + UPPER))
    count = {
        "pipeline": {"name": "count"},
        "input": {"pfs": {"repo": "upper", "glob": "/"}},
        "transform": {
            "cmd": ["sh", "-c", 'ls "$RUNYARD_INPUT_UPPER" | wc -l > "$RUNYARD_OUTPUT_DIR/n"']
        },
    }
    app.data.create_pipeline(count)
    bad = tmp_path / "bad.txt"
    bad.write_text("BAD\n")
    commit, jobs = app.data.put_files("texts@master:/", [bad])
    assert [(j.pipeline, j.id) for j in jobs] == [("upper", commit.id), ("count", commit.id)]
    upper, downstream = run(app, jobs)
    assert upper.state is S.FAILURE
    assert downstream.state is S.FAILURE
    assert f"upstream job upper@{commit.id} ended FAILURE" in (downstream.reason or "")
    assert downstream.data_total == 0  # it never ran
    good = tmp_path / "bad.txt"
    good.write_text("fine now\n")
    _, jobs = app.data.put_files("texts@master:/", [good])
    assert [j.state for j in run(app, jobs)] == [S.SUCCESS, S.SUCCESS]
    assert text(app, "count@master:/n").strip() == "4"


def test_a_stopped_job_is_killed_with_its_running_datums(
    app: service.Runyard, texts: pathlib.Path
) -> None:
    _, jobs = app.data.create_pipeline(spec(stdin="sleep 60", datum_tries=1))
    ended: list[dp.DataJob] = []
    worker = threading.Thread(target=lambda: ended.extend(run(app, jobs)))
    worker.start()
    deadline = time.monotonic() + 20
    while app.data.get_job("upper", jobs[0].id).state is not S.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [j.pipeline for j in app.data.stop_job(jobs[0].id)] == ["upper"]
    worker.join(30)
    assert not worker.is_alive()
    (job,) = ended
    assert job.state is S.KILLED and job.reason == "stopped by a user"


def test_a_job_not_started_is_killed_by_a_stop(app: service.Runyard, texts: pathlib.Path) -> None:
    _, jobs = app.data.create_pipeline(spec())
    (stopped,) = app.data.stop_job(f"upper@{jobs[0].id}")
    assert app.data.get_job("upper", stopped.id).state is S.KILLED
    assert app.data.run_job_set(stopped.id)[0].state is S.KILLED  # nothing left to run
    assert app.data.wait_job(stopped.id, timeout=1)[0].state is S.KILLED


def test_egress_copies_the_output_to_a_folder(
    app: service.Runyard, texts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "egress"
    _, jobs = app.data.create_pipeline(spec(egress={"URL": f"file://{out}"}))
    (job,) = run(app, jobs)
    assert job.state is S.SUCCESS
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "c.txt"]
    assert (out / "c.txt").read_text() == "FILE C\n"


def test_a_python_transform_over_a_cross(
    app: service.Runyard, texts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "join.py").write_text(
        textwrap.dedent(
            """
            def join(inputs, output_dir):
                left, right = inputs["texts"], inputs["suffixes"]
                name = f"{left.stem}-{right.stem}.txt"
                (output_dir / name).write_text(left.read_text().strip() + right.read_text())
            """
        )
    )
    app.data.create_repo("suffixes")
    app.data.put_bytes("suffixes@master:/x.txt", b"!\n")
    app.data.put_bytes("suffixes@master:/y.txt", b"?\n")
    raw = {
        "pipeline": {"name": "joined"},
        "input": {
            "cross": [
                {"pfs": {"repo": "texts", "glob": "/*"}},
                {"pfs": {"repo": "suffixes", "glob": "/*"}},
            ]
        },
        "transform": {"python": "join.py:join"},
        "parallelism": 2,
    }
    _, jobs = app.data.create_pipeline(raw, base_dir=str(tmp_path))
    (job,) = run(app, jobs)
    assert job.state is S.SUCCESS, job.reason
    assert job.data_total == 6
    assert text(app, "joined@master:/b-y.txt") == "file b?\n"


def test_union_and_deep_globs(app: service.Runyard, texts: pathlib.Path) -> None:
    app.data.create_repo("logs")
    app.data.put_bytes("logs@master:/2026/01/a.csv", b"1\n")
    app.data.put_bytes("logs@master:/2026/02/b.csv", b"2\n")
    app.data.put_bytes("logs@master:/2026/02/notes.md", b"-\n")
    raw = {
        "pipeline": {"name": "both"},
        "input": {
            "union": [
                {"pfs": {"repo": "texts", "glob": "/a.txt"}},
                {"pfs": {"repo": "logs", "glob": "/**.csv"}},
            ]
        },
        "transform": {
            "cmd": [
                "sh",
                "-c",
                'find "$RUNYARD_INPUT_DIR" -type f | wc -l '
                '> "$RUNYARD_OUTPUT_DIR/$RUNYARD_DATUM_ID"',
            ]
        },
    }
    _, jobs = app.data.create_pipeline(raw)
    (job,) = run(app, jobs)
    assert job.progress == "3 + 0 / 3"


def test_put_get_list_and_delete_files(
    app: service.Runyard, texts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    listed = app.data.list_files("texts@master:/")
    assert [(f.path, f.kind) for f in listed] == [
        ("/a.txt", "file"),
        ("/b.txt", "file"),
        ("/c.txt", "file"),
    ]
    app.data.put_files("texts@master:/deep/", [texts / "a.txt"])
    assert [f.path for f in app.data.list_files("texts@master:/")][-1] == "/deep/"
    out = tmp_path / "out"
    assert app.data.get_files("texts@master:/", out) == 4
    assert (out / "deep" / "a.txt").read_text() == "file a\n"
    commit, _ = app.data.delete_files("texts@master:/deep")
    assert commit.file_count == 3
    first = app.data.list_commits("texts")[-1]
    assert app.data.commit_of(f"texts@{first.id}").file_count == 3


def test_identical_content_is_stored_once(app: service.Runyard, texts: pathlib.Path) -> None:
    blobs = app.snapshot_store.local_root
    assert blobs is not None
    before = sorted((blobs / "blobs").rglob("*"))
    app.data.put_files("texts@master:/copy/", [texts], recursive=True)
    assert sorted((blobs / "blobs").rglob("*")) == before


@pytest.mark.parametrize("target", ["texts@master:/../x", "texts@master:/a/../../x"])
def test_paths_never_leave_the_repo(app: service.Runyard, texts: pathlib.Path, target: str) -> None:
    with pytest.raises(errors.UsageError, match="outside the repo"):
        app.data.put_files(target, [texts / "a.txt"])


def test_bad_requests_name_the_fix(app: service.Runyard, texts: pathlib.Path) -> None:
    with pytest.raises(errors.UsageError, match="add -r"):
        app.data.put_files("texts@master:/", [texts])
    with pytest.raises(errors.NotFoundError, match="No repo 'nope'"):
        app.data.create_pipeline(spec(input={"pfs": {"repo": "nope", "glob": "/"}}))
    app.data.create_pipeline(spec())
    with pytest.raises(errors.ConflictError, match="read by pipeline"):
        app.data.delete_repo("texts")
    with pytest.raises(errors.ConflictError, match="delete the pipeline instead"):
        app.data.delete_repo("upper")


def test_a_job_over_its_job_timeout_is_killed(app: service.Runyard, texts: pathlib.Path) -> None:
    _, jobs = app.data.create_pipeline(spec(stdin="sleep 60", job_timeout="0.5s"))
    started = time.monotonic()
    (job,) = run(app, jobs)
    assert time.monotonic() - started < 20
    assert job.state is S.KILLED
    assert job.reason == "it ran longer than its job_timeout"


def test_a_path_cannot_be_both_a_file_and_a_folder(
    app: service.Runyard, texts: pathlib.Path
) -> None:
    with pytest.raises(errors.UsageError, match=r"/a.txt both as a file and as the folder"):
        app.data.put_bytes("texts@master:/a.txt/inner.txt", b"x")
    app.data.put_bytes("texts@master:/dir/inner.txt", b"x")
    with pytest.raises(errors.UsageError, match="both as a file and as the folder"):
        app.data.put_bytes("texts@master:/dir", b"x")
    app.data.delete_files("texts@master:/dir")
    app.data.put_bytes("texts@master:/dir", b"now a file")


def test_python_transforms_run_in_long_lived_processes_that_survive_failures(
    app: service.Runyard, texts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "pids.py").write_text(
        textwrap.dedent(
            """
            import os
            import sys

            def record(inputs, output_dir):
                name = inputs["texts"].name
                print("datum", name)
                if name == "b.txt":
                    raise ValueError("b is bad")
                if name == "c.txt":
                    sys.exit(3)  # ends its process: the next datum gets a new one
                (output_dir / name).write_text(str(os.getpid()))
            """
        )
    )
    raw = spec(transform={"python": "pids.py:record"}, parallelism=1, datum_tries=1)
    _, jobs = app.data.create_pipeline(raw, base_dir=str(tmp_path))
    (job,) = run(app, jobs)
    assert (job.data_processed, job.data_failed) == (1, 2)
    by_file = {d.files[0]: d for d in app.data.list_datums(f"upper@{job.id}")}
    bad = by_file["texts:/b.txt"]
    assert "ValueError: b is bad" in bad.logs and bad.logs.startswith("datum b.txt\n")
    assert bad.error == "the transform raised an exception (its traceback is in the logs)"
    assert by_file["texts:/c.txt"].error == "the transform's process exited 3"
    # A datum of a pipeline whose file changed is processed by the new code.
    (tmp_path / "pids.py").write_text(
        "def record(inputs, output_dir):\n"
        "    (output_dir / inputs['texts'].name).write_text('v2')\n"
    )
    _, jobs = app.data.create_pipeline(raw, base_dir=str(tmp_path), update=True)
    (job,) = run(app, jobs)
    assert job.progress == "2 + 1 / 3" and job.state is S.SUCCESS
    assert text(app, "upper@master:/b.txt") == "v2"


def test_a_python_datum_over_its_timeout_is_killed_and_the_next_one_runs(
    app: service.Runyard, texts: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "slow.py").write_text(
        textwrap.dedent(
            """
            import time

            def run(inputs, output_dir):
                if inputs["texts"].name == "a.txt":
                    time.sleep(60)
                (output_dir / inputs["texts"].name).write_text("done")
            """
        )
    )
    raw = spec(
        transform={"python": "slow.py:run"}, parallelism=1, datum_tries=1, datum_timeout="1s"
    )
    _, jobs = app.data.create_pipeline(raw, base_dir=str(tmp_path))
    started = time.monotonic()
    (job,) = run(app, jobs)
    assert time.monotonic() - started < 30
    assert (job.data_processed, job.data_failed) == (2, 1)
