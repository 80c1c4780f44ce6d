"""Re-running a failed run from failure: stored outputs of the steps that succeeded are
reused, only the failed step and what depends on it run again."""

import pathlib
from collections.abc import Callable

import pytest

from runyard import errors
from runyard.app import service
from runyard.core import pipelines, states

R = states.RunState
S = states.StepState
Load = Callable[[str], pipelines.PipelineDefinition]


def test_a_retry_reuses_what_succeeded_and_heals_the_job(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("fragile.py:fragile_pipeline")
    log, marker = tmp_path / "log", tmp_path / "marker"
    job = app.create_job(
        pipe, grid={"pipeline_parameters": {"log": [str(log)], "marker": [str(marker)]}}
    )
    failed = app.execute_job(job.id, pipe)
    assert failed.state is states.JobState.FAILURE
    (parent,) = app.list_runs(job.id)
    assert log.read_text().split() == ["prepare", "fragile", "side"]

    marker.touch()  # the service is back
    retry = app.retry_run(parent.id)
    assert retry.parent_run_id == parent.id and set(retry.reuse or {}) == {"prepare", "side"}
    done = app.execute_job(job.id)
    assert done.state is states.JobState.SUCCESS  # the retried run no longer counts
    assert done.counts == {R.SUCCESS: 1}
    # prepare and side did not run again; fragile and finish did.
    assert log.read_text().split() == ["prepare", "fragile", "side", "fragile", "finish"]
    steps = {s.step_name: s.state for s in app.step_runs(retry.id)}
    assert steps == {
        "prepare": S.SKIPPED,
        "side": S.SKIPPED,
        "fragile": S.SUCCESS,
        "finish": S.SUCCESS,
    }
    assert app.output(retry.id, "finish") == 60
    # The reused outputs are the parent's stored ones, not copies.
    reused = {a.step_name: a.uri for a in app.artifacts_of(retry.id)}
    original = {a.step_name: a.uri for a in app.artifacts_of(parent.id)}
    assert reused["prepare"] == original["prepare"]
    assert app.get_run(parent.id).retried_by == retry.id

    with pytest.raises(errors.UsageError, match="already retried"):
        app.retry_run(parent.id)
    with pytest.raises(errors.UsageError, match="nothing to re-run from failure"):
        app.retry_run(retry.id)
    everything = app.retry_run(retry.id, all_steps=True)
    assert everything.reuse == {}
    app.execute_job(job.id)
    assert log.read_text().split()[-4:] == ["prepare", "fragile", "side", "finish"]
