"""What steps write below Python (to fds 1 and 2, from C code or subprocesses) is captured too."""

import pathlib
import time
from collections.abc import Callable

from runyard import JobState
from runyard.app import service
from runyard.core import pipelines, records, states

Load = Callable[[str], pipelines.PipelineDefinition]
RAW = {"raw on fd 1", "raw on fd 2", "from a subprocess"}


def test_output_written_to_file_descriptors_is_captured(app: service.Runyard, load: Load) -> None:
    pipe = load("rawout.py:rawout")
    job = app.create_job(pipe)
    assert app.execute_job(job.id, pipe, max_parallel_runs=1).counts == {states.RunState.SUCCESS: 1}
    (run,) = app.list_runs(job.id)
    lines = app.logs(run.id)
    assert {line.text for line in lines if line.stream == "output"} == RAW
    assert [(line.step_name, line.stream) for line in lines if line.text == "from print"] == [
        ("raw", "stdout")
    ]


def test_output_written_to_file_descriptors_is_logged_under_its_step(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("rawout.py:rawout")
    marker = tmp_path / "raw-finished"
    job = app.create_job(pipe, grid={"pipeline_parameters": {"marker": [str(marker)]}})

    def slow_observer(run_id: str, step: records.StepRun) -> None:
        # A slow progress callback in the parent: it returns only once ``raw`` has finished
        # (the next step touches the marker), as a busy parent might.
        if step.step_name == "raw" and step.state is states.StepState.RUNNING:
            deadline = time.monotonic() + 5
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)

    app.execute_job(job.id, pipe, max_parallel_runs=1, on_step=slow_observer)
    (run,) = app.list_runs(job.id)
    assert {line.text for line in app.logs(run.id, step="raw")} >= RAW


def test_concurrent_steps_in_a_run_process_log_under_their_own_names(
    app: service.Runyard, load: Load
) -> None:
    pipe = load("concurrent.py:concurrent")
    job = app.create_job(pipe)
    done = app.execute_job(job.id, pipe, max_parallel_runs=1)
    assert done.state is JobState.SUCCESS
    (run,) = app.list_runs(job.id)
    for step in ("left", "right"):
        lines = app.logs(run.id, step=step)
        printed = [line.text for line in lines if line.stream == "stdout"]
        logged = [line.text for line in lines if line.stream == "log"]
        assert printed == [f"{step} says {i}" for i in range(40)]
        assert logged == [f"fixtures.concurrent: {step} logs {i}" for i in range(40)]
    assert len(app.logs(run.id)) == 160
