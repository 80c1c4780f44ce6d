"""Runs are isolated: whatever one run's process does ends only that run, and nothing it
started outlives it."""

import dataclasses
import os
import pathlib
import time
from collections.abc import Iterator

import pytest

import runyard
from runyard.app import service, settings
from runyard.core import pipelines, records, states
from runyard.execution import loader

from .. import processes

R = states.RunState
S = states.StepState
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"

MODES = ["ok", "raise", "exit", "os_exit", "segfault", "memory", "loop", "spawn"]


def address_space_mb() -> int:
    """This process's virtual size: a forked run starts with the same."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmSize in /proc/self/status")


@dataclasses.dataclass
class Crashed:
    pipeline: pipelines.PipelineDefinition
    app: service.Runyard
    job: records.JobSummary
    runs: dict[str, records.Run]  # by mode
    pid_dir: pathlib.Path


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crashed]:
    """One job whose runs misbehave in every way the crashy fixture knows, executed once."""
    root = tmp_path_factory.mktemp("isolation")
    pid_dir = root / "pids"
    pid_dir.mkdir()
    pipe = loader.load_pipeline(f"{FIXTURES / 'crashy.py'}:crashy").pipeline
    app = service.Runyard.open(settings.Settings.from_env({}, home=root / "home"))
    limit_mb = address_space_mb() + 256
    job = app.create_job(
        pipe,
        grid={
            "pipeline_parameters": {"pid_dir": [str(pid_dir)], "hog_mb": [limit_mb + 512]},
            "work": {"mode": MODES},
        },
    )
    done = app.execute_job(
        job.id, pipe, max_parallel_runs=4, run_timeout=2, memory_limit_mb=limit_mb
    )
    runs = {r.params["steps"]["work"]["mode"]: r for r in app.list_runs(job.id)}
    try:
        yield Crashed(pipe, app, done, runs, pid_dir)
    finally:
        app.close()


def steps_of(app: service.Runyard, run: records.Run) -> dict[str, records.StepRun]:
    return {s.step_name: s for s in app.step_runs(run.id)}


def test_the_job_finishes_with_each_misbehaving_run_failed(crashed: Crashed) -> None:
    runs = crashed.runs
    assert set(runs) == set(MODES)
    assert crashed.job.state is runyard.JobState.FAILURE
    assert crashed.job.counts == {R.SUCCESS: 2, R.FAILURE: 6}
    assert runs["ok"].state is R.SUCCESS
    assert runs["spawn"].state is R.SUCCESS


def test_the_well_behaved_runs_finish_with_their_outputs(crashed: Crashed) -> None:
    for mode in ("ok", "spawn"):
        run = crashed.runs[mode]
        assert run.reason is None
        assert crashed.app.output(run.id, "after") == f"{mode} checked"
        assert {s.state for s in steps_of(crashed.app, run).values()} == {S.SUCCESS}


@pytest.mark.parametrize(
    ("mode", "reason_parts", "error_type"),
    [
        ("raise", ["'work'", "ValueError", "bad row 42"], "ValueError"),
        ("exit", ["'work'", "sys.exit(3)"], "SystemExit"),
        ("os_exit", ["'work'", "exited with code 7"], "RunProcessDied"),
        ("segfault", ["'work'", "SIGSEGV"], "RunProcessDied"),
        ("memory", ["'work'", "MemoryError"], "MemoryError"),
        ("loop", ["'work'", "timed out after 2 s"], "TimedOut"),
    ],
)
def test_a_misbehaving_run_fails_naming_what_happened_and_the_step(
    crashed: Crashed, mode: str, reason_parts: list[str], error_type: str
) -> None:
    run = crashed.runs[mode]
    assert run.state is R.FAILURE
    assert run.reason is not None
    for part in reason_parts:
        assert part in run.reason, run.reason
    assert run.finished_at is not None
    steps = steps_of(crashed.app, run)
    assert steps["work"].state is S.FAILURE
    assert steps["work"].error_type == error_type
    assert steps["work"].finished_at is not None
    assert steps["after"].state is S.UPSTREAM_FAILED


def test_a_raising_step_keeps_the_users_traceback(crashed: Crashed) -> None:
    work = steps_of(crashed.app, crashed.runs["raise"])["work"]
    assert work.error_message == "bad row 42"
    assert work.traceback is not None
    assert 'raise ValueError("bad row 42")' in work.traceback
    assert "crashy.py" in work.traceback


def test_a_segfault_leaves_its_fault_dump_in_the_logs(crashed: Crashed) -> None:
    lines = crashed.app.logs(crashed.runs["segfault"].id)
    text = "\n".join(line.text for line in lines)
    assert "Segmentation fault" in text


def test_the_looping_run_is_killed(crashed: Crashed) -> None:
    pid = int((crashed.pid_dir / "loop.pid").read_text())
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped by the executor, so gone for good


def test_a_process_a_step_started_does_not_outlive_its_run(crashed: Crashed) -> None:
    pid = int((crashed.pid_dir / "grandchild.pid").read_text())
    # The executor kills the run's process group; the orphan is reaped by init.
    assert processes.ended(pid), f"grandchild {pid} (sleep 60) is still running"


def test_no_run_process_is_left_behind(crashed: Crashed) -> None:
    for run in crashed.runs.values():
        assert run.worker is not None
        pid = int(run.worker.rpartition(":")[2])
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: not our child any more
        assert not processes.alive(pid)


def test_no_child_of_this_process_is_left(crashed: Crashed) -> None:
    me = str(os.getpid())
    children = []
    for status in pathlib.Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue  # it ended while we looked
        if fields.get("PPid", "").strip() == me:
            children.append((status.parent.name, fields.get("Name", "").strip()))
    assert children == []


def test_the_engine_survives_and_runs_another_job(crashed: Crashed) -> None:
    job = crashed.app.create_job(
        crashed.pipeline,
        grid={"pipeline_parameters": {"pid_dir": [str(crashed.pid_dir)]}},
    )
    done = crashed.app.execute_job(job.id, crashed.pipeline, max_parallel_runs=1)
    assert done.state is runyard.JobState.SUCCESS
    (run,) = crashed.app.list_runs(job.id)
    assert crashed.app.output(run.id, "after") == "ok checked"


def test_events_show_each_failed_run_ending_in_failure(crashed: Crashed) -> None:
    for mode, run in crashed.runs.items():
        ends = [
            e
            for e in crashed.app.events(run_id=run.id)
            if e.kind == "run_state" and e.new_state in {"SUCCESS", "FAILURE", "KILLED"}
        ]
        assert len(ends) == 1, mode
        assert ends[0].new_state == run.state.value
        assert ends[0].message == run.reason


def test_a_forked_helper_does_not_hold_a_finished_run_open(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    pipe = loader.load_pipeline(f"{FIXTURES / 'forky.py'}:forky").pipeline
    pid_file = tmp_path / "helper.pid"
    job = app.create_job(pipe, grid={"pipeline_parameters": {"pid_file": [str(pid_file)]}})
    try:
        done = app.execute_job(job.id, pipe, max_parallel_runs=1, run_timeout=5)
        (run,) = app.list_runs(job.id)
        assert app.output(run.id, "forks") == "forked"
        assert run.reason is None
        assert done.state is runyard.JobState.SUCCESS
    finally:
        assert processes.ended(int(pid_file.read_text())), "the forked helper outlived its run"


def test_an_interrupt_kills_every_running_run_and_records_it(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    pipe = loader.load_pipeline(f"{FIXTURES / 'crashy.py'}:crashy").pipeline
    job = app.create_job(
        pipe,
        grid={
            "pipeline_parameters": {"pid_dir": [str(tmp_path)]},
            "work": {"mode": ["loop", "ok", "ok"]},
        },
    )

    def on_step(run_id: str, step: records.StepRun) -> None:
        # Ctrl-C arrives in the engine once the run's step is looping.
        if step.state is S.RUNNING:
            deadline = time.monotonic() + 5
            pid_file = tmp_path / "loop.pid"
            # Wait for the pid itself, not just the file: it is created before it is written.
            while not (pid_file.exists() and pid_file.read_text()):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        app.execute_job(job.id, pipe, max_parallel_runs=1, on_step=on_step)

    run, *never_started = app.list_runs(job.id)
    assert run.state is R.KILLED
    assert run.reason is not None
    assert "interrupted" in run.reason
    # The runs still queued behind it end too: nothing would ever start them.
    assert [r.state for r in never_started] == [R.KILLED, R.KILLED]
    assert all("interrupted before it ran" in (r.reason or "") for r in never_started)
    events = app.events(run_id=never_started[0].id)
    assert [(e.old_state, e.new_state) for e in events] == [
        ("CREATED", "QUEUED"),
        ("QUEUED", "KILLED"),
    ]
    steps = steps_of(app, run)
    assert steps["work"].state is S.KILLED
    assert steps["after"].state is S.KILLED
    assert app.get_job(job.id).state is runyard.JobState.KILLED
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "loop.pid").read_text()), 0)


def test_a_step_past_its_timeout_fails_its_run_and_leaves_no_process(
    app: service.Runyard, tmp_path: pathlib.Path
) -> None:
    pipe = loader.load_pipeline(f"{FIXTURES / 'slow.py'}:slow_pipeline").pipeline
    pid_file = tmp_path / "slow.pid"
    job = app.create_job(
        pipe,
        grid={
            "pipeline_parameters": {"pid_file": [str(pid_file)]},
            "slow": {"seconds": [0.1, 30.0]},
        },
    )
    started = time.monotonic()
    app.execute_job(job.id, pipe, max_parallel_runs=1)
    assert time.monotonic() - started < 20  # the 30 s step did not run its course
    quick, stuck = app.list_runs(job.id)
    assert quick.state is R.SUCCESS
    assert stuck.state is R.FAILURE
    assert stuck.reason == "step 'slow' timed out after 1 s"
    steps = steps_of(app, stuck)
    assert steps["slow"].state is S.FAILURE and steps["slow"].error_type == "TimedOut"
    assert steps["after"].state is S.UPSTREAM_FAILED
    assert processes.ended(int(pid_file.read_text()))
