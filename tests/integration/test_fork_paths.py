"""Runs are forked by a fork server where the OS allows it, else straight from the engine;
both paths isolate runs the same way."""

import contextlib
import os
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from runyard.app import service
from runyard.core import pipelines, states
from runyard.execution import forkserver, loader, processes
from runyard.storage import artifacts
from runyard.worker import engine

R = states.RunState
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "pipelines"
Load = Callable[[str], pipelines.PipelineDefinition]


@pytest.fixture(params=["fork server", "direct fork"])
def fork_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "direct fork":
        # As on an OS without SOCK_SEQPACKET: the engine forks each run itself.
        monkeypatch.setattr(
            forkserver.ForkServer,
            "start",
            classmethod(lambda cls, body, warm=None, ahead=None: None),
        )
    return str(request.param)


def test_each_path_isolates_runs_and_reaps_them(
    fork_path: str, app: service.Runyard, load: Load, tmp_path: pathlib.Path
) -> None:
    pipe = load("crashy.py:crashy")
    modes = ["ok", "raise", "segfault", "os_exit", "loop", "ok"]
    job = app.create_job(
        pipe,
        grid={
            "pipeline_parameters": {"pid_dir": [str(tmp_path)]},
            "work": {"mode": modes},
        },
    )
    done = app.execute_job(job.id, pipe, max_parallel_runs=3, run_timeout=2)

    by_mode = {r.params["steps"]["work"]["mode"]: r for r in app.list_runs(job.id)}
    assert done.counts == {R.SUCCESS: 2, R.FAILURE: 4}
    assert by_mode["ok"].state is R.SUCCESS
    assert "ValueError: bad row 42" in (by_mode["raise"].reason or "")
    assert "killed by SIGSEGV during step 'work'" in (by_mode["segfault"].reason or "")
    assert "exited with code 7 during step 'work'" in (by_mode["os_exit"].reason or "")
    assert "timed out after 2 s during step 'work'" in (by_mode["loop"].reason or "")
    loop_pid = int((tmp_path / "loop.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(loop_pid, 0)
    # Every run process (and the fork server) has been reaped: none is left a zombie.
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_many_runs_that_end_at_once_all_finish(tmp_path: pathlib.Path) -> None:
    # A run that exits as soon as it starts makes the fork server's "forked" and "exited"
    # reports arrive together; none may be lost, or the engine would wait forever. In a
    # subprocess, so that a hang fails the test instead of stalling the suite.
    script = f"""
from runyard.app import service, settings
from runyard.execution import loader
app = service.Runyard.open(settings.Settings.from_env({{}}, home={str(tmp_path)!r}))
pipe = loader.load_pipeline({str(FIXTURES / "instant.py")!r} + ":instant")
for _ in range(30):  # each job's end is where a lost report would leave the engine waiting
    job = app.create_job(pipe.pipeline, grid={{"nothing": {{"n": [1, 2, 3, 4]}}}},
                         pipeline_ref=pipe.reference)
    done = app.execute_job(job.id, pipe.pipeline, max_parallel_runs=4)
    assert done.state.value == "SUCCESS", done
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


class _Heard:
    """A RunListener that keeps what it is told."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: dict[str, str | None] = {}

    def run_started(self, run_id: str, *, worker: str, at: float) -> None:
        self.started.append(run_id)

    def step_started(self, run_id: str, step: str, at: float, attempt: int = 1) -> None:
        assert run_id in self.started, "a step was reported before its run started"

    def output_stored(self, run_id: str, *args: object) -> None:
        pass

    def step_finished(self, run_id: str, *args: object) -> None:
        pass

    def log_lines(self, run_id: str, lines: object) -> None:
        pass

    def run_finished(
        self, run_id: str, *, at: float, problem: str | None, killed: bool = False
    ) -> None:
        self.finished[run_id] = problem

    def flush(self, *, force: bool = False) -> None:
        pass


def test_reports_read_while_waiting_for_one_run_are_not_left_unread(
    tmp_path: pathlib.Path,
) -> None:
    pipe = loader.load_pipeline(f"{FIXTURES / 'instant.py'}:instant").pipeline
    heard = _Heard()
    executor = processes.ProcessExecutor(
        max_parallel=2, outputs=artifacts.ArtifactStore(str(tmp_path))
    )
    with executor.session(lambda task: pipe, heard) as session:
        for run_id in ("a", "b"):
            session.start(
                processes.RunTask(run_id, "job", {"pipeline": {}, "steps": {"nothing": {}}}),
                pipe,
            )
        time.sleep(0.5)  # both runs fork, run and exit: four reports wait on the socket
        # Waiting for run a's pid reads all four; nothing more will ever arrive, so what
        # was read must still be acted on.
        session._ensure_pid(session.children["a"])
        for _ in range(40):
            if not session.running:
                break
            session.poll(0.05)
        assert session.running == 0
    assert heard.finished == {"a": None, "b": None}


@contextlib.contextmanager
def _worker(app: service.Runyard) -> Iterator[engine.Worker]:
    """A worker of one slot running on a thread here, drained and joined at the end."""
    working = app.worker(kind="worker", options=engine.WorkerOptions(slots=1, poll=0.02))
    thread = threading.Thread(target=working.run, daemon=True)
    thread.start()
    try:
        yield working
    finally:
        working.shut_down()
        thread.join(30)


@pytest.mark.skipif(not pathlib.Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_an_engine_forks_runs_from_a_lean_server_not_from_itself(
    app: service.Runyard, load: Load
) -> None:
    # A worker loads every pipeline by its reference, so its runs are forked by a new
    # interpreter holding only what runs need: no store, no SQLAlchemy, no API.
    pipe = load("lean.py:lean")
    job = app.create_job(pipe, grid={})
    with _worker(app):
        app.start_job(job.id)
        assert app.wait_job(job.id, timeout=60).state is states.JobState.SUCCESS
    (run,) = app.list_runs(job.id)
    seen = app.output(run.id, "inspect_process")
    assert seen["parent"] != os.getpid()
    assert "runyard.execution.forkserver" in " ".join(seen["parent_command"])
    assert seen["sqlalchemy_loaded"] is False


def test_a_foreground_job_forks_runs_from_a_fork_of_itself(
    app: service.Runyard, load: Load
) -> None:
    # Its pipeline may have been defined interactively: only a fork of this process has it.
    pipe = load("lean.py:lean")
    job = app.create_job(pipe, grid={})
    assert app.execute_job(job.id, pipe).state is states.JobState.SUCCESS
    (run,) = app.list_runs(job.id)
    seen = app.output(run.id, "inspect_process")
    assert seen["sqlalchemy_loaded"] is True  # inherited from this process


def test_a_worker_makes_each_next_runs_copy_ahead_and_leaves_none_behind(
    app: service.Runyard, load: Load
) -> None:
    # The fork server's spare makes the working copy for a run like the last one before it
    # is asked for; when the worker stops, the spare is let go and removes its copy.
    pipe = load("slow.py:slow_pipeline")
    job = app.create_job(pipe, grid={"slow": {"seconds": [0.01]}})
    # Made now: the worker, on a thread here, moves the snapshot's modules aside as it loads.
    again = app.create_job(pipe, grid={"slow": {"seconds": [0.01]}})
    assert app.workdirs is not None
    runs_dir = app.workdirs.root / "runs"
    with _worker(app):
        app.start_job(job.id)
        assert app.wait_job(job.id, timeout=60).state is states.JobState.SUCCESS
        deadline = time.monotonic() + 30
        while not [p for p in runs_dir.iterdir() if p.name.startswith(".ahead-")]:
            assert time.monotonic() < deadline, "no copy was made ahead"
            time.sleep(0.02)
        app.start_job(again.id)
        assert app.wait_job(again.id, timeout=60).state is states.JobState.SUCCESS
    run_ids = {r.id for j in (job, again) for r in app.list_runs(j.id)}
    assert {p.name for p in runs_dir.iterdir()} == run_ids
    for run_id in run_ids:  # each run worked in a whole copy of the snapshot
        assert (runs_dir / run_id / "slow.py").is_file()
