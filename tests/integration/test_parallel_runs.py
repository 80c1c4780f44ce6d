"""A job's runs execute in parallel up to ``max_parallel_runs``, and never above it."""

import itertools
import pathlib
from collections.abc import Callable

import runyard
from runyard.app import service
from runyard.core import pipelines, states

R = states.RunState
Load = Callable[[str], pipelines.PipelineDefinition]


def test_runs_execute_in_parallel_up_to_the_limit(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    # Each run waits (at most 10 s) for the other to start: only together can both succeed.
    pipe = load("parallel.py:rendezvous")
    job = app.create_job(
        pipe,
        grid={"pipeline_parameters": {"folder": [str(tmp_path)]}, "meet": {"me": ["a", "b"]}},
    )
    done = app.execute_job(job.id, pipe, max_parallel_runs=2)
    runs = app.list_runs(job.id)
    assert [r.reason for r in runs] == [None, None]
    assert done.state is runyard.JobState.SUCCESS
    assert [app.output(r.id, "meet") for r in runs] == ["a met b", "b met a"]
    assert runs[0].worker != runs[1].worker  # two processes


def test_the_job_limit_is_used_when_execute_job_gives_none(
    app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("parallel.py:rendezvous")
    job = app.create_job(
        pipe,
        grid={"pipeline_parameters": {"folder": [str(tmp_path)]}, "meet": {"me": ["a", "b"]}},
        max_parallel_runs=2,
    )
    assert job.job.max_parallel_runs == 2
    assert app.execute_job(job.id, pipe).state is runyard.JobState.SUCCESS


def test_runs_never_overlap_above_the_limit(app: service.Runyard, load: Load) -> None:
    pipe = load("parallel.py:serial")
    job = app.create_job(pipe, grid={"stamp": {"me": [1, 2, 3]}})
    done = app.execute_job(job.id, pipe, max_parallel_runs=1)
    assert done.state is runyard.JobState.SUCCESS
    runs = app.list_runs(job.id)

    # As the steps saw it: each started after the previous one ended.
    inside = sorted(app.output(r.id, "stamp") for r in runs)
    for (_, end), (start, _) in itertools.pairwise(inside):
        assert start >= end

    # As the store recorded it: each run's process started after the previous one finished.
    recorded = sorted((r.started_at, r.finished_at) for r in runs)
    for (_, end), (start, _) in itertools.pairwise(recorded):
        assert start is not None
        assert end is not None
        assert start >= end


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += change
        peak = max(peak, running)
    return peak


def test_runs_fill_but_never_exceed_the_limit(app: service.Runyard, load: Load) -> None:
    pipe = load("parallel.py:serial")
    job = app.create_job(pipe, grid={"stamp": {"me": [1, 2, 3, 4, 5]}})
    app.execute_job(job.id, pipe, max_parallel_runs=2)
    inside = [app.output(r.id, "stamp") for r in app.list_runs(job.id)]
    assert most_at_once(inside) == 2
