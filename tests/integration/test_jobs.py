"""Jobs through the app facade: grids expanded into stored runs, executed in processes, and
everything they did readable afterwards."""

import collections
import json
import pathlib
import shutil
import time
from collections.abc import Callable

import pytest

import runyard
from runyard import errors
from runyard.app import service
from runyard.core import pipelines, states
from runyard.execution import loader

R = states.RunState
S = states.StepState
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"
Load = Callable[[str], pipelines.PipelineDefinition]

GRID = {
    "pipeline_parameters": {"fruit": ["apple", "pear"]},
    "source": {"size": [1, 2, 3]},
    "scale": {"factor": [10]},
}


def test_a_job_over_a_grid_runs_every_combination_and_records_it(
    app: service.Runyard, load: Load
) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    created = app.create_job(pipe, grid=GRID, name="grid job", tags=["nightly"])
    assert created.state is runyard.JobState.CREATED
    assert created.job.run_count == 2 * 3 * 1
    assert created.job.name == "grid job"
    assert created.job.tags == ("nightly",)
    assert created.job.grid == GRID
    assert created.job.pipeline_ref.endswith("grid_pipeline.py:grid_pipeline")

    done = app.execute_job(created.id, pipe, max_parallel_runs=2)

    assert done.state is runyard.JobState.SUCCESS
    assert done.counts == {R.SUCCESS: 6}
    assert done.started_at is not None
    assert done.finished_at is not None
    assert done.started_at <= done.finished_at
    runs = app.list_runs(created.id)
    assert [r.index for r in runs] == list(range(6))
    expected = [
        {
            "pipeline": {"fruit": fruit, "unit": "kg"},
            "steps": {"source": {"size": size}, "scale": {"factor": 10}, "label": {}},
        }
        for fruit in ("apple", "pear")
        for size in (1, 2, 3)
    ]
    assert [r.params for r in runs] == expected
    for run in runs:
        assert run.state is R.SUCCESS
        assert run.reason is None
        assert run.worker is not None
        assert run.queued_at is not None
        assert run.started_at is not None
        assert run.finished_at is not None
        assert run.queued_at <= run.started_at <= run.finished_at
        size = run.params["steps"]["source"]["size"]
        fruit = run.params["pipeline"]["fruit"]
        rows = list(range(1, size + 1))
        assert app.output(run.id, "source") == rows
        assert app.output(run.id, "scale") == [r * 10 for r in rows]
        assert app.output(run.id, "label") == f"{fruit}:kg:{sum(rows) * 10}"
        assert app.output(run.id, "label", "result") == f"{fruit}:kg:{sum(rows) * 10}"


def test_outputs_are_artifacts_with_lineage(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    job = app.create_job(pipe, grid={"source": {"size": [2]}})
    app.execute_job(job.id, pipe, max_parallel_runs=1)
    (run,) = app.list_runs(job.id)
    stored = app.artifacts_of(run.id)
    assert sorted((a.step_name, a.output_name) for a in stored) == [
        ("label", "result"),
        ("scale", "result"),
        ("source", "result"),
    ]
    for artifact in stored:
        assert artifact.run_id == run.id
        assert artifact.size > 0
        assert artifact.serializer
    with pytest.raises(errors.NotFoundError) as info:
        app.output(run.id, "nothing")
    assert "'nothing'" in info.value.message
    assert "source.result" in info.value.message


def test_logs_are_captured_per_step_and_stream(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    job = app.create_job(
        pipe, grid={"pipeline_parameters": {"fruit": ["plum"]}, "source": {"size": [4]}}
    )
    app.execute_job(job.id, pipe, max_parallel_runs=1)
    (run,) = app.list_runs(job.id)

    source_lines = [
        (line.stream, line.text, line.level) for line in app.logs(run.id, step="source")
    ]
    assert ("stdout", "making 4 rows", None) in source_lines
    assert ("stderr", "stderr note for 4", None) in source_lines
    assert ("log", "fixtures.grid: rows for plum", "INFO") in source_lines
    scale_lines = [(line.stream, line.text) for line in app.logs(run.id, step="scale")]
    assert scale_lines == [("stdout", "scaling by 1")]
    assert app.logs(run.id, step="label") == []

    every = app.logs(run.id)
    assert {line.step_name for line in every} == {"source", "scale"}
    assert all(line.run_id == run.id for line in every)
    assert all(line.at is not None for line in every)


def test_step_runs_have_states_and_timings(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    job = app.create_job(pipe)
    app.execute_job(job.id, pipe, max_parallel_runs=1)
    (run,) = app.list_runs(job.id)
    step_runs = app.step_runs(run.id)
    assert [s.step_name for s in step_runs] == ["source", "scale", "label"]
    for step_run in step_runs:
        assert step_run.state is S.SUCCESS
        assert step_run.attempt == 1
        assert step_run.started_at is not None
        assert step_run.finished_at is not None
        assert step_run.started_at <= step_run.finished_at
        assert step_run.duration is not None
        assert step_run.duration >= 0
        assert step_run.error_type is None
    assert step_runs[0].finished_at <= step_runs[1].started_at  # type: ignore[operator]


def test_every_transition_is_an_event(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    job = app.create_job(pipe, grid={"source": {"size": [1, 2]}})
    app.execute_job(job.id, pipe, max_parallel_runs=2)
    events = app.events(job_id=job.id)
    assert events[0].kind == "job_created"
    assert [e.id for e in events] == sorted(e.id for e in events)  # type: ignore[type-var]

    runs = app.list_runs(job.id)
    for run in runs:
        run_path = [
            (e.old_state, e.new_state)
            for e in events
            if e.kind == "run_state" and e.run_id == run.id
        ]
        assert run_path == [
            ("CREATED", "QUEUED"),
            ("QUEUED", "STARTING"),
            ("STARTING", "RUNNING"),
            ("RUNNING", "FINISHING"),
            ("FINISHING", "SUCCESS"),
        ]
        step_paths = collections.defaultdict(list)
        for e in events:
            if e.kind == "step_state" and e.run_id == run.id:
                step_paths[e.step_name].append((e.old_state, e.new_state))
        assert dict(step_paths) == {
            name: [(None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "SUCCESS")]
            for name in ("source", "scale", "label")
        }
        assert app.events(run_id=run.id) == [e for e in events if e.run_id == run.id]
    last = events[-1].id
    assert app.events(job_id=job.id, after=last) == []


def test_deselect_by_index_stores_only_the_selected_runs(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    job = app.create_job(pipe, grid=GRID, deselect=[1, 4])
    assert job.job.run_count == 4
    assert job.job.deselected == (1, 4)
    assert [r.index for r in app.list_runs(job.id)] == [0, 2, 3, 5]
    assert app.get_job(job.id).job.deselected == (1, 4)


def test_deselect_by_filter_stores_only_the_selected_runs(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    job = app.create_job(pipe, grid=GRID, deselect=[{"fruit": "apple"}, {"source.size": 3}])
    runs = app.list_runs(job.id)
    assert [r.index for r in runs] == [3, 4]
    assert [r.params["steps"]["source"]["size"] for r in runs] == [1, 2]
    assert {r.params["pipeline"]["fruit"] for r in runs} == {"pear"}
    assert app.get_job(job.id).job.deselected == (0, 1, 2, 5)
    done = app.execute_job(job.id, pipe, max_parallel_runs=2)
    assert done.counts == {R.SUCCESS: 2}


@pytest.mark.parametrize(
    ("grid", "error"),
    [
        ({"source": {"size": ["big"]}}, errors.GridError),
        ({"pipeline_parameters": {"fruit": "apple"}}, errors.GridError),
        ({"sorce": {"size": [1]}}, errors.GridError),
    ],
)
def test_a_grid_error_stores_nothing(
    app: service.Runyard, load: Load, grid: dict[str, object], error: type[Exception]
) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    with pytest.raises(error):
        app.create_job(pipe, grid=grid)
    assert app.list_jobs() == []


def test_a_bad_deselection_stores_nothing(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    with pytest.raises(errors.GridError, match=r"0..5"):
        app.create_job(pipe, grid=GRID, deselect=[6])
    with pytest.raises(errors.GridError, match="Every run"):
        app.create_job(pipe, grid=GRID, deselect=[{"scale.factor": 10}])
    assert app.list_jobs() == []


def test_a_job_of_ten_thousand_runs_is_stored(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    started = time.perf_counter()
    job = app.create_job(
        pipe,
        grid={
            "pipeline_parameters": {"fruit": ["apple", "pear"]},
            "source": {"size": list(range(5000))},
        },
    )
    elapsed = time.perf_counter() - started
    assert job.job.run_count == 10_000
    assert job.state is runyard.JobState.CREATED
    assert job.counts == {R.CREATED: 10_000}
    runs = app.list_runs(job.id)
    assert len(runs) == 10_000
    assert [r.index for r in runs] == list(range(10_000))
    assert len({r.id for r in runs}) == 10_000
    assert runs[-1].params["pipeline"]["fruit"] == "pear"
    assert runs[-1].params["steps"]["source"]["size"] == 4999
    assert elapsed < 30, f"creating 10,000 runs took {elapsed:.1f} s"
    (listed,) = app.list_jobs()
    assert listed.id == job.id


def test_public_create_job_uses_the_grid_file_beside_the_pipeline(
    tmp_path: pathlib.Path, load: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RUNYARD_HOME", "RUNYARD_DATABASE_URL", "RUNYARD_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    pipe = load("autogrid.py:autogrid")
    grid_file = FIXTURES / "autogrid.parameters.json"
    home = tmp_path / "home"

    done = runyard.create_job(pipe, home=home, max_parallel_runs=2)

    assert done.state is runyard.JobState.SUCCESS
    assert done.job.run_count == 6
    assert done.job.grid == json.loads(grid_file.read_text())
    app = runyard.connect(home=home)
    try:
        outputs = sorted(app.output(r.id, "pick") for r in app.list_runs(done.id))
        assert outputs == sorted(
            fruit * times for fruit in ("apple", "pear", "plum") for times in (1, 2)
        )
    finally:
        app.close()


def test_public_create_job_prefers_an_explicit_grid_and_can_leave_runs_unstarted(
    tmp_path: pathlib.Path, load: Load
) -> None:
    pipe = load("autogrid.py:autogrid")
    created = runyard.create_job(
        pipe, grid={"pick": {"times": [3]}}, home=tmp_path / "home", start=False
    )
    assert created.job.run_count == 1
    assert created.state is runyard.JobState.CREATED


def test_public_create_job_refuses_a_bad_grid_file_naming_it(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "project"
    shutil.copytree(FIXTURES, folder)
    (folder / "autogrid.parameters.json").write_text('{"pick": {"times": 2}}')
    copied = loader.load_pipeline(f"{folder / 'autogrid.py'}:autogrid").pipeline
    with pytest.raises(errors.GridError) as info:
        runyard.create_job(copied, home=tmp_path / "home")
    assert "autogrid.parameters.json" in info.value.message
    assert "'times'" in info.value.message
    app = runyard.connect(home=tmp_path / "home")
    try:
        assert app.list_jobs() == []
    finally:
        app.close()


def test_model_parameters_are_checked_stored_as_json_and_typed_in_the_run(
    app: service.Runyard, load: Load
) -> None:
    pipe = load("model_params.py:model_params")
    with pytest.raises(errors.GridError, match=r"'rows'.*0"):
        app.create_job(pipe, grid={"pipeline_parameters": {"rows": [0]}})
    job = app.create_job(
        pipe, grid={"pipeline_parameters": {"when": ["2024-05-01T10:00:00+00:00"], "rows": [2]}}
    )
    app.execute_job(job.id, pipe, max_parallel_runs=1)
    (run,) = app.list_runs(job.id)
    assert run.params["pipeline"] == {"when": "2024-05-01T10:00:00Z", "rows": 2}
    assert app.output(run.id, "stamp") == "datetime 2024-05-01T10:00:00+00:00 x2"


def test_an_output_that_cannot_be_stored_fails_its_step(app: service.Runyard, load: Load) -> None:
    pipe = load("model_params.py:model_params")
    job = app.create_job(pipe)
    done = app.execute_job(job.id, pipe, max_parallel_runs=1)
    assert done.state is runyard.JobState.FAILURE
    (run,) = app.list_runs(job.id)
    assert run.reason is not None
    assert "'unstorable'" in run.reason
    assert "pickle" in run.reason
    steps = {s.step_name: s.state for s in app.step_runs(run.id)}
    assert steps == {"stamp": S.SUCCESS, "unstorable": S.FAILURE}


def test_wait_job_returns_a_finished_job_and_times_out_on_an_unstarted_one(
    app: service.Runyard, load: Load
) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    ran = app.create_job(pipe)
    app.execute_job(ran.id, pipe, max_parallel_runs=1)
    seen: list[runyard.JobSummary] = []
    assert app.wait_job(ran.id, timeout=5, on_progress=seen.append).state is (
        runyard.JobState.SUCCESS
    )
    assert len(seen) == 1
    idle = app.create_job(pipe)
    with pytest.raises(TimeoutError, match="1 run"):
        app.wait_job(idle.id, timeout=0.05, poll=0.01)


def test_list_jobs_filters_by_state_pipeline_and_tag(app: service.Runyard, load: Load) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    ran = app.create_job(pipe, tags=["a"])
    app.execute_job(ran.id, pipe, max_parallel_runs=1)
    idle = app.create_job(pipe, tags=["b"])
    assert [j.id for j in app.list_jobs()] == [idle.id, ran.id]
    assert [j.id for j in app.list_jobs(state=runyard.JobState.SUCCESS)] == [ran.id]
    assert [j.id for j in app.list_jobs(state=runyard.JobState.CREATED)] == [idle.id]
    assert [j.id for j in app.list_jobs(tag="b")] == [idle.id]
    assert app.list_jobs(pipeline="other") == []


def test_a_job_is_not_executed_by_another_version_of_its_pipeline(
    app: service.Runyard, load: Load
) -> None:
    pipe = load("grid_pipeline.py:grid_pipeline")
    other = load("autogrid.py:autogrid")
    job = app.create_job(pipe)
    with pytest.raises(errors.UsageError) as info:
        app.execute_job(job.id, other)
    assert job.job.pipeline_version in info.value.message
    assert "create a new job" in info.value.message
    assert app.get_job(job.id).state is runyard.JobState.CREATED


def test_execute_job_loads_the_pipeline_from_the_jobs_reference(
    app: service.Runyard, load: Load
) -> None:
    job = app.create_job(load("grid_pipeline.py:grid_pipeline"))
    assert app.execute_job(job.id, max_parallel_runs=1).state is runyard.JobState.SUCCESS


@pytest.mark.parametrize(
    "kwargs",
    [{"tags": [""]}, {"tags": [" padded "]}, {"max_parallel_runs": 0}],
    ids=["empty tag", "padded tag", "no parallel runs"],
)
def test_bad_job_options_store_nothing(
    app: service.Runyard, load: Load, kwargs: dict[str, object]
) -> None:
    with pytest.raises(errors.UsageError):
        app.create_job(load("grid_pipeline.py:grid_pipeline"), **kwargs)  # type: ignore[arg-type]
    assert app.list_jobs() == []
