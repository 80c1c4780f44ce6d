"""Run retries, hooks and retention with real run processes: a failed run comes back as a new
run that reuses what succeeded, only the chosen failures are retried, its backoff is waited
out, hooks hear of failures, successes and completion, and old runs are deleted."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import pytest

from runyard.app import service
from runyard.core import pipelines, states

R = states.RunState
S = states.StepState
Load = Callable[[str], pipelines.PipelineDefinition]


def counter_grid(tmp_path: pathlib.Path) -> dict[str, dict[str, list[str]]]:
    return {"pipeline_parameters": {"counter": [str(tmp_path / "count")]}}


def count(tmp_path: pathlib.Path, step: str) -> int:
    path = tmp_path / f"count.{step}"
    return int(path.read_text()) if path.exists() else 0


def test_a_failed_run_is_retried_reusing_what_succeeded_and_the_job_heals(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAKY_HOOK_FILE", str(tmp_path / "hooks.jsonl"))
    pipe = load("flaky_runs.py:flaky_runs")
    job = app.create_job(pipe, grid=counter_grid(tmp_path))
    done = app.execute_job(job.id, pipe)

    assert done.state is states.JobState.SUCCESS and done.counts == {R.SUCCESS: 1}
    first, second = sorted(app.list_runs(job.id), key=lambda r: r.attempt)
    assert first.state is R.FAILURE and first.retried_by == second.id
    assert "ConnectionError" in (first.reason or "")
    assert (second.attempt, second.parent_run_id, second.state) == (2, first.id, R.SUCCESS)
    assert count(tmp_path, "prepare") == 1  # reused, not run again
    assert count(tmp_path, "flaky") == 2
    assert {s.step_name: s.state for s in app.step_runs(second.id)} == {
        "prepare": S.SKIPPED,
        "flaky": S.SUCCESS,
    }
    assert app.output(second.id, "flaky") == 6

    # The hooks heard of the success and of the job's completion; the retried failure was
    # not a failure for good, so no failure hook.
    heard = [json.loads(line) for line in (tmp_path / "hooks.jsonl").read_text().splitlines()]
    assert sorted(h["event"] for h in heard) == ["job_complete", "run_success"]
    complete = next(h for h in heard if h["event"] == "job_complete")
    assert complete["job"]["state"] == "SUCCESS" and complete["job"]["id"] == job.id
    assert {n.state for n in app.notices(job.id)} == {states.NoticeState.DELIVERED}


def test_retries_run_out_and_the_failure_hook_hears_of_it(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAKY_HOOK_FILE", str(tmp_path / "hooks.jsonl"))
    pipe = load("flaky_runs.py:flaky_runs")
    grid = {**counter_grid(tmp_path), "flaky": {"fail_times": [5]}}
    job = app.create_job(pipe, grid=grid)
    done = app.execute_job(job.id, pipe)

    assert done.state is states.JobState.FAILURE
    assert sorted(r.attempt for r in app.list_runs(job.id)) == [1, 2, 3]
    assert count(tmp_path, "flaky") == 3
    heard = [json.loads(line) for line in (tmp_path / "hooks.jsonl").read_text().splitlines()]
    failure = next(h for h in heard if h["event"] == "run_failure")
    assert failure["run"]["attempt"] == 3 and failure["run"]["state"] == "FAILURE"
    assert "the service did not answer" in failure["run"]["reason"]


def test_a_failure_of_another_kind_is_not_retried(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("flaky_runs.py:picky_runs")
    job = app.create_job(pipe, grid=counter_grid(tmp_path))
    done = app.execute_job(job.id, pipe)
    assert done.state is states.JobState.FAILURE
    (run,) = app.list_runs(job.id)
    assert run.retried_by is None and count(tmp_path, "picky") == 1


def test_a_retry_waits_out_its_delay(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("flaky_runs.py:slow_retry")
    job = app.create_job(pipe, grid=counter_grid(tmp_path))
    assert app.execute_job(job.id, pipe).state is states.JobState.SUCCESS
    first, second = sorted(app.list_runs(job.id), key=lambda r: r.attempt)
    assert first.finished_at is not None and second.started_at is not None
    assert second.not_before is not None
    assert (second.not_before - first.finished_at).total_seconds() == pytest.approx(0.6)
    assert second.started_at >= second.not_before


def test_a_job_option_overrides_the_pipelines_policy(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    from runyard.core import retries

    pipe = load("flaky_runs.py:picky_runs")
    job = app.create_job(pipe, grid=counter_grid(tmp_path), retry=retries.RetryPolicy(retries=1))
    assert app.execute_job(job.id, pipe).state is states.JobState.FAILURE
    assert count(tmp_path, "picky") == 2  # any failure is retried now, once


def test_old_runs_beyond_the_jobs_retention_are_deleted_with_their_files(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("flaky_runs.py:kept")
    job = app.create_job(
        pipe, grid={"pipeline_parameters": {"counter": [str(tmp_path / f"c{i}") for i in range(5)]}}
    )
    app.execute_job(job.id, pipe, max_parallel_runs=1)
    left = app.list_runs(job.id)
    assert len(left) == 2
    folders = {p.name for p in (pathlib.Path(app.artifacts.root) / "runs").iterdir()}
    assert folders == {r.id for r in left}
    assert [app.output(r.id, "prepare_rows") for r in left] == [list(range(1000))] * 2


def test_a_run_that_timed_out_is_retried_when_the_policy_names_timeouts(
    app: service.Runyard, load: Load
) -> None:
    from runyard.core import retries

    pipe = load("slow.py:slow_pipeline")
    job = app.create_job(
        pipe,
        grid={"slow": {"seconds": [5]}},
        retry=retries.RetryPolicy(retries=1, on=("TimedOut",)),
    )
    assert app.execute_job(job.id, pipe).state is states.JobState.FAILURE
    runs = sorted(app.list_runs(job.id), key=lambda r: r.attempt)
    assert [r.attempt for r in runs] == [1, 2] and runs[0].retried_by == runs[1].id
    assert all("timed out after 1 s" in (r.reason or "") for r in runs)
    (step,) = [s for s in app.step_runs(runs[1].id) if s.step_name == "slow"]
    assert step.error_type == "TimedOut"
