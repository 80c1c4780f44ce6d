"""Step retries: each attempt is its own step run, kept; only chosen exceptions retry."""

import pathlib
from collections.abc import Callable

from runyard.app import service
from runyard.core import pipelines, states

R = states.RunState
S = states.StepState
Load = Callable[[str], pipelines.PipelineDefinition]


def test_a_step_that_fails_twice_succeeds_on_its_third_attempt(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("retrying.py:retrying")
    job = app.create_job(pipe, grid={"pipeline_parameters": {"counter": [str(tmp_path / "c")]}})
    done = app.execute_job(job.id, pipe)
    assert done.state.value == "SUCCESS"
    (run,) = app.list_runs(job.id)
    attempts = [(s.attempt, s.state, s.error_type) for s in app.step_runs(run.id)]
    assert sorted(attempts) == [
        (1, S.FAILURE, "ConnectionError"),
        (2, S.FAILURE, "ConnectionError"),
        (3, S.SUCCESS, None),
    ]
    assert app.output(run.id, "flaky") == 3
    assert run.reason is None


def test_retries_run_out_and_only_chosen_exceptions_are_retried(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    counter = str(tmp_path / "c")
    pipe = load("retrying.py:retrying")
    job = app.create_job(
        pipe,
        grid={"pipeline_parameters": {"counter": [counter]}, "flaky": {"fail_times": [10]}},
    )
    app.execute_job(job.id, pipe)
    (run,) = app.list_runs(job.id)
    assert run.state is R.FAILURE
    assert [s.attempt for s in app.step_runs(run.id)] == [1, 2, 3, 4]  # 1 + 3 retries
    assert "attempt 4: the service did not answer" in (run.reason or "")

    picky = load("retrying.py:retrying_picky")
    other = app.create_job(picky, grid={"pipeline_parameters": {"counter": [counter + "p"]}})
    app.execute_job(other.id, picky)
    (failed,) = app.list_runs(other.id)
    steps = [(s.step_name, s.attempt, s.state) for s in app.step_runs(failed.id)]
    assert ("picky", 1, S.FAILURE) in steps
    assert not any(name == "picky" and attempt > 1 for name, attempt, _ in steps)
    # In process too: Pipeline.run uses the same runner.
    result = picky.run(params={"counter": counter + "q"})
    assert result["picky"].state is S.FAILURE and result["first"].state is S.SUCCESS
