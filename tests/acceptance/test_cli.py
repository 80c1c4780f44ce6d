"""The real ``runyard`` command in a subprocess, as a user runs it, on the bundled examples."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ETL = f"{EXAMPLES / 'etl' / 'etl.py'}:etl"
FRUIT = f"{EXAMPLES / 'fruit' / 'fruit.py'}:fruit"
FLAKY = str(EXAMPLES / "flaky" / "flaky.py")


class Cli:
    def __init__(self, home: pathlib.Path, cwd: pathlib.Path, database_url: str | None) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        self.env["RUNYARD_HOME"] = str(home)
        if database_url:
            self.env["RUNYARD_DATABASE_URL"] = database_url
        self.env["COLUMNS"] = "200"
        self.cwd = cwd

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "runyard", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == code, (
            f"runyard {' '.join(args)} exited {result.returncode}, expected {code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self(*args).stdout)

    def job_ids(self) -> list[str]:
        lines = self("job", "list").stdout.splitlines()[1:]
        return [line.split()[0] for line in lines if line.strip()]


@pytest.fixture
def cli(tmp_path: pathlib.Path) -> Cli:
    return Cli(tmp_path / "home", tmp_path, None)


def test_etl_example_job_runs_its_grid_and_is_recorded(
    tmp_path: pathlib.Path, database_url: str
) -> None:
    # On the embedded SQLite default and on PostgreSQL (RUNYARD_DATABASE_URL).
    cli = Cli(tmp_path / "home", tmp_path, None if "sqlite" in database_url else database_url)
    created = cli("job", "create", ETL)
    assert "12 run(s) of pipeline etl (grid file etl.parameters.json)" in created.stdout
    job_id = created.stdout.split()[1]
    assert f"Job {job_id} success: 12 + 0 / 12" in created.stdout

    listed = cli("job", "list").stdout
    header = listed.splitlines()[0].split()
    assert header == ["ID", "PIPELINE", "STARTED", "DURATION", "PROGRESS", "STATE"]
    assert job_id in listed and "12 + 0 / 12" in listed and "success" in listed

    raw = cli.json("job", "inspect", job_id[:8], "--raw")
    assert raw["id"] == job_id and raw["state"] == "SUCCESS"
    assert raw["run_counts"] == {"SUCCESS": 12}
    combos = {
        (
            r["params"]["pipeline"]["region"],
            r["params"]["steps"]["extract"]["source"],
            r["params"]["steps"]["transform"]["factor"],
        )
        for r in raw["runs"]
    }
    assert len(combos) == 12
    first = raw["runs"][0]
    # Defaults fill what the grid leaves out.
    assert first["params"]["steps"]["extract"]["rows"] == 1000
    assert first["params"]["steps"]["transform"]["threshold"] == 100

    runs = cli("run", "list", job_id).stdout
    assert runs.count("success") == 12
    run = cli.json("run", "inspect", first["id"], "--raw")
    assert [s["step_name"] for s in run["steps"]] == ["extract", "transform", "summarize", "load"]
    assert {o["step_name"] for o in run["outputs"]} == {"extract", "transform", "summarize", "load"}
    logs = cli("logs", first["id"]).stdout
    assert "[extract] INFO etl: extracted 1000 rows from" in logs
    assert "[transform] kept" in logs
    assert "[load] loading" in logs
    assert cli("logs", first["id"], "--step", "load").stdout.startswith("[load] loading")


def test_seed_example_reads_both_parameter_namespaces(cli: Cli) -> None:
    result = cli("run", FRUIT)
    assert "success" in result.stdout
    run_id = result.stdout.split()[1]
    logs = cli("logs", run_id).stdout
    assert "step fruit=apple, pipeline fruit=banana, vegetable=carrot" in logs
    overridden = cli("run", FRUIT, "-p", "fruit=cherry", "-s", "candy.fruit=kiwi")
    logs = cli("logs", overridden.stdout.split()[1]).stdout
    assert "step fruit=kiwi, pipeline fruit=cherry, vegetable=carrot" in logs


def test_failing_runs_fail_the_job_and_say_why(cli: Cli) -> None:
    created = cli("job", "create", FLAKY, code=1)
    job_id = created.stdout.split()[1]
    assert f"Job {job_id} failure: 4 + 2 / 6" in created.stdout
    inspected = cli("job", "inspect", job_id).stdout
    assert "failed: step 'divide' failed: ZeroDivisionError: division by zero" in inspected
    failed = cli.json("job", "inspect", job_id, "--raw")["runs"]
    bad = [r for r in failed if r["state"] == "FAILURE"]
    assert {r["params"]["steps"]["divide"]["divisor"] for r in bad} == {0}
    shown = cli("run", "inspect", bad[0]["id"]).stdout
    assert "Step divide failed: ZeroDivisionError" in shown
    assert 'flaky.py", line' in shown and "upstream_failed" in shown
    cli("job", "wait", job_id, code=1)


def test_overrides_deselection_and_dry_run(cli: Cli) -> None:
    dry = cli("job", "create", ETL, "--deselect", "0,1", "--dry-run").stdout
    assert "10 of 12 run(s) selected; nothing stored." in dry
    assert cli.job_ids() == []

    created = cli("job", "create", ETL, "-q", "--exclude", "region=us", "--deselect", "0")
    job_id = created.stdout.strip()
    raw = cli.json("job", "inspect", job_id, "--raw")
    assert raw["run_count"] == 5
    assert all(r["params"]["pipeline"]["region"] == "eu" for r in raw["runs"])
    assert 0 not in [r["index"] for r in raw["runs"]]
    assert raw["deselected"] == [0, 6, 7, 8, 9, 10, 11]

    grid = cli(
        "job",
        "create",
        ETL,
        "-q",
        "-p",
        "region=apac",
        "-s",
        "transform.factor=3",
        "-s",
        "transform.factor=4",
        "--tag",
        "nightly",
        "--name",
        "apac",
    )
    raw = cli.json("job", "inspect", grid.stdout.strip(), "--raw")
    assert raw["name"] == "apac" and raw["tags"] == ["nightly"]
    assert raw["run_count"] == 4  # 2 sources from the file x 2 factors given
    assert {r["params"]["steps"]["transform"]["factor"] for r in raw["runs"]} == {3.0, 4.0}

    assert cli("job", "list", "--tag", "nightly").stdout.count("apac") == 0  # pipeline column
    assert len(cli("job", "list", "--tag", "nightly").stdout.splitlines()) == 2
    assert (
        len(cli("job", "list", "--pipeline", "etl", "--state", "success").stdout.splitlines()) == 3
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["job", "create", "missing.py:etl"], "No pipeline file 'missing.py'"),
        (["job", "create", f"{EXAMPLES / 'etl' / 'etl.py'}:elt"], "No pipeline 'elt' in"),
        (
            ["job", "create", ETL, "--params", "bad.json"],
            "Grid file bad.json, line 2, column 26: Expecting value",
        ),
        (
            ["job", "create", ETL, "--params", "unknown.json"],
            "unknown step 'extract' parameter 'rowz'; did you mean 'rows'?",
        ),
        (
            ["job", "create", ETL, "--params", "bare.json"],
            "must be a list of values, even for one value, e.g. [2]; got 2",
        ),
        (
            ["job", "create", ETL, "-s", "extract.rows=many"],
            "Step 'extract' parameter 'rows' expects int; got 'many'",
        ),
        (["run", ETL, "-p", "regoin=eu"], "has no parameter 'regoin'; did you mean 'region'?"),
        (["job", "create", ETL, "--deselect", "12"], "the grid has runs 0..11"),
        (["job", "inspect", "0123abcd"], "No job '0123abcd'"),
        (["run", "inspect", "0123abcd"], "No run '0123abcd'"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2_and_stores_nothing(
    cli: Cli, args: list[str], message: str
) -> None:
    (cli.cwd / "bad.json").write_text('{\n  "extract": {"rows": [1,]}\n}\n')
    (cli.cwd / "unknown.json").write_text('{"extract": {"rowz": [1]}}')
    (cli.cwd / "bare.json").write_text('{"transform": {"factor": 2}}')
    result = cli(*args, code=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert cli.job_ids() == []
