"""Script, shell and notebook steps: their processes, data passing, parameters, failures,
and the executed notebooks kept with a job's runs."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import textwrap
import threading

import nbformat
import pytest

import runyard
from runyard import errors
from runyard.app import service
from runyard.core import filesteps, states
from runyard.execution import exchange, loader
from tests.integration.test_api import serving

PIPE = """
import runyard

load = runyard.script("steps/load.py", params={"n": 3})
double = runyard.script("steps/double.sh", outputs=["doubled"])
report = runyard.script("steps/report.py", params={"label": "x"})


@runyard.step
def offset(*, by: int = 100) -> int:
    return by


@runyard.step
def total(values: list, off: int) -> int:
    return sum(values) + off


@runyard.pipeline(params={"scale": 2})
def pipe():
    rows = load()
    doubled = double(rows)
    off = offset()
    report(rows, off, doubled)
    total(doubled, off)
"""

LOAD = """
import sys

import runyard

n = runyard.get_step_param("n")
scale = runyard.get_pipeline_param("scale")
print(f"loading {n} rows")
print("a warning", file=sys.stderr)
runyard.output([i * scale for i in range(n)], name="rows")
runyard.output({"n": n}, name="meta")
"""

DOUBLE = """
echo "doubling in $(basename "$PWD")"
python - <<'EOF'
import runyard

rows = runyard.get_inputs()["rows"]
runyard.output([r * 2 for r in rows], name="doubled")
EOF
"""

REPORT = """
import runyard

inputs = runyard.get_inputs()
runyard.output(
    {
        "names": list(inputs.names),
        "values": list(inputs),
        "rows": inputs["rows"],
        "params": runyard.get_params(),
    },
    name="seen",
)
"""


def write(root: pathlib.Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))


@pytest.fixture
def project(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    root = tmp_path / "project"
    write(
        root,
        {
            "runyard.toml": "",
            "pipe.py": PIPE,
            "steps/load.py": LOAD,
            "steps/double.sh": DOUBLE,
            "steps/report.py": REPORT,
        },
    )
    monkeypatch.chdir(root)  # Pipeline.run works where it is called
    return root


def test_scripts_and_functions_pass_data_both_ways_and_read_both_parameter_namespaces(
    project: pathlib.Path,
) -> None:
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    assert isinstance(pipe, runyard.Pipeline)
    result = pipe.run({"scale": 10}, {"load": {"n": 4}, "report": {"label": "y"}})

    assert result.success, result.failed_step
    assert result["load"].outputs == {"rows": [0, 10, 20, 30], "meta": {"n": 4}}
    assert result["double"].outputs == {"doubled": [0, 20, 40, 60]}
    seen = result.output("report", "seen")
    # In the order of the step's inputs; an upstream script gives every output it made.
    assert seen["names"] == ["rows", "meta", "result", "doubled"]
    assert seen["values"] == [[0, 10, 20, 30], {"n": 4}, 100, [0, 20, 40, 60]]
    assert seen["rows"] == [0, 10, 20, 30]
    assert seen["params"] == {"pipeline": {"scale": 10}, "step": {"label": "y"}}
    assert result.output("total") == 120 + 100


def test_a_script_s_lines_are_its_step_s_logs_and_it_runs_in_the_run_s_working_copy(
    app: service.Runyard, project: pathlib.Path
) -> None:
    write(project, {"steps/load.py": LOAD + "\nopen('made.txt', 'w').write('x')\n"})
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    job = app.create_job(pipe)
    app.execute_job(job.id, pipe)
    (run,) = app.list_runs(job.id)
    assert run.state is states.RunState.SUCCESS, run.reason
    lines = [(line.step_name, line.stream, line.text) for line in app.logs(run.id)]
    assert ("load", "stdout", "loading 3 rows") in lines
    assert ("load", "stderr", "a warning") in lines
    assert ("double", "stdout", f"doubling in {run.id}") in lines
    copy = app.working_copy(run.id)
    assert copy is not None and (copy / "made.txt").read_text() == "x"
    assert not (project / "made.txt").exists()
    assert app.output(run.id, "report", "seen")["names"] == ["rows", "meta", "result", "doubled"]
    assert app.output(run.id, "total") == 12 + 100


@pytest.mark.parametrize(
    ("file", "body", "reason"),
    [
        ("steps/load.py", "import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)\n", 3),
        ("steps/load.py", "raise ValueError('no rows today')\n", 1),
        ("steps/double.sh", "echo broken >&2\nexit 4\n", 4),
    ],
)
def test_a_script_that_exits_non_zero_fails_its_step_with_the_exit_code(
    project: pathlib.Path, file: str, body: str, reason: int
) -> None:
    write(project, {file: body})
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    result = pipe.run()
    failed = result.failed_step
    assert failed is not None and failed.error is not None
    kind = "Script" if file.endswith(".py") else "Shell"
    assert failed.error.message == f"{kind} {pathlib.Path(file).name} exited with code {reason}"
    expected = {3: "bad input", 1: "ValueError: no rows today", 4: "broken"}[reason]
    assert expected in failed.error.traceback  # the end of the script's stderr
    assert result["total"].state is states.StepState.UPSTREAM_FAILED


def test_a_script_that_leaves_a_background_process_holding_its_output_still_ends(
    project: pathlib.Path,
) -> None:
    write(
        project,
        {
            "steps/double.sh": DOUBLE + "sleep 600 &\necho $! > sleeper.pid\n",
        },
    )
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    outcome: list[runyard.PipelineResult] = []
    worker = threading.Thread(target=lambda: outcome.append(pipe.run()), daemon=True)
    worker.start()
    worker.join(120)  # without the fix it would wait for the sleeper's 600 s
    sleeper = int((project / "sleeper.pid").read_text())
    os.kill(sleeper, signal.SIGKILL)
    assert not worker.is_alive() and outcome[0].success
    assert outcome[0].output("total") == 112


def test_a_failing_script_step_is_retried_as_asked(project: pathlib.Path) -> None:
    write(
        project,
        {
            "steps/flaky.py": """
            import pathlib, sys

            import runyard

            tries = pathlib.Path("tries.txt")
            count = int(tries.read_text()) + 1 if tries.exists() else 1
            tries.write_text(str(count))
            if count < 3:
                sys.exit(9)
            runyard.output(count)
            """,
            "flaky_pipe.py": """
            import runyard

            flaky = runyard.script("steps/flaky.py", retries=2)

            @runyard.pipeline
            def flaky_pipe():
                flaky()
            """,
        },
    )
    pipe = loader.load_pipeline(f"{project / 'flaky_pipe.py'}:flaky_pipe").pipeline
    assert pipe.run().output("flaky") == 3
    with pytest.raises(errors.DefinitionError, match=r"retries=-1, retry_delay=0\.0 are not valid"):
        filesteps.FileStep(project / "steps/flaky.py", version="v", retries=-1)


def test_declared_outputs_must_be_made_and_a_function_reads_only_a_single_output(
    project: pathlib.Path,
) -> None:
    write(project, {"steps/double.sh": "echo made nothing\n"})
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    error = pipe.run().steps["double"].error
    assert error is not None
    assert "declares outputs doubled but did not make doubled" in error.message
    assert "runyard.output(value, name='doubled')" in error.message

    write(
        project,
        {
            "two.py": """
            import runyard

            load = runyard.script("steps/load.py", params={"n": 3})

            @runyard.step
            def show(value: object) -> object:
                return value

            @runyard.pipeline(params={"scale": 1})
            def two():
                show(load())
            """
        },
    )
    two = loader.load_pipeline(f"{project / 'two.py'}:two").pipeline
    error = two.run().steps["show"].error
    assert error is not None
    assert "reads the output of step 'load', which made 2 outputs (rows, meta)" in error.message


def test_an_output_that_cannot_be_read_back_fails_its_step_saying_why(
    project: pathlib.Path,
) -> None:
    write(
        project,
        {
            "steps/load.py": """
            import runyard

            class Rows(list):
                pass

            runyard.output(Rows([1, 2]), name="rows")
            """
        },
    )
    pipe = loader.load_pipeline(f"{project / 'pipe.py'}:pipe").pipeline
    error = pipe.run().steps["load"].error
    assert error is not None
    assert error.message.startswith(
        "Output 'rows' cannot be read back outside the step's process: AttributeError: "
    )
    assert "not in the script itself" in error.message


def test_arrow_tables_cross_as_arrow_ipc(project: pathlib.Path, tmp_path: pathlib.Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    table = pyarrow.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    name, serializer = exchange.write_value(tmp_path, "t", table)
    assert (name, serializer) == ("t.arrow", "arrow")
    assert exchange.read_value(tmp_path / name, serializer).equals(table)
    assert exchange.write_value(tmp_path, "p", {"a": 1}) == ("p.pickle", "pickle")

    write(
        project,
        {
            "steps/load.py": """
            import pyarrow
            import runyard

            runyard.output(pyarrow.table({"n": [1, 2, 3]}), name="table")
            """,
            "arrow.py": """
            import runyard

            load = runyard.script("steps/load.py")

            @runyard.step
            def kind(table: object) -> str:
                return type(table).__module__ + "." + type(table).__name__ + str(table.num_rows)

            @runyard.pipeline
            def arrow():
                kind(load())
            """,
        },
    )
    arrow = loader.load_pipeline(f"{project / 'arrow.py'}:arrow").pipeline
    assert arrow.run().output("kind") == "pyarrow.lib.Table3"


def test_pandas_frames_come_back_as_frames(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("pyarrow")
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1, 2]})
    name, serializer = exchange.write_value(tmp_path, "f", frame)
    assert serializer == "arrow-pandas"
    assert exchange.read_value(tmp_path / name, serializer).equals(frame)


def test_outside_a_file_step_output_and_get_inputs_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(exchange.ENV_VAR, raising=False)
    with pytest.raises(errors.OutsideStepError, match="only in a script or notebook"):
        runyard.output(1)
    with pytest.raises(errors.OutsideStepError, match="only in a script or notebook"):
        runyard.get_inputs()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('runyard.script("../outside.py")', "leads outside the project"),
        ('runyard.script("steps/missing.py")', "'steps/missing.py' does not exist"),
        ('runyard.script("book.ipynb")', "is a notebook, not a script or shell"),
        ('runyard.notebook("steps/load.py")', "is a script, not a notebook"),
    ],
)
def test_bad_step_files_are_refused_when_the_pipeline_loads(
    project: pathlib.Path, call: str, message: str
) -> None:
    (project.parent / "outside.py").write_text("print('no')\n")
    nbformat.write(nbformat.v4.new_notebook(), project / "book.ipynb")
    write(project, {"bad.py": f"import runyard\n\nstep = {call}\n"})
    with pytest.raises(errors.LoadError, match=message):
        loader.load_pipeline(f"{project / 'bad.py'}:step")


def notebook_file(path: pathlib.Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Check"),
        nbformat.v4.new_code_cell(
            "import runyard\nrows = runyard.get_inputs()['rows']\nprint('got', rows)"
        ),
        nbformat.v4.new_code_cell(
            "limit = runyard.get_step_param('limit')\n"
            "assert len(rows) <= limit, f'{len(rows)} rows, more than {limit}'\n"
            "runyard.output(sum(rows), name='total')"
        ),
    ]
    nbformat.write(nb, path)


def test_notebook_steps_keep_their_executed_notebook_and_name_a_failing_cell(
    app: service.Runyard, project: pathlib.Path
) -> None:
    notebook_file(project / "check.ipynb")
    write(
        project,
        {
            "nb.py": """
            import runyard

            load = runyard.script("steps/load.py", params={"n": 3})
            check = runyard.notebook("check.ipynb", params={"limit": 5})

            @runyard.step
            def half(total: int) -> float:
                return total / 2

            @runyard.pipeline(params={"scale": 1})
            def nb():
                half(check(load()))
            """
        },
    )
    pipe = loader.load_pipeline(f"{project / 'nb.py'}:nb").pipeline
    job = app.create_job(pipe, grid={"load": {"n": [3, 7]}}, max_parallel_runs=2)
    app.execute_job(job.id, pipe)
    good, bad = sorted(app.list_runs(job.id), key=lambda r: r.index)

    assert good.state is states.RunState.SUCCESS, good.reason
    assert app.output(good.id, "check", "total") == 3
    assert app.output(good.id, "half") == 1.5
    kept = app.kept_files(good.id)
    assert [(step, pathlib.Path(where).name) for step, where in kept] == [
        ("check", "check.html"),
        ("check", "check.ipynb"),
    ]
    executed = nbformat.read(kept[1][1], as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "got [0, 1, 2]\n"
    assert "got [0, 1, 2]" in pathlib.Path(kept[0][1]).read_text()
    logged = [line.text for line in app.logs(good.id, step="check")]
    assert "got [0, 1, 2]" in logged
    assert f"Executed notebook: {kept[1][1]}" in logged
    assert f"Executed notebook as HTML: {kept[0][1]}" in logged
    with serving(app, auth=False) as client:  # what the UI will show
        detail = client.get(f"/api/v1/runs/{good.id}").json()
        assert [(f["step"], f["name"], f["path"]) for f in detail["files"]] == [
            ("check", "check.html", kept[0][1]),
            ("check", "check.ipynb", kept[1][1]),
        ]
        page = client.get(detail["files"][0]["url"])
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "got [0, 1, 2]" in page.text
        assert page.headers["content-security-policy"] == "sandbox"  # its scripts do not run
        notebook = client.get(detail["files"][1]["url"])
        assert "".join(notebook.json()["cells"][1]["outputs"][0]["text"]) == "got [0, 1, 2]\n"
        missing = client.get(f"/api/v1/runs/{good.id}/files/check/secret.txt")
        assert missing.status_code == 404
        assert missing.json()["message"].startswith(
            f"Run {good.id} kept no file 'secret.txt' of step 'check'"
        )

    assert bad.state is states.RunState.FAILURE
    failed = {s.step_name: s for s in app.step_runs(bad.id)}["check"]
    assert failed.error_message is not None
    assert failed.error_message.startswith(
        "Cell 2 of check.ipynb failed: AssertionError: 7 rows, more than 5"
    )
    assert "assert len(rows) <= limit" in failed.error_message  # the cell's source
    assert failed.traceback is not None and "AssertionError" in failed.traceback
    # Kept up to the failing cell, with its error.
    executed = nbformat.read(dict(app.kept_files(bad.id))["check"], as_version=4)
    assert executed.cells[2].outputs[-1]["ename"] == "AssertionError"


ORCHEST = {
    "name": "tiny",
    "uuid": "p-tiny",
    "parameters": {"scale": 2},
    "settings": {"max_steps_parallelism": 2},
    "steps": {
        "u-load": {
            "uuid": "u-load",
            "title": "Load",
            "file_path": "steps/load.py",
            "incoming_connections": [],
            "parameters": {"n": 2},
            "meta_data": {"position": [0, 0]},
        },
        "u-report": {
            "uuid": "u-report",
            "title": "Report",
            "file_path": "steps/report.py",
            "incoming_connections": ["u-load"],
            "parameters": {"label": "a"},
        },
    },
}


def test_an_orchest_file_runs_as_a_job_with_its_grid_file_keyed_by_uuid_and_title(
    app: service.Runyard, project: pathlib.Path
) -> None:
    (project / "tiny.orchest").write_text(json.dumps(ORCHEST))
    grid = {
        "pipeline_parameters": {"scale": [3]},
        "u-load": {"n": [1, 2]},
        "Report": {"label": ["b"]},
    }
    (project / "tiny.parameters.json").write_text(json.dumps(grid))

    loaded = loader.load_pipeline(str(project / "tiny.orchest"))
    assert runyard.Pipeline.from_file(project / "tiny.orchest").version == loaded.pipeline.version
    assert loaded.reference == f"{project / 'tiny.orchest'}:"
    assert loaded.pipeline.max_step_parallelism == 2
    grid_json, label, _ = app.grid_for(loaded, None)
    job = app.create_job(loaded.pipeline, grid=grid_json, grid_source=label)
    app.execute_job(job.id)  # loaded again from the job's snapshot
    runs = sorted(app.list_runs(job.id), key=lambda r: r.index)
    assert [r.state for r in runs] == [states.RunState.SUCCESS] * 2
    seen = [app.output(r.id, "report", "seen") for r in runs]
    assert [s["rows"] for s in seen] == [[0], [0, 3]]
    assert seen[0]["params"] == {"pipeline": {"scale": 3}, "step": {"label": "b"}}


def test_orchest_files_with_missing_or_escaping_step_files_are_refused_naming_each(
    project: pathlib.Path,
) -> None:
    bad = json.loads(json.dumps(ORCHEST))
    bad["steps"]["u-load"]["file_path"] = "steps/gone.py"
    bad["steps"]["u-report"]["file_path"] = "../../elsewhere.py"
    (project / "bad.orchest").write_text(json.dumps(bad))
    with pytest.raises(errors.DefinitionError) as caught:
        loader.load_pipeline(str(project / "bad.orchest"))
    message = caught.value.message
    assert message.startswith("bad.orchest: 2 problems: ")
    assert "Step file 'steps/gone.py' in step 'Load' does not exist" in message
    assert "Step file '../../elsewhere.py' in step 'Report' leads outside the project" in message

    (project / "broken.orchest").write_text('{"name": "x",\n "steps": }')
    with pytest.raises(errors.LoadError, match=r"broken.orchest, line 2, column 11"):
        loader.load_pipeline(str(project / "broken.orchest"))
    with pytest.raises(errors.LoadError, match="holds pipeline 'tiny', not 'other'"):
        (project / "tiny.orchest").write_text(json.dumps(ORCHEST))
        loader.load_pipeline(f"{project / 'tiny.orchest'}:other")
