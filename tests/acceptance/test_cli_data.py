"""Data repos and data pipelines through the real ``runyard`` command, in the foreground and
handed to a ``runyard serve``; on the bundled example (examples/data)."""

from __future__ import annotations

import json
import pathlib

import pytest

from .test_cli import EXAMPLES, Cli
from .test_engine import Engine

DATA = EXAMPLES / "data"


@pytest.fixture
def cli(tmp_path: pathlib.Path) -> Cli:
    return Cli(tmp_path / "home", tmp_path, None)


def job_set_id(output: str) -> str:
    """The global id in a ``job PIPELINE@ID ...`` line."""
    line = next(x for x in output.splitlines() if x.startswith("job ") or "Data job" in x)
    word = line.split()[1] if line.startswith("job ") else line.split()[2]
    return word.rpartition("@")[2]


def test_the_data_example_end_to_end_in_the_foreground(
    tmp_path: pathlib.Path, database_url: str
) -> None:
    cli = Cli(tmp_path / "home", tmp_path, None if "sqlite" in database_url else database_url)
    cli("repo", "create", "texts")
    put = cli("put", "file", "-r", "texts@master:/", "-f", str(DATA / "texts"))
    assert "3 files" in put.stdout
    created = cli("pipeline", "create", "-f", str(DATA / "edges.json"))
    assert "success (3 + 0 / 3 datums)" in created.stdout
    counted = cli("pipeline", "create", "-f", str(DATA / "wordcount.yaml"))
    assert "success (1 + 0 / 1 datums)" in counted.stdout
    assert cli("get", "file", "wordcount@master:/words.txt").stdout == "11\n"
    assert cli("get", "file", "edges@master:/fox.txt").stdout == "THE QUICK BROWN FOX\n"

    (tmp_path / "more.txt").write_text("two words\n")
    put = cli("put", "file", "texts@master:/more.txt", "-f", "more.txt")
    global_id = job_set_id(put.stdout)
    assert f"job edges@{global_id} success (1 + 3 / 4 datums)" in put.stdout
    assert f"job wordcount@{global_id} success" in put.stdout
    assert cli("get", "file", "wordcount@master:/words.txt").stdout == "13\n"

    listed = cli("list", "job", global_id).stdout.splitlines()
    header = listed[0].split()
    assert header == [
        "ID", "PIPELINE", "STARTED", "DURATION", "RESTART", "PROGRESS", "DL", "UL", "STATE"
    ]  # fmt: skip
    assert [line.split()[1] for line in listed[1:]] == ["edges", "wordcount"]
    assert "1 + 3 / 4" in listed[1]
    assert len(cli("list", "job", "-p", "edges").stdout.splitlines()) == 3
    sets = cli("list", "job").stdout
    assert global_id in sets and "SUBJOBS" in sets

    raw = json.loads(cli("inspect", "job", f"edges@{global_id}", "--raw").stdout)
    assert raw["state"] == "JOB_SUCCESS"
    assert (raw["data_processed"], raw["data_skipped"], raw["data_total"]) == (1, 3, 4)
    assert raw["input_commits"] == [{"repo": "texts", "id": global_id}]
    assert raw["details"]["transform"]["cmd"] == ["sh"]
    assert "Datums" in cli("inspect", "job", f"edges@{global_id}").stdout

    datums = cli("list", "datum", f"edges@{global_id}").stdout.splitlines()
    assert datums[0].split() == ["ID", "FILES", "STATUS", "TIME"]
    assert sum("skipped" in line for line in datums) == 3
    commits = cli("list", "commit", "texts@master").stdout.splitlines()
    assert len(commits) == 3 and global_id in commits[1]
    shown = cli("inspect", "commit", f"texts@{global_id[:8]}").stdout
    assert "edges (success)" in shown and "wordcount (success)" in shown
    files = cli("list", "file", "texts@master:/").stdout
    assert "/more.txt" in files and "/fox.txt" in files
    cli("get", "file", "edges@master:/", "-o", "out")
    assert (tmp_path / "out" / "more.txt").read_text() == "TWO WORDS\n"
    assert "wordcount" in cli("pipeline", "list").stdout
    assert cli("wait", "job", global_id).stdout.count("success") == 2


def test_a_failing_datum_exits_non_zero_and_keeps_its_logs(
    cli: Cli, tmp_path: pathlib.Path
) -> None:
    spec = {
        "pipeline": {"name": "picky"},
        "input": {"pfs": {"repo": "texts", "glob": "/*"}},
        "transform": {"cmd": ["sh"], "stdin": ["echo checking; grep -q fox $RUNYARD_INPUT_TEXTS"]},
        "datum_tries": 1,
    }
    (tmp_path / "picky.json").write_text(json.dumps(spec))
    cli("repo", "create", "texts")
    cli("put", "file", "-r", "texts@master:/", "-f", str(DATA / "texts"))
    failed = cli("pipeline", "create", "-f", "picky.json", code=1)
    assert "2 of 3 datum(s) failed" in failed.stdout
    assert "did not succeed" in failed.stderr
    global_id = job_set_id(failed.stdout)
    rows = cli("list", "datum", f"picky@{global_id}").stdout.splitlines()[1:]
    bad = next(line.split()[0] for line in rows if "failure" in line)
    assert cli("logs", "--datum", bad[:12]).stdout == (
        "checking\n[runyard] the transform exited 1\n"
    )
    assert cli("wait", "job", global_id, code=1).stdout.startswith(f"picky@{global_id} failure")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "file", "texts@master:/../x", "-f", "x"], "outside the repo"),
        (["put", "file", "nope@master:/x", "-f", "x"], "No repo 'nope'"),
        (["get", "file", "texts@master:/missing.txt"], "No file /missing.txt"),
        (["list", "commit", "texts@nobranch"], "has no branch"),
        (["inspect", "job", "edges@123"], "No pipeline 'edges'"),
        (["repo", "create", "bad name"], "not valid"),
        (["pipeline", "create", "-f", "missing.json"], "Cannot read pipeline spec"),
        (["logs"], "--datum"),
    ],
)
def test_bad_input_exits_2_naming_the_fix(
    cli: Cli, tmp_path: pathlib.Path, args: list[str], message: str
) -> None:
    (tmp_path / "x").write_text("x")
    cli("repo", "create", "texts")
    cli("put", "file", "texts@master:/x", "-f", "x")
    result = cli(*args, code=2)
    assert message in result.stderr


def test_serve_runs_the_jobs_a_commit_triggers(cli: Cli, tmp_path: pathlib.Path) -> None:
    engine = Engine(cli, "--slots", "1", "--no-api")
    try:
        cli("repo", "create", "texts")
        created = cli("pipeline", "create", "-f", str(DATA / "edges.json"))
        assert "Pipeline edges created" in created.stdout
        put = cli("put", "file", "-r", "texts@master:/", "-f", str(DATA / "texts"))
        assert "handed to the engine" in put.stdout
        global_id = job_set_id(put.stdout)
        waited = cli("wait", "job", global_id, "--timeout", "60")
        assert waited.stdout.startswith(f"edges@{global_id} success (3 + 0 / 3)")
        assert f"data job edges@{global_id} success" in engine.log.read_text()
    finally:
        engine.stop()
