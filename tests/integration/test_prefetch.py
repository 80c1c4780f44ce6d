"""A long-running worker claims runs ahead of its free slots while its runs are short: a slot
that frees starts one at once, one claim serves several runs, and a run claimed ahead is never
lost or run twice. Each job here starts with a quick run: the worker claims ahead only once
it has seen that runs are short."""

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from runyard.app import service
from runyard.core import pipelines, states
from runyard.worker import engine

R = states.RunState
Load = Callable[[str], pipelines.PipelineDefinition]


@pytest.fixture
def started(app: service.Runyard) -> Iterator[Callable[..., engine.Worker]]:
    """Start a worker on a thread; every one started is shut down and joined at the end."""
    threads: list[tuple[engine.Worker, threading.Thread]] = []

    def start(*, slots: int, prefetch: int, below: float = 1.0) -> engine.Worker:
        options = engine.WorkerOptions(
            slots=slots, prefetch=prefetch, prefetch_below=below, poll=0.02, heartbeat=0.05
        )
        working = app.worker(kind="worker", options=options)
        thread = threading.Thread(target=working.run, daemon=True)
        thread.start()
        threads.append((working, thread))
        return working

    yield start
    for working, thread in threads:
        working.shut_down(kill=True)
        thread.join(30)
        assert not thread.is_alive()


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def states_of(app: service.Runyard, job_id: str) -> list[R]:
    return [r.state for r in app.list_runs(job_id)]


def test_runs_claimed_ahead_start_only_as_slots_free(
    app: service.Runyard, load: Load, started: Callable[..., engine.Worker]
) -> None:
    pipe = load("slow.py:slow_pipeline")
    job = app.create_job(
        pipe, grid={"slow": {"seconds": [0.01, 0.3, 0.31, 0.32, 0.33]}}, max_parallel_runs=8
    )
    started(slots=1, prefetch=2)
    app.start_job(job.id)
    # While the first runs, the next two are claimed for this worker but not started.
    wait_for(
        lambda: states_of(app, job.id) == [R.SUCCESS, R.RUNNING, R.STARTING, R.STARTING, R.QUEUED]
    )
    assert app.wait_job(job.id, timeout=60).state is states.JobState.SUCCESS
    # One slot: each run's process started after the one before it finished.
    recorded = sorted((r.started_at, r.finished_at) for r in app.list_runs(job.id))
    for (_, end), (start, _) in itertools.pairwise(recorded):
        assert start is not None and end is not None and start >= end


def test_a_run_claimed_ahead_and_stopped_ends_killed_without_running(
    app: service.Runyard, load: Load, started: Callable[..., engine.Worker]
) -> None:
    pipe = load("slow.py:slow_pipeline")
    job = app.create_job(
        pipe, grid={"slow": {"seconds": [0.01, 0.6, 0.01, 0.02]}}, max_parallel_runs=8
    )
    started(slots=1, prefetch=1)
    app.start_job(job.id)
    quick, first, second, third = sorted(app.list_runs(job.id), key=lambda r: r.index)
    wait_for(lambda: states_of(app, job.id) == [R.SUCCESS, R.RUNNING, R.STARTING, R.QUEUED])
    app.stop_run(second.id)
    assert app.wait_job(job.id, timeout=60).state is states.JobState.KILLED
    stopped = app.get_run(second.id)
    assert stopped.state is R.KILLED and stopped.reason == "stopped by request"
    assert app.step_runs(second.id) == []  # its process never started
    assert [app.get_run(r.id).state for r in (quick, first, third)] == [R.SUCCESS] * 3


@pytest.mark.parametrize("kill", [False, True], ids=["drain", "kill"])
def test_shutting_down_never_leaves_a_run_claimed_ahead_behind(
    app: service.Runyard, load: Load, started: Callable[..., engine.Worker], kill: bool
) -> None:
    pipe = load("slow.py:slow_pipeline")
    job = app.create_job(
        pipe, grid={"slow": {"seconds": [0.01, 0.5, 0.01, 0.02, 0.03]}}, max_parallel_runs=8
    )
    working = started(slots=1, prefetch=2)
    app.start_job(job.id)
    wait_for(
        lambda: states_of(app, job.id) == [R.SUCCESS, R.RUNNING, R.STARTING, R.STARTING, R.QUEUED]
    )
    working.shut_down(kill=kill)
    wait_for(lambda: not {R.STARTING, R.RUNNING} & set(states_of(app, job.id)))
    found = sorted(app.list_runs(job.id), key=lambda r: r.index)
    if kill:
        # The running run is stopped; the two claimed ahead never started, and are back in
        # the queue as they were, for the next worker.
        assert [r.state for r in found] == [R.SUCCESS, R.KILLED, R.QUEUED, R.QUEUED, R.QUEUED]
        for released in found[2:4]:
            assert app.step_runs(released.id) == []
            assert (released.started_at, released.worker) == (None, None)
            assert [(e.old_state, e.new_state, e.message) for e in app.events(run_id=released.id)][
                -2:
            ] == [
                ("QUEUED", "STARTING", None),
                (
                    "STARTING",
                    "QUEUED",
                    f"back in the queue: {working.name} stopped before starting it",
                ),
            ]
    else:
        # Draining finishes what it claimed, and claims nothing more.
        assert [r.state for r in found] == [R.SUCCESS] * 4 + [R.QUEUED]
    started(slots=1, prefetch=2)
    assert app.wait_job(job.id, timeout=60).state is (
        states.JobState.KILLED if kill else states.JobState.SUCCESS
    )
    assert [r.state for r in sorted(app.list_runs(job.id), key=lambda r: r.index)][2:] == [
        R.SUCCESS
    ] * 3


def test_a_foreground_job_claims_nothing_ahead(app: service.Runyard, load: Load) -> None:
    # execute_job's worker exits when idle: a run stays QUEUED until a slot is free for it.
    pipe = load("slow.py:slow_pipeline")
    job = app.create_job(pipe, grid={"slow": {"seconds": [0.2, 0.2, 0.2]}})
    seen: list[list[R]] = []

    def on_step(run_id: str, step: object) -> None:
        seen.append(states_of(app, job.id))

    assert app.execute_job(job.id, pipe, max_parallel_runs=1, on_step=on_step).state is (
        states.JobState.SUCCESS
    )
    assert seen and all(s.count(R.STARTING) + s.count(R.RUNNING) <= 1 for s in seen)


def test_runs_that_are_not_short_are_claimed_only_for_a_free_slot(
    app: service.Runyard, load: Load, started: Callable[..., engine.Worker]
) -> None:
    pipe = load("slow.py:slow_pipeline")
    job = app.create_job(pipe, grid={"slow": {"seconds": [0.2] * 4}}, max_parallel_runs=8)
    started(slots=1, prefetch=2, below=0.1)  # runs of 0.2 s are long here
    app.start_job(job.id)
    seen: list[list[R]] = []
    deadline = time.monotonic() + 60
    while R.QUEUED in (now := states_of(app, job.id)) or R.RUNNING in now:
        seen.append(now)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert app.wait_job(job.id, timeout=60).state is states.JobState.SUCCESS
    assert all(s.count(R.STARTING) + s.count(R.RUNNING) <= 1 for s in seen)
